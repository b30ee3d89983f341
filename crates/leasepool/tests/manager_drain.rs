//! Graceful drain: waiters refused at once, nothing granted after, leases held keep
//! their pools, the drain ends quiet or at its deadline (exactly one), and the final
//! stop counts the leases it revokes.

mod common;

use common::{limits, manager, started, started_with, Flag, Fx};
use leasepool::manager::DrainBegun;
use leasepool::{Acquired, DrainReport, LeaseError, SlotAcquired};

fn lease(m: &mut common::TestManager, now: f64) -> leasepool::Grant<u64> {
    let mut fx = Fx::default();
    match m.acquire(now, 60.0, "holder", None, &mut fx) {
        Ok(Acquired::Granted(grant)) => grant,
        other => panic!("a pool must be free: {other:?}"),
    }
}

#[test]
fn a_stopped_manager_has_nothing_to_drain() {
    let mut m = manager(2, 1);
    let mut fx = Fx::default();
    assert!(matches!(
        m.begin_drain(10.0, &mut fx),
        DrainBegun::NotRunning
    ));
    assert!(!m.is_draining());
    assert_eq!(m.end_drain(), None);
}

#[test]
fn waiters_are_refused_and_nothing_is_granted_after() {
    let mut m = started(1, 1);
    let held = lease(&mut m, 0.0);
    let mut fx = Fx::default();
    for name in ["a", "b"] {
        let queued = m.acquire(0.0, 60.0, name, Some(Flag::new(name)), &mut fx);
        assert!(matches!(queued, Ok(Acquired::Queued(_))));
    }
    let mut fx = Fx::default();
    let DrainBegun::Started { pools } = m.begin_drain(5.0, &mut fx) else {
        panic!("the drain must begin");
    };
    assert_eq!(
        pools,
        vec![held.pool],
        "the leased pool may still run calls"
    );
    let refused: Vec<_> = fx.refused.iter().map(|flag| flag.1).collect();
    assert_eq!(refused, ["a", "b"], "oldest first");
    assert_eq!(m.waiter_count(), 0);
    let mut fx = Fx::default();
    assert_eq!(
        m.acquire(1.0, 60.0, "late", Some(Flag::new("late")), &mut fx)
            .err(),
        Some(LeaseError::Draining)
    );
    assert_eq!(
        m.acquire_slot(1.0, 60.0, "late", None, &mut fx)
            .err()
            .map(|(err, _)| err),
        Some(LeaseError::Draining)
    );
    // The holder's release is still served; nothing is left leased: quiet, once.
    assert!(!m.drain_quiet());
    assert!(m.release(held.key, 2.0, 1, &mut Fx::default()));
    assert!(fx.granted.is_empty());
    assert!(m.drain_quiet());
    assert!(!m.drain_quiet(), "quiet fires once");
    assert_eq!(
        m.drain_due(100.0),
        None,
        "the deadline does not fire after quiet"
    );
    m.stop(0.0, &mut Fx::default());
    assert_eq!(
        m.end_drain(),
        Some(DrainReport {
            waiters_failed: 2,
            ..DrainReport::default()
        })
    );
    assert!(!m.is_draining());
}

#[test]
fn the_deadline_names_the_pools_still_in_use_and_the_stop_counts_their_leases() {
    let mut m = started_with(limits(3, 1).slots_per_pool(2));
    let held = lease(&mut m, 0.0);
    let mut fx = Fx::default();
    let Ok(SlotAcquired::Granted(slot, _)) = m.acquire_slot(0.0, 60.0, "call", None, &mut fx)
    else {
        panic!("a slot must be free");
    };
    assert!(matches!(
        m.begin_drain(5.0, &mut Fx::default()),
        DrainBegun::Started { .. }
    ));
    assert_eq!(m.drain_deadline(), Some(5.0));
    assert_eq!(m.drain_due(4.9), None, "not yet");
    let mut pools = m.drain_due(5.0).expect("due at the deadline");
    pools.sort_unstable();
    let mut expected = vec![held.pool, slot.pool];
    expected.sort_unstable();
    assert_eq!(pools, expected);
    assert_eq!(m.drain_due(6.0), None, "due fires once");
    assert_eq!(m.drain_deadline(), None);
    assert!(!m.drain_quiet(), "quiet does not fire after the deadline");
    m.stop(0.0, &mut Fx::default());
    assert_eq!(
        m.end_drain(),
        Some(DrainReport {
            leases_revoked: 2,
            timed_out: true,
            ..DrainReport::default()
        })
    );
}

#[test]
fn a_second_drain_joins_and_keeps_the_earlier_deadline() {
    let mut m = started(1, 1);
    let _held = lease(&mut m, 0.0);
    assert!(matches!(
        m.begin_drain(10.0, &mut Fx::default()),
        DrainBegun::Started { .. }
    ));
    assert!(matches!(
        m.begin_drain(4.0, &mut Fx::default()),
        DrainBegun::Joined { deadline } if deadline == 4.0
    ));
    assert!(matches!(
        m.begin_drain(30.0, &mut Fx::default()),
        DrainBegun::Joined { deadline } if deadline == 4.0
    ));
    assert!(m.drain_due(4.0).is_some());
}

#[test]
fn a_plain_stop_during_a_drain_decides_it() {
    let mut m = started(1, 1);
    let _held = lease(&mut m, 0.0);
    assert!(matches!(
        m.begin_drain(10.0, &mut Fx::default()),
        DrainBegun::Started { .. }
    ));
    m.stop(0.0, &mut Fx::default());
    assert_eq!(m.drain_due(20.0), None);
    assert!(!m.drain_quiet());
    assert_eq!(
        m.end_drain(),
        Some(DrainReport {
            leases_revoked: 1,
            ..DrainReport::default()
        })
    );
    // Started again, the manager grants as before.
    m.start(1, &mut Fx::default());
    let _again = lease(&mut m, 1.0);
}
