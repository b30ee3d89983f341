//! `manager.drain(timeout)`: graceful drain. The engine decides (`Manager::begin_drain`,
//! `drain_quiet`, `drain_due`, `end_drain`; `leasepool::graceful`); this module performs
//! it: fail the refused waiters, watch for the end (after each performed effect, and at
//! the deadline on the checker clock), abort the pools still in use at the deadline,
//! stop the manager exactly as `stop()` does, and settle every caller's report.
//!
//! The drain runs detached from its callers' awaits (`drive_detached`): cancelling an
//! `await manager.drain(...)` does not stop the drain half way. A second `drain()`
//! joins the one in progress (the earlier deadline wins) and gets the same report.

use std::sync::atomic::AtomicBool;

use leasepool::graceful;
use leasepool::manager::DrainBegun;
use leasepool::DrainReport;

use super::*;
use crate::aio::{drive_detached, LoopTask};
use crate::errors::DRAINING;

/// What `drain()` did (see `leasepool.DrainReport` in the stubs and README).
#[pyclass(
    name = "DrainReport",
    module = "leasepool.manager",
    frozen,
    eq,
    hash,
    get_all
)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct PyDrainReport {
    finished: u64,
    cancelled: u64,
    killed: u64,
    waiters_failed: u64,
    leases_revoked: u64,
    timed_out: bool,
}

impl From<DrainReport> for PyDrainReport {
    fn from(r: DrainReport) -> Self {
        Self {
            finished: r.finished,
            cancelled: r.cancelled,
            killed: r.killed,
            waiters_failed: r.waiters_failed,
            leases_revoked: r.leases_revoked,
            timed_out: r.timed_out,
        }
    }
}

#[pymethods]
impl PyDrainReport {
    fn __repr__(&self) -> String {
        let flag = if self.timed_out { "True" } else { "False" };
        format!(
            "DrainReport(finished={}, cancelled={}, killed={}, waiters_failed={}, \
             leases_revoked={}, timed_out={flag})",
            self.finished, self.cancelled, self.killed, self.waiters_failed, self.leases_revoked
        )
    }
}

impl PyDrainReport {
    pub(crate) fn new_py(py: Python<'_>, report: DrainReport) -> PyResult<Py<PyAny>> {
        Ok(Py::new(py, Self::from(report))?.into_any())
    }
}

/// The binding's side of a drain in progress.
struct DrainRun {
    /// Everyone awaiting the report.
    waiters: Vec<Py<PyLeaseFuture>>,
    /// Each pool that could run calls when the drain began, with its tally then.
    pools: Vec<(Pool, DrainReport)>,
    /// What the deadline's aborts counted.
    aborted: DrainReport,
    concluding: bool,
}

/// A manager's drain state, and the other deadlines its checker clock keeps (a
/// WorkGrinder's drain).
#[derive(Default)]
pub(crate) struct Draining {
    active: AtomicBool,
    run: Mutex<Option<DrainRun>>,
    alarms: Mutex<Vec<(f64, LoopTask)>>,
}

impl ManagerCore {
    /// `drain(timeout)`: begins at once (like `run()`); the awaitable gives the report.
    pub(super) fn drain_now(self: &Arc<Self>, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        let Some(bridge) = self.bridge() else {
            let report = PyDrainReport::new_py(py, DrainReport::default())?;
            return Ok(
                PyEngineCoroutine::ready(py, "LeasedExecutorManager.drain", report)?.into_any(),
            );
        };
        if let Err(err) = require_owner_loop(py, &bridge, "drain") {
            return Ok(
                PyEngineCoroutine::failing(py, "LeasedExecutorManager.drain", err)?.into_any(),
            );
        }
        let report = PyLeaseFuture::pending(py, bridge, None)?;
        let deadline = graceful::deadline(monotonic(), timeout);
        let mut fx = Fx::default();
        let started = self.begin_drain(py, deadline, &report, &mut fx);
        let Some(started) = started else {
            let zero = PyDrainReport::new_py(py, DrainReport::default())?;
            PyLeaseFuture::settle(&report, py, Outcome::Value(zero));
            return Ok(report.into_any());
        };
        if started {
            self.logger.log(
                py,
                INFO,
                "LeasedExecutorManager draining timeout=%s",
                (timeout,),
                None,
            );
        }
        for waiter in std::mem::take(&mut fx.refused) {
            waiter.refuse(
                py,
                crate::errors::new_exception(
                    exception_class(py, "LeasePoolDrainingError"),
                    DRAINING,
                ),
            );
        }
        let bridge = self.bridge();
        self.perform(py, fx, bridge.as_ref());
        self.with_clock(|clock| clock.arm_before(deadline));
        self.poll_drain(py);
        Ok(report.into_any())
    }

    /// The engine's `begin_drain`, under both locks (drain state, then engine):
    /// `Some(true)` if this call began the drain, `Some(false)` if it joined one,
    /// `None` if the manager is not running.
    fn begin_drain(
        &self,
        py: Python<'_>,
        deadline: f64,
        report: &Py<PyLeaseFuture>,
        fx: &mut Fx,
    ) -> Option<bool> {
        let mut run = lock(&self.draining.run);
        let mut engine = lock(&self.engine);
        match engine.begin_drain(deadline, fx) {
            DrainBegun::NotRunning => None,
            DrainBegun::Joined { .. } => {
                if let Some(run) = run.as_mut() {
                    run.waiters.push(report.clone_ref(py));
                }
                Some(false)
            }
            DrainBegun::Started { pools } => {
                let pools = pools.into_iter().map(|p| {
                    let tally = p.tally();
                    (p, tally)
                });
                *run = Some(DrainRun {
                    waiters: vec![report.clone_ref(py)],
                    pools: pools.collect(),
                    aborted: DrainReport::default(),
                    concluding: false,
                });
                self.draining.active.store(true, Ordering::Release);
                Some(true)
            }
        }
    }

    /// After performing effects: ends the drain in progress if nothing is leased any
    /// more (the engine decides, once).
    pub(super) fn poll_drain(self: &Arc<Self>, py: Python<'_>) {
        if !self.draining.active.load(Ordering::Acquire) {
            return;
        }
        if lock(&self.engine).drain_quiet() {
            self.conclude_drain(py);
        }
    }

    /// The checker clock rang at `now`: aborts the pools still in use if the drain's
    /// deadline passed, and fires the other deadlines due. Returns the next deadline.
    pub(super) fn drain_tick(self: &Arc<Self>, py: Python<'_>, now: f64) -> Option<f64> {
        let due = lock(&self.engine).drain_due(now);
        if let Some(pools) = due {
            let mut aborted = DrainReport::default();
            for pool in pools {
                aborted.absorb(&pool.abort(py));
            }
            if let Some(run) = lock(&self.draining.run).as_mut() {
                run.aborted.absorb(&aborted);
            }
            self.conclude_drain(py);
        }
        let fired: Vec<LoopTask> = {
            let mut alarms = lock(&self.draining.alarms);
            let (due, later): (Vec<_>, Vec<_>) = alarms.drain(..).partition(|(at, _)| *at <= now);
            *alarms = later;
            due.into_iter().map(|(_, task)| task).collect()
        };
        for task in fired {
            task(py);
        }
        let next_alarm = lock(&self.draining.alarms)
            .iter()
            .map(|(at, _)| *at)
            .min_by(f64::total_cmp);
        let next_drain = lock(&self.engine).drain_deadline();
        next_alarm
            .into_iter()
            .chain(next_drain)
            .min_by(f64::total_cmp)
    }

    /// Runs `task` on the loop thread once the engine's clock passes `deadline`, or at
    /// once if the manager has no clock (not started). For a WorkGrinder's drain.
    pub(crate) fn at_deadline(self: &Arc<Self>, py: Python<'_>, deadline: f64, task: LoopTask) {
        if self.bridge().is_none() || monotonic() >= deadline {
            task(py);
            return;
        }
        lock(&self.draining.alarms).push((deadline, task));
        self.with_clock(|clock| clock.arm_before(deadline));
    }

    /// `stop()` ran: a drain in progress ends with it (the stop revoked its leases).
    pub(super) fn drain_stopped(self: &Arc<Self>, py: Python<'_>) {
        if self.draining.active.load(Ordering::Acquire) {
            self.conclude_drain(py);
        }
    }

    /// Stops the manager as `stop()` does (once), then settles the report. Always
    /// from the loop's queue, never inside the operation that decided it.
    fn conclude_drain(self: &Arc<Self>, py: Python<'_>) {
        {
            let mut run = lock(&self.draining.run);
            match run.as_mut() {
                Some(run) if !run.concluding => run.concluding = true,
                _ => return,
            }
        }
        let core = self.clone();
        let task: LoopTask = Box::new(move |py| {
            let step = if core.bridge().is_some() {
                core.stop_now(py)
            } else {
                Ok(Step::Done(py.None()))
            };
            let reporter = core.clone();
            drive_detached(
                py,
                step,
                Box::new(move |py, result| reporter.settle_drain(py, result)),
            );
        });
        match self.bridge() {
            Some(bridge) => bridge.push(Completion::Call(task)),
            None => task(py),
        }
    }

    /// The drain's stop is over: adds up the report and settles every awaiter.
    fn settle_drain(&self, py: Python<'_>, stopped: PyResult<()>) {
        let Some(run) = lock(&self.draining.run).take() else {
            return;
        };
        self.draining.active.store(false, Ordering::Release);
        let mut report = lock(&self.engine).end_drain().unwrap_or_default();
        report.absorb(&run.aborted);
        for (pool, before) in &run.pools {
            let now = pool.tally();
            report.finished += now.finished.saturating_sub(before.finished);
            report.cancelled += now.cancelled.saturating_sub(before.cancelled);
        }
        let outcome = stopped.and_then(|()| PyDrainReport::new_py(py, report));
        for waiter in run.waiters {
            let outcome = match &outcome {
                Ok(value) => Outcome::Value(value.clone_ref(py)),
                Err(err) => Outcome::Error(err.clone_ref(py)),
            };
            PyLeaseFuture::settle(&waiter, py, outcome);
        }
        self.logger.log(
            py,
            INFO,
            "LeasedExecutorManager drained finished=%s cancelled=%s killed=%s waiters_failed=%s leases_revoked=%s timed_out=%s",
            (report.finished, report.cancelled, report.killed, report.waiters_failed, report.leases_revoked, report.timed_out),
            None,
        );
    }
}
