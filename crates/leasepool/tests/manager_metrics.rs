//! Lease metrics recorded by the state machine: grants and their waits, how leases
//! end (released, revoked at the hard expiry, ended by `stop`), refusals by reason,
//! timeouts, call slots, the overdue report, pools made and retired, and the
//! per-owner table. Time is the driven `now`: no clock, no sleep.

mod common;

use std::time::Duration;

use common::{limits, manager, Flag, Fx, TestManager};
use leasepool::metrics::{LeaseMetricsSnapshot, OwnerShare, DURATION_BOUNDS_NS};
use leasepool::{
    Acquired, AdmissionPolicy, Event, Grant, LeaseError, Manager, PoolLimitsBuilder, SlotAcquired,
    SlotGrant, Tenant,
};

const SECOND: u64 = 1_000_000_000;

/// A started manager with metrics on (`owners` broken down), target its minimum.
fn metered(limits: PoolLimitsBuilder, owners: usize) -> TestManager {
    metered_with(limits, AdmissionPolicy::default(), owners)
}

fn metered_with(limits: PoolLimitsBuilder, policy: AdmissionPolicy, owners: usize) -> TestManager {
    let limits = limits.build().unwrap();
    let mut m = Manager::with_admission(limits, policy, Box::new(|seq| seq)).unwrap();
    m.enable_metrics(owners);
    m.start(limits.min_pools(), &mut Fx::default());
    m
}

fn snap(m: &TestManager) -> LeaseMetricsSnapshot {
    m.metrics().expect("metrics are enabled")
}

/// The index of the bucket whose upper bound is `bound_ns`.
fn le(bound_ns: u64) -> usize {
    DURATION_BOUNDS_NS
        .iter()
        .position(|&bound| bound == bound_ns)
        .expect("a bucket bound")
}

/// The buckets holding a value, as `(bucket, count)` pairs.
fn filled(counts: &[u64]) -> Vec<(usize, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| (i, n))
        .collect()
}

fn grant_as(m: &mut TestManager, now: f64, secs: f64, owner: Option<u64>) -> Grant<u64> {
    let tenant = Tenant {
        owner,
        ..Tenant::default()
    };
    match m.acquire_as(now, secs, tenant, "holder", None, &mut Fx::default()) {
        Ok(Acquired::Granted(grant)) => grant,
        other => panic!("a pool must be free: {other:?}"),
    }
}

fn grant(m: &mut TestManager, now: f64, secs: f64) -> Grant<u64> {
    grant_as(m, now, secs, None)
}

fn queue(
    m: &mut TestManager,
    now: f64,
    who: &'static str,
    fx: &mut Fx,
) -> leasepool::waiters::Ticket {
    match m.acquire(now, 60.0, who, Some(Flag::new(who)), fx) {
        Ok(Acquired::Queued(ticket)) => ticket,
        other => panic!("{who} must queue: {other:?}"),
    }
}

fn slot(m: &mut TestManager, now: f64, secs: f64) -> SlotGrant<u64> {
    match m.acquire_slot(now, secs, "call", None, &mut Fx::default()) {
        Ok(SlotAcquired::Granted(grant, _)) => grant,
        other => panic!("a slot must be free: {other:?}"),
    }
}

#[test]
fn with_metrics_disabled_there_are_none() {
    let mut m = manager(2, 1);
    m.start(1, &mut Fx::default());
    let _lease = grant(&mut m, 0.0, 60.0);
    assert!(m.metrics().is_none());
    assert!(m.metrics_mut().is_none());
}

#[test]
fn an_immediate_grant_waits_zero() {
    let mut m = metered(limits(2, 1), 0);
    let _lease = grant(&mut m, 3.0, 60.0);
    let s = snap(&m);
    assert_eq!(s.counts.leases_granted, 1);
    assert_eq!(s.acquire_wait.count(), 1);
    assert_eq!(s.acquire_wait.sum, 0);
    assert_eq!(
        filled(&s.acquire_wait.counts),
        [(0, 1)],
        "the <= 1 us bucket"
    );
    assert_eq!(s.acquire_wait.bounds, DURATION_BOUNDS_NS);
    assert_eq!(s.lease_hold.count(), 0, "nothing ended yet");
    assert!(s.owners.is_none(), "no owner breakdown asked for");
}

#[test]
fn a_queued_waiter_records_how_long_it_waited() {
    let mut m = metered(limits(1, 1), 0);
    let held = grant(&mut m, 0.0, 60.0);
    let mut fx = Fx::default();
    queue(&mut m, 0.5, "w", &mut fx);
    let mut fx = Fx::default();
    assert!(m.release(held.key, 2.5, 1, &mut fx));
    assert_eq!(fx.granted.len(), 1, "handed to the waiter");
    let s = snap(&m);
    assert_eq!(s.counts.leases_granted, 2);
    assert_eq!(
        filled(&s.acquire_wait.counts),
        [(0, 1), (le(5 * SECOND / 2), 1)],
        "one immediate grant, one wait of 2 s (<= 2.5 s)"
    );
    assert_eq!(s.acquire_wait.sum, 2 * SECOND);
    assert_eq!(s.counts.leases_released, 1);
    assert_eq!(filled(&s.lease_hold.counts), [(le(5 * SECOND / 2), 1)]);
}

#[test]
fn release_revocation_and_stop_are_counted_apart() {
    let mut m = metered(limits(4, 1).lease_grace(Duration::from_secs(1)), 0);
    let released = grant(&mut m, 0.0, 10.0);
    let revoked = grant(&mut m, 0.0, 10.0);
    let _stopped = grant(&mut m, 0.0, 100.0);
    assert!(m.release(released.key, 4.0, 1, &mut Fx::default()));
    // The periodic check revokes the one past its hard expiry (10 + 1 s).
    m.check(11.5, 1, &mut Fx::default());
    assert!(revoked.is_live() == Some(false));
    m.stop(30.0, &mut Fx::default());
    let s = snap(&m);
    assert_eq!(s.counts.leases_granted, 3);
    assert_eq!(s.counts.leases_released, 1);
    assert_eq!(s.counts.leases_revoked, 1, "past its hard expiry");
    assert_eq!(s.counts.leases_stopped, 1, "ended by stop, not revoked");
    assert_eq!(
        filled(&s.lease_hold.counts),
        [
            (le(5 * SECOND), 1),
            (le(25 * SECOND), 1),
            (le(50 * SECOND), 1)
        ],
        "held 4 s, 11.5 s and 30 s"
    );
    assert_eq!(s.lease_hold.sum, 45_500_000_000);

    // The submit path (`check_lease`) and a broken pool.
    let mut m = metered(limits(2, 1).lease_grace(Duration::from_secs(1)), 0);
    let expired = grant(&mut m, 0.0, 10.0);
    let broken = grant(&mut m, 0.0, 10.0);
    assert_eq!(
        m.check_lease(expired.key, 5.0, 1, &mut Fx::default()),
        Ok(())
    );
    assert_eq!(
        m.check_lease(expired.key, 11.0, 1, &mut Fx::default()),
        Err(LeaseError::ExpiredRevoked)
    );
    assert!(m.retire_broken(broken.key, 3.0, 1, &mut Fx::default()));
    let s = snap(&m);
    assert_eq!((s.counts.leases_revoked, s.counts.leases_released), (1, 1));
    assert_eq!(s.counts.leases_stopped, 0);
}

#[test]
fn a_draining_lease_is_counted_when_its_drain_ends() {
    let mut m = metered(limits(1, 1), 0);
    let lease = grant(&mut m, 0.0, 60.0);
    let _ = lease.calls().expect("a lease with cells").begin();
    assert!(m.release(lease.key, 1.0, 1, &mut Fx::default()));
    assert_eq!(snap(&m).counts.leases_released, 0, "still draining");
    assert!(
        lease.calls().expect("a lease with cells").end(),
        "the last call ends the drain"
    );
    assert!(m.finish_drain(lease.key, 7.0, 1, &mut Fx::default()));
    let s = snap(&m);
    assert_eq!(s.counts.leases_released, 1);
    assert_eq!(s.lease_hold.sum, 7 * SECOND, "held until the pool moved on");
}

#[test]
fn refusals_are_counted_by_reason() {
    let policy = AdmissionPolicy::default().max_waiters(Some(1));
    let mut m = metered_with(limits(1, 1), policy, 0);
    let held = grant(&mut m, 0.0, 60.0);
    let mut fx = Fx::default();
    // wait=False
    assert!(matches!(
        m.acquire(0.0, 60.0, "now", None, &mut fx),
        Err(LeaseError::Unavailable { .. })
    ));
    queue(&mut m, 0.0, "first", &mut fx);
    assert!(matches!(
        m.acquire(0.0, 60.0, "second", Some(Flag::new("second")), &mut fx),
        Err(LeaseError::QueueFull { .. })
    ));
    let s = snap(&m);
    assert_eq!(
        (s.counts.rejected_unavailable, s.counts.rejected_queue_full),
        (1, 1)
    );
    assert_eq!(s.counts.rejected_draining, 0);

    // A drain fails the waiter and refuses every later request (pool or slot).
    let mut fx = Fx::default();
    m.begin_drain(10.0, &mut fx);
    assert_eq!(fx.refused.len(), 1);
    assert_eq!(snap(&m).counts.rejected_draining, 1, "the waiter failed");
    assert_eq!(
        m.acquire(1.0, 60.0, "late", None, &mut Fx::default()).err(),
        Some(LeaseError::Draining)
    );
    assert!(m
        .acquire_slot(1.0, 60.0, "late", None, &mut Fx::default())
        .is_err());
    let s = snap(&m);
    assert_eq!(s.counts.rejected_draining, 3);
    assert_eq!(s.counts.leases_granted, 1, "nothing granted while draining");
    assert!(m.release(held.key, 2.0, 1, &mut Fx::default()));
    assert!(m.drain_quiet());
    m.stop(2.0, &mut Fx::default());
    let s = snap(&m);
    assert_eq!((s.counts.leases_released, s.counts.leases_stopped), (1, 0));

    // Waiters failed by a plain stop count as draining refusals too.
    let mut m = metered(limits(1, 1), 0);
    let _held = grant(&mut m, 0.0, 60.0);
    let mut fx = Fx::default();
    queue(&mut m, 0.0, "a", &mut fx);
    queue(&mut m, 0.0, "b", &mut fx);
    let mut fx = Fx::default();
    m.stop(1.0, &mut fx);
    assert_eq!(fx.refused.len(), 2);
    let s = snap(&m);
    assert_eq!(s.counts.rejected_draining, 2);
    assert_eq!(s.counts.leases_stopped, 1);
    // A request to a stopped manager is not a refusal of the engine's.
    assert_eq!(
        m.acquire(2.0, 60.0, "x", None, &mut Fx::default()).err(),
        Some(LeaseError::NotStarted)
    );
    assert_eq!(snap(&m).counts.rejected_unavailable, 0);
}

#[test]
fn a_timed_out_waiter_is_counted_and_the_waiters_behind_are_served() {
    // One pool hosting two call slots, one of them busy: a pool request at the head
    // blocks the slot request behind it (nobody barges), until it times out.
    let mut m = metered(limits(1, 1).slots_per_pool(2), 0);
    let _running = slot(&mut m, 0.0, 60.0);
    let mut fx = Fx::default();
    let head = queue(&mut m, 1.0, "pool", &mut fx);
    assert!(matches!(
        m.acquire_slot(1.0, 60.0, "call", Some(Flag::new("call")), &mut fx),
        Ok(SlotAcquired::Queued(_))
    ));
    assert_eq!(m.waiter_count(), 2);
    let mut fx = Fx::default();
    let timed_out = m.time_out_waiter(head, 4.0, &mut fx).expect("queued");
    assert_eq!(timed_out.1, "pool");
    assert_eq!(
        fx.slots_granted.len(),
        1,
        "the slot request behind is served"
    );
    assert_eq!(m.waiter_count(), 0);
    assert!(
        m.time_out_waiter(head, 5.0, &mut Fx::default()).is_none(),
        "gone: not counted twice"
    );
    let s = snap(&m);
    assert_eq!(s.counts.acquire_timeouts, 1);
    assert_eq!(s.counts.leases_granted, 2);
    assert_eq!(
        filled(&s.acquire_wait.counts),
        [(0, 1), (le(5 * SECOND), 1)],
        "the served call waited 3 s"
    );
    // A plain withdrawal (a cancelled caller) is no timeout.
    let mut fx = Fx::default();
    let ticket = queue(&mut m, 5.0, "cancelled", &mut fx);
    assert!(m.withdraw_waiter(ticket, 6.0, &mut fx).is_some());
    assert_eq!(snap(&m).counts.acquire_timeouts, 1);
}

#[test]
fn call_slots_count_as_leases() {
    let mut m = metered(
        limits(1, 1)
            .slots_per_pool(1)
            .lease_grace(Duration::from_secs(1)),
        0,
    );
    let first = slot(&mut m, 0.0, 10.0);
    let mut fx = Fx::default();
    assert!(matches!(
        m.acquire_slot(0.5, 10.0, "next", Some(Flag::new("next")), &mut fx),
        Ok(SlotAcquired::Queued(_))
    ));
    let mut fx = Fx::default();
    assert!(m.end_slot(first.key, 1.5, 1, false, &mut fx));
    let (_, second) = fx.slots_granted.pop().expect("handed to the waiter");
    let s = snap(&m);
    assert_eq!((s.counts.leases_granted, s.counts.leases_released), (2, 1));
    assert_eq!(filled(&s.acquire_wait.counts), [(0, 1), (le(SECOND), 1)]);
    assert_eq!(filled(&s.lease_hold.counts), [(le(5 * SECOND / 2), 1)]);
    // Past its hard expiry (1.5 + 10 + 1) the check revokes it.
    m.check(13.0, 1, &mut Fx::default());
    assert!(!m.end_slot(second.key, 13.0, 1, false, &mut Fx::default()));
    let s = snap(&m);
    assert_eq!(s.counts.leases_revoked, 1);
    assert_eq!(s.lease_hold.count(), 2);
    assert_eq!(s.lease_hold.sum, 1_500_000_000 + 11_500_000_000);
    assert_eq!(s.counts.leases_overdue, 0, "revoked before it was reported");
}

fn overdue_ids(fx: &Fx) -> Vec<String> {
    fx.events
        .iter()
        .filter_map(|event| match event {
            Event::Overdue { id, .. } => Some(id.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn overdue_is_reported_once_per_lease() {
    let mut m = metered(limits(4, 1).lease_grace(Duration::from_secs(10)), 0);
    let short = grant(&mut m, 0.0, 5.0);
    let long = grant(&mut m, 0.0, 8.0);
    let draining = grant(&mut m, 0.0, 3.0);
    let _ = draining.calls().expect("a lease with cells").begin();
    assert!(m.release(draining.key, 1.0, 1, &mut Fx::default()));
    assert_eq!(
        m.next_overdue(),
        Some(5.0),
        "a draining lease is not reported"
    );

    let mut fx = Fx::default();
    m.check(6.0, 1, &mut fx);
    assert_eq!(overdue_ids(&fx), [short.id.to_string()]);
    match fx
        .events
        .iter()
        .find(|e| matches!(e, Event::Overdue { .. }))
    {
        Some(Event::Overdue {
            age,
            lease_seconds,
            until_revoked,
            slot,
            ..
        }) => {
            assert_eq!((*age, *lease_seconds, *until_revoked), (6.0, 5.0, 9.0));
            assert!(!slot);
        }
        other => panic!("an overdue event: {other:?}"),
    }
    assert_eq!(snap(&m).counts.leases_overdue, 1);
    assert_eq!(
        m.next_overdue(),
        Some(8.0),
        "on to the next unreported lease"
    );

    let mut fx = Fx::default();
    m.check(7.0, 1, &mut fx);
    assert!(overdue_ids(&fx).is_empty(), "not again on the next check");
    let mut fx = Fx::default();
    m.check(9.0, 1, &mut fx);
    assert_eq!(overdue_ids(&fx), [long.id.to_string()]);
    assert_eq!(snap(&m).counts.leases_overdue, 2);
    assert_eq!(m.next_overdue(), None);

    // A call slot past its soft expiry is reported the same way.
    let call = slot(&mut m, 9.0, 2.0);
    assert_eq!(m.next_overdue(), Some(11.0));
    let mut fx = Fx::default();
    m.check(12.0, 1, &mut fx);
    assert_eq!(overdue_ids(&fx), [call.id.to_string()]);
    assert!(matches!(
        fx.events
            .iter()
            .find(|e| matches!(e, Event::Overdue { .. })),
        Some(Event::Overdue { slot: true, .. })
    ));
    let s = snap(&m);
    assert_eq!(s.counts.leases_overdue, 3);
    assert_eq!(s.counts.leases_revoked, 0, "overdue is not revoked");
}

#[test]
fn pools_created_and_retired_follow_idle_retirement() {
    let mut m = metered(limits(3, 1).idle_pool_timeout(Duration::from_secs(10)), 0);
    m.check(0.0, 3, &mut Fx::default());
    let s = snap(&m);
    assert_eq!((s.counts.pools_created, s.pools_retired), (3, 0));
    let leases: Vec<_> = (0..3).map(|_| grant(&mut m, 0.0, 60.0)).collect();
    for lease in &leases {
        assert!(m.release(lease.key, 1.0, 1, &mut Fx::default()));
    }
    // Above the target of 1, but not idle for 10 s yet.
    m.check(5.0, 1, &mut Fx::default());
    assert_eq!(snap(&m).pools_retired, 0);
    assert_eq!(m.next_idle_retirement(1), Some(11.0));
    let mut fx = Fx::default();
    m.check(11.0, 1, &mut fx);
    assert_eq!(fx.retired.len(), 2);
    let s = snap(&m);
    assert_eq!((s.counts.pools_created, s.pools_retired), (3, 2));
    assert_eq!(m.total_count(), 1);
    // Growth again, then stop: everything created is retired.
    m.check(12.0, 3, &mut Fx::default());
    let s = snap(&m);
    assert_eq!((s.counts.pools_created, s.pools_retired), (5, 2));
    m.stop(13.0, &mut Fx::default());
    let s = snap(&m);
    assert_eq!((s.counts.pools_created, s.pools_retired), (5, 5));
}

#[test]
fn metrics_enabled_on_a_running_manager_still_count_retirements() {
    let limits = limits(3, 2).build().unwrap();
    let mut m: TestManager = Manager::new(limits, Box::new(|seq| seq));
    m.start(2, &mut Fx::default());
    m.enable_metrics(0);
    let s = snap(&m);
    assert_eq!(
        (s.counts.pools_created, s.pools_retired),
        (2, 0),
        "the pools owned count as created"
    );
    m.check(1.0, 1, &mut Fx::default());
    assert_eq!(snap(&m).pools_retired, 1, "not hidden by created < owned");
}

fn share<'a>(named: &'a [(std::sync::Arc<str>, OwnerShare)], label: &str) -> &'a OwnerShare {
    &named
        .iter()
        .find(|(l, _)| &**l == label)
        .unwrap_or_else(|| panic!("{label} has an entry"))
        .1
}

#[test]
fn owners_are_broken_down_with_overflow_and_anonymous_entries() {
    let mut m = metered(limits(6, 1), 2);
    let metrics = m.metrics_mut().expect("enabled");
    assert!(metrics.tracks_owners());
    for (key, label) in [(1, "alice"), (2, "bob"), (3, "carol")] {
        metrics.name_owner(key, || label.to_owned());
    }
    let alice = grant_as(&mut m, 0.0, 60.0, Some(1));
    let _alice2 = grant_as(&mut m, 0.0, 60.0, Some(1));
    let _bob = grant_as(&mut m, 0.0, 60.0, Some(2));
    let carol = grant_as(&mut m, 0.0, 60.0, Some(3));
    let _dave = grant_as(&mut m, 0.0, 60.0, Some(4));
    let _nobody = grant_as(&mut m, 0.0, 60.0, None);
    let refused = Tenant {
        owner: Some(2),
        ..Tenant::default()
    };
    let mut fx = Fx::default();
    assert!(m
        .acquire_as(1.0, 60.0, refused, "bob", None, &mut fx)
        .is_err());
    assert!(m.release(alice.key, 2.0, 1, &mut Fx::default()));
    assert!(m.release(carol.key, 3.0, 1, &mut Fx::default()));

    let owners = snap(&m).owners.expect("broken down");
    assert_eq!(owners.named.len(), 2, "carol did not fit");
    let alice = share(&owners.named, "alice");
    assert_eq!((alice.granted, alice.held, alice.rejected), (2, 1, 0));
    assert_eq!((alice.wait_ns, alice.hold_ns), (0, 2 * SECOND));
    let bob = share(&owners.named, "bob");
    assert_eq!((bob.granted, bob.held, bob.rejected), (1, 1, 1));
    assert_eq!(
        (
            owners.others.granted,
            owners.others.held,
            owners.others.hold_ns
        ),
        (2, 1, 3 * SECOND),
        "carol and dave share the overflow entry"
    );
    assert_eq!((owners.anonymous.granted, owners.anonymous.held), (1, 1));

    // A stop ends every lease: nobody holds anything after it.
    m.stop(5.0, &mut Fx::default());
    let owners = snap(&m).owners.expect("broken down");
    assert!(owners.named.iter().all(|(_, share)| share.held == 0));
    assert_eq!((owners.others.held, owners.anonymous.held), (0, 0));
    assert_eq!(share(&owners.named, "bob").hold_ns, 5 * SECOND);
}

#[test]
fn an_owners_queued_wait_and_timeout_are_its_own() {
    let mut m = metered(limits(1, 1), 4);
    m.metrics_mut()
        .expect("enabled")
        .name_owner(9, || "nine".to_owned());
    let held = grant(&mut m, 0.0, 60.0);
    let nine = Tenant {
        owner: Some(9),
        ..Tenant::default()
    };
    let mut fx = Fx::default();
    let Ok(Acquired::Queued(first)) =
        m.acquire_as(1.0, 60.0, nine, "a", Some(Flag::new("a")), &mut fx)
    else {
        panic!("queued");
    };
    let Ok(Acquired::Queued(_)) = m.acquire_as(1.0, 60.0, nine, "b", Some(Flag::new("b")), &mut fx)
    else {
        panic!("queued");
    };
    assert!(m.time_out_waiter(first, 2.0, &mut Fx::default()).is_some());
    let mut fx = Fx::default();
    assert!(m.release(held.key, 4.0, 1, &mut fx));
    assert_eq!(fx.granted.len(), 1);
    let owners = snap(&m).owners.expect("broken down");
    let nine = share(&owners.named, "nine");
    assert_eq!((nine.granted, nine.rejected, nine.held), (1, 1, 1));
    assert_eq!(nine.wait_ns, 3 * SECOND);
    assert_eq!(
        (owners.anonymous.granted, owners.anonymous.hold_ns),
        (1, 4 * SECOND)
    );
}
