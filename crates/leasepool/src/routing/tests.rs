//! The routing law with synthetic measurements.

use super::*;

const F: u64 = 1;
const G: u64 = 2;

fn router() -> Router {
    Router::new(RoutingPolicy::default())
}

fn name() -> String {
    "f".to_owned()
}

/// A call on a thread while `sharing` GIL-bound calls (itself included) took turns: the
/// others used `cpu × (sharing − 1)` of CPU meanwhile.
fn t(cpu: f64, wall: f64, sharing: u32) -> CallCost {
    CallCost {
        cpu,
        wall,
        stalled: cpu * f64::from(sharing.saturating_sub(1)),
    }
}

fn p(cpu: f64, wall: f64) -> CallCost {
    CallCost {
        cpu,
        wall,
        stalled: 0.0,
    }
}

#[test]
fn policy_validation() {
    let ms = Duration::from_millis(1);
    assert!(RoutingPolicy::new(0, 0.5, 0.1, ms).is_err());
    assert!(RoutingPolicy::new(3, 0.1, 0.5, ms).is_err());
    assert!(RoutingPolicy::new(3, 0.5, 0.5, ms).is_err());
    assert!(RoutingPolicy::new(3, 1.5, 0.1, ms).is_err());
    assert!(RoutingPolicy::new(3, 0.5, 0.1, ms).is_ok());
}

#[test]
fn a_gil_bound_callable_moves_to_processes_after_agreeing_samples() {
    let mut r = router();
    for _ in 0..3 {
        assert_eq!(r.route(F, None, name), Route::Thread);
        assert_eq!(r.record_thread(F, t(0.009, 0.010, 1)), None);
    }
    assert_eq!(r.route(F, None, name), Route::Thread);
    let change = r.record_thread(F, t(0.009, 0.010, 1)).unwrap();
    assert_eq!(
        (change.to, change.reason),
        (Route::Process, RouteReason::Measured)
    );
    assert_eq!(r.route(F, None, name), Route::Process);
    assert_eq!(
        (r.changes(), r.offloaded()),
        (1, 0),
        "offloaded counts calls that ran"
    );
    r.record_process(F, p(0.01, 0.01));
    assert_eq!(r.offloaded(), 1);
    assert_eq!(r.views()[0].offloaded, 1);
}

#[test]
fn calls_sleeping_beside_it_do_not_make_a_mostly_waiting_callable_look_busy() {
    // 4 ms of CPU and 16 ms of sleep while eight other calls sleep: the others used
    // no CPU, so nothing is subtracted and the share stays 0.2.
    let mut r = router();
    r.route(F, None, name);
    let cost = CallCost {
        cpu: 0.004,
        wall: 0.020,
        stalled: 0.0,
    };
    for _ in 0..100 {
        assert_eq!(r.record_thread(F, cost), None);
    }
    assert!((r.views()[0].last_share - 0.2).abs() < 1e-9);
}

#[test]
fn waiting_for_a_cpu_is_not_waiting_for_io() {
    // On an overloaded machine a computing worker process is runnable but not running
    // most of the time: its run-queue wait is subtracted, so it stays on processes.
    let mut m = router();
    m.route(F, None, name);
    (0..4).for_each(|_| drop(m.record_thread(F, t(0.01, 0.01, 1))));
    for _ in 0..100 {
        let cost = CallCost {
            cpu: 0.010,
            wall: 0.120,
            stalled: 0.110,
        };
        assert_eq!(m.record_process(F, cost), None);
    }
    assert_eq!(m.route(F, None, name), Route::Process);
}

#[test]
fn each_move_doubles_the_samples_the_next_one_needs() {
    let mut r = router();
    r.route(F, None, name);
    let mut needed = Vec::new();
    for round in 0..5 {
        let mut calls = 0;
        loop {
            calls += 1;
            let change = if round % 2 == 0 {
                r.record_thread(F, t(0.01, 0.01, 1))
            } else {
                r.record_process(F, p(0.0, 0.01))
            };
            if change.is_some() {
                break;
            }
        }
        needed.push(calls);
    }
    assert_eq!(needed, vec![4, 8, 16, 32, 32]);
}

#[test]
fn gil_sharing_is_normalised() {
    // Four CPU-bound calls taking turns on the GIL: each sees a quarter of its wall
    // time as CPU, and is still recognised.
    let mut r = router();
    r.route(F, None, name);
    let moved = (0..4)
        .filter_map(|_| r.record_thread(F, t(0.025, 0.100, 4)))
        .count();
    assert_eq!(moved, 1);
}

#[test]
fn blocking_io_stays_on_threads() {
    let mut r = router();
    r.route(F, None, name);
    for _ in 0..1_000 {
        assert_eq!(r.record_thread(F, t(0.00005, 0.010, 8)), None);
    }
    assert_eq!(r.route(F, None, name), Route::Thread);
}

#[test]
fn short_cpu_calls_stay_on_threads() {
    let mut r = router();
    r.route(F, None, name);
    for _ in 0..100 {
        assert_eq!(r.record_thread(F, t(0.0002, 0.0002, 1)), None);
    }
}

#[test]
fn a_disagreeing_sample_restarts_the_count() {
    let mut r = router();
    r.route(F, None, name);
    for round in 0..50 {
        assert_eq!(r.record_thread(F, t(0.01, 0.01, 1)), None);
        assert_eq!(r.record_thread(F, t(0.01, 0.01, 1)), None);
        assert_eq!(r.record_thread(F, t(0.01, 0.01, 1)), None);
        assert_eq!(r.record_thread(F, t(0.0, 0.01, 1)), None, "round {round}");
    }
}

#[test]
fn moves_back_when_it_waits_on_processes_with_hysteresis() {
    let mut r = router();
    r.route(F, None, name);
    (0..4).for_each(|_| drop(r.record_thread(F, t(0.01, 0.01, 1))));
    assert_eq!(r.route(F, None, name), Route::Process);
    // Between the thresholds (0.1 < 0.3 < 0.5): no move either way.
    for _ in 0..100 {
        assert_eq!(r.record_process(F, p(0.003, 0.010)), None);
    }
    // The second move needs twice the samples.
    let back = (0..8)
        .filter_map(|_| r.record_process(F, p(0.0001, 0.010)))
        .last();
    assert_eq!(back.map(|c| c.to), Some(Route::Thread));
    assert_eq!(r.route(F, None, name), Route::Thread);
    assert_eq!(r.changes(), 2);
}

#[test]
fn samples_from_the_route_it_left_are_ignored() {
    let mut r = router();
    r.route(F, None, name);
    (0..4).for_each(|_| drop(r.record_thread(F, t(0.01, 0.01, 1))));
    // Calls still running on threads when it moved report later: no move back.
    for _ in 0..10 {
        assert_eq!(r.record_thread(F, t(0.0, 0.01, 1)), None);
    }
    assert_eq!(r.route(F, None, name), Route::Process);
}

#[test]
fn hints_override_measurement() {
    let mut r = router();
    assert_eq!(r.route(F, Some(Hint::Cpu), name), Route::Process);
    for _ in 0..100 {
        assert_eq!(r.record_process(F, p(0.0, 0.01)), None);
    }
    assert_eq!(r.route(G, Some(Hint::Io), name), Route::Thread);
    for _ in 0..100 {
        assert_eq!(r.record_thread(G, t(0.01, 0.01, 1)), None);
    }
    let views = r.views();
    assert!(views.iter().all(|v| v.reason == RouteReason::Hint));
}

#[test]
fn unpicklable_is_final_and_reported_once() {
    let mut r = router();
    assert_eq!(r.route(F, Some(Hint::Cpu), name), Route::Process);
    let change = r.unpicklable(F).unwrap();
    assert_eq!(
        (change.to, change.reason),
        (Route::Thread, RouteReason::Unpicklable)
    );
    assert_eq!(r.unpicklable(F), None);
    assert_eq!(r.route(F, Some(Hint::Cpu), name), Route::Thread);
    for _ in 0..10 {
        assert_eq!(r.record_thread(F, t(0.01, 0.01, 1)), None);
    }
    assert_eq!(r.unpicklable(G), None, "unknown callables are not invented");
}

#[test]
fn the_table_is_bounded_and_forgets_the_least_recently_routed() {
    let mut r = router();
    for key in 0..(Router::CAPACITY as u64 + 10) {
        r.route(key, None, name);
        r.route(0, None, name); // key 0 stays warm
    }
    let views = r.views();
    assert_eq!(views.len(), Router::CAPACITY);
    assert!(r.entries.contains_key(&0));
    assert!(!r.entries.contains_key(&1));
}

#[test]
fn nonsense_measurements_do_not_move_anything() {
    let mut r = router();
    r.route(F, None, name);
    for (cpu, wall) in [
        (f64::NAN, 0.01),
        (0.01, 0.0),
        (-1.0, 0.01),
        (f64::INFINITY, 1.0),
    ] {
        assert_eq!(r.record_thread(F, t(cpu, wall, 1)), None);
    }
    assert_eq!(r.record_process(F, p(0.01, f64::NAN)), None);
}

#[test]
fn route_known_answers_only_for_known_callables() {
    let mut r = router();
    assert_eq!(r.route_known(F), None);
    assert_eq!(r.route(F, Some(Hint::Cpu), name), Route::Process);
    assert_eq!(r.route_known(F), Some(Route::Process));
}
