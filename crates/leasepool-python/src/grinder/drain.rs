//! `grinder.drain(timeout)`: graceful drain of a WorkGrinder. The engine decides
//! (`Grinder::begin_drain`, `drain_due`, `end_drain`): nothing new is accepted, what
//! is pending leaves in a last batch, and at the deadline the batches still in flight
//! are cancelled as `stop(cancel_pending=True)` cancels them. The deadline is kept by
//! the manager's checker clock (the engine's monotonic clock, which tests skew).
//!
//! The report is settled when the last batch finishes, or at the deadline: items
//! still running then are counted as `killed` (abandoned: the grinder cannot stop a
//! call; drain the manager to terminate them) and the grinder finishes stopping when
//! they end.

use leasepool::grinder::GrinderDrainBegun;
use leasepool::DrainReport;

use super::*;
use crate::aio::{drive_detached, PyEngineCoroutine, Step};
use crate::manager::PyDrainReport;

/// The binding's side of a grinder drain in progress.
pub(super) struct GrinderDrain {
    waiters: Vec<Py<PyLeaseFuture>>,
    delivered_before: u64,
    counted: DrainReport,
}

const NAME: &str = "WorkGrinder.drain";

impl GrinderCore {
    pub(super) fn drain_now(self: &Arc<Self>, py: Python<'_>, timeout: f64) -> PyResult<Py<PyAny>> {
        let Some(bridge) = self.bridge() else {
            let zero = PyDrainReport::new_py(py, DrainReport::default())?;
            return Ok(PyEngineCoroutine::ready(py, NAME, zero)?.into_any());
        };
        if let Err(err) = require_owner_loop(py, &bridge) {
            return Ok(PyEngineCoroutine::failing(py, NAME, err)?.into_any());
        }
        let report = PyLeaseFuture::pending(py, bridge.clone(), None)?;
        let stopped = PyLeaseFuture::pending(py, bridge, None)?;
        let now = monotonic();
        let deadline = leasepool::graceful::deadline(now, timeout);
        let mut fx = Fx::default();
        let begun = {
            let mut state = lock(&self.state);
            let begun = state.engine.begin_drain(now, deadline, &mut fx);
            match begun {
                GrinderDrainBegun::NotRunning => {}
                GrinderDrainBegun::Joined { .. } => {
                    if let Some(drain) = state.drain.as_mut() {
                        drain.waiters.push(report.clone_ref(py));
                    }
                }
                GrinderDrainBegun::Started => {
                    state.drain = Some(GrinderDrain {
                        waiters: vec![report.clone_ref(py)],
                        delivered_before: self.delivered.load(Ordering::Relaxed),
                        counted: DrainReport::default(),
                    });
                    state.stop_waiters.push(stopped.clone_ref(py));
                }
            }
            begun
        };
        self.space.notify_all();
        match begun {
            GrinderDrainBegun::NotRunning => {
                let zero = PyDrainReport::new_py(py, DrainReport::default())?;
                PyLeaseFuture::settle(&report, py, Outcome::Value(zero));
                return Ok(report.into_any());
            }
            GrinderDrainBegun::Joined { deadline } => self.watch_deadline(py, deadline),
            GrinderDrainBegun::Started => {
                let core = self.clone();
                let reporter = self.clone();
                let step = Step::Await(stopped, Some(Box::new(move |py| core.finish_once(py))));
                drive_detached(
                    py,
                    Ok(step),
                    Box::new(move |py, result| reporter.settle_drain(py, result)),
                );
                self.watch_deadline(py, deadline);
            }
        }
        self.perform(py, fx);
        Ok(report.into_any())
    }

    fn watch_deadline(self: &Arc<Self>, py: Python<'_>, deadline: f64) {
        let core = self.clone();
        self.manager
            .at_deadline(py, deadline, Box::new(move |py| core.drain_deadline(py)));
    }

    /// The drain's deadline passed: cancel what has not started, report now.
    fn drain_deadline(self: &Arc<Self>, py: Python<'_>) {
        let due = lock(&self.state).engine.drain_due(monotonic());
        let Some(batches) = due else { return };
        let (cancelled, killed) = self.cancel_batches(py, batches);
        if let Some(drain) = lock(&self.state).drain.as_mut() {
            drain.counted.cancelled += cancelled;
            drain.counted.killed += killed;
        }
        self.settle_drain(py, Ok(()));
    }

    /// The `stop()` the drain began is over: back to idle (unless a plain `stop()`
    /// awaiting the same batches already did it).
    fn finish_once(&self, py: Python<'_>) -> PyResult<Step> {
        if lock(&self.state).bridge.is_none() {
            return Ok(Step::Done(py.None()));
        }
        self.finish_stop(py)
    }

    /// Settles every awaiter of the drain in progress (once).
    fn settle_drain(&self, py: Python<'_>, result: PyResult<()>) {
        let (drain, timed_out) = {
            let mut state = lock(&self.state);
            let Some(drain) = state.drain.take() else {
                return;
            };
            (drain, state.engine.end_drain().unwrap_or(false))
        };
        let delivered = self.delivered.load(Ordering::Relaxed);
        let report = DrainReport {
            finished: delivered.saturating_sub(drain.delivered_before),
            timed_out,
            ..drain.counted
        };
        let outcome = result.and_then(|()| PyDrainReport::new_py(py, report));
        for waiter in drain.waiters {
            let outcome = match &outcome {
                Ok(value) => Outcome::Value(value.clone_ref(py)),
                Err(err) => Outcome::Error(err.clone_ref(py)),
            };
            PyLeaseFuture::settle(&waiter, py, outcome);
        }
    }
}
