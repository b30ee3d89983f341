//! Loom model: a release handing a pool to a waiter races that waiter's cancellation.
//! Whatever the interleaving, the pool is never lost: either the waiter got it, or it
//! is free again (or went to the next waiter).
#![cfg(loom)]

use loom::sync::{Arc, Mutex};
use loom::thread;

use leasepool::{Acquired, Claim, ClaimFlag, Effects, Manager, PoolLimits, Waiter};

/// A waiter whose claim flag is the shipped [`ClaimFlag`] (loom's atomics under
/// `cfg(loom)`), claimed by the manager's grant or by its caller's cancellation.
#[derive(Clone)]
struct Flag(Arc<ClaimFlag>);

impl Waiter for Flag {
    fn try_claim(&self) -> bool {
        self.0.try_claim()
    }
}

type M = Manager<u64, u8, Flag>;

#[test]
fn handoff_never_loses_a_pool() {
    loom::model(|| {
        let mut m: M = Manager::new(
            PoolLimits::builder(1)
                .units_per_pool(1)
                .lease_grace(std::time::Duration::ZERO)
                .build()
                .unwrap(),
            Box::new(|s| s),
        );
        let mut fx = Effects::default();
        m.start(1, &mut fx);
        let Ok(Acquired::Granted(held)) = m.acquire(0.0, 10.0, 0, None, &mut fx) else {
            panic!("free pool");
        };
        let first = Flag(Arc::new(ClaimFlag::new()));
        let second = Flag(Arc::new(ClaimFlag::new()));
        let Ok(Acquired::Queued(ticket)) = m.acquire(0.0, 10.0, 1, Some(first.clone()), &mut fx)
        else {
            panic!("queued");
        };
        let _ = m.acquire(0.0, 10.0, 2, Some(second.clone()), &mut fx);
        let m = Arc::new(Mutex::new(m));

        let releaser = {
            let m = m.clone();
            thread::spawn(move || {
                let mut fx = Effects::default();
                m.lock().unwrap().release(held.key, 1.0, 1, &mut fx);
                fx.granted.len()
            })
        };
        let canceller = {
            let m = m.clone();
            let first = first.clone();
            thread::spawn(move || {
                // Cancel = claim it first, then leave the queue (what the binding does).
                let won = first.0.try_claim();
                if won {
                    m.lock().unwrap().cancel_waiter(ticket);
                    first.0.finish();
                }
                won
            })
        };
        let granted = releaser.join().unwrap();
        let cancelled = canceller.join().unwrap();
        let m = m.lock().unwrap();
        assert_eq!(granted, 1, "the release always serves somebody");
        assert_eq!(m.total_count(), 1);
        assert_eq!(m.leased_count(), 1);
        let first_state = first.0.state();
        let second_state = second.0.state();
        if cancelled {
            assert_eq!(first_state, Claim::Done, "cancelled by its caller");
            assert_eq!(
                second_state,
                Claim::Claimed,
                "the pool moved on to the next waiter"
            );
        } else {
            assert_eq!(first_state, Claim::Claimed, "granted");
            assert_eq!(second_state, Claim::Pending);
            assert_eq!(m.waiter_count(), 1);
        }
    });
}
