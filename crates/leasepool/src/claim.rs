//! The claim flag: decides, once, who settles something several threads may race to
//! settle (a queued waiter the manager grants while its caller cancels; a future a
//! worker completes while a timeout fires).
//!
//! `Pending → Claimed → Done`. Exactly one `try_claim` succeeds; only its winner may
//! set the outcome, and it marks the flag `Done` (with `Release` ordering) once the
//! outcome is stored, so a reader that sees `Done` (with `Acquire`) sees the outcome.
//! Lock-free and allocation-free: the manager claims waiters under its own lock, and
//! the Python binding's futures, the tokio front end and the loom models all use this
//! very type.

use crate::sync::{AtomicU8, Ordering};

const PENDING: u8 = 0;
const CLAIMED: u8 = 1;
const DONE: u8 = 2;

/// Where a [`ClaimFlag`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Nobody claimed it yet.
    Pending,
    /// Claimed; the winner is settling it.
    Claimed,
    /// Settled.
    Done,
}

/// See the module docs.
#[derive(Debug)]
pub struct ClaimFlag(AtomicU8);

impl Default for ClaimFlag {
    fn default() -> Self {
        Self::new()
    }
}

impl ClaimFlag {
    /// A pending flag.
    #[must_use]
    pub fn new() -> Self {
        Self(AtomicU8::new(PENDING))
    }

    /// A flag that is already settled (an outcome known at creation).
    #[must_use]
    pub fn done() -> Self {
        Self(AtomicU8::new(DONE))
    }

    /// Claims the right to settle: `true` for exactly one caller, ever.
    pub fn try_claim(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The winner of [`try_claim`](Self::try_claim) stored the outcome.
    pub fn finish(&self) {
        self.0.store(DONE, Ordering::Release);
    }

    /// Where the flag stands now.
    #[must_use]
    pub fn state(&self) -> Claim {
        match self.0.load(Ordering::Acquire) {
            PENDING => Claim::Pending,
            CLAIMED => Claim::Claimed,
            _ => Claim::Done,
        }
    }

    /// Whether nobody claimed it yet.
    #[must_use]
    pub fn is_pending(&self) -> bool {
        self.state() == Claim::Pending
    }

    /// Whether it is settled.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.state() == Claim::Done
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn one_claim_then_done() {
        let flag = ClaimFlag::new();
        assert!(flag.is_pending());
        assert!(flag.try_claim());
        assert!(!flag.try_claim(), "claimed once only");
        assert_eq!(flag.state(), Claim::Claimed);
        flag.finish();
        assert!(flag.is_done());
        assert!(!flag.try_claim());
        assert!(ClaimFlag::done().is_done());
    }
}
