//! The crash circuit breaker: when worker processes keep dying, new calls fail fast
//! instead of starting worker after worker that dies too.
//!
//! # The law
//!
//! * **Closed** (normal): every crash is remembered with its time; when `max_crashes`
//!   of them fall within `window`, the breaker **opens** for `cooldown`.
//! * **Open**: calls are refused, each told how long until the cool-down ends (the
//!   `retry_after` of the error). Crashes of calls that were already running are
//!   counted but do not extend the cool-down: the pool is not being hammered by them.
//! * **Half-open**: the first admission after the cool-down moves there and lets
//!   calls through again. The first call admitted since then that completes closes
//!   the breaker (and forgets the crashes); a call admitted before the crashes that
//!   completes late proves nothing. The first crash re-opens it at once, for another
//!   cool-down.
//!
//! Calls are told apart by *epoch*: [`CrashBreaker::admit`] returns the epoch a call
//! is admitted in, which changes each time the breaker half-opens; the front end
//! passes it back with the completion.
//!
//! The breaker never reads a clock: callers pass `now` (any monotonic origin), so
//! tests drive it with a synthetic clock.

use std::collections::VecDeque;
use std::time::Duration;

use crate::error::ConfigError;

/// The settings of a [`CrashBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    max_crashes: u32,
    window: Duration,
    cooldown: Duration,
}

impl BreakerPolicy {
    /// Opens after `max_crashes` crashes within `window`, for `cooldown`.
    ///
    /// # Errors
    /// [`ConfigError::NotPositive`] for zero `max_crashes`,
    /// [`ConfigError::NotPositiveSeconds`] for a zero `window` or `cooldown`.
    pub fn new(
        max_crashes: u32,
        window: Duration,
        cooldown: Duration,
    ) -> Result<Self, ConfigError> {
        if max_crashes == 0 {
            return Err(ConfigError::NotPositive("max_crashes"));
        }
        if window.is_zero() {
            return Err(ConfigError::NotPositiveSeconds("window_seconds"));
        }
        if cooldown.is_zero() {
            return Err(ConfigError::NotPositiveSeconds("cooldown_seconds"));
        }
        Ok(Self {
            max_crashes,
            window,
            cooldown,
        })
    }

    /// Crashes within [`window`](Self::window) that open the breaker.
    #[must_use]
    pub fn max_crashes(&self) -> u32 {
        self.max_crashes
    }

    /// How far back crashes count.
    #[must_use]
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the breaker stays open.
    #[must_use]
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }
}

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls run; crashes are counted.
    Closed,
    /// Calls are refused until `until`.
    Open {
        /// When the cool-down ends.
        until: Duration,
    },
    /// The cool-down ended: calls run; one crash re-opens, one completion closes.
    HalfOpen,
}

impl BreakerState {
    /// `"closed"`, `"open"` or `"half_open"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open { .. } => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// A change of [`BreakerState`] worth telling the user about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerTransition {
    /// It opened: `crashes` crashes within the window (or one while half-open).
    Opened {
        /// Crashes counted within the window when it opened.
        crashes: u32,
        /// How long calls will be refused.
        cooldown: Duration,
    },
    /// The cool-down ended; calls are let through on trial.
    HalfOpened,
    /// A call completed while half-open: back to normal.
    Closed,
}

/// A refused admission: how long until the breaker half-opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// Time left in the cool-down.
    pub retry_after: Duration,
    /// Crashes counted within the window.
    pub crashes: u32,
}

/// What [`CrashBreaker::snapshot`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSnapshot {
    /// The state (an open breaker whose cool-down ended reads as half-open).
    pub state: BreakerState,
    /// Crashes within the window, as of `now`.
    pub recent_crashes: u32,
    /// Time left in the cool-down (zero unless open).
    pub retry_after: Duration,
    /// Times it opened since it was made.
    pub opened: u64,
    /// Calls it refused since it was made.
    pub refused: u64,
}

/// The breaker of one manager's worker processes; see the module docs for the law.
#[derive(Debug, Clone)]
pub struct CrashBreaker {
    policy: BreakerPolicy,
    state: BreakerState,
    /// When each crash within the window happened, oldest first.
    crashes: VecDeque<Duration>,
    opened: u64,
    refused: u64,
    /// Bumped at each half-opening: executors started since carry the new value.
    epoch: u64,
}

impl CrashBreaker {
    /// A closed breaker.
    #[must_use]
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            state: BreakerState::Closed,
            crashes: VecDeque::new(),
            opened: 0,
            refused: 0,
            epoch: 0,
        }
    }

    /// The current epoch (see the module docs), without moving the state.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// An open breaker whose cool-down ended becomes half-open.
    fn cool_down_over(&mut self, now: Duration) -> Option<BreakerTransition> {
        match self.state {
            BreakerState::Open { until } if now >= until => {
                self.state = BreakerState::HalfOpen;
                self.epoch += 1;
                Some(BreakerTransition::HalfOpened)
            }
            _ => None,
        }
    }

    /// Its settings.
    #[must_use]
    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    /// Whether a crash at `at` is older than the window, as of `now`.
    fn expired(&self, at: Duration, now: Duration) -> bool {
        now.checked_sub(self.policy.window)
            .is_some_and(|horizon| at <= horizon)
    }

    fn forget_before(&mut self, now: Duration) {
        while self
            .crashes
            .front()
            .is_some_and(|&at| self.expired(at, now))
        {
            self.crashes.pop_front();
        }
    }

    fn crash_count(&self) -> u32 {
        u32::try_from(self.crashes.len()).unwrap_or(u32::MAX)
    }

    fn open(&mut self, now: Duration) -> BreakerTransition {
        self.state = BreakerState::Open {
            until: now.saturating_add(self.policy.cooldown),
        };
        self.opened += 1;
        BreakerTransition::Opened {
            crashes: self.crash_count(),
            cooldown: self.policy.cooldown,
        }
    }

    /// A worker process died at `now`.
    pub fn record_crash(&mut self, now: Duration) -> Option<BreakerTransition> {
        // A cool-down that ended counts as half-open (as `snapshot` shows it), even
        // before anything moved the state there.
        let _ = self.cool_down_over(now);
        self.forget_before(now);
        self.crashes.push_back(now);
        match self.state {
            BreakerState::Closed if self.crash_count() >= self.policy.max_crashes => {
                Some(self.open(now))
            }
            BreakerState::HalfOpen => Some(self.open(now)),
            _ => None,
        }
    }

    /// Whether `calls` calls may go to workers at `now`, and if so the epoch they are
    /// admitted in; the first admission after the cool-down half-opens the breaker
    /// (reported in the second value).
    pub fn admit(
        &mut self,
        now: Duration,
        calls: u64,
    ) -> (Result<u64, Refused>, Option<BreakerTransition>) {
        let change = self.cool_down_over(now);
        match self.state {
            BreakerState::Open { until } if now < until => {
                self.refused += calls;
                self.forget_before(now);
                let refused = Refused {
                    retry_after: until - now,
                    crashes: self.crash_count(),
                };
                (Err(refused), None)
            }
            _ => (Ok(self.epoch), change),
        }
    }

    /// Calls refused elsewhere because the breaker is open (queued calls that would
    /// have needed a new worker), counted with the refusals.
    pub fn count_refused(&mut self, calls: u64) {
        self.refused += calls;
    }

    /// A call admitted in `epoch` completed (its worker survived it).
    pub fn record_success(&mut self, epoch: u64) -> Option<BreakerTransition> {
        if self.state == BreakerState::HalfOpen && epoch == self.epoch {
            self.state = BreakerState::Closed;
            self.crashes.clear();
            return Some(BreakerTransition::Closed);
        }
        None
    }

    /// Whether calls are refused at `now` (without counting a refusal).
    #[must_use]
    pub fn is_open(&self, now: Duration) -> bool {
        matches!(self.state, BreakerState::Open { until } if now < until)
    }

    /// The state as of `now`.
    #[must_use]
    pub fn snapshot(&self, now: Duration) -> BreakerSnapshot {
        let recent = self.crashes.iter().filter(|&&at| !self.expired(at, now));
        let (state, retry_after) = match self.state {
            BreakerState::Open { until } if now < until => (self.state, until - now),
            BreakerState::Open { .. } => (BreakerState::HalfOpen, Duration::ZERO),
            other => (other, Duration::ZERO),
        };
        BreakerSnapshot {
            state,
            recent_crashes: u32::try_from(recent.count()).unwrap_or(u32::MAX),
            retry_after,
            opened: self.opened,
            refused: self.refused,
        }
    }

    /// Back to closed, crashes forgotten (the manager stopped); the counts stay.
    pub fn reset(&mut self) {
        self.state = BreakerState::Closed;
        self.crashes.clear();
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
