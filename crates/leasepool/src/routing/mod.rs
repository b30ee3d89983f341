//! CPU-vs-I/O routing for a mixed pool (`backend="auto"`): per callable, whether its
//! calls run on thread workers or on process workers, decided from measurement.
//!
//! Every call reports what it cost where it ran ([`CallCost`]): its thread's CPU time,
//! its wall time, and the time it was *stalled* — waiting for a CPU (run-queue wait)
//! and, on a thread, waiting for the GIL, estimated as the CPU time the process's other
//! threads used meanwhile. Its *share* is `cpu / (wall - stalled)`: a pure-Python call
//! is near 1 whether it ran alone, took turns on the GIL with three others or shared an
//! overloaded CPU; a blocking-I/O call is near 0 (it waits with the GIL released, and
//! burns almost no CPU).
//!
//! * A callable starts on threads (cheap, no pickling). It moves to processes after
//!   `samples` consecutive calls on threads each with a share of at least
//!   `to_process_share` *and* at least `min_cpu` of CPU time (shorter calls cost less
//!   than the trip to a process).
//! * It moves back after `samples` consecutive calls on processes with a share of at
//!   most `to_thread_share` (it turned out to wait, not compute). The gap between the
//!   two thresholds is the hysteresis that keeps a callable from flapping, and each
//!   move doubles the samples the next one needs (up to 8×).
//! * A hint (`cpu`/`io`) fixes the route and no measurement moves it.
//! * A callable that cannot be pickled stays on threads for good (reported once).
//!
//! The table is bounded ([`Router::CAPACITY`] callables); the least recently routed
//! entry is forgotten first. Nothing here reads a clock or calls Python: the front end
//! measures and passes numbers in.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::ConfigError;

/// Where a call runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A thread worker of the pool.
    Thread,
    /// A worker process of the pool.
    Process,
}

impl Route {
    /// `"thread"` or `"process"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::Process => "process",
        }
    }
}

/// A caller's statement about a callable, which overrides measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// CPU-bound: run on processes.
    Cpu,
    /// I/O-bound: run on threads.
    Io,
}

/// Why a callable has its route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteReason {
    /// Not enough samples yet: threads, the default.
    Default,
    /// Moved by measurement.
    Measured,
    /// Fixed by a hint.
    Hint,
    /// It cannot be pickled: threads for good.
    Unpicklable,
}

impl RouteReason {
    /// The word front ends show.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Measured => "measured",
            Self::Hint => "hint",
            Self::Unpicklable => "unpicklable",
        }
    }
}

/// The thresholds of the routing law (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingPolicy {
    samples: u32,
    to_process_share: f64,
    to_thread_share: f64,
    min_cpu: f64,
}

impl Default for RoutingPolicy {
    /// 4 agreeing samples, to processes at a share ≥ 0.5 with ≥ 1 ms of CPU, back to
    /// threads at a share ≤ 0.1.
    fn default() -> Self {
        Self {
            samples: 4,
            to_process_share: 0.5,
            to_thread_share: 0.1,
            min_cpu: 0.001,
        }
    }
}

impl RoutingPolicy {
    /// A policy with its own thresholds.
    ///
    /// # Errors
    /// [`ConfigError::NotPositive`] for zero `samples`;
    /// [`ConfigError::SharesOutOfOrder`] unless `0 ≤ to_thread_share <
    /// to_process_share ≤ 1` (the hysteresis must be a real gap).
    pub fn new(
        samples: u32,
        to_process_share: f64,
        to_thread_share: f64,
        min_cpu: Duration,
    ) -> Result<Self, ConfigError> {
        if samples == 0 {
            return Err(ConfigError::NotPositive("samples"));
        }
        let ordered = (0.0..to_process_share).contains(&to_thread_share) && to_process_share <= 1.0;
        if !ordered {
            return Err(ConfigError::SharesOutOfOrder);
        }
        Ok(Self {
            samples,
            to_process_share,
            to_thread_share,
            min_cpu: min_cpu.as_secs_f64(),
        })
    }
}

/// What one call cost, as its front end measured it (seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CallCost {
    /// CPU time of the thread that ran it.
    pub cpu: f64,
    /// Wall time.
    pub wall: f64,
    /// Time in `wall` the call could not run for reasons other than its own waiting:
    /// waiting for a CPU (run-queue wait) and, on a thread, waiting for the GIL
    /// (estimated as the CPU time the process's other threads used meanwhile).
    pub stalled: f64,
}

impl CallCost {
    /// The share of the time the call could run that it spent computing: `cpu /
    /// (wall - stalled)`, in `[0, 1]` (0 for nonsense measurements).
    #[must_use]
    pub fn share(&self) -> f64 {
        let (cpu, wall) = (self.cpu, self.wall);
        if !(cpu.is_finite() && wall.is_finite() && self.stalled.is_finite()) || wall <= 0.0 {
            return 0.0;
        }
        let cpu = cpu.max(0.0);
        let stalled = self.stalled.clamp(0.0, (wall - cpu).max(0.0));
        let runnable = wall - stalled;
        if runnable <= 0.0 {
            return 0.0;
        }
        (cpu / runnable).min(1.0)
    }
}

/// A change of a callable's route, for the front end to log and count.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteChange {
    /// The callable's name as the front end gave it.
    pub name: Arc<str>,
    /// Its new route.
    pub to: Route,
    /// Why.
    pub reason: RouteReason,
}

/// One callable's routing state, for `stats()`.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteView {
    /// The callable's name as the front end gave it.
    pub name: Arc<str>,
    /// Where its calls go now.
    pub route: Route,
    /// Why.
    pub reason: RouteReason,
    /// Calls measured (on either route).
    pub samples: u64,
    /// The share (see the module docs) of the last measured call.
    pub last_share: f64,
    /// Calls that ran on worker processes.
    pub offloaded: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    name: Arc<str>,
    route: Route,
    reason: RouteReason,
    /// Consecutive samples on the current route that argue for the other one.
    agreeing: u32,
    samples: u64,
    last_share: f64,
    offloaded: u64,
    /// Moves by measurement so far: each doubles the samples the next move needs
    /// (up to 8×), so a callable whose nature keeps changing settles.
    moves: u32,
    /// Routing order stamp, for forgetting the least recently routed.
    used: u64,
}

/// The routing table of one manager.
#[derive(Debug, Default)]
pub struct Router {
    policy: RoutingPolicy,
    entries: HashMap<u64, Entry>,
    clock: u64,
    changes: u64,
    offloaded: u64,
}

impl Router {
    /// How many callables the table remembers.
    pub const CAPACITY: usize = 1024;

    /// An empty table under `policy`.
    #[must_use]
    pub fn new(policy: RoutingPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Where the next call of callable `key` goes. `name` is asked for only the first
    /// time the callable is seen; `hint` (if any) fixes its route.
    pub fn route(&mut self, key: u64, hint: Option<Hint>, name: impl FnOnce() -> String) -> Route {
        self.clock += 1;
        let clock = self.clock;
        if !self.entries.contains_key(&key) {
            self.make_room();
        }
        let entry = self.entries.entry(key).or_insert_with(|| Entry {
            name: Arc::from(name()),
            route: Route::Thread,
            reason: RouteReason::Default,
            agreeing: 0,
            samples: 0,
            last_share: 0.0,
            offloaded: 0,
            moves: 0,
            used: clock,
        });
        entry.used = clock;
        if entry.reason != RouteReason::Unpicklable {
            if let Some(hint) = hint {
                entry.route = match hint {
                    Hint::Cpu => Route::Process,
                    Hint::Io => Route::Thread,
                };
                entry.reason = RouteReason::Hint;
            }
        }
        entry.route
    }

    /// A call of `key` ran on a thread worker and cost `cost`.
    pub fn record_thread(&mut self, key: u64, cost: CallCost) -> Option<RouteChange> {
        let share = cost.share();
        let computing = share >= self.policy.to_process_share && cost.cpu >= self.policy.min_cpu;
        self.record(key, Route::Thread, share, computing)
    }

    /// A call of `key` ran on a worker process and cost `cost`; counted as offloaded.
    pub fn record_process(&mut self, key: u64, cost: CallCost) -> Option<RouteChange> {
        self.offloaded += 1;
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.offloaded += 1;
        }
        let share = cost.share();
        let waiting = share <= self.policy.to_thread_share;
        self.record(key, Route::Process, share, waiting)
    }

    /// `key` cannot be pickled: threads for good. Returns the change the first time.
    pub fn unpicklable(&mut self, key: u64) -> Option<RouteChange> {
        let entry = self.entries.get_mut(&key)?;
        if entry.reason == RouteReason::Unpicklable {
            return None;
        }
        entry.route = Route::Thread;
        entry.reason = RouteReason::Unpicklable;
        self.changes += 1;
        Some(RouteChange {
            name: entry.name.clone(),
            to: Route::Thread,
            reason: RouteReason::Unpicklable,
        })
    }

    /// Where the next call of callable `key` goes, if the table knows it (else `None`:
    /// the front end reads its name and hint and calls [`route`](Self::route)).
    pub fn route_known(&mut self, key: u64) -> Option<Route> {
        self.clock += 1;
        let entry = self.entries.get_mut(&key)?;
        entry.used = self.clock;
        Some(entry.route)
    }

    /// Routes changed since the table was made.
    #[must_use]
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Calls that ran on worker processes since the table was made.
    #[must_use]
    pub fn offloaded(&self) -> u64 {
        self.offloaded
    }

    /// Every callable remembered, most recently routed first.
    #[must_use]
    pub fn views(&self) -> Vec<RouteView> {
        let mut entries: Vec<&Entry> = self.entries.values().collect();
        entries.sort_unstable_by_key(|e| std::cmp::Reverse(e.used));
        entries
            .into_iter()
            .map(|e| RouteView {
                name: e.name.clone(),
                route: e.route,
                reason: e.reason,
                samples: e.samples,
                last_share: e.last_share,
                offloaded: e.offloaded,
            })
            .collect()
    }

    /// One sample; `argues_to_move`: this call's cost says it belongs on the other
    /// route. Samples from the route a callable just left are ignored.
    fn record(
        &mut self,
        key: u64,
        ran_on: Route,
        share: f64,
        argues_to_move: bool,
    ) -> Option<RouteChange> {
        let entry = self.entries.get_mut(&key)?;
        let samples = self.policy.samples << entry.moves.min(3);
        entry.samples += 1;
        entry.last_share = share;
        let measured = matches!(entry.reason, RouteReason::Default | RouteReason::Measured);
        if !measured || entry.route != ran_on {
            return None;
        }
        entry.agreeing = if argues_to_move {
            entry.agreeing + 1
        } else {
            0
        };
        if entry.agreeing < samples {
            return None;
        }
        entry.agreeing = 0;
        entry.moves += 1;
        entry.route = match ran_on {
            Route::Thread => Route::Process,
            Route::Process => Route::Thread,
        };
        entry.reason = RouteReason::Measured;
        self.changes += 1;
        Some(RouteChange {
            name: entry.name.clone(),
            to: entry.route,
            reason: RouteReason::Measured,
        })
    }

    /// Forgets the least recently routed callable if the table is full.
    fn make_room(&mut self) {
        if self.entries.len() < Self::CAPACITY {
            return;
        }
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, entry)| entry.used)
            .map(|(key, _)| *key);
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests;
