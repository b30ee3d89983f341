//! Graceful drain of a [`LeaseManager`] (see [`LeaseManager::drain`]): the engine's
//! drain (`manager/closing.rs`) driven by tokio's clock.
//!
//! Who ends the drain:
//!
//! * **quiet**: whoever lets go of the last lease (a [`Lease`](super::Lease) dropped,
//!   a grant nobody awaited any more, a revocation by [`check`](LeaseManager::check))
//!   asks the engine [`drain_quiet`](crate::Manager::drain_quiet) under the same lock
//!   and, when it fires, stops the manager and stores the report there and then;
//!   then it rings [`Shared::drain_done`]. So a drain ends even if no `drain()` future
//!   is awaited any more.
//! * **due**: a `drain()` future whose own deadline passed (on tokio's clock), or
//!   [`check`](LeaseManager::check) past the earliest such deadline (so a running
//!   [`run_checker`](LeaseManager::run_checker), woken by [`Shared::drain_begun`],
//!   enforces it even if every `drain()` future was dropped), asks
//!   [`drain_due`](crate::Manager::drain_due) with "the deadline is now", revokes what
//!   is still leased and stops the manager.
//! * **stop**: [`LeaseManager::stop`] during a drain ends it at once.
//!
//! Each of these decides, stops and stores the report in one critical section, so
//! whoever takes the lock next sees either a drain in progress or its report.

use std::pin::pin;
use std::time::Duration;

use tokio::time::Instant;

use super::{fail_refused, lock, Engine, Fx, LeaseManager, Shared};
use crate::expiry::monotonic;
use crate::graceful::{self, DrainReport};
use crate::manager::DrainBegun;
use crate::LeaseError;

impl<P: Clone + Send + 'static> Shared<P> {
    /// Under the engine lock, after anything that may have let go of the last lease:
    /// ends a drain in progress that has nothing leased any more. `true` if it ended
    /// (ring [`Self::drain_done`] once the lock is dropped).
    pub(super) fn settle_drain(&self, engine: &mut Engine<P>, fx: &mut Fx<P>) -> bool {
        if !engine.drain_quiet() {
            return false;
        }
        self.finish_drain(engine, fx);
        true
    }

    /// Under the engine lock, once the drain is decided: stops the manager as
    /// [`LeaseManager::stop`] does and stores the engine's report.
    fn finish_drain(&self, engine: &mut Engine<P>, fx: &mut Fx<P>) {
        engine.stop(monotonic(), fx);
        self.end_drain(engine);
    }

    /// Under the engine lock, right after the manager stopped: stores the report of
    /// the drain in progress, if any. `true` if there was one (ring
    /// [`Self::drain_done`] once the lock is dropped).
    pub(super) fn end_drain(&self, engine: &mut Engine<P>) -> bool {
        let Some(report) = engine.end_drain() else {
            return false;
        };
        *lock(&self.drain_until) = None;
        // The manager never restarts, so there is at most one drain to report.
        let _ = self.drained.set(report);
        true
    }

    /// Under the engine lock: the drain's deadline has passed; revokes what is still
    /// leased and stops. `false` if the drain was already decided (or none runs).
    fn drain_due(&self, engine: &mut Engine<P>, fx: &mut Fx<P>) -> bool {
        // tokio's clock decided the deadline, not the engine's: "it is due now".
        let Some(pools_in_use) = engine.drain_due(f64::INFINITY) else {
            return false;
        };
        // Opaque pools cannot be told to stop their work: `stop` ends their leases
        // (`Lease::is_live` turns false: the manager no longer holds them) and
        // retires the pools like every other.
        drop(pools_in_use);
        self.finish_drain(engine, fx);
        true
    }

    /// Under the engine lock (for [`LeaseManager::check`]): ends the drain in
    /// progress if its earliest deadline has passed on tokio's clock.
    pub(super) fn enforce_drain_deadline(&self, engine: &mut Engine<P>, fx: &mut Fx<P>) -> bool {
        let due = lock(&self.drain_until).is_some_and(|until| until <= Instant::now());
        due && self.drain_due(engine, fx)
    }

    /// The earliest deadline of the drain in progress, on tokio's clock.
    pub(super) fn drain_deadline(&self) -> Option<Instant> {
        *lock(&self.drain_until)
    }

    /// A `drain()` future reached its own deadline.
    fn deadline_reached(&self) {
        let mut fx = Fx::default();
        let ended = self.drain_due(&mut lock(&self.engine), &mut fx);
        self.perform(fx);
        if ended {
            self.drain_done.notify_waiters();
        }
    }

    /// Waits for the drain in progress to end, ending it at `until` if it has not.
    async fn await_drain(&self, until: Option<Instant>) -> DrainReport {
        loop {
            let mut done = pin!(self.drain_done.notified());
            // Registered before the check, so an end between the two still wakes us.
            done.as_mut().enable();
            if let Some(report) = self.drained.get() {
                return *report;
            }
            match until {
                None => done.await,
                Some(until) => {
                    if tokio::time::timeout_at(until, done).await.is_err() {
                        self.deadline_reached();
                        // Decided under the lock: by us just now, or (quiet, another
                        // drain's deadline, `stop`) by whoever held it before.
                        debug_assert!(self.drained.get().is_some(), "decided, not reported");
                        return self.drained.get().copied().unwrap_or_default();
                    }
                }
            }
        }
    }
}

impl<P: Clone + Send + 'static> LeaseManager<P> {
    /// Drains the manager gracefully, then stops it, and reports what happened.
    ///
    /// 1. At once: nothing is granted any more. Callers queued in
    ///    [`acquire`](Self::acquire)/[`acquire_as`](Self::acquire_as) fail with
    ///    [`LeaseError::Draining`], and so does every request made while the drain
    ///    lasts. Leases already held keep working.
    /// 2. It waits until every lease is released (woken by the release, not by
    ///    polling), or until `deadline` has passed on tokio's clock
    ///    ([`tokio::time::Instant`], so a paused test clock applies).
    /// 3. At the deadline the leases still held are revoked: their
    ///    [`Lease::is_live`](super::Lease::is_live) turns `false` and their pools are
    ///    retired (the front end cannot interrupt work on an opaque pool; dropping
    ///    such a lease later is harmless).
    /// 4. The manager stops exactly as [`stop`](Self::stop) does; later requests fail
    ///    with [`LeaseError::NotStarted`].
    ///
    /// The report counts `waiters_failed`, `leases_revoked` and `timed_out`; this
    /// front end runs no calls itself, so `finished`, `cancelled` and `killed` are 0.
    ///
    /// # Concurrent and repeated calls
    /// A second `drain` while one is in progress joins it: the drain ends by the
    /// earliest deadline of the calls so far (enforced by every later call's future
    /// too, even if the earlier caller's future was dropped), and every caller gets
    /// the same report. Once the drain has ended,
    /// `drain` returns that same report again at once. On a manager stopped with
    /// [`stop`](Self::stop) and never drained it returns an empty report.
    ///
    /// # Cancel safety
    /// Dropping the future does not undo or lose anything: the drain stays in
    /// progress (nothing granted, requests fail with `Draining`), leases held keep
    /// their pools and give them back on release, and the drain still ends by itself
    /// when the last lease is released (the manager stops, the report is kept for a
    /// later `drain` call). Its deadline is still enforced by
    /// [`check`](Self::check), so by a running [`run_checker`](Self::run_checker),
    /// which wakes for it; without a checker, call `drain` again (it joins, with its
    /// own deadline) or [`stop`](Self::stop) (ends the drain at once).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use leasepool::tokio::LeaseManager;
    ///
    /// let manager = LeaseManager::builder(2).build(|seq| seq).unwrap();
    /// let held = manager.acquire().await.unwrap();
    /// // The lease is not given back: the drain revokes it at its deadline.
    /// let report = manager.drain(Duration::from_secs(5)).await;
    /// assert!(report.timed_out && report.leases_revoked == 1);
    /// assert!(!held.is_live());
    /// # }
    /// ```
    pub async fn drain(&self, deadline: Duration) -> DrainReport {
        let mut until = Instant::now().checked_add(deadline);
        let mut fx = Fx::default();
        let ended = {
            let mut engine = lock(&self.shared.engine);
            if let Some(report) = self.shared.drained.get() {
                return *report;
            }
            // The engine keeps the earliest deadline on its own (monotonic) clock
            // for its bookkeeping; this front end decides the deadline on tokio's.
            let at = graceful::deadline(monotonic(), deadline.as_secs_f64());
            if let DrainBegun::NotRunning = engine.begin_drain(at, &mut fx) {
                return DrainReport::default();
            }
            // Joining: the earliest deadline so far binds this caller too (its
            // drain() future may have been dropped).
            let mut earliest = lock(&self.shared.drain_until);
            *earliest = match (*earliest, until) {
                (Some(before), Some(mine)) => Some(before.min(mine)),
                (before, mine) => before.or(mine),
            };
            until = *earliest;
            drop(earliest);
            self.shared.settle_drain(&mut engine, &mut fx)
        };
        fail_refused(&mut fx, &LeaseError::Draining);
        self.shared.perform(fx);
        if ended {
            self.shared.drain_done.notify_waiters();
        } else {
            self.shared.drain_begun.notify_waiters();
        }
        self.shared.await_drain(until).await
    }

    /// Whether a [`drain`](Self::drain) is in progress (begun and not yet ended):
    /// e.g. for a readiness probe that turns a load balancer away.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        lock(&self.shared.engine).is_draining()
    }
}
