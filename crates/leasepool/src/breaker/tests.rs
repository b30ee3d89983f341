use super::*;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn breaker(max: u32, window: f64, cooldown: f64) -> CrashBreaker {
    CrashBreaker::new(BreakerPolicy::new(max, secs(window), secs(cooldown)).unwrap())
}

#[test]
fn policy_rejects_nonsense() {
    assert_eq!(
        BreakerPolicy::new(0, secs(1.0), secs(1.0)),
        Err(ConfigError::NotPositive("max_crashes"))
    );
    assert_eq!(
        BreakerPolicy::new(1, Duration::ZERO, secs(1.0)),
        Err(ConfigError::NotPositiveSeconds("window_seconds"))
    );
    assert_eq!(
        BreakerPolicy::new(1, secs(1.0), Duration::ZERO),
        Err(ConfigError::NotPositiveSeconds("cooldown_seconds"))
    );
}

#[test]
fn opens_at_the_kth_crash_within_the_window() {
    let mut b = breaker(3, 10.0, 5.0);
    assert_eq!(b.record_crash(secs(1.0)), None);
    assert_eq!(b.record_crash(secs(2.0)), None);
    assert_eq!(
        b.record_crash(secs(3.0)),
        Some(BreakerTransition::Opened {
            crashes: 3,
            cooldown: secs(5.0)
        })
    );
    let (admitted, change) = b.admit(secs(4.0), 1);
    assert_eq!(
        admitted,
        Err(Refused {
            retry_after: secs(4.0),
            crashes: 3
        })
    );
    assert_eq!(change, None);
    let snap = b.snapshot(secs(4.0));
    assert_eq!(snap.state.name(), "open");
    assert_eq!((snap.opened, snap.refused, snap.recent_crashes), (1, 1, 3));
}

#[test]
fn crashes_spread_wider_than_the_window_never_open_it() {
    let mut b = breaker(3, 10.0, 5.0);
    for i in 0..100 {
        assert_eq!(b.record_crash(secs(f64::from(i) * 5.1)), None, "crash {i}");
    }
    assert_eq!(b.snapshot(secs(600.0)).state, BreakerState::Closed);
}

#[test]
fn a_crash_exactly_one_window_old_no_longer_counts() {
    let mut b = breaker(2, 10.0, 5.0);
    assert_eq!(b.record_crash(secs(0.0)), None);
    assert_eq!(b.record_crash(secs(10.0)), None);
    assert!(b.record_crash(secs(19.0)).is_some());
}

#[test]
fn half_opens_after_the_cooldown_then_closes_on_success() {
    let mut b = breaker(1, 10.0, 5.0);
    assert!(b.record_crash(secs(1.0)).is_some());
    assert!(b.is_open(secs(5.9)));
    assert_eq!(b.snapshot(secs(6.0)).state, BreakerState::HalfOpen);
    let before = b.epoch();
    assert_eq!(
        b.admit(secs(6.0), 1),
        (Ok(before + 1), Some(BreakerTransition::HalfOpened))
    );
    assert_eq!(b.admit(secs(6.1), 1), (Ok(before + 1), None));
    assert_eq!(
        b.record_success(before),
        None,
        "a worker from before the crashes proves nothing"
    );
    assert_eq!(b.record_success(b.epoch()), Some(BreakerTransition::Closed));
    assert_eq!(b.record_success(b.epoch()), None);
    let snap = b.snapshot(secs(6.2));
    assert_eq!((snap.state, snap.recent_crashes), (BreakerState::Closed, 0));
}

#[test]
fn one_crash_while_half_open_reopens_it() {
    let mut b = breaker(3, 10.0, 5.0);
    for t in [1.0, 2.0, 3.0] {
        b.record_crash(secs(t));
    }
    assert!(b.admit(secs(8.0), 1).0.is_ok());
    assert!(matches!(
        b.record_crash(secs(8.5)),
        Some(BreakerTransition::Opened { .. })
    ));
    assert_eq!(
        b.admit(secs(9.0), 1).0,
        Err(Refused {
            retry_after: secs(4.5),
            crashes: 4
        })
    );
    assert_eq!(b.snapshot(secs(9.0)).opened, 2);
}

#[test]
fn crashes_while_open_do_not_extend_the_cooldown() {
    let mut b = breaker(1, 10.0, 5.0);
    b.record_crash(secs(0.0));
    assert_eq!(b.record_crash(secs(4.0)), None);
    assert!(!b.is_open(secs(5.0)));
}

#[test]
fn reset_closes_and_forgets_but_keeps_the_counts() {
    let mut b = breaker(1, 10.0, 5.0);
    b.record_crash(secs(0.0));
    let _ = b.admit(secs(1.0), 3);
    b.count_refused(2);
    b.reset();
    let snap = b.snapshot(secs(1.0));
    assert_eq!(snap.state, BreakerState::Closed);
    assert_eq!((snap.recent_crashes, snap.opened, snap.refused), (0, 1, 5));
}

#[test]
fn a_success_while_closed_keeps_the_crash_count() {
    // Successes between crashes do not reset the window: a worker that dies every
    // tenth call still opens the breaker.
    let mut b = breaker(3, 60.0, 5.0);
    b.record_crash(secs(1.0));
    assert_eq!(b.record_success(b.epoch()), None);
    b.record_crash(secs(2.0));
    assert_eq!(b.record_success(b.epoch()), None);
    assert!(b.record_crash(secs(3.0)).is_some());
}

/// A tiny deterministic generator (xorshift64*), so the model test needs no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The law restated over the whole history (every crash ever, the time the breaker
/// last opened), without the breaker's bookkeeping: random sequences of crashes,
/// admissions, completions and clock steps must agree with it at every step.
#[derive(Default)]
struct Model {
    crashes: Vec<u64>,
    /// Crashes before this index were forgotten by a close.
    forgotten: usize,
    open_until: Option<u64>,
    half_open: bool,
    opened: u64,
    epoch: u64,
}

impl Model {
    fn recent(&self, now: u64, window: u64) -> usize {
        self.crashes[self.forgotten..]
            .iter()
            .filter(|&&at| now < window || at > now - window)
            .count()
    }
}

#[test]
fn random_histories_follow_the_law() {
    for seed in 1..=300_u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let max = 1 + u32::try_from(rng.below(4)).unwrap();
        let (window, cooldown) = (1 + rng.below(20), 1 + rng.below(20));
        let policy = BreakerPolicy::new(
            max,
            Duration::from_secs(window),
            Duration::from_secs(cooldown),
        )
        .unwrap();
        let mut breaker = CrashBreaker::new(policy);
        let mut model = Model::default();
        let mut now = 0_u64;
        for step in 0..200 {
            let t = Duration::from_secs(now);
            match rng.below(4) {
                0 => {
                    let change = breaker.record_crash(t);
                    model.crashes.push(now);
                    let open = model.open_until.is_some_and(|until| now < until);
                    let cooled = model.open_until.is_some_and(|until| now >= until);
                    if cooled {
                        model.epoch += 1; // half-opened first, then re-opened
                    }
                    let opens = !open
                        && (model.half_open || cooled || model.recent(now, window) >= max as usize);
                    assert_eq!(change.is_some(), opens, "seed {seed} step {step}");
                    if opens {
                        model.open_until = Some(now + cooldown);
                        model.half_open = false;
                        model.opened += 1;
                    }
                }
                1 => {
                    let (admitted, _) = breaker.admit(t, 1);
                    match model.open_until {
                        Some(until) if now < until => {
                            let refused = admitted.expect_err("open refuses");
                            assert_eq!(refused.retry_after, Duration::from_secs(until - now));
                        }
                        Some(_) => {
                            model.open_until = None;
                            model.half_open = true;
                            model.epoch += 1;
                            assert_eq!(admitted, Ok(model.epoch));
                        }
                        None => assert_eq!(admitted, Ok(model.epoch), "seed {seed} step {step}"),
                    }
                }
                2 => {
                    // A worker started since the last half-opening, or an older one.
                    let current = rng.below(3) != 0;
                    let epoch = if current {
                        model.epoch
                    } else {
                        model.epoch.wrapping_sub(1)
                    };
                    let change = breaker.record_success(epoch);
                    let closes = model.half_open && current;
                    assert_eq!(change.is_some(), closes, "seed {seed} step {step}");
                    if closes {
                        model.half_open = false;
                        model.forgotten = model.crashes.len();
                    }
                }
                _ => now += rng.below(7),
            }
            let snap = breaker.snapshot(Duration::from_secs(now));
            assert_eq!((snap.opened, breaker.epoch()), (model.opened, model.epoch));
            let open = model.open_until.is_some_and(|until| now < until);
            assert_eq!(breaker.is_open(Duration::from_secs(now)), open);
            if open || model.open_until.is_none() {
                let recent = u32::try_from(model.recent(now, window)).unwrap();
                assert_eq!(snap.recent_crashes, recent, "seed {seed} step {step}");
            }
        }
    }
}
