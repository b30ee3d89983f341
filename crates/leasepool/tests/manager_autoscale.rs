//! The autoscaler inside the state machine, on an explicit clock: demand raises the
//! target at once (pools released above the old target are kept), surplus windows
//! lower it, leased pools are never retired for it, and the front end's target is a
//! floor.

mod common;

use std::time::Duration;

use common::{started, Fx};
use leasepool::autoscale::{AutoScalePolicy, ResizeReason};
use leasepool::{Acquired, Event};

fn policy() -> AutoScalePolicy {
    AutoScalePolicy::new(Duration::from_secs(5), Duration::from_millis(10), 2).unwrap()
}

fn resizes(fx: &Fx) -> Vec<(usize, usize, ResizeReason)> {
    fx.events
        .iter()
        .filter_map(|e| match e {
            Event::Resized { from, to, reason } => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn demand_raises_the_target_and_released_pools_are_kept() {
    let mut m = started(8, 1);
    m.enable_autoscale(policy());
    let mut fx = Fx::default();
    m.check(0.0, 1, &mut fx); // the first window starts
    let mut keys = Vec::new();
    for i in 0..5 {
        let Ok(Acquired::Granted(g)) = m.acquire(0.1, 60.0, "x", None, &mut fx) else {
            panic!("grant {i}");
        };
        keys.push(g.key);
    }
    assert_eq!(m.autoscale().unwrap().target, 5);
    assert_eq!(resizes(&fx).last(), Some(&(4, 5, ResizeReason::Demand)));
    let mut fx = Fx::default();
    for key in keys {
        m.release(key, 0.2, 1, &mut fx); // the front end's own target: 1
    }
    assert!(
        fx.retired.is_empty(),
        "kept: the autoscaled target covers them"
    );
    assert_eq!(m.available_count(), 5);
}

#[test]
fn surplus_windows_lower_the_target_and_idle_pools_retire() {
    let mut m = started(8, 1);
    m.enable_autoscale(policy());
    let mut fx = Fx::default();
    m.check(0.0, 1, &mut fx);
    let grants: Vec<_> = (0..4)
        .map(|_| match m.acquire(0.1, 600.0, "x", None, &mut fx) {
            Ok(Acquired::Granted(g)) => g,
            _ => panic!(),
        })
        .collect();
    // One lease stays; three go back.
    for g in &grants[1..] {
        m.release(g.key, 0.2, 1, &mut fx);
    }
    let mut now = 0.0;
    let mut seen = Vec::new();
    for _ in 0..20 {
        now += 5.0;
        let mut fx = Fx::default();
        m.check(now, 1, &mut fx);
        seen.extend(resizes(&fx));
        assert!(
            m.leased_count() >= 1,
            "the lease is never revoked for the target"
        );
    }
    assert_eq!(
        seen,
        vec![
            (4, 3, ResizeReason::Surplus),
            (3, 2, ResizeReason::Surplus),
            (2, 1, ResizeReason::Surplus)
        ]
    );
    assert_eq!(
        m.total_count(),
        1,
        "the idle pools above the target retired"
    );
    assert_eq!(m.leased_count(), 1);
}

#[test]
fn the_front_end_target_is_a_floor() {
    let mut m = started(8, 1);
    m.enable_autoscale(policy());
    let mut fx = Fx::default();
    m.check(0.0, 6, &mut fx);
    assert_eq!(m.total_count(), 6);
    assert_eq!(m.autoscale().unwrap().target, 1);
    for w in 1..20 {
        m.check(f64::from(w) * 5.0, 6, &mut fx);
    }
    assert_eq!(m.total_count(), 6);
}

#[test]
fn waiters_count_as_demand_and_their_waits_are_judged() {
    let mut m = started(2, 1);
    m.enable_autoscale(policy());
    let mut fx = Fx::default();
    m.check(0.0, 1, &mut fx);
    let first = match m.acquire(0.0, 60.0, "a", None, &mut fx) {
        Ok(Acquired::Granted(g)) => g,
        _ => panic!(),
    };
    let _second = m.acquire(0.0, 60.0, "b", None, &mut fx);
    let waiter = common::Flag::new("w");
    assert!(matches!(
        m.acquire(0.0, 60.0, "w", Some(waiter), &mut fx),
        Ok(Acquired::Queued(_))
    ));
    let view = m.autoscale().unwrap();
    assert_eq!((view.target, view.window_peak), (2, 3));
    let mut fx = Fx::default();
    m.release(first.key, 1.0, 1, &mut fx); // served after a second
    assert_eq!(fx.granted.len(), 1);
    let view = m.autoscale().unwrap();
    assert_eq!((view.window_waits, view.window_slow_waits), (1, 1));
    assert_eq!(m.next_autoscale_tick(), Some(5.0));
}
