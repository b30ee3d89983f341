//! Adaptive sizing: grow to the target, retire idle pools above it, never revoke leases.

mod common;

use common::{started, Fx};
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
    m.stop(&mut fx);
    assert_eq!(fx.refused.len(), 1);
    assert_eq!(fx.retired, vec![1]);
    assert_eq!(m.total_count(), 0);
    assert!(!g.live.load(std::sync::atomic::Ordering::Acquire));
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
