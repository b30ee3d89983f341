//! Built-in adaptive sizing: the sizing target from what the manager observes, instead
//! of a load signal the application computes (`size_provider`).
//!
//! The target is the number of pools the manager keeps ready (it never limits how many
//! can be leased: a caller gets a new pool on demand up to `max_pools`, as without
//! autoscaling). What the controller sees, all under the manager's lock it already
//! holds:
//!
//! * **demand**: pools in use (leased, draining or shared by call slots) plus callers
//!   waiting, observed whenever it rises (a grant, a queued caller);
//! * **acquire waits**: how long each served waiter waited, against `target_wait`;
//! * **idle pools**: the pools the window's peak demand left unused.
//!
//! # The control law
//!
//! * **Up, at once.** Demand above the target raises the target to that demand the
//!   moment it is observed (capped at `max_pools`), so pools created for a burst are
//!   kept instead of being retired as they come back.
//! * **Up, on slow waits.** At the end of a window in which more than 5 % of the served
//!   waiters waited longer than `target_wait` (the window's p95 above the target), the
//!   target grows by half (at least one pool): the waits say the peaks are sharper
//!   than demand sampled at grants shows.
//! * **Down, slowly.** Only after `scale_down_windows` consecutive windows whose peak
//!   demand stayed below the target, the target drops to the highest of those peaks,
//!   but by at most a quarter (at least one pool) per step; then the count starts
//!   again. So a steady load never resizes, a load that alternates between two levels
//!   faster than `scale_down_windows` windows holds the higher one, and pools are
//!   never retired from under a lease (the manager only retires *free* pools above the
//!   target, after `idle_pool_timeout`).
//! * Always within `[min_pools, max_pools]`, and never below the floor the front end
//!   passes (a `size_provider`'s target, when both are used).
//!
//! The controller never reads a clock: the manager passes `now` to
//! [`AutoScaler::tick`], so tests drive it with a synthetic clock.

use std::time::Duration;

use crate::error::ConfigError;
use crate::sizing::PoolLimits;

/// The settings of the controller; see the module docs for the law they tune.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AutoScalePolicy {
    window: f64,
    target_wait: f64,
    scale_down_windows: u32,
}

impl AutoScalePolicy {
    /// A policy deciding every `window`, growing when the window's p95 acquire wait
    /// exceeds `target_wait`, shrinking after `scale_down_windows` windows of surplus.
    ///
    /// # Errors
    /// [`ConfigError::NotPositiveSeconds`] for a zero `window`,
    /// [`ConfigError::NotPositive`] for zero `scale_down_windows`.
    pub fn new(
        window: Duration,
        target_wait: Duration,
        scale_down_windows: u32,
    ) -> Result<Self, ConfigError> {
        if window.is_zero() {
            return Err(ConfigError::NotPositiveSeconds("window"));
        }
        if scale_down_windows == 0 {
            return Err(ConfigError::NotPositive("scale_down_windows"));
        }
        Ok(Self {
            window: window.as_secs_f64(),
            target_wait: target_wait.as_secs_f64(),
            scale_down_windows,
        })
    }

    /// How often the controller decides.
    #[must_use]
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.window)
    }

    /// The acquire wait the window's p95 is held against.
    #[must_use]
    pub fn target_wait(&self) -> Duration {
        Duration::from_secs_f64(self.target_wait)
    }

    /// How many windows of surplus come before a step down.
    #[must_use]
    pub fn scale_down_windows(&self) -> u32 {
        self.scale_down_windows
    }
}

impl Default for AutoScalePolicy {
    /// 5 s windows, a 10 ms wait target, 3 windows of surplus before a step down.
    fn default() -> Self {
        Self {
            window: 5.0,
            target_wait: 0.010,
            scale_down_windows: 3,
        }
    }
}

/// Why the target moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeReason {
    /// Demand (pools in use plus waiters) rose above the target.
    Demand,
    /// The window's p95 acquire wait exceeded the policy's `target_wait`.
    SlowWaits,
    /// Demand stayed below the target for `scale_down_windows` windows.
    Surplus,
}

impl ResizeReason {
    /// The word front ends log and export.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Demand => "demand",
            Self::SlowWaits => "slow_waits",
            Self::Surplus => "surplus",
        }
    }
}

/// One change of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    /// The target before.
    pub from: usize,
    /// The target after.
    pub to: usize,
    /// What moved it.
    pub reason: ResizeReason,
}

/// What the controller saw and decided, for `stats()`/metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AutoScaleView {
    /// The current target.
    pub target: usize,
    /// The highest demand seen in the current window.
    pub window_peak: usize,
    /// Waiters served in the current window, and how many waited past `target_wait`.
    pub window_waits: u64,
    /// Of those, how many waited longer than `target_wait`.
    pub window_slow_waits: u64,
    /// Consecutive closed windows whose peak stayed below the target.
    pub surplus_windows: u32,
    /// Times the target changed since the manager was built.
    pub resizes: u64,
}

/// The controller's state; lives in the manager, updated under its lock.
#[derive(Debug, Clone)]
pub struct AutoScaler {
    policy: AutoScalePolicy,
    min_pools: usize,
    max_pools: usize,
    target: usize,
    /// When the current window closes (`None` until the first tick).
    window_end: Option<f64>,
    peak: usize,
    waits: u64,
    slow_waits: u64,
    surplus_windows: u32,
    /// The highest peak among the current run of surplus windows.
    surplus_peak: usize,
    resizes: u64,
}

impl AutoScaler {
    /// A controller for `limits`, starting at `min_pools`.
    #[must_use]
    pub fn new(policy: AutoScalePolicy, limits: &PoolLimits) -> Self {
        Self {
            policy,
            min_pools: limits.min_pools(),
            max_pools: limits.max_pools(),
            target: limits.min_pools(),
            window_end: None,
            peak: 0,
            waits: 0,
            slow_waits: 0,
            surplus_windows: 0,
            surplus_peak: 0,
            resizes: 0,
        }
    }

    /// The pool count the controller wants kept.
    #[must_use]
    pub fn target(&self) -> usize {
        self.target
    }

    /// When [`tick`](Self::tick) must run next (the end of the current window).
    #[must_use]
    pub fn next_tick(&self) -> Option<f64> {
        self.window_end
    }

    /// The policy it runs.
    #[must_use]
    pub fn policy(&self) -> &AutoScalePolicy {
        &self.policy
    }

    /// What it saw and decided so far.
    #[must_use]
    pub fn view(&self) -> AutoScaleView {
        AutoScaleView {
            target: self.target,
            window_peak: self.peak,
            window_waits: self.waits,
            window_slow_waits: self.slow_waits,
            surplus_windows: self.surplus_windows,
            resizes: self.resizes,
        }
    }

    /// Demand (pools in use plus waiters) is now `demand`: raises the window's peak,
    /// and the target at once if demand passed it.
    pub fn observe_demand(&mut self, demand: usize) -> Option<Resize> {
        self.peak = self.peak.max(demand);
        let wanted = demand.min(self.max_pools);
        (wanted > self.target).then(|| self.set(wanted, ResizeReason::Demand))
    }

    /// A waiter was served after waiting `seconds`.
    pub fn observe_wait(&mut self, seconds: f64) {
        self.waits += 1;
        if seconds > self.policy.target_wait {
            self.slow_waits += 1;
        }
    }

    /// Closes every window that ended by `now` (`demand` is the demand now: the next
    /// window's starting peak). At most one resize per call. The first call starts the
    /// first window.
    pub fn tick(&mut self, now: f64, demand: usize) -> Option<Resize> {
        let Some(end) = self.window_end else {
            self.window_end = Some(now + self.policy.window);
            self.peak = self.peak.max(demand);
            return None;
        };
        if now < end {
            return None;
        }
        let resize = self.close_window();
        // Windows that passed without a tick (a stalled loop, a clock jump) saw no
        // events: they count as one, not as many windows of surplus.
        let windows_passed = ((now - end) / self.policy.window).floor() + 1.0;
        self.window_end = Some(end + windows_passed * self.policy.window);
        self.peak = demand;
        self.waits = 0;
        self.slow_waits = 0;
        resize
    }

    fn close_window(&mut self) -> Option<Resize> {
        // More than 5 % of the window's waits over target ⇔ its p95 is over target.
        if self.slow_waits * 20 > self.waits && self.target < self.max_pools {
            let grown = (self.target + self.target.div_ceil(2).max(1)).min(self.max_pools);
            return Some(self.set(grown, ResizeReason::SlowWaits));
        }
        if self.peak >= self.target {
            self.surplus_windows = 0;
            self.surplus_peak = 0;
            return None;
        }
        self.surplus_windows += 1;
        self.surplus_peak = self.surplus_peak.max(self.peak);
        if self.surplus_windows < self.policy.scale_down_windows || self.target <= self.min_pools {
            return None;
        }
        let step = (self.target / 4).max(1);
        let lowered = self
            .surplus_peak
            .max(self.target - step)
            .max(self.min_pools);
        Some(self.set(lowered, ResizeReason::Surplus))
    }

    fn set(&mut self, to: usize, reason: ResizeReason) -> Resize {
        let resize = Resize {
            from: self.target,
            to,
            reason,
        };
        self.target = to;
        self.resizes += 1;
        self.surplus_windows = 0;
        self.surplus_peak = 0;
        resize
    }
}

#[cfg(test)]
mod tests;
