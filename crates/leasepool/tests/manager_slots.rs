//! Call slots: one worker per call on shared pools, in the same FIFO as whole-pool
//! leases, with expiry that taints a pool instead of killing its other calls.

mod common;

use std::time::Duration;

use common::{limits, started_with, Flag, Fx};
use leasepool::{Acquired, Event, LeaseError, SlotAcquired, SlotGrant};

fn slot(m: &mut common::TestManager, now: f64, who: &'static str) -> SlotGrant<u64> {
    let mut fx = Fx::default();
    match m.acquire_slot(now, 60.0, who, None, &mut fx) {
        Ok(SlotAcquired::Granted(grant, _)) => grant,
        other => panic!("a slot must be free for {who}: {other:?}"),
    }
}

#[test]
fn slots_fill_one_pool_before_taking_another() {
    let mut m = started_with(limits(3, 1).slots_per_pool(4));
    let grants: Vec<_> = (0..4).map(|_| slot(&mut m, 0.0, "req")).collect();
    assert!(grants.iter().all(|g| g.seq == grants[0].seq), "packed");
    assert_eq!(m.total_count(), 1, "one pool serves four calls");
    assert_eq!((m.leased_count(), m.slot_count()), (1, 4));
    let fifth = slot(&mut m, 0.0, "req");
    assert_ne!(fifth.seq, grants[0].seq);
    assert_eq!((m.total_count(), m.slot_count()), (2, 5));
    assert_eq!(m.leases().len(), 5, "slots are listed as leases");
}

#[test]
fn the_last_slot_returns_the_pool_and_serves_waiters_in_order() {
    let mut m = started_with(limits(1, 1).slots_per_pool(1));
    let running = slot(&mut m, 0.0, "running");
    let mut fx = Fx::default();
    let pool_waiter = Flag::new("pool");
    let slot_waiter = Flag::new("slot");
    assert!(matches!(
        m.acquire(1.0, 60.0, "pool", Some(pool_waiter), &mut fx),
        Ok(Acquired::Queued(_))
    ));
    assert!(matches!(
        m.acquire_slot(1.0, 60.0, "slot", Some(slot_waiter), &mut fx),
        Ok(SlotAcquired::Queued(_))
    ));
    assert_eq!(
        m.acquire_slot(1.0, 60.0, "barger", None, &mut fx)
            .err()
            .and_then(|(err, _)| match err {
                LeaseError::Unavailable { max_pools, .. } => Some(max_pools),
                _ => None,
            }),
        Some(1),
        "nobody overtakes the queue"
    );

    let mut fx = Fx::default();
    assert!(m.end_slot(running.key, 2.0, 1, false, &mut fx));
    assert!(
        !m.end_slot(running.key, 2.0, 1, false, &mut fx),
        "idempotent"
    );
    assert_eq!(fx.granted.len(), 1, "the pool waiter was first");
    assert!(fx.slots_granted.is_empty());
    let lease = fx.granted.pop().unwrap().1;

    let mut fx = Fx::default();
    assert!(m.release(lease.key, 3.0, 1, &mut fx));
    assert_eq!(fx.slots_granted.len(), 1);
    let (waiter, grant) = fx.slots_granted.pop().unwrap();
    assert_eq!(waiter.1, "slot");
    assert_eq!(grant.seq, running.seq, "same pool, now shared again");
    assert_eq!(m.available_count(), 0);
}

#[test]
fn a_pool_waiter_at_the_head_stops_free_slots_being_handed_out() {
    let mut m = started_with(limits(1, 1).slots_per_pool(2));
    let a = slot(&mut m, 0.0, "a");
    let b = slot(&mut m, 0.0, "b");
    let mut fx = Fx::default();
    let _ = m.acquire(1.0, 60.0, "pool", Some(Flag::new("pool")), &mut fx);
    let _ = m.acquire_slot(1.0, 60.0, "late", Some(Flag::new("late")), &mut fx);

    let mut fx = Fx::default();
    m.end_slot(a.key, 2.0, 1, false, &mut fx);
    assert!(
        fx.granted.is_empty() && fx.slots_granted.is_empty(),
        "the freed slot waits for the pool waiter ahead of `late`"
    );
    let mut fx = Fx::default();
    m.end_slot(b.key, 3.0, 1, false, &mut fx);
    assert_eq!(
        fx.granted.len(),
        1,
        "the emptied pool goes to the pool waiter"
    );
    assert!(fx.slots_granted.is_empty());
    assert_eq!(m.waiter_count(), 1);
}

#[test]
fn withdrawing_a_blocking_pool_waiter_serves_the_slot_waiter_behind_it() {
    let mut m = started_with(limits(1, 1).slots_per_pool(2));
    let _running = slot(&mut m, 0.0, "running");
    let mut fx = Fx::default();
    let Ok(Acquired::Queued(pool_ticket)) =
        m.acquire(1.0, 60.0, "pool", Some(Flag::new("pool")), &mut fx)
    else {
        panic!();
    };
    let _ = m.acquire_slot(1.0, 60.0, "call", Some(Flag::new("call")), &mut fx);
    assert!(
        fx.slots_granted.is_empty(),
        "queued behind the pool request"
    );

    let mut fx = Fx::default();
    let removed = m.withdraw_waiter(pool_ticket, 2.0, &mut fx);
    assert_eq!(removed.map(|w| w.1), Some("pool"));
    assert_eq!(
        fx.slots_granted.len(),
        1,
        "the free slot goes to the call now"
    );
    assert_eq!(m.waiter_count(), 0);
    assert!(m.withdraw_waiter(pool_ticket, 3.0, &mut fx).is_none());
}

#[test]
fn an_expired_slot_taints_its_pool_until_the_other_slots_end() {
    let mut m = started_with(limits(2, 1).slots_per_pool(2));
    let mut fx = Fx::default();
    let Ok(SlotAcquired::Granted(short, _)) = m.acquire_slot(0.0, 1.0, "short", None, &mut fx)
    else {
        panic!();
    };
    let long = slot(&mut m, 0.0, "long");
    assert_eq!(short.seq, long.seq);

    // Past 1 s + 15 s grace the short slot is revoked; its neighbour keeps running.
    let mut fx = Fx::default();
    m.check(20.0, 1, &mut fx);
    assert!(fx
        .events
        .iter()
        .any(|e| matches!(e, Event::Revoked { meta: "short", .. })));
    assert!(fx.revoked.is_empty(), "the pool still runs `long`");
    assert_eq!(m.slot_count(), 1);
    let next = slot(&mut m, 20.0, "next");
    assert_ne!(next.seq, short.seq, "no new slot on a tainted pool");
    let mut fx = Fx::default();
    assert!(
        !m.end_slot(short.key, 21.0, 1, false, &mut fx),
        "already revoked"
    );

    let mut fx = Fx::default();
    assert!(m.end_slot(long.key, 22.0, 1, false, &mut fx));
    assert_eq!(fx.revoked, vec![short.seq], "revoked once empty");
    assert_eq!(m.total_count(), 1, "only `next`'s pool is left");
}

#[test]
fn stop_ends_slots_and_refuses_slot_waiters() {
    let mut m = started_with(limits(1, 1).slots_per_pool(1));
    let held = slot(&mut m, 0.0, "held");
    let mut fx = Fx::default();
    let _ = m.acquire_slot(0.0, 60.0, "w", Some(Flag::new("w")), &mut fx);
    let mut fx = Fx::default();
    m.stop(0.0, &mut fx);
    assert_eq!(fx.retired, vec![held.seq]);
    assert_eq!(fx.refused.len(), 1);
    assert_eq!((m.total_count(), m.slot_count()), (0, 0));
    let mut fx = Fx::default();
    assert!(!m.end_slot(held.key, 1.0, 1, false, &mut fx));
    assert_eq!(
        m.acquire_slot(1.0, 60.0, "x", None, &mut fx)
            .err()
            .map(|(err, _)| err),
        Some(LeaseError::NotStarted)
    );
}

#[test]
fn an_emptied_shared_pool_above_target_idles_out() {
    // Target 1; the second pool is surplus once its slot ends.
    let mut m = started_with(
        limits(2, 1)
            .slots_per_pool(1)
            .idle_pool_timeout(Duration::from_secs(10)),
    );
    let _a = slot(&mut m, 0.0, "a");
    let b = slot(&mut m, 0.0, "b");
    assert_eq!(m.total_count(), 2);
    let mut fx = Fx::default();
    m.end_slot(b.key, 1.0, 1, false, &mut fx);
    assert!(fx.retired.is_empty(), "kept to idle out");
    assert_eq!(m.next_idle_retirement(1), Some(11.0));
    let c = slot(&mut m, 2.0, "c");
    assert_eq!(c.seq, b.seq, "the warm pool is reused");
    let mut fx = Fx::default();
    m.end_slot(c.key, 3.0, 1, false, &mut fx);
    m.check(12.0, 1, &mut fx);
    assert!(fx.retired.is_empty(), "idle for 9 s only");
    m.check(13.0, 1, &mut fx);
    assert_eq!(fx.retired, vec![b.seq]);
    assert_eq!(m.total_count(), 1);
}
