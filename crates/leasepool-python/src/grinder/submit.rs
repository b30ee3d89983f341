//! Items coming in: accepting or parking a submission, withdrawing one whose
//! submitter gave up, counting finished ones, acknowledging parked submitters.

use std::time::Duration;

use leasepool::grinder::{Phase, Refusal};

use super::*;
use crate::logging::DEBUG;
use crate::py_cache::exception_class;

/// Tells a parked `enqueue()` caller its item was accepted. If that caller gave up
/// (cancelled its await) meanwhile, the item's own future is cancelled so the call
/// never runs.
pub(super) fn acknowledge(py: Python<'_>, ack: Ack) {
    if let Some((future, value)) = ack {
        let result = value.clone_ref(py);
        if !PyLeaseFuture::settle(&future, py, Outcome::Value(value)) {
            let bridge = future.get().bridge().clone();
            bridge.resolve(py, result, Outcome::Cancelled(None));
        }
    }
}

impl GrinderCore {
    /// Accepts `item`, or parks it with `ack` (when given and the grinder waits for
    /// space). Returns whether it was parked; hands the item back with the error to
    /// raise if it was refused.
    pub(super) fn submit_item(
        self: &Arc<Self>,
        py: Python<'_>,
        item: Item,
        ack: Option<Ack>,
    ) -> Result<bool, (Item, PyErr)> {
        let id = item.id;
        let owner = item.owner.clone_ref(py);
        // Without waiting for space nobody parks: an ack stays here for an item
        // accepted at once.
        let (parkable, kept) = match ack {
            Some(ack) if !self.settings.wait => (None, Some(ack)),
            ack => (ack, None),
        };
        let submitted = self.drive(py, |state, fx| {
            state.engine.submit(item, parkable, monotonic(), fx)
        });
        match submitted {
            Ok(submitted) => {
                if let Some(ack) = kept {
                    acknowledge(py, ack);
                }
                self.log_queued(py, id, &owner, submitted.pending);
                Ok(submitted.parked)
            }
            Err((item, _, refusal)) => Err((item, self.refusal_error(py, refusal))),
        }
    }

    /// `submit_from_thread()`: submits `item`, blocking this (non-loop) thread while
    /// the grinder is full and waits for space, up to `submit_timeout`.
    pub(super) fn submit_blocking(
        self: &Arc<Self>,
        py: Python<'_>,
        mut item: Item,
    ) -> PyResult<()> {
        let deadline = self.settings.submit_timeout.map(|t| monotonic() + t);
        loop {
            let err = match self.submit_item(py, item, None) {
                Ok(_) => return Ok(()),
                Err((refused, err)) => {
                    item = refused;
                    err
                }
            };
            let full = self.settings.max_pending.is_some()
                && lock(&self.state).engine.phase() == Phase::Started;
            let on_loop = self.bridge().is_none_or(|bridge| bridge.on_loop_thread());
            let remaining = deadline.map(|d| d - monotonic());
            if !full || !self.settings.wait || on_loop || remaining.is_some_and(|r| r <= 0.0) {
                return Err(err);
            }
            // Woken when items finish; re-checks at least every 100 ms regardless.
            let wait = remaining.map_or(0.1, |r| r.clamp(0.0, 0.1));
            py.detach(|| {
                let state = lock(&self.state);
                let _ = self
                    .space
                    .wait_timeout(state, Duration::from_secs_f64(wait));
            });
        }
    }

    fn refusal_error(&self, py: Python<'_>, refusal: Refusal) -> PyErr {
        match refusal {
            Refusal::NotStarted => runtime_error("WorkGrinder is not started"),
            Refusal::Stopping => runtime_error("WorkGrinder is stopping"),
            Refusal::Full => {
                let message = format!(
                    "WorkGrinder queue is full; max_pending={} reached",
                    self.settings.max_pending.unwrap_or(0)
                );
                crate::errors::new_exception(exception_class(py, "LeaseUnavailableError"), message)
            }
        }
    }

    fn log_queued(&self, py: Python<'_>, id: u64, owner: &Py<PyAny>, pending: usize) {
        if self.logger.enabled(py, DEBUG) {
            self.logger.log(
                py,
                DEBUG,
                "Queued work work_id=%s owner=%s pending=%s",
                (format!("{id:032x}"), owner.clone_ref(py), pending),
                None,
            );
        }
    }

    /// The submitter of item `id` cancelled: if it is still pending it leaves the
    /// queue now (as in 0.1.3), and its space goes to a parked submitter.
    pub(super) fn withdraw(self: &Arc<Self>, py: Python<'_>, id: u64) {
        let withdrawn = self.drive(py, |state, fx| {
            let item = state
                .engine
                .withdraw(monotonic(), |item| item.id == id, fx)?;
            Some((item, state.engine.pending_len()))
        });
        let Some((item, pending)) = withdrawn else {
            return;
        };
        if self.logger.enabled(py, DEBUG) {
            self.logger.log(
                py,
                DEBUG,
                "Removed cancelled pending work work_id=%s owner=%s pending=%s",
                (format!("{id:032x}"), item.owner.clone_ref(py), pending),
                None,
            );
        }
        // Settles the item's future as cancelled if it was not already (a
        // `concurrent.futures.Future` cancelled from another thread is).
        item.job.cancel(py);
    }

    /// `count` accepted items finished (ran, failed or were cancelled).
    pub(super) fn items_finished(self: &Arc<Self>, py: Python<'_>, count: usize) {
        // Without `max_pending` nothing waits for space: spare the lock per item.
        if self.settings.max_pending.is_none() {
            return;
        }
        self.drive(py, |state, fx| {
            state.engine.items_finished(count, monotonic(), fx);
        });
    }
}
