//! Admission control: bounded waiting, owner limits, fair share, reserved pools,
//! priorities with bounded overtaking, and retry-after estimates.

mod common;

use common::{limits, Flag, Fx, TestManager};
use leasepool::admission::OVERTAKE_LIMIT;
use leasepool::{Acquired, AdmissionPolicy, Grant, LeaseError, Manager, Tenant};

fn started_with_policy(max: usize, policy: AdmissionPolicy) -> TestManager {
    let limits = limits(max, 1).build().unwrap();
    let mut m = Manager::with_admission(limits, policy, Box::new(|seq| seq)).unwrap();
    m.start(1, &mut Fx::default());
    m
}

fn owner(key: u64) -> Tenant {
    Tenant {
        owner: Some(key),
        ..Tenant::default()
    }
}

fn grant(m: &mut TestManager, tenant: Tenant, name: &'static str) -> Grant<u64> {
    match m.acquire_as(0.0, 60.0, tenant, name, None, &mut Fx::default()) {
        Ok(Acquired::Granted(grant)) => grant,
        other => panic!("{name} expected a grant, got {other:?}"),
    }
}

fn queue(m: &mut TestManager, tenant: Tenant, name: &'static str) -> Flag {
    let flag = Flag::new(name);
    let queued = m.acquire_as(
        0.0,
        60.0,
        tenant,
        name,
        Some(flag.clone()),
        &mut Fx::default(),
    );
    assert!(
        matches!(queued, Ok(Acquired::Queued(_))),
        "{name}: {queued:?}"
    );
    flag
}

/// Releases `key` and returns who got the pool (and the new lease's key).
fn hand_off(
    m: &mut TestManager,
    key: leasepool::LeaseKey,
) -> Option<(&'static str, leasepool::LeaseKey)> {
    let mut fx = Fx::default();
    assert!(m.release(key, 1.0, 1, &mut fx));
    assert!(fx.granted.len() <= 1);
    fx.granted.pop().map(|(flag, grant)| (flag.1, grant.key))
}

#[test]
fn a_full_queue_sheds_with_a_retry_estimate() {
    let mut m = started_with_policy(1, AdmissionPolicy::default().max_waiters(Some(2)));
    let held = grant(&mut m, Tenant::default(), "holder");
    let _a = queue(&mut m, Tenant::default(), "a");
    let _b = queue(&mut m, Tenant::default(), "b");
    let shed = m.acquire(0.0, 60.0, "c", Some(Flag::new("c")), &mut Fx::default());
    assert_eq!(
        shed.err(),
        Some(LeaseError::QueueFull {
            max_waiters: 2,
            retry_after: 180.0
        }),
        "two ahead on one pool, 60 s asked for: three turns"
    );
    // A lease held 2 s replaces the fallback by the observed hold time.
    let mut fx = Fx::default();
    assert!(m.release(held.key, 2.0, 1, &mut fx));
    let shed = m.acquire(2.0, 60.0, "d", None, &mut Fx::default());
    assert_eq!(
        shed.err().and_then(|err| err.retry_after_seconds()),
        Some(2.0 * 2.0)
    );
}

#[test]
fn zero_waiters_means_fail_fast_even_for_callers_willing_to_wait() {
    let mut m = started_with_policy(1, AdmissionPolicy::default().max_waiters(Some(0)));
    let _held = grant(&mut m, Tenant::default(), "holder");
    let shed = m.acquire(0.0, 60.0, "w", Some(Flag::new("w")), &mut Fx::default());
    assert!(matches!(
        shed,
        Err(LeaseError::QueueFull { max_waiters: 0, .. })
    ));
    assert_eq!(m.waiter_count(), 0);
}

#[test]
fn an_owner_at_its_limit_waits_while_others_are_served() {
    let mut m = started_with_policy(3, AdmissionPolicy::default().owner_limit(Some(1)));
    let a1 = grant(&mut m, owner(1), "a1");
    let a2 = queue(&mut m, owner(1), "a2");
    // B is not held back by A's limit nor queued behind A's waiter.
    let _b1 = grant(&mut m, owner(2), "b1");
    assert!(a2.0.is_pending());
    // Without waiting, A is refused: its own limit, not the pool count.
    assert!(matches!(
        m.acquire_as(0.0, 60.0, owner(1), "a3", None, &mut Fx::default()),
        Err(LeaseError::Unavailable { .. })
    ));
    assert_eq!(m.held_by(1), 1);
    assert_eq!(hand_off(&mut m, a1.key).map(|(name, _)| name), Some("a2"));
    assert_eq!(m.held_by(1), 1);
}

#[test]
fn fair_share_serves_the_owner_holding_least_first() {
    let mut m = started_with_policy(2, AdmissionPolicy::default().fair_share(true));
    let a1 = grant(&mut m, owner(1), "a1");
    let _a2 = grant(&mut m, owner(1), "a2");
    let _flood: Vec<Flag> = (0..1000).map(|_| queue(&mut m, owner(1), "a")).collect();
    let _b = queue(&mut m, owner(2), "b");
    // B arrived after a thousand of A's waiters, but holds nothing: next hand-off.
    assert_eq!(hand_off(&mut m, a1.key).map(|(name, _)| name), Some("b"));
}

#[test]
fn fair_share_takes_turns_on_a_single_pool() {
    let mut m = started_with_policy(1, AdmissionPolicy::default().fair_share(true));
    let mut key = grant(&mut m, owner(1), "a0").key;
    let _flood: Vec<Flag> = (0..5).map(|_| queue(&mut m, owner(1), "a")).collect();
    let _b: Vec<Flag> = (0..2).map(|_| queue(&mut m, owner(2), "b")).collect();
    // On release A holds nothing, like B: the owner served least recently goes first.
    let mut served = Vec::new();
    for _ in 0..5 {
        let (name, next) = hand_off(&mut m, key).expect("somebody waits");
        served.push(name);
        key = next;
    }
    assert_eq!(served, ["b", "a", "b", "a", "a"]);
}

#[test]
fn fair_share_forgets_owners_that_stopped_competing() {
    let mut m = started_with_policy(1, AdmissionPolicy::default().fair_share(true));
    for key in 0..100 {
        let lease = grant(&mut m, owner(key), "x");
        assert!(m.release(lease.key, 1.0, 1, &mut Fx::default()));
    }
    assert_eq!(m.fair_share_memory(), 0);
    let held = grant(&mut m, owner(1), "holder");
    let gone = Flag::new("gone");
    let Ok(Acquired::Queued(ticket)) = m.acquire_as(
        0.0,
        60.0,
        owner(2),
        "gone",
        Some(gone.clone()),
        &mut Fx::default(),
    ) else {
        panic!("expected to queue");
    };
    assert!(gone.cancel());
    assert!(m.withdraw_waiter(ticket, 1.0, &mut Fx::default()).is_some());
    assert_eq!(m.fair_share_memory(), 1, "only the holder");
    assert!(m.release(held.key, 1.0, 1, &mut Fx::default()));
    assert_eq!(m.fair_share_memory(), 0);
}

#[test]
fn strict_fifo_is_the_default() {
    let mut m = started_with_policy(1, AdmissionPolicy::default());
    let held = grant(&mut m, owner(1), "holder");
    let _a = queue(&mut m, owner(1), "a");
    let _b = queue(&mut m, owner(2), "b");
    assert_eq!(hand_off(&mut m, held.key).map(|(name, _)| name), Some("a"));
}

#[test]
fn reserved_pools_serve_their_class_when_the_rest_are_exhausted() {
    let health = Tenant {
        class: Some(0),
        ..Tenant::default()
    };
    let mut m = started_with_policy(3, AdmissionPolicy::default().reserve(1));
    let _u1 = grant(&mut m, Tenant::default(), "u1");
    let _u2 = grant(&mut m, Tenant::default(), "u2");
    // Two unreserved pools in use: the third is the reserved one.
    assert!(matches!(
        m.acquire(0.0, 60.0, "u3", None, &mut Fx::default()),
        Err(LeaseError::Unavailable { .. })
    ));
    let _waiting = queue(&mut m, Tenant::default(), "u3");
    // The reserved class is not stuck behind the unreserved waiter.
    let h = grant(&mut m, health, "h1");
    assert_eq!(m.leased_count(), 3);
    // Its pool, released, does not go to the unreserved waiter: the unreserved
    // pools are still in use.
    let mut fx = Fx::default();
    assert!(m.release(h.key, 1.0, 1, &mut fx));
    assert!(fx.granted.is_empty());
    assert_eq!(m.available_count(), 1);
}

#[test]
fn a_class_borrows_unreserved_pools_once_its_own_are_in_use() {
    let health = Tenant {
        class: Some(0),
        ..Tenant::default()
    };
    let mut m = started_with_policy(3, AdmissionPolicy::default().reserve(1));
    let _h1 = grant(&mut m, health, "h1");
    let _h2 = grant(&mut m, health, "h2");
    let _u1 = grant(&mut m, Tenant::default(), "u1");
    assert_eq!(m.leased_count(), 3);
}

#[test]
fn priorities_order_waiting_and_overtaking_is_bounded() {
    let high = Tenant {
        priority: 1,
        ..Tenant::default()
    };
    let mut m = started_with_policy(1, AdmissionPolicy::default());
    let mut key = grant(&mut m, Tenant::default(), "holder").key;
    let _low = queue(&mut m, Tenant::default(), "low");
    let mut served = Vec::new();
    // A steady stream of high-priority callers, one queued per hand-off.
    for _ in 0..=OVERTAKE_LIMIT {
        let _high = queue(&mut m, high, "high");
        let (name, next) = hand_off(&mut m, key).expect("somebody waits");
        served.push(name);
        key = next;
    }
    let expected: Vec<&str> = std::iter::repeat_n("high", OVERTAKE_LIMIT as usize)
        .chain(["low"])
        .collect();
    assert_eq!(served, expected);
}

#[test]
fn a_cancelled_waiter_never_takes_the_pool_in_any_mode() {
    for policy in [
        AdmissionPolicy::default(),
        AdmissionPolicy::default().fair_share(true),
        AdmissionPolicy::default().owner_limit(Some(1)),
    ] {
        let mut m = started_with_policy(1, policy);
        let held = grant(&mut m, owner(1), "holder");
        let gone = queue(&mut m, owner(2), "gone");
        let _next = queue(&mut m, owner(3), "next");
        assert!(gone.cancel());
        assert_eq!(
            hand_off(&mut m, held.key).map(|(name, _)| name),
            Some("next")
        );
        assert_eq!(m.leased_count(), 1);
    }
}
