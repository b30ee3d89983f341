//! Waiters are served strictly in arrival order by direct hand-off.

mod common;

use common::{started, Flag, Fx};
use leasepool::{Acquired, LeaseError};

#[test]
fn released_pool_goes_to_the_oldest_waiter_and_nobody_barges() {
    let mut m = started(1, 1);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(held)) = m.acquire(0.0, 60.0, "holder", None, &mut fx) else {
        panic!("free pool must be granted");
    };
    let waiters: Vec<Flag> = ["a", "b", "c"].into_iter().map(Flag::new).collect();
    for w in &waiters {
        let queued = m.acquire(1.0, 60.0, w.1, Some(w.clone()), &mut fx);
        assert!(matches!(queued, Ok(Acquired::Queued(_))));
    }
    // A newcomer without a waiter may not overtake the queue.
    // Three waiters ahead, nothing held back yet: the fallback hold (the 60 s asked
    // for) times four turns on one pool.
    assert_eq!(
        m.acquire(2.0, 60.0, "barger", None, &mut fx).err(),
        Some(LeaseError::Unavailable {
            max_pools: 1,
            retry_after: 240.0
        })
    );

    let mut order = Vec::new();
    let mut key = held.key;
    for _ in 0..3 {
        let mut fx = Fx::default();
        assert!(m.release(key, 3.0, 1, &mut fx));
        assert_eq!(fx.granted.len(), 1);
        let (waiter, grant) = fx.granted.pop().unwrap();
        order.push(waiter.1);
        key = grant.key;
        assert_eq!(
            m.available_count(),
            0,
            "the pool went straight to the waiter"
        );
    }
    assert_eq!(order, ["a", "b", "c"]);
}

#[test]
fn cancelled_waiter_is_skipped_without_consuming_the_pool() {
    let mut m = started(1, 1);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(held)) = m.acquire(0.0, 60.0, "holder", None, &mut fx) else {
        panic!();
    };
    let gone = Flag::new("gone");
    let next = Flag::new("next");
    let _ = m.acquire(0.0, 60.0, "gone", Some(gone.clone()), &mut fx);
    let _ = m.acquire(0.0, 60.0, "next", Some(next.clone()), &mut fx);
    assert!(gone.cancel());

    let mut fx = Fx::default();
    m.release(held.key, 1.0, 1, &mut fx);
    assert_eq!(fx.dropped.len(), 1);
    assert_eq!(fx.granted.len(), 1);
    assert_eq!(fx.granted[0].0 .1, "next");
    assert_eq!(m.leased_count(), 1);
    assert_eq!(m.waiter_count(), 0);
}

#[test]
fn released_lease_with_nobody_waiting_is_kept_up_to_the_target() {
    let mut m = started(3, 1);
    let mut fx = Fx::default();
    let grants: Vec<_> = (0..3)
        .map(|_| match m.acquire(0.0, 60.0, "x", None, &mut fx) {
            Ok(Acquired::Granted(g)) => g,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(m.total_count(), 3);
    let mut fx = Fx::default();
    m.release(grants[0].key, 1.0, 1, &mut fx);
    assert_eq!(fx.retired, vec![1], "above the target of 1: shut down");
    let mut fx = Fx::default();
    m.release(grants[1].key, 1.0, 2, &mut fx);
    assert!(fx.retired.is_empty(), "at the target: kept");
    assert_eq!(m.available_count(), 1);
    assert!(
        !m.release(grants[1].key, 1.0, 2, &mut Fx::default()),
        "idempotent"
    );
}
