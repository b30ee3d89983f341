//! A batch from lease to last call: leasing an executor for it (`BatchLease`, told
//! by the manager directly), submitting its items, counting them down
//! (`BatchProgress`), cancelling it for `stop(cancel_pending=True)`, and the flush
//! timer.

use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;

use leasepool::claim::ClaimFlag;
use leasepool::grinder::{BatchOutcomes, BatchStart};
use leasepool::waiters::Ticket;

use super::*;
use crate::job::{JobEnd, JobObserver, StartGate, Target};
use crate::logging::{ERROR, INFO};
use crate::manager::LeaseTaker;
use crate::manager::PyExecutorLease;

/// What `stop(cancel_pending=True)` needs of a batch in flight.
pub(super) struct BatchTrack {
    lease: Arc<BatchLease>,
    /// Its items: each gate withdraws the call unless a worker started it, and then
    /// its taker is told it was cancelled.
    targets: Vec<(Arc<StartGate>, Target)>,
}

/// A batch waiting for its lease. The claim flag decides, once, whether the lease
/// (granted on any thread) or `stop(cancel_pending=True)` gets the batch.
pub(super) struct BatchLease {
    core: Arc<GrinderCore>,
    batch_id: u64,
    claim: ClaimFlag,
    jobs: Mutex<Option<Vec<Job>>>,
    /// Its place in the manager's queue, while it waits.
    ticket: OnceLock<Ticket>,
}

impl LeaseTaker for BatchLease {
    fn try_claim(&self) -> bool {
        self.claim.try_claim()
    }

    fn leased(&self, py: Python<'_>, lease: Bound<'_, PyExecutorLease>) {
        self.claim.finish();
        let Some(jobs) = lock(&self.jobs).take() else {
            lease.get().release_now(py);
            return;
        };
        let progress = Arc::new(BatchProgress {
            core: self.core.clone(),
            lease: lease.clone().unbind(),
            batch_id: self.batch_id,
            size: jobs.len(),
            remaining: AtomicUsize::new(jobs.len()),
            failed: AtomicUsize::new(0),
            cancelled: AtomicUsize::new(0),
        });
        let observer: Arc<dyn JobObserver> = progress;
        let jobs: Vec<Job> = jobs
            .into_iter()
            .map(|job| job.observed_by(observer.clone()))
            .collect();
        if let Err((jobs, err)) = lease.get().submit_jobs(py, jobs) {
            for job in jobs {
                job.fail(py, err.clone_ref(py));
            }
        }
    }

    fn refused(&self, py: Python<'_>, err: PyErr) {
        let Some(jobs) = lock(&self.jobs).take() else {
            return;
        };
        self.core.logger.log(
            py,
            ERROR,
            "Batch failed batch_id=%s size=%s",
            (self.batch_id, jobs.len()),
            Some(&err),
        );
        let count = jobs.len();
        for job in jobs {
            job.fail(py, err.clone_ref(py));
        }
        // Refused after acceptance: they never ran.
        let outcomes = BatchOutcomes::cancelled(count as u64);
        self.core.batch_over(py, self.batch_id, count, outcomes);
    }
}

impl BatchLease {
    /// `stop(cancel_pending=True)`: leaves the manager's queue and cancels every item,
    /// unless the lease was granted first (then `false`: cancel the items one by one).
    fn cancel(&self, py: Python<'_>) -> Option<usize> {
        if !self.claim.try_claim() {
            return None;
        }
        if let Some(ticket) = self.ticket.get() {
            self.core.manager.withdraw_waiter(py, *ticket);
        }
        self.claim.finish();
        let jobs = lock(&self.jobs).take().unwrap_or_default();
        let count = jobs.len();
        for job in jobs {
            job.cancel(py);
        }
        let outcomes = BatchOutcomes::cancelled(count as u64);
        self.core.batch_over(py, self.batch_id, count, outcomes);
        Some(count)
    }
}

/// Counts a batch's jobs down; the last one releases the lease.
///
/// It also counts how its items ended, for the grinder's metrics, and the last job
/// hands the totals to the engine with the batch's end (`Grinder::finish_batch`),
/// under the lock that end takes anyway. Counting here rather than in shared
/// atomics of the engine's recorder: no extra lock and no cache line shared by every
/// worker of every batch on the per-item path; a returned item (the common case)
/// costs nothing at all, its count being the batch's size minus the others; and all
/// of the grinder's counters move under one lock, so a snapshot is consistent. The
/// price: an item's outcome shows in the metrics when its batch ends.
struct BatchProgress {
    core: Arc<GrinderCore>,
    lease: Py<PyExecutorLease>,
    batch_id: u64,
    size: usize,
    remaining: AtomicUsize,
    /// Items that raised or were lost (bumped before `remaining`, whose last
    /// decrement acquires them).
    failed: AtomicUsize,
    /// Items that never ran.
    cancelled: AtomicUsize,
}

impl BatchProgress {
    /// What became of the items (once every job is done).
    fn outcomes(&self) -> BatchOutcomes {
        let failed = self.failed.load(Ordering::Relaxed);
        let cancelled = self.cancelled.load(Ordering::Relaxed);
        BatchOutcomes {
            finished: self.size.saturating_sub(failed + cancelled) as u64,
            failed: failed as u64,
            cancelled: cancelled as u64,
        }
    }
}

impl JobObserver for BatchProgress {
    fn job_done(&self, py: Python<'_>, end: JobEnd) {
        match end {
            JobEnd::Returned => {}
            JobEnd::Raised => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            JobEnd::Cancelled | JobEnd::Dropped => {
                self.cancelled.fetch_add(1, Ordering::Relaxed);
            }
        }
        if end.delivered() {
            self.core.delivered.fetch_add(1, Ordering::Relaxed);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            self.core.items_finished(py, 1);
            return;
        }
        // "Cancelled batch" was logged for a batch stop() cancelled (as in 0.1.3).
        if !lock(&self.core.state).engine.is_cancelled(self.batch_id) {
            self.core.logger.log(
                py,
                INFO,
                "Finished batch batch_id=%s size=%s",
                (self.batch_id, self.size),
                None,
            );
        }
        self.lease.get().release_now(py);
        self.core.batch_over(py, self.batch_id, 1, self.outcomes());
    }
}

#[pyclass(module = "leasepool._engine", frozen)]
pub(super) struct FlushTimer {
    pub(super) core: Arc<GrinderCore>,
}

#[pymethods]
impl FlushTimer {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool WorkGrinder timer", || {
            self.core.on_timer(py);
        });
    }
}

impl GrinderCore {
    /// Starts a batch the engine formed (loop thread): drops items cancelled while
    /// they waited, then leases an executor for the rest.
    pub(super) fn dispatch(self: &Arc<Self>, py: Python<'_>, batch: Batch<Item>) {
        let Batch { id, items } = batch;
        let size = items.len();
        let (live, gone): (Vec<Job>, Vec<Job>) = items
            .into_iter()
            .map(|item| item.job)
            .partition(|job| !job.is_cancelled(py));
        drop(gone); // settled already
        let start = self.drive(py, |state, fx| {
            state
                .engine
                .start_batch(id, size, live.len(), monotonic(), fx)
        });
        match start {
            BatchStart::Empty => {}
            BatchStart::Cancelled => {
                for job in live {
                    job.cancel(py);
                }
                // Those cancelled on the way here too: the engine did not count them.
                let outcomes = BatchOutcomes::cancelled(size as u64);
                self.batch_over(py, id, size, outcomes);
            }
            BatchStart::Run => self.lease_batch(py, id, live),
        }
    }

    fn lease_batch(self: &Arc<Self>, py: Python<'_>, batch_id: u64, jobs: Vec<Job>) {
        let jobs: Vec<Job> = jobs
            .into_iter()
            .map(|job| job.gated(Arc::new(StartGate::default())))
            .collect();
        self.logger.log(
            py,
            INFO,
            "Processing batch batch_id=%s size=%s lease_seconds=%s",
            (batch_id, jobs.len(), self.settings.lease_seconds),
            None,
        );
        let targets = jobs
            .iter()
            .filter_map(|job| Some((job.gate()?.clone(), job.target.clone_ref(py))))
            .collect();
        let lease = Arc::new(BatchLease {
            core: self.clone(),
            batch_id,
            claim: ClaimFlag::new(),
            jobs: Mutex::new(Some(jobs)),
            ticket: OnceLock::new(),
        });
        // Tracked before leasing: a lease granted now may finish the batch at once.
        lock(&self.state).batches.insert(
            batch_id,
            BatchTrack {
                lease: lease.clone(),
                targets,
            },
        );
        let owner = format!("{}-batch-{batch_id}", self.settings.owner_prefix);
        let owner = pyo3::types::PyString::new(py, &owner).into_any().unbind();
        let taker: Arc<dyn LeaseTaker> = lease.clone();
        let queued = self
            .manager
            .lease_for(py, self.settings.lease_seconds, owner, taker);
        if let Some(ticket) = queued {
            let _ = lease.ticket.set(ticket);
        }
    }

    /// Batch `batch_id` is over, its last `finished` items just finished; `outcomes`:
    /// what became of its items (for the metrics).
    fn batch_over(
        self: &Arc<Self>,
        py: Python<'_>,
        batch_id: u64,
        finished: usize,
        outcomes: BatchOutcomes,
    ) {
        let now = monotonic();
        let track = self.drive(py, |state, fx| {
            state.engine.items_finished(finished, now, fx);
            state.engine.finish_batch(batch_id, outcomes, now, fx);
            state.batches.remove(&batch_id)
        });
        drop(track); // Python references: dropped outside the lock
    }

    /// `stop(cancel_pending=True)`: every batch still waiting for a lease leaves the
    /// manager's queue with its items cancelled; every item of a leased batch that has
    /// not started is cancelled (a worker skips it). Running items finish. A batch
    /// formed but not dispatched yet is cancelled when its dispatch runs.
    ///
    /// Returns the items cancelled and the items still running (a graceful drain's
    /// report counts them).
    pub(super) fn cancel_batches(
        self: &Arc<Self>,
        py: Python<'_>,
        batches: Vec<(u64, usize)>,
    ) -> (u64, u64) {
        let (mut cancelled, mut running) = (0, 0);
        for (batch_id, size) in batches {
            self.logger.log(
                py,
                INFO,
                "Cancelled batch batch_id=%s size=%s",
                (batch_id, size),
                None,
            );
            let track = lock(&self.state)
                .batches
                .get_mut(&batch_id)
                .map(|track| (track.lease.clone(), std::mem::take(&mut track.targets)));
            let Some((lease, targets)) = track else {
                continue;
            };
            if let Some(count) = lease.cancel(py) {
                cancelled += count as u64;
                continue;
            }
            for (gate, target) in &targets {
                if gate.withdraw() {
                    target.cancel(py);
                    cancelled += 1;
                } else if !target.is_settled(py) {
                    running += 1;
                }
            }
        }
        (cancelled, running)
    }
}
