//! Adaptive sizing: grow to the target, retire idle pools above it, never revoke leases.

mod common;

use std::time::Duration;

use common::{limits, started, started_with, Fx};
use leasepool::{Acquired, LeaseError};

#[test]
fn check_grows_and_shrinks_idle_pools_only() {
    let mut m = started(5, 1);
    let mut fx = Fx::default();
    m.check(0.0, 4, &mut fx);
    assert_eq!(m.total_count(), 4);
    assert_eq!(m.available_count(), 4);

    let Ok(Acquired::Granted(_a)) = m.acquire(0.0, 60.0, "a", None, &mut fx) else {
        panic!();
    };
    let Ok(Acquired::Granted(_b)) = m.acquire(0.0, 60.0, "b", None, &mut fx) else {
        panic!();
    };
    let mut fx = Fx::default();
    m.check(1.0, 1, &mut fx);
    assert_eq!(fx.retired.len(), 2, "two idle pools above target retire");
    assert_eq!(m.leased_count(), 2, "leases survive shrinking");
    assert_eq!(m.total_count(), 2);
}

#[test]
fn stop_refuses_waiters_and_retires_everything() {
    let mut m = started(1, 1);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(g)) = m.acquire(0.0, 60.0, "a", None, &mut fx) else {
        panic!();
    };
    let w = common::Flag::new("w");
    let _ = m.acquire(0.0, 60.0, "w", Some(w), &mut fx);
    let mut fx = Fx::default();
    m.stop(0.0, &mut fx);
    assert_eq!(fx.refused.len(), 1);
    assert_eq!(fx.retired, vec![1]);
    assert_eq!(m.total_count(), 0);
    assert!(g.is_live() == Some(false));
    assert_eq!(
        m.acquire(0.0, 60.0, "late", None, &mut Fx::default()).err(),
        Some(LeaseError::NotStarted)
    );
}

#[test]
fn invalid_lease_seconds_are_rejected() {
    let mut m = started(1, 1);
    for bad in [0.0, -1.0] {
        assert_eq!(
            m.acquire(0.0, bad, "x", None, &mut Fx::default()).err(),
            Some(LeaseError::InvalidLeaseSeconds)
        );
    }
    for bad in [f64::NAN, f64::INFINITY] {
        assert_eq!(
            m.acquire(0.0, bad, "x", None, &mut Fx::default()).err(),
            Some(LeaseError::NonFiniteLeaseSeconds)
        );
    }
    assert_eq!(m.leased_count(), 0);
}

/// Grants a lease at `now` from a free or creatable pool.
fn grant(m: &mut common::TestManager, now: f64, who: &'static str) -> leasepool::Grant<u64> {
    match m.acquire(now, 600.0, who, None, &mut Fx::default()) {
        Ok(Acquired::Granted(g)) => g,
        other => panic!("no grant: {other:?}"),
    }
}

#[test]
fn surplus_pools_retire_only_after_idling_for_the_configured_time() {
    let mut m = started_with(limits(3, 1).idle_pool_timeout(Duration::from_secs(10)));
    let (a, b, c) = (
        grant(&mut m, 0.0, "a"),
        grant(&mut m, 0.0, "b"),
        grant(&mut m, 0.0, "c"),
    );
    for (g, at) in [(&a, 1.0), (&b, 2.0), (&c, 3.0)] {
        let mut fx = Fx::default();
        assert!(m.release(g.key, at, 1, &mut fx));
        assert!(
            fx.retired.is_empty(),
            "kept to idle out, not retired at release"
        );
    }
    assert_eq!((m.total_count(), m.available_count()), (3, 3));
    assert_eq!(
        m.next_idle_retirement(1),
        Some(11.0),
        "coldest: released at 1.0"
    );

    let mut fx = Fx::default();
    m.check(10.9, 1, &mut fx);
    assert!(fx.retired.is_empty());
    m.check(11.0, 1, &mut fx);
    assert_eq!(fx.retired, vec![a.pool], "the coldest pool goes first");
    assert_eq!(m.next_idle_retirement(1), Some(12.0));
    // An acquire takes the warmest pool, so the cold one keeps ageing.
    let d = grant(&mut m, 11.5, "d");
    assert_eq!(d.pool, c.pool);
    let mut fx = Fx::default();
    m.check(12.0, 1, &mut fx);
    assert_eq!(fx.retired, vec![b.pool]);
    assert_eq!(
        m.next_idle_retirement(1),
        None,
        "at the target: nothing to retire"
    );
    assert_eq!(m.total_count(), 1);
}

#[test]
fn steady_lease_per_request_traffic_creates_no_pools() {
    // One request at a time, target 1, max 4: with idle retirement the same pool
    // serves every request; nothing is created or retired.
    let mut m = started_with(limits(4, 1).idle_pool_timeout(Duration::from_secs(10)));
    let mut created = 0;
    for i in 0..1000_u32 {
        let now = f64::from(i) * 0.01;
        let mut fx = Fx::default();
        let g = match m.acquire(now, 60.0, "req", None, &mut fx) {
            Ok(Acquired::Granted(g)) => g,
            other => panic!("{other:?}"),
        };
        created += fx
            .events
            .iter()
            .filter(|e| matches!(e, leasepool::Event::Created { .. }))
            .count();
        let mut fx = Fx::default();
        m.release(g.key, now, 1, &mut fx);
        m.check(now, 1, &mut fx);
        assert!(fx.retired.is_empty());
    }
    assert_eq!(created, 0);
    assert_eq!(m.total_count(), 1);
}

#[test]
fn zero_idle_seconds_keeps_0_1_3_behaviour() {
    let mut m = started(2, 1);
    let (a, b) = (grant(&mut m, 0.0, "a"), grant(&mut m, 0.0, "b"));
    let mut fx = Fx::default();
    m.release(a.key, 1.0, 1, &mut fx);
    assert_eq!(fx.retired, vec![a.pool], "above target: retired at release");
    let mut fx = Fx::default();
    m.release(b.key, 1.0, 1, &mut fx);
    assert!(fx.retired.is_empty());
    assert_eq!(m.total_count(), 1);
}
