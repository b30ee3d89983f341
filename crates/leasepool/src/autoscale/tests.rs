//! The control law driven with a synthetic clock: step load, ramp, burst, steady
//! load, slow waits, bounds.

use super::*;

const WINDOW: f64 = 5.0;

fn scaler(min: usize, max: usize) -> AutoScaler {
    let limits = PoolLimits::builder(max).min_pools(min).build().unwrap();
    let policy =
        AutoScalePolicy::new(Duration::from_secs(5), Duration::from_millis(10), 3).unwrap();
    AutoScaler::new(policy, &limits)
}

/// Runs `windows` windows in which demand peaks at `peak(window)`, ticking once per
/// window end; returns the resizes.
fn drive(
    scaler: &mut AutoScaler,
    start: f64,
    windows: usize,
    peak: impl Fn(usize) -> usize,
) -> Vec<Resize> {
    let mut resizes = Vec::new();
    for w in 0..windows {
        let now = start + w as f64 * WINDOW;
        resizes.extend(scaler.tick(now, peak(w)));
        resizes.extend(scaler.observe_demand(peak(w)));
    }
    resizes
}

#[test]
fn policy_validation() {
    let zero = AutoScalePolicy::new(Duration::ZERO, Duration::ZERO, 3);
    assert_eq!(zero, Err(ConfigError::NotPositiveSeconds("window")));
    let never = AutoScalePolicy::new(Duration::from_secs(1), Duration::ZERO, 0);
    assert_eq!(never, Err(ConfigError::NotPositive("scale_down_windows")));
    let policy = AutoScalePolicy::default();
    assert_eq!(policy.window(), Duration::from_secs(5));
    assert_eq!(policy.target_wait(), Duration::from_millis(10));
    assert_eq!(policy.scale_down_windows(), 3);
}

#[test]
fn step_load_is_reached_at_once_and_held() {
    let mut s = scaler(1, 32);
    assert_eq!(s.target(), 1);
    let up = drive(&mut s, 0.0, 1, |_| 2);
    assert_eq!(up.len(), 1);
    // The step: demand jumps to 12 between two ticks.
    let step = s.observe_demand(12).unwrap();
    assert_eq!(
        step,
        Resize {
            from: 2,
            to: 12,
            reason: ResizeReason::Demand
        }
    );
    assert_eq!(s.target(), 12);
    // Held through 100 windows of the same load: no further resize.
    assert!(drive(&mut s, 5.0, 100, |_| 12).is_empty());
    assert_eq!(s.target(), 12);
}

#[test]
fn ramp_up_follows_every_step_then_ramp_down_steps_slowly() {
    let mut s = scaler(1, 64);
    let up = drive(&mut s, 0.0, 20, |w| w + 1);
    assert_eq!(s.target(), 20);
    // One resize per window of the ramp (each window's demand is one higher).
    assert!(up
        .iter()
        .all(|r| r.reason == ResizeReason::Demand && r.to == r.from + 1));
    let down = drive(&mut s, 100.0, 200, |w| 20usize.saturating_sub(w / 2).max(1));
    assert_eq!(s.target(), 1, "{down:?}");
    for resize in &down {
        assert_eq!(resize.reason, ResizeReason::Surplus);
        assert!(
            resize.from - resize.to <= (resize.from / 4).max(1),
            "{resize:?}"
        );
    }
    // At least `scale_down_windows` windows between steps down.
    assert!(down.len() <= 200 / 3);
}

#[test]
fn burst_is_kept_for_the_surplus_windows_then_released_in_steps() {
    let mut s = scaler(2, 40);
    drive(&mut s, 0.0, 3, |_| 2);
    assert_eq!(s.target(), 2);
    // A burst of 30 inside one window.
    assert_eq!(s.observe_demand(30).map(|r| r.to), Some(30));
    // Back to 2: the next two window ends keep 30 (surplus, but not yet 3 windows).
    let mut now = 15.0;
    let mut history = vec![];
    for _ in 0..40 {
        if let Some(resize) = s.tick(now, 2) {
            history.push((now, resize));
        }
        now += WINDOW;
    }
    let first_down = history.first().unwrap();
    assert_eq!(first_down.1.from, 30);
    assert_eq!(first_down.1.to, 30 - 30 / 4);
    assert!(first_down.0 >= 15.0 + 2.0 * WINDOW, "{history:?}");
    assert_eq!(s.target(), 2);
    // Never below min_pools.
    assert!(history.iter().all(|(_, r)| r.to >= 2));
}

#[test]
fn steady_load_with_noise_resizes_at_most_once_per_window() {
    // Demand alternates between 6 and 9 within and across windows.
    let mut s = scaler(1, 16);
    let warmup = drive(&mut s, 0.0, 4, |w| if w % 2 == 0 { 6 } else { 9 });
    assert!(!warmup.is_empty());
    let resizes = drive(&mut s, 20.0, 120, |w| if w % 2 == 0 { 6 } else { 9 });
    assert!(resizes.is_empty(), "{resizes:?}");
    assert_eq!(s.target(), 9);
    // And a load that swings slower than the surplus run still never resizes more
    // than once per window.
    let mut slow = scaler(1, 16);
    let mut per_window = std::collections::BTreeMap::<usize, usize>::new();
    for w in 0..240 {
        let demand = if (w / 4) % 2 == 0 { 4 } else { 12 };
        let now = w as f64 * WINDOW;
        if slow.tick(now, demand).is_some() {
            *per_window.entry(w).or_default() += 1;
        }
        if slow.observe_demand(demand).is_some() {
            *per_window.entry(w).or_default() += 1;
        }
    }
    assert!(per_window.values().all(|&n| n == 1), "{per_window:?}");
}

#[test]
fn slow_waits_grow_by_half_and_fast_waits_do_not() {
    let mut s = scaler(1, 10);
    drive(&mut s, 0.0, 1, |_| 4);
    assert_eq!(s.target(), 4);
    // 100 waits, 5 slow: p95 at the target, no growth.
    for i in 0..100 {
        s.observe_wait(if i < 5 { 0.5 } else { 0.001 });
    }
    assert_eq!(s.tick(5.0, 4), None);
    // 100 waits, 6 slow: p95 over the target.
    for i in 0..100 {
        s.observe_wait(if i < 6 { 0.5 } else { 0.001 });
    }
    let grown = s.tick(10.0, 4).unwrap();
    assert_eq!(
        grown,
        Resize {
            from: 4,
            to: 6,
            reason: ResizeReason::SlowWaits
        }
    );
    // Capped at max_pools.
    s.observe_wait(1.0);
    assert_eq!(s.tick(15.0, 4).map(|r| r.to), Some(9));
    s.observe_wait(1.0);
    assert_eq!(s.tick(20.0, 4).map(|r| r.to), Some(10));
    s.observe_wait(1.0);
    assert_eq!(s.tick(25.0, 4), None);
}

#[test]
fn demand_is_capped_at_max_pools() {
    let mut s = scaler(1, 3);
    assert_eq!(s.observe_demand(50).map(|r| r.to), Some(3));
    assert_eq!(s.observe_demand(50), None);
    assert_eq!(s.view().window_peak, 50);
}

#[test]
fn a_long_gap_counts_as_one_window() {
    let mut s = scaler(1, 8);
    drive(&mut s, 0.0, 1, |_| 8);
    assert_eq!(s.tick(5.0, 0), None);
    // 1,000 windows without a tick: one surplus window, not a collapse to min.
    assert_eq!(s.tick(5_000.0, 0), None);
    assert_eq!(s.view().surplus_windows, 1);
    assert_eq!(s.next_tick(), Some(5_005.0));
}

#[test]
fn ticks_inside_a_window_change_nothing() {
    let mut s = scaler(1, 8);
    assert_eq!(s.tick(0.0, 3), None);
    assert_eq!(s.next_tick(), Some(5.0));
    for i in 0..50 {
        assert_eq!(s.tick(f64::from(i) * 0.09, 0), None);
    }
    assert_eq!(s.view().window_peak, 3);
}
