//! Loom model: a release handing a pool to a waiter races that waiter's cancellation.
//! Whatever the interleaving, the pool is never lost: either the waiter got it, or it
//! is free again (or went to the next waiter).
#![cfg(loom)]

use loom::sync::atomic::{AtomicU8, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;

use leasepool::{Acquired, Effects, Manager, PoolLimits, Waiter};

const PENDING: u8 = 0;
const CLAIMED: u8 = 1;
const CANCELLED: u8 = 2;

#[derive(Clone)]
struct Flag(Arc<AtomicU8>);

impl Waiter for Flag {
    fn try_claim(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

type M = Manager<u64, u8, Flag>;

#[test]
fn handoff_never_loses_a_pool() {
    loom::model(|| {
        let mut m: M = Manager::new(PoolLimits::new(1, 1, 1, 1).unwrap(), 0.0, Box::new(|s| s));
        let mut fx = Effects::default();
        m.start(1, &mut fx);
        let Ok(Acquired::Granted(held)) = m.acquire(0.0, 10.0, 0, None, &mut fx) else {
            panic!("free pool");
        };
        let first = Flag(Arc::new(AtomicU8::new(PENDING)));
        let second = Flag(Arc::new(AtomicU8::new(PENDING)));
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
                // Cancel = make unclaimable, then leave the queue (what the binding does).
                let won = first
                    .0
                    .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                if won {
                    m.lock().unwrap().cancel_waiter(ticket);
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
        let first_state = first.0.load(Ordering::Acquire);
        let second_state = second.0.load(Ordering::Acquire);
        if cancelled {
            assert_eq!(first_state, CANCELLED);
            assert_eq!(
                second_state, CLAIMED,
                "the pool moved on to the next waiter"
            );
        } else {
            assert_eq!(first_state, CLAIMED);
            assert_eq!(second_state, PENDING);
            assert_eq!(m.waiter_count(), 1);
        }
    });
}
