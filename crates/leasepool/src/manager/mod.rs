//! The lease manager's state machine.
//!
//! [`Manager`] owns up to `max_pools` pools, each either *available* or *leased*, and
//! a FIFO queue of waiters. It is a plain `&mut self` state machine: it never blocks,
//! never calls user code and never touches a clock; the caller passes `now` (monotonic
//! seconds) and the sizing `target`, holds the manager behind its own lock, and
//! performs the returned [`Effects`] after dropping that lock. That keeps every
//! callback, log line and pool shutdown out of the critical section.
//!
//! # Hand-off
//!
//! Whenever a pool becomes free (release, revocation, growth) and somebody waits, the
//! pool goes straight to the oldest waiter that can still be claimed
//! ([`Waiter::try_claim`]): the lease is created under the lock, so no later caller can
//! barge in, and a waiter cancelled before the hand-off is skipped without consuming
//! the pool. New acquires never overtake queued waiters.
//!
//! # Draining
//!
//! A lease's calls in flight are counted by its [`CallTracker`](crate::drain::CallTracker). Releasing a lease
//! with calls still running makes it *draining*: it stops accepting work at once but
//! keeps its pool (still counted as leased, still revoked at its hard expiry) until
//! the last call ends and the front end calls [`Manager::finish_drain`]. Only then
//! is the pool handed to the oldest waiter or kept, so a pool never runs one holder's
//! calls on behalf of another.
//!
//! # Idle retirement
//!
//! With [`PoolLimits::idle_pool_timeout`] > 0, a pool above the target is not retired
//! the moment it is released: it stays available and leaves only once it has been
//! idle that long ([`Manager::check`], at [`Manager::next_idle_retirement`]). Acquires
//! take the most recently released pool, so under steady load the surplus pools at
//! the cold end age out while the busy ones stay warm (no thread churn for a
//! lease-per-request service). `0` (the engine's default) retires at once, as
//! leasepool 0.1.3 did.
//!
//! # Call slots
//!
//! [`Manager::acquire_slot`] leases one *worker slot* instead of a whole pool: the
//! one-call path (`manager.run(fn)`) of a request-serving app, where a whole pool per
//! call would leave `workers_per_pool - 1` workers idle. A pool hosting slots is
//! *shared*: it counts as leased, takes up to `slots_per_pool` slot leases (one per
//! worker, so a granted call never queues behind another) and goes back to
//! `available` when its last slot ends. Slot leases have ids, owners and expiry like
//! any lease. Slot and pool requests wait in the same FIFO queue and nobody barges:
//! while a pool request heads the queue, free slots are not handed out (they would
//! keep its pool from ever emptying). A slot that passes its hard expiry is revoked:
//! its pool is *tainted* (no new slots) and is revoked itself once its other slots
//! have ended, so their calls are not killed for a neighbour's overrun.
//!
//! # Invariants
//!
//! * `available.len() + leased.len() + shared.len() <= max_pools`.
//! * While the manager runs, `available` is non-empty only if no waiter is queued.
//! * Every removed or draining lease has its liveness flag cleared before the lock is
//!   released.
//! * A pool whose lease passed its hard expiry, or that the front end reports broken,
//!   never returns to `available`.

use std::collections::VecDeque;

use crate::admission::{
    AdmissionPolicy, Charge, ClassId, OwnerKey, RetryEstimator, Tenancy, Tenant,
};
use crate::autoscale::AutoScaler;
use crate::error::ConfigError;
use crate::lease::{LeaseId, LeaseIdMint, LeaseKey, LeaseMap, LeaseTiming};
use crate::metrics::{LeaseMetrics, LeaseMetricsSnapshot};
use crate::sizing::PoolLimits;
use crate::slots::{PoolSeq, SharedPools, SlotHeld};
use crate::sync::Ordering;
use crate::waiters::WaiterQueue;

mod acquire;
mod admission;
mod autoscaling;
mod calls;
mod closing;
mod effects;
mod lifecycle;
mod overdue;
mod pools;
mod release;
mod revocation;

pub use closing::DrainBegun;
pub use effects::{Acquired, Effects, Event, Grant, LeaseCells, SlotAcquired, Waiter};
pub use overdue::LeaseView;

/// What a queued caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Want {
    /// A whole pool (`acquire()`).
    Pool,
    /// One worker slot (`run()`).
    Slot,
}

struct Queued<M, W> {
    waiter: W,
    lease_seconds: f64,
    meta: M,
    want: Want,
    tenant: Tenant,
    /// When it queued (for the acquire-wait histogram).
    queued_at: f64,
}

/// The FIFO group a waiter queues in (see [`crate::waiters`]): requests alike for
/// admission control. `owner` is set only when the policy counts owners, so with the
/// default policy all requests of one priority and kind share a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Group {
    priority: i32,
    owner: Option<OwnerKey>,
    class: Option<ClassId>,
    want: Want,
}

impl Group {
    fn tenant(&self) -> Tenant {
        Tenant {
            owner: self.owner,
            priority: self.priority,
            class: self.class,
        }
    }
}

impl<P, M> Held<P, M> {
    /// Marks the lease not live for its holder (released, revoked, stopped).
    fn end(&self) {
        if let Some(cells) = &self.cells {
            cells.live.store(false, Ordering::Release);
        }
    }

    /// Calls in flight through the lease (always 0 for a bare lease).
    fn calls_in_flight(&self) -> u64 {
        self.cells
            .as_ref()
            .map_or(0, |cells| cells.calls.in_flight())
    }
}

/// A free pool and when it became free.
struct Idle<P> {
    pool: P,
    seq: PoolSeq,
    since: f64,
}

/// A leased pool. (Its key is the map's key: not stored twice.)
struct Held<P, M> {
    pool: P,
    meta: M,
    timing: LeaseTiming,
    seq: PoolSeq,
    id: LeaseId,
    /// Shared with the holder, unless the manager hands out bare leases.
    cells: Option<LeaseCells>,
    /// Released with calls in flight; waiting for [`Manager::finish_drain`].
    draining: bool,
    owner: Option<OwnerKey>,
    charge: Charge,
    /// Reported as held past its soft expiry (once).
    overdue: bool,
}

/// Builds a new pool given its sequence number. Must be cheap and must not block:
/// it runs under the manager's lock (start expensive resources lazily).
pub type PoolFactory<P> = Box<dyn FnMut(u64) -> P + Send>;

/// The state machine. See the module docs.
pub struct Manager<P, M, W> {
    limits: PoolLimits,
    grace_seconds: f64,
    running: bool,
    /// Free pools, least recently released first, each with when it became free.
    available: VecDeque<Idle<P>>,
    idle_pool_seconds: f64,
    leased: LeaseMap<Held<P, M>>,
    /// Pools hosting call slots.
    shared: SharedPools<P>,
    /// Live call-slot leases.
    slots: LeaseMap<SlotHeld<M>>,
    waiters: WaiterQueue<Group, Queued<M, W>>,
    /// Leases per owner and pools per reserved class, against the admission policy.
    tenancy: Tenancy,
    /// Hand-offs in a row that overtook a lower-priority waiter (see
    /// [`crate::admission::OVERTAKE_LIMIT`]).
    overtakes: u32,
    retry: RetryEstimator,
    ids: LeaseIdMint,
    /// Whether grants carry [`LeaseCells`] (see [`lease_cells`](Self::lease_cells)).
    cells: bool,
    pool_seq: u64,
    /// A lower bound on the earliest hard expiry among leases (`INFINITY` if none);
    /// lets acquire skip the expiry scan until something can actually have expired.
    expiry_floor: f64,
    factory: PoolFactory<P>,
    /// A graceful drain in progress (`closing.rs`).
    closing: Option<closing::Closing>,
    /// Counts and timings, if the front end asked for them (`enable_metrics`).
    metrics: Option<LeaseMetrics>,
    /// Whether log [`Event`]s are recorded (see [`record_events`](Self::record_events)).
    events: bool,
    /// The built-in adaptive sizing, if enabled (`autoscaling.rs`).
    autoscaler: Option<AutoScaler>,
}

impl<P, M, W> std::fmt::Debug for Manager<P, M, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("running", &self.running)
            .field("available", &self.available.len())
            .field("leased", &self.leased.len())
            .field("shared", &self.shared.len())
            .field("slots", &self.slots.len())
            .field("waiters", &self.waiters.len())
            .finish_non_exhaustive()
    }
}

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// A stopped manager with the default admission policy (unbounded strict FIFO).
    pub fn new(limits: PoolLimits, factory: PoolFactory<P>) -> Self {
        Self::build(limits, AdmissionPolicy::default(), factory)
    }

    /// A stopped manager with an admission policy (see [`crate::admission`]).
    ///
    /// # Errors
    /// What [`AdmissionPolicy::validate`] finds wrong with `policy`.
    pub fn with_admission(
        limits: PoolLimits,
        policy: AdmissionPolicy,
        factory: PoolFactory<P>,
    ) -> Result<Self, ConfigError> {
        policy.validate(limits.max_pools())?;
        Ok(Self::build(limits, policy, factory))
    }

    fn build(limits: PoolLimits, policy: AdmissionPolicy, factory: PoolFactory<P>) -> Self {
        Self {
            limits,
            // The engine's clock is `f64` seconds (the front ends' monotonic time).
            grace_seconds: limits.lease_grace().as_secs_f64(),
            running: false,
            available: VecDeque::new(),
            idle_pool_seconds: limits.idle_pool_timeout().as_secs_f64(),
            leased: LeaseMap::default(),
            shared: SharedPools::new(limits.slots_per_pool()),
            slots: LeaseMap::default(),
            waiters: WaiterQueue::default(),
            tenancy: Tenancy::new(policy, limits.max_pools()),
            overtakes: 0,
            retry: RetryEstimator::default(),
            ids: LeaseIdMint::new(),
            cells: true,
            pool_seq: 0,
            expiry_floor: f64::INFINITY,
            factory,
            closing: None,
            metrics: None,
            events: true,
            autoscaler: None,
        }
    }

    /// Starts counting lease events (see [`crate::metrics`]); `owners`: how many
    /// owners to break down (0: none; the front end must then pass owner keys in
    /// every [`Tenant`]). Counting starts from zero, except that the pools owned now
    /// count as created.
    pub fn enable_metrics(&mut self, owners: usize) {
        let mut metrics = LeaseMetrics::new(owners);
        // Enabled on a manager that already owns pools (started, or used before),
        // `pools_retired = created - owned` would otherwise undercount by those
        // pools (saturating at 0) for the rest of the manager's life.
        metrics.counting_from(self.total_count());
        self.metrics = Some(metrics);
    }

    /// Whether to record log [`Event`]s in the effects (the default). A front end
    /// that logs nothing turns them off: a grant and a release then push nothing,
    /// which spares an allocation each on the hot path.
    pub fn record_events(&mut self, on: bool) {
        self.events = on;
    }

    /// Whether grants carry [`LeaseCells`] (the default): a liveness flag and a call
    /// counter shared with the holder, so it can check and count lock-free. A front
    /// end that runs no calls through its leases and asks
    /// [`holds`](Self::holds) under the lock instead turns them off: a grant and a
    /// release then allocate nothing and touch no reference count.
    pub fn lease_cells(&mut self, on: bool) {
        self.cells = on;
    }

    /// Whether the pool lease `key` is live (granted, not yet released, revoked or
    /// ended by a stop); a draining lease is not.
    #[must_use]
    pub fn holds(&self, key: LeaseKey) -> bool {
        self.leased.get(&key).is_some_and(|held| !held.draining)
    }

    /// Records a log event, if events are on.
    fn emit(&self, effects: &mut Effects<P, M, W>, event: Event<M>) {
        if self.events {
            effects.events.push(event);
        }
    }

    /// The lease metrics, if enabled.
    #[must_use]
    pub fn metrics(&self) -> Option<LeaseMetricsSnapshot> {
        self.metrics
            .as_ref()
            .map(|metrics| metrics.snapshot(self.total_count()))
    }

    /// The lease metrics to name owners in, if enabled.
    pub fn metrics_mut(&mut self) -> Option<&mut LeaseMetrics> {
        self.metrics.as_mut()
    }

    /// Records into the metrics, if enabled.
    fn note(&mut self, record: impl FnOnce(&mut LeaseMetrics)) {
        if let Some(metrics) = self.metrics.as_mut() {
            record(metrics);
        }
    }

    /// The limits this manager enforces.
    #[must_use]
    pub fn limits(&self) -> PoolLimits {
        self.limits
    }

    /// Whether `start` was called more recently than `stop`.
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Pools not leased.
    #[must_use]
    pub fn available_count(&self) -> usize {
        self.available.len()
    }

    /// Pools leased: held by a lease, or shared by call slots.
    #[must_use]
    pub fn leased_count(&self) -> usize {
        self.leased.len() + self.shared.len()
    }

    /// Live leases: pool leases (draining ones too) and call slots.
    #[must_use]
    pub fn live_lease_count(&self) -> usize {
        self.leased.len() + self.slots.len()
    }

    /// All pools owned.
    #[must_use]
    pub fn total_count(&self) -> usize {
        self.available.len() + self.leased.len() + self.shared.len()
    }

    /// Live call-slot leases.
    #[must_use]
    pub fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// How many call slots one pool hosts (its worker count).
    #[must_use]
    pub fn slots_per_pool(&self) -> usize {
        self.shared.per_pool()
    }

    /// Callers queued for a pool.
    #[must_use]
    pub fn waiter_count(&self) -> usize {
        self.waiters.len()
    }

    /// The admission policy this manager enforces.
    pub fn admission(&self) -> &AdmissionPolicy {
        self.tenancy.policy()
    }

    /// Seconds until capacity is likely for a new request (`slot`: a one-call
    /// request) of `lease_seconds`, behind everyone queued now; see
    /// [`RetryEstimator`].
    #[must_use]
    pub fn retry_after(&self, slot: bool, lease_seconds: f64) -> f64 {
        let pools = self.limits.max_pools();
        let capacity = if slot {
            pools * self.shared.per_pool()
        } else {
            pools
        };
        self.retry
            .retry_after(self.waiters.len(), capacity, lease_seconds)
    }

    /// Live leases (pool leases and call slots) of `owner`; counted only when the
    /// admission policy limits owners or shares fairly, else `0`.
    #[must_use]
    pub fn held_by(&self, owner: OwnerKey) -> usize {
        self.tenancy.held(owner)
    }

    /// Lease key of an id string minted by this manager.
    #[must_use]
    pub fn key_of(&self, id: &str) -> Option<LeaseKey> {
        self.ids.parse(id)
    }

    /// Live leases (pool leases and call slots) in grant order: `(id, meta, timing)`.
    #[must_use]
    pub fn leases(&self) -> Vec<(LeaseId, &M, LeaseTiming)> {
        let mut all: Vec<_> = self
            .leased
            .iter()
            .map(|(key, held)| (*key, (held.id, &held.meta, held.timing)))
            .chain(
                self.slots
                    .iter()
                    .map(|(key, slot)| (*key, (slot.id, &slot.meta, slot.timing))),
            )
            .collect();
        all.sort_unstable_by_key(|(key, _)| *key);
        all.into_iter().map(|(_, lease)| lease).collect()
    }

    /// The earliest hard expiry among live leases.
    #[must_use]
    pub fn next_hard_expiry(&self) -> Option<f64> {
        self.leased
            .values()
            .map(|held| held.timing)
            .chain(self.slots.values().map(|slot| slot.timing))
            .map(|timing| timing.hard_expires_at())
            .min_by(f64::total_cmp)
    }
}
