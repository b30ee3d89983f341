//! Starting on an event loop, stopping (draining or cancelling), `stats()`, and
//! forgetting the parent's state in a forked child.

use leasepool::grinder::{Phase, Stopping};
use pyo3::types::PyDict;

use super::*;
use crate::aio::Step;
use crate::logging::INFO;
use crate::py_cache::get_running_loop;

/// In a forked child a grinder drops its parent-side loop registration and is left
/// stopped (its pending items belong to the parent, so they are leaked, never
/// dropped: their Python objects may be mid-update in a thread that no longer exists).
impl crate::lifecycle::ProcessScoped for GrinderCore {
    fn forget_after_fork(&self) -> bool {
        if let Ok(mut state) = self.state.try_lock() {
            std::mem::forget(state.bridge.take());
            std::mem::forget(state.engine.forget_after_fork());
            std::mem::forget(std::mem::take(&mut state.stop_waiters));
            std::mem::forget(std::mem::take(&mut state.batches));
        }
        true
    }
}

impl GrinderCore {
    pub(super) fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (phase, pending, oldest, policy) = {
            let state = lock(&self.state);
            let engine = &state.engine;
            (
                engine.phase(),
                engine.pending_len(),
                engine.oldest_arrival(),
                engine.policy(),
            )
        };
        let out = PyDict::new(py);
        out.set_item("started", phase != Phase::Idle)?;
        out.set_item("stopping", phase == Phase::Stopping)?;
        out.set_item("pending", pending)?;
        out.set_item("batch_size_threshold", policy.batch_size_threshold)?;
        out.set_item("max_wait_seconds", policy.max_wait_seconds)?;
        out.set_item("lease_seconds", self.settings.lease_seconds)?;
        out.set_item(
            "oldest_wait_seconds",
            oldest.map_or(0.0, |at| (monotonic() - at).max(0.0)),
        )?;
        Ok(out)
    }

    pub(super) fn start_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        if let Some(bridge) = self.bridge() {
            if !bridge.foreign_loop_running(py) {
                return Ok(());
            }
            return Err(runtime_error(
                "WorkGrinder is already started on a different event loop",
            ));
        }
        let event_loop = get_running_loop(py)?.call0()?;
        let bridge = LoopBridge::attach(py, &event_loop)?;
        let policy = {
            let mut state = lock(&self.state);
            state.bridge = Some(bridge);
            state.engine.start();
            state.ever_started = true;
            state.engine.policy()
        };
        self.logger.log(
            py,
            INFO,
            "WorkGrinder started max_wait_seconds=%s batch_size_threshold=%s lease_seconds=%s",
            (
                policy.max_wait_seconds,
                policy.batch_size_threshold,
                self.settings.lease_seconds,
            ),
            None,
        );
        Ok(())
    }

    pub(super) fn stop_now(
        self: &Arc<Self>,
        py: Python<'_>,
        cancel_pending: bool,
    ) -> PyResult<Step> {
        let Some(bridge) = self.bridge() else {
            return Ok(Step::Done(py.None()));
        };
        require_owner_loop(py, &bridge)?;
        let stopped = PyLeaseFuture::pending(py, bridge, None)?;
        let mut fx = Fx::default();
        let stopping = {
            let mut state = lock(&self.state);
            let stopping = state.engine.stop(cancel_pending, monotonic(), &mut fx);
            if !matches!(stopping, Stopping::NotRunning) {
                state.stop_waiters.push(stopped.clone_ref(py));
            }
            stopping
        };
        self.space.notify_all();
        match stopping {
            Stopping::NotRunning => return Ok(Step::Done(py.None())),
            Stopping::Drain => {}
            Stopping::Cancel {
                pending,
                parked,
                batches,
            } => {
                for item in pending {
                    item.job.cancel(py);
                }
                for (item, ack) in parked {
                    if let Some((accepted, _)) = ack {
                        PyLeaseFuture::settle(&accepted, py, Outcome::Cancelled(None));
                    }
                    item.job.cancel(py);
                }
                let _ = self.cancel_batches(py, batches);
            }
        }
        self.perform(py, fx);
        let core = self.clone();
        Ok(Step::Await(
            stopped,
            Some(Box::new(move |py| core.finish_stop(py))),
        ))
    }

    /// The `stop()` awaited its batches: back to idle, off the loop.
    pub(super) fn finish_stop(&self, py: Python<'_>) -> PyResult<Step> {
        let bridge = {
            let mut state = lock(&self.state);
            state.engine.stopped();
            state.bridge.take()
        };
        if let Some(bridge) = bridge {
            bridge.detach(py)?;
        }
        self.logger.log(py, INFO, "WorkGrinder stopped", (), None);
        Ok(Step::Done(py.None()))
    }
}
