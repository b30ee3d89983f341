//! Graceful drain: the report a drain hands back, and [`RunningCalls`], the one atomic
//! word per thread pool that decides, exactly once per call, whether the call counts as
//! *finished* or as *abandoned* at the drain's deadline.
//!
//! The manager's part of a drain (stop granting, refuse the waiters, notice when
//! nothing is leased any more, say when the deadline has passed and which pools still
//! run work, count the leases the final stop revokes) is in `manager/closing.rs`; the
//! WorkGrinder's is in `grinder/closing.rs`. A front end performs the effects: it
//! cancels queued calls and terminates or abandons running ones in the pools the
//! engine names, then stops the manager as `stop()` does.
//!
//! # Counting a call exactly once
//!
//! A call that a worker thread runs at the deadline cannot be killed (threads cannot
//! be interrupted): it is *abandoned*, the report counts it as `killed`, and it keeps
//! running in the background. It must then not also count as `finished` when it ends
//! later. [`RunningCalls`] keeps "calls running" and "abandoned" in one word, like
//! [`crate::CallTracker`]: `abandon` (one `fetch_or`) reads how many run at that
//! instant, and each `end` (one `fetch_sub`) sees whether it was counted there. A
//! worker that dequeued a call just before the deadline and starts it just after is
//! refused by [`RunningCalls::start`] and cancels the call instead.

use crate::sync::{AtomicU64, Ordering};

const ABANDONED: u64 = 1;
const ONE_CALL: u64 = 2;

/// What a graceful drain did. Every call of the manager is counted at most once, in
/// the first of `finished`, `cancelled` or `killed` that applies to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Calls that ran to completion (returned or raised) while the drain was in
    /// progress.
    pub finished: u64,
    /// Calls still queued (not started) at the deadline, cancelled.
    pub cancelled: u64,
    /// Calls still running at the deadline: their worker process was terminated (then
    /// killed), or, where a call cannot be stopped (a thread, a sub-interpreter), the
    /// call was abandoned to finish in the background with nobody awaiting it.
    pub killed: u64,
    /// Queued waiters (acquires, one-call runs, WorkGrinder batches) failed when the
    /// drain began.
    pub waiters_failed: u64,
    /// Leases (pool leases and call slots) still held when the manager stopped.
    pub leases_revoked: u64,
    /// The deadline passed before everything had finished.
    pub timed_out: bool,
}

impl DrainReport {
    /// Adds the counts of `other` (a pool's, a batch's) to these.
    pub fn absorb(&mut self, other: &Self) {
        self.finished += other.finished;
        self.cancelled += other.cancelled;
        self.killed += other.killed;
        self.waiters_failed += other.waiters_failed;
        self.leases_revoked += other.leases_revoked;
        self.timed_out |= other.timed_out;
    }
}

/// The deadline of a drain that starts at `now` and may last `timeout` seconds
/// (`timeout` already checked finite and non-negative by the front end).
#[must_use]
pub fn deadline(now: f64, timeout: f64) -> f64 {
    now + timeout.max(0.0)
}

/// Calls running on one pool's worker threads, whether the pool was abandoned at a
/// drain's deadline, and how many calls it finished (see the module docs).
#[derive(Debug, Default)]
pub struct RunningCalls {
    /// Bit 0: abandoned; the rest: calls running.
    state: AtomicU64,
    finished: AtomicU64,
    refused: AtomicU64,
}

impl RunningCalls {
    /// Nothing running, not abandoned.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A worker is about to run a call. `false` if the pool was abandoned: the worker
    /// must cancel the call instead (it is counted in [`refused`](Self::refused)).
    #[must_use]
    pub fn start(&self) -> bool {
        let before = self.state.fetch_add(ONE_CALL, Ordering::AcqRel);
        if before & ABANDONED == 0 {
            return true;
        }
        self.state.fetch_sub(ONE_CALL, Ordering::AcqRel);
        self.refused.fetch_add(1, Ordering::Relaxed);
        false
    }

    /// The call [`start`](Self::start) admitted has returned or raised. It counts as
    /// finished unless [`abandon`](Self::abandon) already counted it.
    pub fn end(&self) {
        let before = self.state.fetch_sub(ONE_CALL, Ordering::AcqRel);
        debug_assert!(before >= ONE_CALL, "end() without start()");
        if before & ABANDONED == 0 {
            self.finished.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The drain's deadline passed: from now on no call starts, and the calls running
    /// now are abandoned. Returns how many run (0 if it was abandoned before).
    pub fn abandon(&self) -> u64 {
        let before = self.state.fetch_or(ABANDONED, Ordering::AcqRel);
        if before & ABANDONED != 0 {
            return 0;
        }
        before >> 1
    }

    /// Whether [`abandon`](Self::abandon) was called.
    #[must_use]
    pub fn is_abandoned(&self) -> bool {
        self.state.load(Ordering::Acquire) & ABANDONED != 0
    }

    /// Calls running now.
    #[must_use]
    pub fn running(&self) -> u64 {
        self.state.load(Ordering::Acquire) >> 1
    }

    /// Calls that ended and were not abandoned, over the pool's life.
    #[must_use]
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Calls refused by [`start`](Self::start) after the pool was abandoned.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_call_that_ends_before_the_deadline_is_finished() {
        let calls = RunningCalls::new();
        assert!(calls.start());
        calls.end();
        assert_eq!(calls.abandon(), 0);
        assert_eq!((calls.finished(), calls.refused()), (1, 0));
    }

    #[test]
    fn a_call_running_at_the_deadline_is_abandoned_not_finished() {
        let calls = RunningCalls::new();
        assert!(calls.start());
        assert!(calls.start());
        calls.end();
        assert_eq!(calls.abandon(), 1, "one call runs at the deadline");
        assert!(calls.is_abandoned());
        calls.end(); // the abandoned call ends later
        assert_eq!(
            calls.finished(),
            1,
            "the abandoned call is not also finished"
        );
        assert_eq!(calls.running(), 0);
    }

    #[test]
    fn nothing_starts_after_the_deadline() {
        let calls = RunningCalls::new();
        assert_eq!(calls.abandon(), 0);
        assert!(!calls.start());
        assert_eq!((calls.running(), calls.refused()), (0, 1));
    }

    #[test]
    fn abandoning_twice_counts_once() {
        let calls = RunningCalls::new();
        assert!(calls.start());
        assert_eq!(calls.abandon(), 1);
        assert_eq!(calls.abandon(), 0);
    }

    #[test]
    fn reports_add_up() {
        let mut total = DrainReport {
            waiters_failed: 2,
            ..DrainReport::default()
        };
        total.absorb(&DrainReport {
            finished: 3,
            cancelled: 1,
            killed: 1,
            timed_out: true,
            ..DrainReport::default()
        });
        assert_eq!(
            total,
            DrainReport {
                finished: 3,
                cancelled: 1,
                killed: 1,
                waiters_failed: 2,
                leases_revoked: 0,
                timed_out: true,
            }
        );
        assert_eq!(deadline(10.0, -1.0), 10.0);
        assert_eq!(deadline(10.0, 2.5), 12.5);
    }
}
