//! Fixed-bucket histograms: the same log-spaced bounds for the life of the process, so
//! snapshots from different moments subtract, and recording is a bounded search plus
//! two additions.
//!
//! [`Histogram`] is plain data for state already behind a lock (the manager's lease
//! events: recording costs no atomic instruction); [`AtomicHistogram`] is for threads
//! that share nothing else (workers recording their calls): relaxed atomics, no lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Duration bounds in nanoseconds: 1, 2.5, 5 per decade from 1 µs to 1,000 s.
pub const DURATION_BOUNDS_NS: &[u64] = &[
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    25_000_000_000,
    50_000_000_000,
    100_000_000_000,
    250_000_000_000,
    500_000_000_000,
    1_000_000_000_000,
];

/// Count bounds (batch sizes): powers of two from 1 to 4,096.
pub const COUNT_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048, 4_096];

/// The bucket of `value`: the first bound `>= value` (Prometheus's `le`), or the
/// overflow bucket past the last bound.
fn bucket_of(bounds: &[u64], value: u64) -> usize {
    bounds.partition_point(|&bound| bound < value)
}

/// Seconds as whole nanoseconds for a duration histogram; negative or NaN (a clock
/// that moved backwards under a test's skew) counts as zero, huge values saturate.
#[must_use]
pub fn seconds_to_ns(seconds: f64) -> u64 {
    if seconds.is_nan() || seconds <= 0.0 {
        return 0;
    }
    // Saturating: `as` clamps finite and infinite values above u64::MAX.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ns = (seconds * 1e9) as u64;
    ns
}

/// What a histogram held at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Upper bounds of the buckets (inclusive), ascending; the unit is the
    /// histogram's (nanoseconds or items).
    pub bounds: &'static [u64],
    /// Per bucket (not cumulative); one more entry than `bounds`: the last counts
    /// values above every bound.
    pub counts: Vec<u64>,
    /// Sum of every value recorded (wrapping only past `u64::MAX`).
    pub sum: u64,
}

impl HistogramSnapshot {
    /// How many values were recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// A histogram owned by state behind a lock.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: &'static [u64],
    counts: Box<[u64]>,
    sum: u64,
}

impl Histogram {
    /// Empty, with these bounds (ascending).
    #[must_use]
    pub fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: vec![0; bounds.len() + 1].into_boxed_slice(),
            sum: 0,
        }
    }

    /// Records one value.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_of(self.bounds, value)] += 1;
        self.sum = self.sum.wrapping_add(value);
    }

    /// A copy of the counts.
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self.counts.to_vec(),
            sum: self.sum,
        }
    }
}

/// A histogram recorded into from many threads without a lock.
#[derive(Debug)]
pub struct AtomicHistogram {
    bounds: &'static [u64],
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl AtomicHistogram {
    /// Empty, with these bounds (ascending).
    #[must_use]
    pub fn new(bounds: &'static [u64]) -> Self {
        Self {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one value. Relaxed: a count is a statistic, not a synchronisation.
    pub fn record(&self, value: u64) {
        self.counts[bucket_of(self.bounds, value)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// The counts now (each read atomically; a value recorded meanwhile may show in
    /// its bucket and not yet in the sum, or the reverse).
    #[must_use]
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            bounds: self.bounds,
            counts: self
                .counts
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_le_buckets() {
        let mut h = Histogram::new(COUNT_BOUNDS);
        for value in [0, 1, 2, 3, 4, 4_096, 4_097, u64::MAX] {
            h.record(value);
        }
        let snap = h.snapshot();
        assert_eq!(snap.counts.len(), COUNT_BOUNDS.len() + 1);
        assert_eq!(snap.counts[0], 2, "0 and 1 are <= 1");
        assert_eq!(snap.counts[1], 1, "2");
        assert_eq!(snap.counts[2], 2, "3 and 4 are <= 4");
        assert_eq!(snap.counts[12], 1, "4096 is <= 4096");
        assert_eq!(snap.counts[13], 2, "above every bound");
        assert_eq!(snap.count(), 8);
    }

    #[test]
    fn atomic_and_plain_agree() {
        let mut plain = Histogram::new(DURATION_BOUNDS_NS);
        let shared = AtomicHistogram::new(DURATION_BOUNDS_NS);
        for ns in [0, 999, 1_000, 1_001, 7_500_000, 2_000_000_000_000] {
            plain.record(ns);
            shared.record(ns);
        }
        assert_eq!(plain.snapshot(), shared.snapshot());
        assert_eq!(shared.snapshot().counts[0], 3);
        assert_eq!(*shared.snapshot().counts.last().unwrap(), 1);
    }

    #[test]
    fn bounds_ascend() {
        for bounds in [DURATION_BOUNDS_NS, COUNT_BOUNDS] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn seconds_convert_saturating() {
        assert_eq!(seconds_to_ns(1.5), 1_500_000_000);
        assert_eq!(seconds_to_ns(-1.0), 0);
        assert_eq!(seconds_to_ns(f64::NAN), 0);
        assert_eq!(seconds_to_ns(f64::INFINITY), u64::MAX);
    }

    #[test]
    fn concurrent_records_are_all_counted() {
        let shared = std::sync::Arc::new(AtomicHistogram::new(COUNT_BOUNDS));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || (0..10_000).for_each(|i| shared.record(i % 8)))
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let snap = shared.snapshot();
        assert_eq!(snap.count(), 40_000);
        assert_eq!(snap.sum, 4 * (0..10_000u64).map(|i| i % 8).sum::<u64>());
    }
}
