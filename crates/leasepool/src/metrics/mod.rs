//! What the engine counts and times, for operators (see docs/observability.md).
//!
//! Two kinds of recorder, by who records:
//!
//! * [`LeaseMetrics`]: lease events (grants, releases, refusals, expiry, pools made and
//!   retired, acquire wait and hold time, per-owner shares). The state machine records
//!   them itself under the lock it already runs under, so they are plain integers: no
//!   atomic instruction and no extra lock on the hot path.
//! * [`CallMetrics`]: calls (started, finished, failed, cancelled; queue and run time),
//!   recorded by the front end's worker threads, which share nothing else: relaxed
//!   atomics, padded away from each other's cache lines.
//!
//! Both are off unless the front end asks for them; a snapshot is a plain struct the
//! front end translates.
//!
//! [`GrinderMetrics`]: the WorkGrinder's items and batches, recorded by its state
//! machine under its lock (always on: a few additions per item and per batch); the
//! outcomes of a batch's items are counted by the front end and handed over with the
//! batch's end (see `grinder.rs`).

mod grinder;
mod histogram;
mod owners;

pub use grinder::{BatchOutcomes, GrinderCounts, GrinderMetrics, GrinderMetricsSnapshot};

pub use histogram::{
    seconds_to_ns, AtomicHistogram, Histogram, HistogramSnapshot, COUNT_BOUNDS, DURATION_BOUNDS_NS,
};
pub use owners::{OwnerShare, OwnerTable, OwnerTableSnapshot};

use std::sync::atomic::{AtomicU64, Ordering};

use crate::admission::OwnerKey;

/// Why a request was refused (counted in [`LeaseMetrics`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No pool free and the caller would not wait (or its owner is at its limit).
    Unavailable,
    /// `max_waiters` callers already wait.
    QueueFull,
    /// The manager drains or stops (refused, or failed while waiting).
    Draining,
    /// The caller's wait timed out.
    TimedOut,
}

/// Lease events, recorded by the state machine under its lock.
#[derive(Debug, Clone)]
pub struct LeaseMetrics {
    counts: LeaseCounts,
    acquire_wait: Histogram,
    lease_hold: Histogram,
    owners: Option<OwnerTable>,
}

/// The lease counters (all monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // each is what its name says; docs/observability.md defines them
pub struct LeaseCounts {
    pub pools_created: u64,
    pub leases_granted: u64,
    pub leases_released: u64,
    pub leases_overdue: u64,
    /// Revoked at their hard expiry (soft expiry plus grace) only.
    pub leases_revoked: u64,
    /// Still held when the manager stopped (`stop()`, a drain's deadline), ended by
    /// the stop: not the holder's fault, so kept apart from `leases_revoked`.
    pub leases_stopped: u64,
    pub acquire_timeouts: u64,
    pub rejected_unavailable: u64,
    pub rejected_queue_full: u64,
    pub rejected_draining: u64,
}

/// A copy of [`LeaseMetrics`].
#[derive(Debug, Clone)]
pub struct LeaseMetricsSnapshot {
    /// The counters.
    pub counts: LeaseCounts,
    /// Pools retired, revoked or dropped at `stop()`: created minus owned now.
    pub pools_retired: u64,
    /// From request to grant (zero when granted at once), nanoseconds.
    pub acquire_wait: HistogramSnapshot,
    /// From grant to release or revocation, nanoseconds.
    pub lease_hold: HistogramSnapshot,
    /// Per owner, if tracked.
    pub owners: Option<OwnerTableSnapshot>,
}

impl LeaseMetrics {
    /// Empty; `owners`: how many distinct owners to break down (0: none).
    #[must_use]
    pub fn new(owners: usize) -> Self {
        Self {
            counts: LeaseCounts::default(),
            acquire_wait: Histogram::new(DURATION_BOUNDS_NS),
            lease_hold: Histogram::new(DURATION_BOUNDS_NS),
            owners: (owners > 0).then(|| OwnerTable::new(owners)),
        }
    }

    /// Whether owners are broken down (the front end then passes owner keys).
    #[must_use]
    pub fn tracks_owners(&self) -> bool {
        self.owners.is_some()
    }

    /// Names `owner` for the breakdown (the label is made only if the owner is new
    /// and fits under the table's bound).
    pub fn name_owner(&mut self, owner: OwnerKey, label: impl FnOnce() -> String) {
        if let Some(table) = self.owners.as_mut() {
            table.name(owner, label);
        }
    }

    pub(crate) fn pool_created(&mut self) {
        self.counts.pools_created += 1;
    }

    /// Counting starts while the manager owns `pools`: they count as created, so that
    /// `pools_retired` (created minus owned) does not miss the ones retired later.
    pub(crate) fn counting_from(&mut self, pools: usize) {
        self.counts.pools_created = pools as u64;
    }

    pub(crate) fn granted(&mut self, owner: Option<OwnerKey>, waited: f64) {
        self.counts.leases_granted += 1;
        let waited = seconds_to_ns(waited);
        self.acquire_wait.record(waited);
        if let Some(table) = self.owners.as_mut() {
            table.granted(owner, waited);
        }
    }

    /// A lease ended: `revoked` at its hard expiry, else released.
    pub(crate) fn ended(&mut self, owner: Option<OwnerKey>, held: f64, revoked: bool) {
        if revoked {
            self.counts.leases_revoked += 1;
        } else {
            self.counts.leases_released += 1;
        }
        self.record_hold(owner, held);
    }

    /// A lease still held when the manager stopped ended with the stop.
    pub(crate) fn stopped(&mut self, owner: Option<OwnerKey>, held: f64) {
        self.counts.leases_stopped += 1;
        self.record_hold(owner, held);
    }

    fn record_hold(&mut self, owner: Option<OwnerKey>, held: f64) {
        let held = seconds_to_ns(held);
        self.lease_hold.record(held);
        if let Some(table) = self.owners.as_mut() {
            table.ended(owner, held);
        }
    }

    pub(crate) fn overdue(&mut self) {
        self.counts.leases_overdue += 1;
    }

    pub(crate) fn refused(&mut self, owner: Option<OwnerKey>, why: Refusal) {
        let counter = match why {
            Refusal::Unavailable => &mut self.counts.rejected_unavailable,
            Refusal::QueueFull => &mut self.counts.rejected_queue_full,
            Refusal::Draining => &mut self.counts.rejected_draining,
            Refusal::TimedOut => &mut self.counts.acquire_timeouts,
        };
        *counter += 1;
        if let Some(table) = self.owners.as_mut() {
            table.refused(owner);
        }
    }

    /// A copy of everything recorded, given how many pools the manager owns now.
    #[must_use]
    pub fn snapshot(&self, pools_owned: usize) -> LeaseMetricsSnapshot {
        LeaseMetricsSnapshot {
            counts: self.counts,
            pools_retired: self.counts.pools_created.saturating_sub(pools_owned as u64),
            acquire_wait: self.acquire_wait.snapshot(),
            lease_hold: self.lease_hold.snapshot(),
            owners: self.owners.as_ref().map(OwnerTable::snapshot),
        }
    }
}

/// A counter on its own cache line: workers of different pools bump different
/// counters, and must not slow each other down by sharing a line.
#[derive(Debug, Default)]
#[repr(align(128))]
struct PaddedCounter(AtomicU64);

impl PaddedCounter {
    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Call events, recorded by worker threads (and whoever cancels a queued call).
#[derive(Debug)]
pub struct CallMetrics {
    started: PaddedCounter,
    finished: PaddedCounter,
    failed: PaddedCounter,
    cancelled: PaddedCounter,
    crashes: PaddedCounter,
    recycled: PaddedCounter,
    retried: PaddedCounter,
    queue: AtomicHistogram,
    run: AtomicHistogram,
}

/// A copy of [`CallMetrics`].
#[derive(Debug, Clone)]
pub struct CallMetricsSnapshot {
    /// Calls a worker started.
    pub started: u64,
    /// Calls that returned.
    pub finished: u64,
    /// Calls that raised, or whose worker died under them.
    pub failed: u64,
    /// Calls cancelled or withdrawn before they started.
    pub cancelled: u64,
    /// Process (or interpreter) pools found broken because a worker died.
    pub crashes: u64,
    /// Worker processes retired gracefully because their memory passed the limit.
    pub recycled: u64,
    /// Calls run again because the worker process running them died (opted in).
    pub retried: u64,
    /// From submission to start, nanoseconds.
    pub queue: HistogramSnapshot,
    /// From start to end, nanoseconds.
    pub run: HistogramSnapshot,
}

impl Default for CallMetrics {
    fn default() -> Self {
        Self {
            started: PaddedCounter::default(),
            finished: PaddedCounter::default(),
            failed: PaddedCounter::default(),
            cancelled: PaddedCounter::default(),
            crashes: PaddedCounter::default(),
            recycled: PaddedCounter::default(),
            retried: PaddedCounter::default(),
            queue: AtomicHistogram::new(DURATION_BOUNDS_NS),
            run: AtomicHistogram::new(DURATION_BOUNDS_NS),
        }
    }
}

impl CallMetrics {
    /// A worker starts a call that waited `queued` nanoseconds.
    pub fn started(&self, queued_ns: u64) {
        self.started.bump();
        self.queue.record(queued_ns);
    }

    /// A call ran for `ran` nanoseconds; `ok`: it returned (else it raised).
    pub fn ended(&self, ran_ns: u64, ok: bool) {
        if ok {
            self.finished.bump();
        } else {
            self.failed.bump();
        }
        self.run.record(ran_ns);
    }

    /// A call failed without running on a worker the front end can time (its
    /// process died under it).
    pub fn lost(&self) {
        self.failed.bump();
    }

    /// A call was cancelled or withdrawn before it started.
    pub fn cancelled(&self) {
        self.cancelled.bump();
    }

    /// A pool's worker died and broke it (counted once per broken pool).
    pub fn crashed(&self) {
        self.crashes.bump();
    }

    /// A worker process retired over its memory limit (and was replaced).
    pub fn recycled(&self) {
        self.recycled.bump();
    }

    /// A call whose worker died is run again.
    pub fn retried(&self) {
        self.retried.bump();
    }

    /// A copy of everything recorded.
    #[must_use]
    pub fn snapshot(&self) -> CallMetricsSnapshot {
        CallMetricsSnapshot {
            started: self.started.get(),
            finished: self.finished.get(),
            failed: self.failed.get(),
            cancelled: self.cancelled.get(),
            crashes: self.crashes.get(),
            recycled: self.recycled.get(),
            retried: self.retried.get(),
            queue: self.queue.snapshot(),
            run: self.run.snapshot(),
        }
    }
}
