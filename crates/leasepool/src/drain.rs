//! Counting a lease's calls in flight, so that a released lease hands its pool on
//! only once they have finished (*draining*).
//!
//! Without it, the next holder of a pool would share its workers with calls the
//! previous holder submitted and then walked away from: its first calls would queue
//! behind work it never asked for, and a lease would not bound what runs on its pool.
//!
//! One atomic word per lease: bit 0 says "release requested", the rest counts calls
//! in flight. Submitting is `begin` (one `fetch_add`), finishing is `end` (one
//! `fetch_sub`), so the per-call cost is two uncontended atomics and no lock. The
//! thread whose operation takes the word to "released, nothing in flight" is the one
//! that finishes the drain ([`crate::Manager::finish_drain`]), whether that is the
//! release itself (nothing was running) or the last call to end. A call refused after
//! the drain finished reports it again; `finish_drain` is idempotent (the manager's
//! table of leases, not this word, decides), so that costs one lookup and no CAS loop
//! on the hot path.

use crate::sync::{AtomicU64, Ordering};

const RELEASED: u64 = 1;
const ONE_CALL: u64 = 2;

/// Calls in flight on one lease, and whether its release was requested.
#[derive(Debug, Default)]
pub struct CallTracker {
    state: AtomicU64,
}

/// The outcome of [`CallTracker::begin`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Begin {
    /// The call is counted: call [`CallTracker::end`] exactly once when it finishes.
    Admitted,
    /// The lease was already released; nothing was counted.
    Released {
        /// Nothing is in flight any more: the caller must call
        /// [`crate::Manager::finish_drain`] (a no-op if the drain already finished).
        finished_drain: bool,
    },
}

impl CallTracker {
    /// A tracker with no call in flight and no release requested.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts a call about to be submitted, unless the lease was released.
    pub fn begin(&self) -> Begin {
        self.begin_many(1)
    }

    /// Counts `calls` calls submitted together (each [`end`](Self::end)s on its own).
    pub fn begin_many(&self, calls: u64) -> Begin {
        let delta = calls.saturating_mul(ONE_CALL);
        // AcqRel: the release's `fetch_or` and this add are totally ordered on the
        // word, so either the release sees these calls or they see the release.
        let before = self.state.fetch_add(delta, Ordering::AcqRel);
        if before & RELEASED == 0 {
            return Begin::Admitted;
        }
        let before = self.state.fetch_sub(delta, Ordering::AcqRel);
        Begin::Released {
            finished_drain: before == delta | RELEASED,
        }
    }

    /// Uncounts a call that [`begin`](Self::begin) admitted. Returns `true` if it was
    /// the last call of a released lease: the caller must then finish the drain.
    #[must_use]
    pub fn end(&self) -> bool {
        let before = self.state.fetch_sub(ONE_CALL, Ordering::AcqRel);
        debug_assert!(before >= ONE_CALL, "end() without begin()");
        before == ONE_CALL | RELEASED
    }

    /// Marks the lease released. Returns `true` if no call is in flight (the pool can
    /// be handed on now); otherwise the last [`end`](Self::end) reports the drain.
    /// Called once per lease, by the manager.
    pub(crate) fn release(&self) -> bool {
        let before = self.state.fetch_or(RELEASED, Ordering::AcqRel);
        before >> 1 == 0
    }

    /// Calls in flight now.
    #[must_use]
    pub fn in_flight(&self) -> u64 {
        self.state.load(Ordering::Acquire) >> 1
    }

    /// Whether the release was requested.
    #[must_use]
    pub fn is_released(&self) -> bool {
        self.state.load(Ordering::Acquire) & RELEASED != 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn release_with_nothing_in_flight_is_idle() {
        let calls = CallTracker::new();
        assert!(calls.release());
        assert!(calls.is_released());
    }

    #[test]
    fn last_call_of_a_released_lease_finishes_the_drain() {
        let calls = CallTracker::new();
        assert_eq!(calls.begin(), Begin::Admitted);
        assert_eq!(calls.begin(), Begin::Admitted);
        assert!(!calls.release());
        assert_eq!(calls.in_flight(), 2);
        assert!(!calls.end());
        assert!(calls.end());
        assert_eq!(calls.in_flight(), 0);
    }

    #[test]
    fn a_call_after_release_is_refused_and_uncounted() {
        let calls = CallTracker::new();
        assert!(calls.release());
        // Refused and uncounted; it reports "nothing in flight" again, which the
        // manager's idempotent finish_drain absorbs.
        assert_eq!(
            calls.begin(),
            Begin::Released {
                finished_drain: true
            }
        );
        assert_eq!(calls.in_flight(), 0);
    }

    #[test]
    fn ending_without_release_never_reports_a_drain() {
        let calls = CallTracker::new();
        assert_eq!(calls.begin(), Begin::Admitted);
        assert!(!calls.end());
    }
}
