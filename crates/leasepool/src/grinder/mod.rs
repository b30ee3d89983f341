//! The WorkGrinder's decisions: when items leave as a batch, which batches are in
//! flight, who waits for space, what `stop()` cancels or drains and when it is done.
//!
//! [`Grinder`] is a plain state machine like [`crate::manager::Manager`]: the front end
//! holds it under a lock, passes explicit timestamps, and performs the returned
//! [`Effects`] after unlocking (arm the flush timer, lease an executor per batch,
//! acknowledge parked submitters, settle `stop()`). It never sees a lease, a future
//! or a thread. `T` is an item (the front end's job); `A` is the acknowledgement a
//! parked submitter gets back when its item is accepted.
//!
//! Lifecycle: `Idle → Started → Stopping → Idle`. A batch is *in flight* from the
//! moment it is formed until the front end reports it finished, so `stop()` waits for
//! every batch formed before it — even one whose dispatch is still on its way to the
//! event loop.
//!
//! It also keeps the grinder's metrics ([`GrinderMetrics`]), recorded where the
//! decisions are made: an item accepted, a batch formed, a batch's end.

mod batcher;
mod closing;

use std::collections::BTreeMap;

pub use batcher::{Admitted, BatchPolicy, Batcher, Due, Offer};
pub use closing::GrinderDrainBegun;

pub use crate::metrics::BatchOutcomes;
use crate::metrics::{GrinderMetrics, GrinderMetricsSnapshot};

/// Where the grinder is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started, or stopped: submissions are refused.
    Idle,
    /// Taking submissions.
    Started,
    /// `stop()` is in progress: submissions are refused, batches in flight finish.
    Stopping,
}

/// Why a submission was refused (the front end words it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The grinder is not started.
    NotStarted,
    /// `stop()` is in progress.
    Stopping,
    /// `max_outstanding` items are outstanding and the submitter does not wait.
    Full,
}

/// A batch to lease one executor for.
#[derive(Debug, PartialEq)]
pub struct Batch<T> {
    /// Its id, counted from 1 (the front end's log records name it).
    pub id: u64,
    /// Its items, oldest first.
    pub items: Vec<T>,
}

/// What the front end must do after an operation, outside its lock.
#[derive(Debug)]
pub struct Effects<T, A> {
    /// Arm the flush timer for this deadline (no timer is armed now).
    pub arm_timer: Option<f64>,
    /// Lease an executor for each of these batches and run them.
    pub dispatch: Vec<Batch<T>>,
    /// Tell these parked submitters their items were accepted.
    pub accepted: Vec<A>,
    /// The `stop()` in progress is complete: settle whoever awaits it.
    pub stopped: bool,
}

impl<T, A> Default for Effects<T, A> {
    fn default() -> Self {
        Self {
            arm_timer: None,
            dispatch: Vec::new(),
            accepted: Vec::new(),
            stopped: false,
        }
    }
}

impl<T, A> Effects<T, A> {
    /// Nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.arm_timer.is_none()
            && self.dispatch.is_empty()
            && self.accepted.is_empty()
            && !self.stopped
    }
}

/// An accepted (or parked) submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted {
    /// Items pending after it arrived, counting it (what the "Queued work" record
    /// reports: a batch it completed counts as pending).
    pub pending: usize,
    /// It waits for space; its acknowledgement comes back in [`Effects::accepted`].
    pub parked: bool,
}

/// What `stop()` hands back to the front end.
#[derive(Debug)]
pub enum Stopping<T, A> {
    /// The grinder was not started: nothing to stop.
    NotRunning,
    /// `stop(cancel_pending=True)`: cancel these items (pending, then parked with
    /// their acknowledgements) and these batches in flight (oldest first).
    Cancel {
        /// Accepted items that were waiting for a batch.
        pending: Vec<T>,
        /// Submitters that were waiting for space, with their acknowledgements.
        parked: Vec<(T, A)>,
        /// Batches formed and not finished: id and item count.
        batches: Vec<(u64, usize)>,
    },
    /// `stop()` drains: everything pending or parked leaves in one last batch
    /// (in [`Effects::dispatch`]), and the batches in flight finish.
    Drain,
}

/// How a batch starts, once the front end has looked at its items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStart {
    /// Lease an executor and run its live items.
    Run,
    /// No item is left to run: the batch is over.
    Empty,
    /// `stop(cancel_pending=True)` cancelled it before it started: cancel its items.
    Cancelled,
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    /// Its items still wanted.
    size: usize,
    cancelled: bool,
    /// When it was formed (its latency runs from here).
    formed_at: f64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Grinder<T, A> {
    batcher: Batcher<T, A>,
    phase: Phase,
    timer_armed: bool,
    in_flight: BTreeMap<u64, InFlight>,
    last_batch: u64,
    /// A graceful drain in progress (`closing.rs`).
    closing: Option<closing::Closing>,
    metrics: GrinderMetrics,
}

impl<T, A> Grinder<T, A> {
    /// An idle grinder.
    #[must_use]
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            batcher: Batcher::new(policy),
            phase: Phase::Idle,
            timer_armed: false,
            in_flight: BTreeMap::new(),
            last_batch: 0,
            closing: None,
            metrics: GrinderMetrics::default(),
        }
    }

    /// The batching policy.
    #[must_use]
    pub fn policy(&self) -> BatchPolicy {
        self.batcher.policy()
    }

    /// The lifecycle phase.
    #[must_use]
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Items waiting to be batched.
    #[must_use]
    pub fn pending_len(&self) -> usize {
        self.batcher.pending_len()
    }

    /// Submitters waiting for space.
    #[must_use]
    pub fn parked_len(&self) -> usize {
        self.batcher.parked_len()
    }

    /// Items accepted and not finished (counted only under `max_outstanding`).
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.batcher.outstanding()
    }

    /// Batches formed and not finished.
    #[must_use]
    pub fn batches_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// When the oldest pending item arrived.
    #[must_use]
    pub fn oldest_arrival(&self) -> Option<f64> {
        self.batcher.oldest_arrival()
    }

    /// The metrics recorded so far, with the gauges now (`pending`, batches in flight).
    #[must_use]
    pub fn metrics(&self) -> GrinderMetricsSnapshot {
        self.metrics
            .snapshot(self.batcher.pending_len(), self.in_flight.len())
    }

    /// Starts taking submissions. `false` if it was not idle (already started, or
    /// still stopping).
    pub fn start(&mut self) -> bool {
        if self.phase != Phase::Idle {
            return false;
        }
        self.phase = Phase::Started;
        true
    }

    /// Offers `item`, arriving at `now`. With `ack`, a submitter that finds no space
    /// is parked (FIFO) instead of refused. A refused item comes back with its ack.
    ///
    /// # Errors
    /// The refusal, with the item and acknowledgement handed back.
    #[allow(clippy::type_complexity)]
    pub fn submit(
        &mut self,
        item: T,
        ack: Option<A>,
        now: f64,
        fx: &mut Effects<T, A>,
    ) -> Result<Submitted, (T, Option<A>, Refusal)> {
        match self.phase {
            Phase::Started => {}
            Phase::Idle => return Err((item, ack, Refusal::NotStarted)),
            Phase::Stopping => return Err((item, ack, Refusal::Stopping)),
        }
        match self.batcher.offer(item, now) {
            Offer::Full(item) => match ack {
                Some(ack) => {
                    self.batcher.park(item, ack);
                    Ok(Submitted {
                        pending: self.batcher.pending_len(),
                        parked: true,
                    })
                }
                None => Err((item, None, Refusal::Full)),
            },
            offer => {
                let pending = match &offer {
                    Offer::Dispatch(batch) => batch.len(),
                    _ => self.batcher.pending_len(),
                };
                // Accepted at once: an acknowledgement has nothing to wait for.
                fx.accepted.extend(ack);
                self.metrics.submitted();
                self.follow(offer, now, fx);
                Ok(Submitted {
                    pending,
                    parked: false,
                })
            }
        }
    }

    /// The flush timer fired at `now`.
    pub fn timer_fired(&mut self, now: f64, fx: &mut Effects<T, A>) {
        self.timer_armed = false;
        match self.batcher.due(now) {
            Due::Idle => {}
            Due::WaitUntil(deadline) => self.arm(deadline, fx),
            Due::Dispatch(items) => self.form_batch(items, now, fx),
        }
    }

    /// The front end could not arm the timer it was asked for: the next item that
    /// arrives alone asks again.
    pub fn timer_not_armed(&mut self) {
        self.timer_armed = false;
    }

    /// The submitter of the pending item `is_it` picks gave up: it leaves the queue
    /// now and its space admits parked submitters. `None` if it already left in a
    /// batch.
    pub fn withdraw(
        &mut self,
        now: f64,
        is_it: impl FnMut(&T) -> bool,
        fx: &mut Effects<T, A>,
    ) -> Option<T> {
        let (item, admitted) = self.batcher.withdraw(now, is_it)?;
        self.metrics.items(BatchOutcomes::cancelled(1));
        self.admit(admitted, now, fx);
        self.complete_stop_if_idle(fx);
        Some(item)
    }

    /// `count` accepted items finished (ran, failed or were cancelled): their space
    /// admits parked submitters.
    pub fn items_finished(&mut self, count: usize, now: f64, fx: &mut Effects<T, A>) {
        if count == 0 {
            return;
        }
        let admitted = self.batcher.finished(count, now);
        self.admit(admitted, now, fx);
    }

    /// The front end looked at batch `id` before leasing for it: `live` of its `size`
    /// items are still wanted (the others were cancelled: they free their space and
    /// count as cancelled).
    pub fn start_batch(
        &mut self,
        id: u64,
        size: usize,
        live: usize,
        now: f64,
        fx: &mut Effects<T, A>,
    ) -> BatchStart {
        let Some(batch) = self.in_flight.get_mut(&id) else {
            return BatchStart::Cancelled;
        };
        if batch.cancelled {
            // The front end cancels its items; they finish with `finish_batch`.
            return BatchStart::Cancelled;
        }
        batch.size = live.min(size);
        let gone = size - live.min(size);
        self.metrics.items(BatchOutcomes::cancelled(gone as u64));
        self.items_finished(gone, now, fx);
        if live == 0 {
            self.finish_batch(id, BatchOutcomes::default(), now, fx);
            return BatchStart::Empty;
        }
        BatchStart::Run
    }

    /// Batch `id` finished at `now`: its lease is released and every item settled;
    /// `outcomes`: what became of the items the front end ran or cancelled (the ones
    /// [`start_batch`](Self::start_batch) was told were gone are counted already).
    /// Returns whether `stop(cancel_pending=True)` had cancelled it (its end is not
    /// reported as a finished batch then).
    pub fn finish_batch(
        &mut self,
        id: u64,
        outcomes: BatchOutcomes,
        now: f64,
        fx: &mut Effects<T, A>,
    ) -> bool {
        self.metrics.items(outcomes);
        let batch = self.in_flight.remove(&id);
        if let Some(batch) = &batch {
            self.metrics.completed(now - batch.formed_at);
        }
        self.complete_stop_if_idle(fx);
        batch.is_some_and(|batch| batch.cancelled)
    }

    /// Whether `stop(cancel_pending=True)` cancelled batch `id`.
    #[must_use]
    pub fn is_cancelled(&self, id: u64) -> bool {
        self.in_flight.get(&id).is_some_and(|batch| batch.cancelled)
    }

    /// Begins `stop()`. Draining sends everything pending or parked off in one last
    /// batch (parked submitters are acknowledged); cancelling hands it all back, with
    /// the batches in flight, for the front end to cancel. In both cases
    /// [`Effects::stopped`] is set once no batch is in flight.
    pub fn stop(
        &mut self,
        cancel_pending: bool,
        now: f64,
        fx: &mut Effects<T, A>,
    ) -> Stopping<T, A> {
        if self.phase == Phase::Idle {
            return Stopping::NotRunning;
        }
        self.phase = Phase::Stopping;
        let pending = self.batcher.take_pending();
        let parked = self.batcher.take_parked();
        let outcome = if cancel_pending {
            // Pending items were accepted (they held space); parked ones never were.
            self.metrics
                .items(BatchOutcomes::cancelled(pending.len() as u64));
            self.items_finished(pending.len(), now, fx);
            let mut batches = Vec::new();
            for (id, batch) in &mut self.in_flight {
                if !batch.cancelled {
                    batch.cancelled = true;
                    batches.push((*id, batch.size));
                }
            }
            Stopping::Cancel {
                pending,
                parked,
                batches,
            }
        } else {
            let mut last = pending;
            for (item, ack) in parked {
                fx.accepted.push(ack);
                self.metrics.submitted();
                last.push(item);
            }
            if !last.is_empty() {
                self.form_batch(last, now, fx);
            }
            Stopping::Drain
        };
        self.complete_stop_if_idle(fx);
        outcome
    }

    /// The front end finished `stop()` (its awaiters were settled): back to idle, and
    /// a timer still armed on the old event loop no longer counts.
    pub fn stopped(&mut self) {
        self.phase = Phase::Idle;
        self.timer_armed = false;
    }

    /// In a forked child: the parent's items, batches and timer are not this
    /// process's. Hands them back for the front end to leak (their Python objects
    /// belong to the parent) and leaves the grinder idle.
    pub fn forget_after_fork(&mut self) -> (Vec<T>, Vec<(T, A)>) {
        self.phase = Phase::Idle;
        self.timer_armed = false;
        self.in_flight.clear();
        self.closing = None;
        (self.batcher.take_pending(), self.batcher.take_parked())
    }

    fn admit(&mut self, admitted: Vec<Admitted<T, A>>, now: f64, fx: &mut Effects<T, A>) {
        for (offer, ack) in admitted {
            fx.accepted.push(ack);
            self.metrics.submitted();
            self.follow(offer, now, fx);
        }
    }

    fn follow(&mut self, offer: Offer<T>, now: f64, fx: &mut Effects<T, A>) {
        match offer {
            Offer::Queued | Offer::Full(_) => {}
            Offer::ArmTimer(deadline) => self.arm(deadline, fx),
            Offer::Dispatch(items) => self.form_batch(items, now, fx),
        }
    }

    fn arm(&mut self, deadline: f64, fx: &mut Effects<T, A>) {
        if self.timer_armed {
            // The armed timer fires earlier (it was armed for an older item) and
            // re-arms for whatever is then pending.
            return;
        }
        self.timer_armed = true;
        fx.arm_timer = Some(deadline);
    }

    fn form_batch(&mut self, items: Vec<T>, now: f64, fx: &mut Effects<T, A>) {
        self.last_batch += 1;
        let id = self.last_batch;
        let size = items.len();
        self.metrics.dispatched(size);
        self.in_flight.insert(
            id,
            InFlight {
                size,
                cancelled: false,
                formed_at: now,
            },
        );
        fx.dispatch.push(Batch { id, items });
    }

    fn complete_stop_if_idle(&mut self, fx: &mut Effects<T, A>) {
        if self.phase == Phase::Stopping
            && self.in_flight.is_empty()
            && self.batcher.pending_len() == 0
        {
            fx.stopped = true;
        }
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_metrics;
