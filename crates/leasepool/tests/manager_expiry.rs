//! Hard expiry: the periodic check and the submit path revoke; the minimum is restored.

mod common;

use common::{started, Flag, Fx};
use leasepool::{Acquired, Event, LeaseError};

#[test]
fn check_revokes_expired_leases_restores_minimum_and_serves_waiters() {
    let mut m = started(1, 1);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(g)) = m.acquire(0.0, 1.0, "slow", None, &mut fx) else {
        panic!();
    };
    assert_eq!(g.timing.hard_expires_at(), 16.0, "1 s + 15 s grace");
    assert_eq!(m.next_hard_expiry(), Some(16.0));
    let waiter = Flag::new("w");
    let _ = m.acquire(2.0, 5.0, "w", Some(waiter.clone()), &mut fx);

    let mut fx = Fx::default();
    m.check(15.9, 1, &mut fx);
    assert!(g.is_live() == Some(true));
    assert!(
        matches!(&fx.events[..], [Event::Overdue { meta: "slow", .. }]),
        "past its soft expiry, not yet revoked: reported once as overdue"
    );

    let mut fx = Fx::default();
    m.check(16.0, 1, &mut fx);
    assert!(g.is_live() == Some(false));
    assert_eq!(
        fx.revoked,
        vec![1],
        "a revoked pool is reported apart from retired ones"
    );
    assert!(fx.retired.is_empty());
    assert!(fx
        .events
        .iter()
        .any(|e| matches!(e, Event::Revoked { meta: "slow", .. })));
    assert_eq!(
        fx.granted.len(),
        1,
        "the replacement pool went to the waiter"
    );
    assert_eq!(fx.granted[0].1.pool, 2);
    assert_eq!(m.total_count(), 1);
}

#[test]
fn submit_path_revokes_and_reports() {
    let mut m = started(2, 1);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(g)) = m.acquire(0.0, 1.0, "x", None, &mut fx) else {
        panic!();
    };
    assert_eq!(m.check_lease(g.key, 5.0, 1, &mut fx), Ok(()));
    let mut fx = Fx::default();
    assert_eq!(
        m.check_lease(g.key, 16.0, 1, &mut fx),
        Err(LeaseError::ExpiredRevoked)
    );
    assert_eq!(fx.revoked, vec![1]);
    assert!(fx.retired.is_empty());
    assert_eq!(
        m.check_lease(g.key, 16.0, 1, &mut Fx::default()),
        Err(LeaseError::Inactive)
    );
    assert_eq!(m.total_count(), 1, "minimum restored");
}

#[test]
fn acquire_revokes_expired_leases_first() {
    let mut m = started(1, 1);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(old)) = m.acquire(0.0, 1.0, "old", None, &mut fx) else {
        panic!();
    };
    let mut fx = Fx::default();
    let fresh = m.acquire(20.0, 1.0, "new", None, &mut fx);
    assert!(matches!(fresh, Ok(Acquired::Granted(_))));
    assert!(old.is_live() == Some(false));
}

/// Bare leases (no shared cells, no events): liveness is asked of the manager, and
/// it follows the same lifecycle as a cell's flag.
#[test]
fn bare_leases_are_live_until_released_revoked_or_stopped() {
    let mut m = started(2, 2);
    m.lease_cells(false);
    m.record_events(false);
    let mut fx = Fx::default();
    let Ok(Acquired::Granted(released)) = m.acquire(0.0, 1.0, "a", None, &mut fx) else {
        panic!("a pool is free");
    };
    let Ok(Acquired::Granted(revoked)) = m.acquire(0.0, 1.0, "b", None, &mut fx) else {
        panic!("a pool is free");
    };
    assert!(released.cells.is_none() && released.is_live().is_none());
    assert!(m.holds(released.key) && m.holds(revoked.key));
    assert!(fx.events.is_empty(), "no events recorded");

    assert!(m.release(released.key, 0.5, 2, &mut fx));
    assert!(!m.holds(released.key), "released");
    assert!(!m.release(released.key, 0.5, 2, &mut fx), "once");

    m.check(16.0, 2, &mut fx);
    assert!(!m.holds(revoked.key), "revoked at its hard expiry");
    assert_eq!(fx.revoked, vec![2]);
    assert!(fx.events.is_empty());

    let Ok(Acquired::Granted(stopped)) = m.acquire(17.0, 1.0, "c", None, &mut fx) else {
        panic!("a pool is free");
    };
    m.stop(17.5, &mut fx);
    assert!(!m.holds(stopped.key), "ended by the stop");
}
