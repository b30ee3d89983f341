//! How many queued calls travel together in one process-pool task.
//!
//! A `ProcessPoolExecutor` task costs 0.1–0.3 ms of pipes and threads whatever it
//! carries, so tiny calls travel in chunks. But results come back with the whole
//! chunk, so a slow call must travel alone, and a burst must still be spread over
//! every worker. The planner decides from measured durations per callable.

use std::collections::HashMap;
use std::hash::Hash;

/// Most calls in one task.
pub const MAX_CHUNK: usize = 64;
/// A chunk holds about this much measured call time (amortises the per-task cost).
pub const CHUNK_TARGET_SECONDS: f64 = 0.005;
/// Below this much call time a chunk is not split further to spread a burst over the
/// workers (a task costs more than it would parallelise).
pub const CHUNK_MIN_SECONDS: f64 = 0.001;
/// Callables remembered at most; past that the memory starts over (a service calling
/// endless distinct closures must not grow it without bound).
pub const MAX_REMEMBERED: usize = 4096;
/// Weight of the newest measurement in the moving average.
const NEWEST_WEIGHT: f64 = 0.3;

/// Measured call time per callable: an exponential moving average.
///
/// The front end keys callables by identity (the object's address). An address can
/// be reused by another callable once the first is collected; the average then
/// starts from a wrong value and converges within a few calls: only chunk sizes, never
/// outcomes, depend on it.
#[derive(Debug)]
pub struct CallDurations<K> {
    seconds: HashMap<K, f64>,
}

impl<K> Default for CallDurations<K> {
    fn default() -> Self {
        Self {
            seconds: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq> CallDurations<K> {
    /// Records how long one call of `key` ran.
    pub fn record(&mut self, key: K, seconds: f64) {
        if self.seconds.len() >= MAX_REMEMBERED && !self.seconds.contains_key(&key) {
            self.seconds.clear();
        }
        self.seconds
            .entry(key)
            .and_modify(|avg| *avg = (1.0 - NEWEST_WEIGHT) * *avg + NEWEST_WEIGHT * seconds)
            .or_insert(seconds);
    }

    /// The moving average for `key`, if it ever ran.
    #[must_use]
    pub fn get(&self, key: &K) -> Option<f64> {
        self.seconds.get(key).copied()
    }

    /// How many of the queued calls (oldest first, `queued` of them in all) the next
    /// chunk takes when `workers` workers share the queue: about
    /// [`CHUNK_TARGET_SECONDS`] of measured time, at most [`MAX_CHUNK`] calls, and no
    /// more than a fair share of the queue once it holds [`CHUNK_MIN_SECONDS`]. A call
    /// never measured, or slow, ends the chunk (it travels alone if it is first).
    /// Always at least 1.
    pub fn chunk_size(
        &self,
        oldest_first: impl IntoIterator<Item = K>,
        queued: usize,
        workers: usize,
    ) -> usize {
        let share = queued.div_ceil(workers.max(1));
        let mut taken = 0;
        let mut expected = 0.0;
        for key in oldest_first.into_iter().take(MAX_CHUNK) {
            match self.get(&key) {
                Some(seconds) if seconds < CHUNK_TARGET_SECONDS => {
                    taken += 1;
                    expected += seconds;
                    if expected >= CHUNK_TARGET_SECONDS
                        || (taken >= share && expected >= CHUNK_MIN_SECONDS)
                    {
                        break;
                    }
                }
                _ => break,
            }
        }
        taken.max(1)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn planner(known: &[(u8, f64)]) -> CallDurations<u8> {
        let mut d = CallDurations::default();
        for &(key, seconds) in known {
            d.record(key, seconds);
        }
        d
    }

    #[test]
    fn unmeasured_or_slow_calls_travel_alone() {
        let d = planner(&[(1, 0.0001), (2, 0.5)]);
        assert_eq!(d.chunk_size([9, 1, 1], 3, 1), 1, "never measured");
        assert_eq!(d.chunk_size([2, 1, 1], 3, 1), 1, "slow");
        assert_eq!(
            d.chunk_size([1, 1, 2, 1], 4, 1),
            2,
            "stops before the slow one"
        );
    }

    #[test]
    fn tiny_calls_fill_a_chunk_up_to_the_target_or_the_cap() {
        let d = planner(&[(1, 0.0011)]);
        assert_eq!(
            d.chunk_size([1; 100], 100, 1),
            5,
            "5 x 1.1 ms reach the 5 ms target"
        );
        let d = planner(&[(1, 0.000_001)]);
        assert_eq!(d.chunk_size([1; 100], 100, 1), MAX_CHUNK);
    }

    #[test]
    fn a_burst_is_spread_over_the_workers_once_a_chunk_is_worth_it() {
        let d = planner(&[(1, 0.0006)]);
        // 8 queued over 4 workers: a share is 2 calls, and 2 x 0.6 ms pass the 1 ms
        // minimum: chunks of 2, one per worker.
        assert_eq!(d.chunk_size([1; 8], 8, 4), 2);
        // A share of 10 x 0.06 ms is below the minimum: the chunk grows past its
        // share until it is worth a task (17 x 0.06 ms).
        let d = planner(&[(1, 0.000_06)]);
        assert_eq!(d.chunk_size([1; 40], 40, 4), 17);
    }

    #[test]
    fn the_average_follows_new_measurements_and_memory_is_bounded() {
        let mut d = planner(&[(1, 1.0)]);
        d.record(1, 0.0);
        assert!((d.get(&1).unwrap() - 0.7).abs() < 1e-9);
        let mut many = CallDurations::default();
        for key in 0..=MAX_REMEMBERED {
            many.record(key, 0.001);
        }
        assert!(many.seconds.len() <= MAX_REMEMBERED);
        assert_eq!(many.get(&MAX_REMEMBERED), Some(0.001), "the newest is kept");
    }
}
