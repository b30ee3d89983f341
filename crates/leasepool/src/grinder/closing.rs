//! Graceful drain of the [`Grinder`] (see [`crate::graceful`]): `stop()` that drains
//! (everything pending or parked leaves in one last batch, nothing new is accepted)
//! with a deadline. If batches are still in flight when it passes,
//! [`drain_due`](Grinder::drain_due) cancels them as `stop(cancel_pending=True)`
//! does: the front end withdraws their items that have not started; the ones running
//! are left to finish (a grinder cannot stop a call: drain the manager for that).
//! The drain is complete when [`Effects::stopped`] is set, as for `stop()`.

use super::{Effects, Grinder, Phase, Stopping};

/// A drain in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Closing {
    deadline: f64,
    timed_out: bool,
}

/// The outcome of [`Grinder::begin_drain`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GrinderDrainBegun {
    /// The grinder was not started: nothing to drain.
    NotRunning,
    /// A drain was in progress; it now ends no later than this deadline.
    Joined {
        /// The earlier of the two deadlines.
        deadline: f64,
    },
    /// This call began the drain (joining a plain `stop()` in progress, if any).
    Started,
}

impl<T, A> Grinder<T, A> {
    /// Begins a drain at `now` that must be over by `deadline`. Like
    /// [`stop`](Self::stop) without cancelling: what is pending or parked leaves in one
    /// last batch (in [`Effects::dispatch`]); [`Effects::stopped`] is set once no batch
    /// is in flight (possibly at once).
    pub fn begin_drain(
        &mut self,
        now: f64,
        deadline: f64,
        fx: &mut Effects<T, A>,
    ) -> GrinderDrainBegun {
        if let Some(closing) = &mut self.closing {
            closing.deadline = closing.deadline.min(deadline);
            return GrinderDrainBegun::Joined {
                deadline: closing.deadline,
            };
        }
        if self.phase == Phase::Idle {
            return GrinderDrainBegun::NotRunning;
        }
        self.closing = Some(Closing {
            deadline,
            timed_out: false,
        });
        if self.phase == Phase::Started {
            let drained = self.stop(false, now, fx);
            debug_assert!(matches!(drained, Stopping::Drain));
        } else {
            self.complete_stop_if_idle(fx);
        }
        GrinderDrainBegun::Started
    }

    /// Whether a drain is in progress.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.closing.is_some()
    }

    /// The deadline of the drain in progress, until it passed.
    #[must_use]
    pub fn drain_deadline(&self) -> Option<f64> {
        self.closing
            .filter(|closing| !closing.timed_out)
            .map(|closing| closing.deadline)
    }

    /// Once, when the deadline of the drain in progress has passed at `now`: the
    /// batches still in flight (id and live item count), now marked cancelled. The
    /// front end cancels what has not started of them (as for
    /// `stop(cancel_pending=True)`) and reports the drain as timed out.
    pub fn drain_due(&mut self, now: f64) -> Option<Vec<(u64, usize)>> {
        let closing = self.closing.as_mut()?;
        if closing.timed_out || now < closing.deadline {
            return None;
        }
        closing.timed_out = true;
        let mut batches = Vec::new();
        for (id, batch) in &mut self.in_flight {
            if !batch.cancelled {
                batch.cancelled = true;
                batches.push((*id, batch.size));
            }
        }
        Some(batches)
    }

    /// Collects the drain in progress: whether its deadline passed. `None` if none.
    pub fn end_drain(&mut self) -> Option<bool> {
        self.closing.take().map(|closing| closing.timed_out)
    }
}
