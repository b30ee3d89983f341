//! The WorkGrinder's counters and histograms, recorded by its state machine
//! ([`crate::grinder::Grinder`]) under the lock it already runs under: plain integers,
//! like [`super::LeaseMetrics`].
//!
//! Where each number comes from:
//!
//! * `items_submitted`: an item accepted (at once, or a parked one admitted later; a
//!   parked item that `stop(cancel_pending=True)` hands back was never accepted and is
//!   not counted anywhere).
//! * `batches_dispatched` and `batch_size`: a batch formed (the engine's
//!   `Effects::dispatch`), with every item it took.
//! * `batches_completed` and `batch_latency`: a batch's end reported by the front end
//!   (`Grinder::finish_batch`), timed from when it was formed.
//! * The item outcomes: items that never reached a batch (withdrawn, or cancelled
//!   pending by `stop(cancel_pending=True)`) and items of a batch cancelled before it
//!   leased (`Grinder::start_batch`) are counted by the engine itself; what became of
//!   the items a batch ran only the front end sees (its workers), and it hands the
//!   totals over with the batch's end ([`BatchOutcomes`]). So an item's outcome shows
//!   when its batch ends, and every counter moves under the one lock: a snapshot is
//!   consistent (`items_submitted` = `pending` + items of batches in flight +
//!   finished + failed + cancelled).

use super::{seconds_to_ns, Histogram, HistogramSnapshot, COUNT_BOUNDS, DURATION_BOUNDS_NS};

/// What became of the items of one batch, counted by the front end while its items
/// ran and handed over when the batch ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchOutcomes {
    /// Items whose call returned.
    pub finished: u64,
    /// Items whose call raised, or was lost (its worker process died under it).
    pub failed: u64,
    /// Items cancelled or withdrawn before they ran, or refused after acceptance (no
    /// lease for their batch, or a pool that could not take them).
    pub cancelled: u64,
}

impl BatchOutcomes {
    /// `count` items that never ran.
    #[must_use]
    pub fn cancelled(count: u64) -> Self {
        Self {
            cancelled: count,
            ..Self::default()
        }
    }
}

/// The grinder's counters (all monotonic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[allow(missing_docs)] // see the module docs and docs/observability.md
pub struct GrinderCounts {
    pub items_submitted: u64,
    pub items_finished: u64,
    pub items_failed: u64,
    pub items_cancelled: u64,
    pub batches_dispatched: u64,
    pub batches_completed: u64,
}

/// The recorder: counters, items per batch, and batch latency.
#[derive(Debug, Clone)]
pub struct GrinderMetrics {
    counts: GrinderCounts,
    batch_size: Histogram,
    batch_latency: Histogram,
}

/// A copy of [`GrinderMetrics`] with the grinder's gauges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrinderMetricsSnapshot {
    /// Items accepted and not yet in a batch.
    pub pending: u64,
    /// Batches formed and not finished.
    pub batches_in_flight: u64,
    /// The counters.
    pub counts: GrinderCounts,
    /// Items per formed batch ([`COUNT_BOUNDS`]).
    pub batch_size: HistogramSnapshot,
    /// From a batch's formation until the front end reported its end, nanoseconds
    /// ([`DURATION_BOUNDS_NS`]).
    pub batch_latency: HistogramSnapshot,
}

impl Default for GrinderMetrics {
    fn default() -> Self {
        Self {
            counts: GrinderCounts::default(),
            batch_size: Histogram::new(COUNT_BOUNDS),
            batch_latency: Histogram::new(DURATION_BOUNDS_NS),
        }
    }
}

impl GrinderMetrics {
    /// An item was accepted.
    pub(crate) fn submitted(&mut self) {
        self.counts.items_submitted += 1;
    }

    /// A batch of `size` items was formed.
    pub(crate) fn dispatched(&mut self, size: usize) {
        self.counts.batches_dispatched += 1;
        self.batch_size.record(size as u64);
    }

    /// Items ended (see [`BatchOutcomes`]).
    pub(crate) fn items(&mut self, outcomes: BatchOutcomes) {
        self.counts.items_finished += outcomes.finished;
        self.counts.items_failed += outcomes.failed;
        self.counts.items_cancelled += outcomes.cancelled;
    }

    /// A batch ended `seconds` after it was formed.
    pub(crate) fn completed(&mut self, seconds: f64) {
        self.counts.batches_completed += 1;
        self.batch_latency.record(seconds_to_ns(seconds));
    }

    /// The counters.
    #[must_use]
    pub fn counts(&self) -> GrinderCounts {
        self.counts
    }

    /// A copy of everything recorded, with the gauges the grinder reads now.
    #[must_use]
    pub fn snapshot(&self, pending: usize, batches_in_flight: usize) -> GrinderMetricsSnapshot {
        GrinderMetricsSnapshot {
            pending: pending as u64,
            batches_in_flight: batches_in_flight as u64,
            counts: self.counts,
            batch_size: self.batch_size.snapshot(),
            batch_latency: self.batch_latency.snapshot(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_counts_and_histograms() {
        let mut m = GrinderMetrics::default();
        for _ in 0..7 {
            m.submitted();
        }
        m.dispatched(5);
        m.dispatched(2);
        m.items(BatchOutcomes {
            finished: 3,
            failed: 1,
            cancelled: 1,
        });
        m.items(BatchOutcomes::cancelled(2));
        m.completed(0.003);
        let snap = m.snapshot(0, 1);
        assert_eq!(
            snap.counts,
            GrinderCounts {
                items_submitted: 7,
                items_finished: 3,
                items_failed: 1,
                items_cancelled: 3,
                batches_dispatched: 2,
                batches_completed: 1,
            }
        );
        assert_eq!((snap.pending, snap.batches_in_flight), (0, 1));
        assert_eq!(snap.batch_size.bounds, COUNT_BOUNDS);
        // 5 is <= 8 (index 3), 2 is <= 2 (index 1).
        assert_eq!(snap.batch_size.counts[3], 1);
        assert_eq!(snap.batch_size.counts[1], 1);
        assert_eq!((snap.batch_size.count(), snap.batch_size.sum), (2, 7));
        assert_eq!(snap.batch_latency.bounds, DURATION_BOUNDS_NS);
        assert_eq!(snap.batch_latency.count(), 1);
        assert_eq!(snap.batch_latency.sum, 3_000_000);
        // 3 ms is <= 5 ms (index 11).
        assert_eq!(snap.batch_latency.counts[11], 1);
    }

    #[test]
    fn a_clock_that_went_backwards_times_a_batch_as_zero() {
        let mut m = GrinderMetrics::default();
        m.completed(-1.0);
        let snap = m.snapshot(0, 0);
        assert_eq!(snap.batch_latency.counts[0], 1);
        assert_eq!(snap.batch_latency.sum, 0);
    }

    #[test]
    fn an_empty_recorder_has_empty_histograms() {
        let snap = GrinderMetrics::default().snapshot(3, 0);
        assert_eq!(snap.pending, 3);
        assert_eq!(snap.counts, GrinderCounts::default());
        assert_eq!(snap.batch_size.counts.len(), COUNT_BOUNDS.len() + 1);
        assert_eq!(
            snap.batch_latency.counts.len(),
            DURATION_BOUNDS_NS.len() + 1
        );
        assert_eq!(snap.batch_size.count() + snap.batch_latency.count(), 0);
    }
}
