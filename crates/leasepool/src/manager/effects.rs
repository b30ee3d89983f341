//! What the [`Manager`](super::Manager) hands back: grants, log events and the
//! effects its caller performs after releasing the lock.

use crate::drain::CallTracker;
use crate::lease::{LeaseId, LeaseKey, LeaseTiming};
use crate::slots::SlotGrant;
use crate::sync::{Arc, AtomicBool};
use crate::waiters::Ticket;

/// A queued caller, as the manager sees it.
pub trait Waiter {
    /// Atomically claims the waiter for a grant. Returns `false` if it was cancelled
    /// (or timed out) first; such a waiter is dropped without receiving a pool.
    fn try_claim(&self) -> bool;
}

/// A lease just granted: everything a front end needs to use it without the lock.
#[derive(Debug, Clone)]
pub struct Grant<P> {
    /// Engine key of the lease.
    pub key: LeaseKey,
    /// Public id (shown as 32 hex digits).
    pub id: LeaseId,
    /// When it was granted and when it expires.
    pub timing: LeaseTiming,
    /// The leased pool.
    pub pool: P,
    /// The lease's shared cells; `None` from a manager that hands out bare leases
    /// (see [`Manager::lease_cells`](super::Manager::lease_cells)).
    pub cells: Option<LeaseCells>,
}

impl<P> Grant<P> {
    /// Whether the lease is still live, by its cell; `None` for a bare lease (ask
    /// [`Manager::holds`](super::Manager::holds)).
    #[must_use]
    pub fn is_live(&self) -> Option<bool> {
        use crate::sync::Ordering;
        self.cells
            .as_ref()
            .map(|cells| cells.live.load(Ordering::Acquire))
    }

    /// The lease's counter of calls in flight; `None` for a bare lease.
    #[must_use]
    pub fn calls(&self) -> Option<&CallTracker> {
        self.cells.as_ref().map(|cells| &*cells.calls)
    }
}

/// What a lease shares with its holder, lock-free: whether it is still live, and
/// its calls in flight.
#[derive(Debug, Clone)]
pub struct LeaseCells {
    /// Cleared (with `Release` ordering) the moment the lease is released or revoked.
    pub live: Arc<AtomicBool>,
    /// Counts the lease's calls in flight (see the module docs, "Draining").
    pub calls: std::sync::Arc<CallTracker>,
}

impl LeaseCells {
    /// Cells of a new lease: live, no call in flight.
    #[must_use]
    pub fn new() -> Self {
        Self {
            live: Arc::new(AtomicBool::new(true)),
            calls: std::sync::Arc::new(CallTracker::new()),
        }
    }
}

impl Default for LeaseCells {
    fn default() -> Self {
        Self::new()
    }
}

/// Something worth a log line, reported after the lock is dropped.
#[derive(Debug)]
pub enum Event<M> {
    /// A pool was created.
    Created {
        /// Sequence number of the pool (1, 2, ... over the manager's life).
        seq: u64,
    },
    /// A lease was granted.
    Leased {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
        /// Soft lifetime.
        lease_seconds: f64,
        /// Grace period.
        grace_seconds: f64,
    },
    /// A call slot was leased on the shared pool `seq`.
    SlotLeased {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
        /// Sequence number of the shared pool.
        seq: u64,
    },
    /// A call slot's call was finished with and the slot returned.
    SlotEnded {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
    },
    /// A lease was released while calls still run on its pool: it drains first.
    Draining {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
        /// Calls in flight at the release.
        pending: u64,
    },
    /// A released lease let go of its pool (at once, or when its drain finished).
    Released {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
        /// Whether the pool stayed in the manager (`false`: shut down).
        kept: bool,
    },
    /// A lease's pool was reported broken and retired (the lease ended with it).
    RetiredBroken {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
    },
    /// A lease (or call slot) is still held past its soft expiry: reported once per
    /// lease, by the periodic check (see [`Manager::next_overdue`](super::Manager::next_overdue)).
    Overdue {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
        /// Seconds since the grant.
        age: f64,
        /// Soft lifetime.
        lease_seconds: f64,
        /// Seconds left until the hard expiry revokes it.
        until_revoked: f64,
        /// A call slot (`run()`), not a pool lease.
        slot: bool,
    },
    /// The built-in adaptive sizing moved the target (see [`crate::autoscale`]).
    Resized {
        /// The target before.
        from: usize,
        /// The target after.
        to: usize,
        /// What moved it.
        reason: crate::autoscale::ResizeReason,
    },
    /// A lease passed its hard expiry and was revoked by a scan.
    Revoked {
        /// Lease id.
        id: LeaseId,
        /// Caller metadata.
        meta: M,
        /// Soft lifetime.
        lease_seconds: f64,
        /// Grace period.
        grace_seconds: f64,
    },
}

/// Work the caller must do after releasing the manager's lock.
#[derive(Debug)]
pub struct Effects<P, M, W> {
    /// Waiters that now hold a lease: complete them.
    pub granted: Vec<(W, Grant<P>)>,
    /// Slot waiters that now hold a call slot: submit their calls.
    pub slots_granted: Vec<(W, SlotGrant<P>)>,
    /// Waiters refused because the manager stopped: fail them.
    pub refused: Vec<W>,
    /// Cancelled waiters skipped during hand-off: just drop them (outside the lock).
    pub dropped: Vec<W>,
    /// Pools that left the manager: shut them down.
    pub retired: Vec<P>,
    /// Pools of leases revoked at their hard expiry: shut them down, stopping the
    /// calls still running there if the backend can.
    pub revoked: Vec<P>,
    /// Log events, in order.
    pub events: Vec<Event<M>>,
}

impl<P, M, W> Default for Effects<P, M, W> {
    fn default() -> Self {
        Self {
            granted: Vec::new(),
            slots_granted: Vec::new(),
            refused: Vec::new(),
            dropped: Vec::new(),
            retired: Vec::new(),
            revoked: Vec::new(),
            events: Vec::new(),
        }
    }
}

impl<P, M, W> Effects<P, M, W> {
    /// Whether there is nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.granted.is_empty()
            && self.slots_granted.is_empty()
            && self.refused.is_empty()
            && self.dropped.is_empty()
            && self.retired.is_empty()
            && self.revoked.is_empty()
            && self.events.is_empty()
    }
}

/// Outcome of [`Manager::acquire`](super::Manager::acquire) when waiting is allowed.
#[derive(Debug)]
pub enum Acquired<P> {
    /// A pool was free: here is the lease.
    Granted(Grant<P>),
    /// The caller's waiter was queued under this ticket.
    Queued(Ticket),
}

/// Outcome of [`Manager::acquire_slot`](super::Manager::acquire_slot).
#[derive(Debug)]
pub enum SlotAcquired<P, W> {
    /// A slot was free: run the call on `grant.pool`. The unused waiter comes back
    /// (it may own the call itself; it is the caller's to drop, outside the lock).
    Granted(SlotGrant<P>, Option<W>),
    /// The caller's waiter was queued under this ticket.
    Queued(Ticket),
}
