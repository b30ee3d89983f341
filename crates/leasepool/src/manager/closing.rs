//! Graceful drain of the [`Manager`] (see [`crate::graceful`]): from
//! [`begin_drain`](Manager::begin_drain) on, nothing is granted and every queued
//! waiter is refused; leases already held keep working. The drain ends either when
//! nothing is leased any more ([`drain_quiet`](Manager::drain_quiet)) or at its
//! deadline ([`drain_due`](Manager::drain_due), which names the pools still running
//! work so the front end can cancel and stop it); exactly one of the two fires. The
//! front end then stops the manager with [`stop`](Manager::stop), which counts the
//! leases it revokes, and collects the tally with [`end_drain`](Manager::end_drain).

use super::{Effects, Manager, Waiter};
use crate::graceful::DrainReport;

/// A drain in progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Closing {
    deadline: f64,
    waiters_failed: u64,
    leases_revoked: u64,
    /// [`Manager::drain_quiet`] or [`Manager::drain_due`] fired.
    decided: bool,
    timed_out: bool,
}

/// The outcome of [`Manager::begin_drain`].
#[derive(Debug)]
pub enum DrainBegun<P> {
    /// The manager is not running: there is nothing to drain.
    NotRunning,
    /// A drain was already in progress; it now ends no later than this deadline.
    Joined {
        /// The deadline of the drain in progress (the earlier of the two).
        deadline: f64,
    },
    /// This call began the drain. The waiters it refused are in
    /// [`Effects::refused`]; fail them with the front end's "draining" error.
    Started {
        /// The pools that may run calls (leased or shared by call slots): the only
        /// pools that can run anything until the drain ends.
        pools: Vec<P>,
    },
}

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Begins a drain that must be over by `deadline` (monotonic seconds). Refuses
    /// every queued waiter; every later request fails with
    /// [`LeaseError::Draining`](crate::LeaseError::Draining). A second call joins the
    /// drain in progress, which then ends by the earlier deadline.
    pub fn begin_drain(&mut self, deadline: f64, effects: &mut Effects<P, M, W>) -> DrainBegun<P> {
        if !self.running {
            return DrainBegun::NotRunning;
        }
        if let Some(closing) = &mut self.closing {
            closing.deadline = closing.deadline.min(deadline);
            return DrainBegun::Joined {
                deadline: closing.deadline,
            };
        }
        let waiters_failed = self.refuse_waiters(effects) as u64;
        self.closing = Some(Closing {
            deadline,
            waiters_failed,
            leases_revoked: 0,
            decided: false,
            timed_out: false,
        });
        DrainBegun::Started {
            pools: self.pools_in_use(),
        }
    }

    /// Whether a drain is in progress (begun and not yet collected by `end_drain`).
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.closing.is_some()
    }

    /// The deadline of the drain in progress, while it is still undecided (for the
    /// front end's clock).
    #[must_use]
    pub fn drain_deadline(&self) -> Option<f64> {
        self.closing
            .filter(|closing| !closing.decided)
            .map(|closing| closing.deadline)
    }

    /// `true` once, when a drain is in progress and nothing is leased any more (every
    /// lease released and its calls finished, every call slot ended) before the
    /// deadline passed: stop the manager now.
    pub fn drain_quiet(&mut self) -> bool {
        let quiet = self.leased.is_empty() && self.slots.is_empty();
        match &mut self.closing {
            Some(closing) if !closing.decided && quiet => {
                closing.decided = true;
                true
            }
            _ => false,
        }
    }

    /// Once, when the deadline of the drain in progress has passed at `now` and
    /// something is still leased: the pools that may still run calls. The front end
    /// cancels their queued calls, terminates (or abandons) the running ones, and
    /// stops the manager.
    pub fn drain_due(&mut self, now: f64) -> Option<Vec<P>> {
        let closing = self.closing.as_mut()?;
        if closing.decided || now < closing.deadline {
            return None;
        }
        closing.decided = true;
        closing.timed_out = true;
        Some(self.pools_in_use())
    }

    /// After the drain's [`stop`](Self::stop): what the engine counted (waiters
    /// failed, leases revoked, whether the deadline passed). The front end adds the
    /// calls its pools counted. `None` if no drain was in progress.
    pub fn end_drain(&mut self) -> Option<DrainReport> {
        let closing = self.closing.take()?;
        Some(DrainReport {
            waiters_failed: closing.waiters_failed,
            leases_revoked: closing.leases_revoked,
            timed_out: closing.timed_out,
            ..DrainReport::default()
        })
    }

    /// Called by `stop` before it revokes everything: counts the leases it revokes
    /// for the drain in progress, and ends the drain's wait (the stop decides it).
    pub(super) fn note_stop_for_drain(&mut self) {
        let held = (self.leased.len() + self.slots.len()) as u64;
        if let Some(closing) = &mut self.closing {
            closing.leases_revoked += held;
            closing.decided = true;
        }
    }

    fn pools_in_use(&self) -> Vec<P> {
        let mut leased: Vec<_> = self.leased.iter().collect();
        // In grant order.
        leased.sort_unstable_by_key(|(key, _)| **key);
        leased
            .into_iter()
            .map(|(_, held)| held.pool.clone())
            .chain(self.shared.pools().cloned())
            .collect()
    }
}
