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
        assert_eq!(r.record_thread(F, 0.009, 0.010, 1), None);
    }
    assert_eq!(r.route(F, None, name), Route::Thread);
    let change = r.record_thread(F, 0.009, 0.010, 1).unwrap();
    assert_eq!(
        (change.to, change.reason),
        (Route::Process, RouteReason::Measured)
    );
    assert_eq!(r.route(F, None, name), Route::Process);
    assert_eq!((r.changes(), r.offloaded()), (1, 1));
}

#[test]
fn gil_sharing_is_normalised() {
    // Four CPU-bound calls taking turns on the GIL: each sees a quarter of its wall
    // time as CPU, and is still recognised.
    let mut r = router();
    r.route(F, None, name);
    let moved = (0..4)
        .filter_map(|_| r.record_thread(F, 0.025, 0.100, 4))
        .count();
    assert_eq!(moved, 1);
}

#[test]
fn blocking_io_stays_on_threads() {
    let mut r = router();
    r.route(F, None, name);
    for _ in 0..1_000 {
        assert_eq!(r.record_thread(F, 0.00005, 0.010, 8), None);
    }
    assert_eq!(r.route(F, None, name), Route::Thread);
}

#[test]
fn short_cpu_calls_stay_on_threads() {
    let mut r = router();
    r.route(F, None, name);
    for _ in 0..100 {
        assert_eq!(r.record_thread(F, 0.0002, 0.0002, 1), None);
    }
}

#[test]
fn a_disagreeing_sample_restarts_the_count() {
    let mut r = router();
    r.route(F, None, name);
    for round in 0..50 {
        assert_eq!(r.record_thread(F, 0.01, 0.01, 1), None);
        assert_eq!(r.record_thread(F, 0.01, 0.01, 1), None);
        assert_eq!(r.record_thread(F, 0.01, 0.01, 1), None);
        assert_eq!(r.record_thread(F, 0.0, 0.01, 1), None, "round {round}");
    }
}

#[test]
fn moves_back_when_it_waits_on_processes_with_hysteresis() {
    let mut r = router();
    r.route(F, None, name);
    (0..4).for_each(|_| drop(r.record_thread(F, 0.01, 0.01, 1)));
    assert_eq!(r.route(F, None, name), Route::Process);
    // Between the thresholds (0.1 < 0.3 < 0.5): no move either way.
    for _ in 0..100 {
        assert_eq!(r.record_process(F, 0.003, 0.010), None);
    }
    let back = (0..4)
        .filter_map(|_| r.record_process(F, 0.0001, 0.010))
        .last();
    assert_eq!(back.map(|c| c.to), Some(Route::Thread));
    assert_eq!(r.route(F, None, name), Route::Thread);
    assert_eq!(r.changes(), 2);
}

#[test]
fn samples_from_the_route_it_left_are_ignored() {
    let mut r = router();
    r.route(F, None, name);
    (0..4).for_each(|_| drop(r.record_thread(F, 0.01, 0.01, 1)));
    // Calls still running on threads when it moved report later: no move back.
    for _ in 0..10 {
        assert_eq!(r.record_thread(F, 0.0, 0.01, 1), None);
    }
    assert_eq!(r.route(F, None, name), Route::Process);
}

#[test]
fn hints_override_measurement() {
    let mut r = router();
    assert_eq!(r.route(F, Some(Hint::Cpu), name), Route::Process);
    for _ in 0..100 {
        assert_eq!(r.record_process(F, 0.0, 0.01), None);
    }
    assert_eq!(r.route(G, Some(Hint::Io), name), Route::Thread);
    for _ in 0..100 {
        assert_eq!(r.record_thread(G, 0.01, 0.01, 1), None);
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
        assert_eq!(r.record_thread(F, 0.01, 0.01, 1), None);
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
        assert_eq!(r.record_thread(F, cpu, wall, 1), None);
    }
    assert_eq!(r.record_process(F, 0.01, f64::NAN), None);
}
