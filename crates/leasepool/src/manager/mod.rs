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
//! A lease's calls in flight are counted by its [`CallTracker`]. Releasing a lease
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

use std::collections::{BTreeMap, VecDeque};

use crate::drain::CallTracker;
use crate::error::LeaseError;
use crate::lease::{LeaseIdMint, LeaseKey, LeaseTiming};
use crate::sizing::PoolLimits;
use crate::slots::{PoolSeq, SharedPools, SlotGrant, SlotHeld};
use crate::sync::{Arc, AtomicBool, Ordering};

/// Lease ids are immutable strings shared with the front end; not a synchronisation
/// primitive, so plain `std` even under loom.
type IdStr = std::sync::Arc<str>;
use crate::waiters::{Ticket, WaiterQueue};

mod calls;
mod effects;

pub use effects::{Acquired, Effects, Event, Grant, SlotAcquired, Waiter};

/// What a queued caller asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    id: IdStr,
    live: Arc<AtomicBool>,
    calls: std::sync::Arc<CallTracker>,
    /// Released with calls in flight; waiting for [`Manager::finish_drain`].
    draining: bool,
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
    leased: BTreeMap<LeaseKey, Held<P, M>>,
    /// Pools hosting call slots.
    shared: SharedPools<P>,
    /// Live call-slot leases.
    slots: BTreeMap<LeaseKey, SlotHeld<M>>,
    waiters: WaiterQueue<Queued<M, W>>,
    ids: LeaseIdMint,
    pool_seq: u64,
    /// A lower bound on the earliest hard expiry among leases (`INFINITY` if none);
    /// lets acquire skip the expiry scan until something can actually have expired.
    expiry_floor: f64,
    factory: PoolFactory<P>,
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
    /// A stopped manager.
    pub fn new(limits: PoolLimits, factory: PoolFactory<P>) -> Self {
        Self {
            limits,
            // The engine's clock is `f64` seconds (the front ends' monotonic time).
            grace_seconds: limits.lease_grace().as_secs_f64(),
            running: false,
            available: VecDeque::new(),
            idle_pool_seconds: limits.idle_pool_timeout().as_secs_f64(),
            leased: BTreeMap::new(),
            shared: SharedPools::new(limits.slots_per_pool()),
            slots: BTreeMap::new(),
            waiters: WaiterQueue::default(),
            ids: LeaseIdMint::new(),
            pool_seq: 0,
            expiry_floor: f64::INFINITY,
            factory,
        }
    }

    /// When the next idle pool above `target` is due for retirement, if any.
    #[must_use]
    pub fn next_idle_retirement(&self, target: usize) -> Option<f64> {
        if self.total_count() <= target.min(self.limits.max_pools()) {
            return None;
        }
        self.available
            .front()
            .map(|idle| idle.since + self.idle_pool_seconds)
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

    /// Lease key of an id string minted by this manager.
    #[must_use]
    pub fn key_of(&self, id: &str) -> Option<LeaseKey> {
        self.ids.parse(id)
    }

    /// Live leases (pool leases and call slots) in grant order: `(id, meta, timing)`.
    #[must_use]
    pub fn leases(&self) -> Vec<(&IdStr, &M, LeaseTiming)> {
        let mut all: Vec<_> = self
            .leased
            .iter()
            .map(|(key, held)| (*key, (&held.id, &held.meta, held.timing)))
            .chain(
                self.slots
                    .iter()
                    .map(|(key, slot)| (*key, (&slot.id, &slot.meta, slot.timing))),
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

    /// Starts the manager (idempotent) and grows it to `target` pools.
    pub fn start(&mut self, target: usize, effects: &mut Effects<P, M, W>) {
        self.running = true;
        self.ensure_minimum(target, effects);
    }

    /// Stops the manager: every pool is retired, every lease revoked, every waiter refused.
    pub fn stop(&mut self, effects: &mut Effects<P, M, W>) {
        self.running = false;
        effects
            .retired
            .extend(self.available.drain(..).map(|idle| idle.pool));
        for (_, held) in std::mem::take(&mut self.leased) {
            held.live.store(false, Ordering::Release);
            effects.retired.push(held.pool);
        }
        effects.retired.extend(self.shared.drain());
        self.slots.clear();
        self.expiry_floor = f64::INFINITY;
        effects
            .refused
            .extend(self.waiters.drain().map(|queued| queued.waiter));
    }

    /// Grants a lease now or, if `make_waiter` is given, queues the caller.
    ///
    /// A new caller never overtakes a queued one: while anybody waits, a caller
    /// without a waiter gets [`LeaseError::Unavailable`].
    ///
    /// # Errors
    /// [`LeaseError::NotStarted`], [`LeaseError::InvalidLeaseSeconds`], or
    /// [`LeaseError::Unavailable`] when no pool is free and no waiter was given.
    pub fn acquire(
        &mut self,
        now: f64,
        lease_seconds: f64,
        meta: M,
        make_waiter: Option<W>,
        effects: &mut Effects<P, M, W>,
    ) -> Result<Acquired<P>, LeaseError> {
        self.admit(now, lease_seconds, effects)?;
        if self.waiters.is_empty() {
            if let Some((pool, seq)) = self.take_pool(effects) {
                return Ok(Acquired::Granted(self.grant(
                    now,
                    lease_seconds,
                    meta,
                    pool,
                    seq,
                    effects,
                )));
            }
        }
        self.enqueue(Want::Pool, lease_seconds, meta, make_waiter)
            .map(Acquired::Queued)
    }

    /// The checks every request passes first: a valid `lease_seconds`, a running
    /// manager, and no lease left past its hard expiry (when one can be).
    fn admit(
        &mut self,
        now: f64,
        lease_seconds: f64,
        effects: &mut Effects<P, M, W>,
    ) -> Result<(), LeaseError> {
        crate::settings::lease_seconds(lease_seconds)?;
        if !self.running {
            return Err(LeaseError::NotStarted);
        }
        if now >= self.expiry_floor {
            self.revoke_expired(now, effects);
        }
        Ok(())
    }

    /// Queues a request that could not be served at once, behind everyone queued; a
    /// caller without a waiter (`wait=False`) is refused instead.
    fn enqueue(
        &mut self,
        want: Want,
        lease_seconds: f64,
        meta: M,
        make_waiter: Option<W>,
    ) -> Result<Ticket, LeaseError> {
        let Some(waiter) = make_waiter else {
            return Err(LeaseError::Unavailable {
                max_pools: self.limits.max_pools(),
            });
        };
        Ok(self.waiters.push(Queued {
            waiter,
            lease_seconds,
            meta,
            want,
        }))
    }

    /// A pool nobody uses any more: kept (to the oldest waiter, under the target, or
    /// to idle out) or retired. `expired`: its last holder passed its hard expiry.
    fn free_pool(
        &mut self,
        pool: P,
        seq: PoolSeq,
        expired: bool,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) -> bool {
        // A lease past its hard expiry would have been revoked by the next scan: its
        // pool must not come back just because the release got there first.
        // Above the target it is kept only to idle out later (see "Idle retirement").
        let kept = self.running
            && !expired
            && (!self.waiters.is_empty()
                || self.total_count() < target
                || self.idle_pool_seconds > 0.0);
        if kept {
            self.available.push_back(Idle {
                pool,
                seq,
                since: now,
            });
        } else {
            effects.retired.push(pool);
        }
        kept
    }

    /// Removes a queued waiter (after the caller has made it unclaimable).
    pub fn cancel_waiter(&mut self, ticket: Ticket) -> Option<W> {
        self.waiters.remove(ticket).map(|queued| queued.waiter)
    }

    /// Removes a queued waiter (cancelled, timed out) and serves the waiters behind
    /// it: with pool and slot requests in one queue, a pool request at the head may
    /// have been all that kept a slot request behind it from a free slot.
    pub fn withdraw_waiter(
        &mut self,
        ticket: Ticket,
        now: f64,
        effects: &mut Effects<P, M, W>,
    ) -> Option<W> {
        let removed = self.waiters.remove(ticket)?;
        if self.running {
            self.serve_waiters(now, effects);
        }
        Some(removed.waiter)
    }

    /// Releases a lease. With calls still in flight the lease starts draining (see
    /// the module docs) and keeps its pool; otherwise the pool is let go at once: to
    /// the oldest waiter if there is one, else kept if the pool count would not
    /// exceed `target` and the lease had not passed its hard expiry, else retired.
    /// Returns `false` for an unknown (already released or revoked) key.
    pub fn release(
        &mut self,
        key: LeaseKey,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) -> bool {
        let Some(held) = self.leased.get_mut(&key) else {
            return false;
        };
        if held.draining {
            return false;
        }
        held.live.store(false, Ordering::Release);
        if !held.calls.release() {
            held.draining = true;
            effects.events.push(Event::Draining {
                id: held.id.clone(),
                meta: held.meta.clone(),
                pending: held.calls.in_flight(),
            });
            return true;
        }
        self.let_go(key, now, target, effects);
        true
    }

    /// The last call of a draining lease ended: let go of its pool as
    /// [`release`](Self::release) would have. A no-op for a lease that is not
    /// draining (already finished, revoked at its expiry, or gone with `stop()`).
    pub fn finish_drain(
        &mut self,
        key: LeaseKey,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) -> bool {
        if !self.leased.get(&key).is_some_and(|held| held.draining) {
            return false;
        }
        self.let_go(key, now, target, effects);
        true
    }

    /// Ends the lease `key` because its pool is broken for good, whatever its state
    /// (live or draining): the pool is retired, never reused, and a replacement is
    /// created if the manager is below `target`.
    pub fn retire_broken(
        &mut self,
        key: LeaseKey,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) -> bool {
        let Some(held) = self.leased.remove(&key) else {
            return false;
        };
        held.live.store(false, Ordering::Release);
        effects.events.push(Event::RetiredBroken {
            id: held.id,
            meta: held.meta,
        });
        effects.retired.push(held.pool);
        if self.running {
            self.ensure_minimum(target, effects);
            self.serve_waiters(now, effects);
        }
        true
    }

    fn let_go(&mut self, key: LeaseKey, now: f64, target: usize, effects: &mut Effects<P, M, W>) {
        let Some(held) = self.leased.remove(&key) else {
            return;
        };
        held.live.store(false, Ordering::Release);
        let expired = held.timing.is_hard_expired(now);
        let kept = self.free_pool(held.pool, held.seq, expired, now, target, effects);
        effects.events.push(Event::Released {
            id: held.id,
            meta: held.meta,
            kept,
        });
        if self.running {
            self.ensure_minimum(target, effects);
            self.serve_waiters(now, effects);
        }
    }

    /// Revokes the lease `key` if it passed its hard expiry (the submit path).
    ///
    /// # Errors
    /// [`LeaseError::Inactive`] if the lease is gone, [`LeaseError::ExpiredRevoked`]
    /// if it was expired and has now been revoked.
    pub fn check_lease(
        &mut self,
        key: LeaseKey,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) -> Result<(), LeaseError> {
        let Some(held) = self.leased.get(&key) else {
            return Err(LeaseError::Inactive);
        };
        if !held.timing.is_hard_expired(now) {
            return Ok(());
        }
        if let Some(held) = self.leased.remove(&key) {
            held.live.store(false, Ordering::Release);
            effects.revoked.push(held.pool);
        }
        self.ensure_minimum(target, effects);
        self.serve_waiters(now, effects);
        Err(LeaseError::ExpiredRevoked)
    }

    /// The periodic check: revoke expired leases, grow to `target`, retire idle pools
    /// above it, and serve waiters.
    pub fn check(&mut self, now: f64, target: usize, effects: &mut Effects<P, M, W>) {
        if !self.running {
            return;
        }
        self.revoke_expired(now, effects);
        self.ensure_minimum(target, effects);
        self.retire_idle_surplus(now, target, effects);
        self.serve_waiters(now, effects);
    }

    fn revoke_expired(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        let expired: Vec<LeaseKey> = self
            .leased
            .iter()
            .filter(|(_, held)| held.timing.is_hard_expired(now))
            .map(|(key, _)| *key)
            .collect();
        for key in expired {
            if let Some(held) = self.leased.remove(&key) {
                held.live.store(false, Ordering::Release);
                let timing = held.timing;
                effects.events.push(Event::Revoked {
                    id: held.id,
                    meta: held.meta,
                    lease_seconds: timing.lease_seconds,
                    grace_seconds: timing.grace_seconds,
                });
                effects.revoked.push(held.pool);
            }
        }
        self.revoke_expired_slots(now, effects);
        self.expiry_floor = self.next_hard_expiry().unwrap_or(f64::INFINITY);
        if self.running && self.total_count() < self.limits.max_pools() {
            self.serve_waiters(now, effects);
        }
    }

    /// Retires free pools above `target`, coldest first, once idle long enough.
    fn retire_idle_surplus(&mut self, now: f64, target: usize, effects: &mut Effects<P, M, W>) {
        while self.total_count() > target {
            match self.available.front() {
                // The same sum as `next_idle_retirement`, so a check at that deadline
                // always retires (no re-arm at a deadline that never passes).
                Some(idle) if now >= idle.since + self.idle_pool_seconds => {}
                _ => break,
            }
            if let Some(idle) = self.available.pop_front() {
                effects.retired.push(idle.pool);
            }
        }
    }

    fn ensure_minimum(&mut self, target: usize, effects: &mut Effects<P, M, W>) {
        let target = target.min(self.limits.max_pools());
        while self.total_count() < target {
            let (pool, seq) = self.create_pool(effects);
            // A new pool is the coldest: it goes first when the target drops again.
            self.available.push_front(Idle {
                pool,
                seq,
                since: f64::NEG_INFINITY,
            });
        }
    }

    /// Whether a free (or creatable) pool exists.
    fn pool_obtainable(&self) -> bool {
        !self.available.is_empty() || self.total_count() < self.limits.max_pools()
    }

    /// Hands what is free to the oldest claimable waiters, strictly in order: the
    /// queue stops at the first waiter whose request cannot be met yet.
    fn serve_waiters(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        while let Some((_, head)) = self.waiters.peek_oldest() {
            let servable = match head.want {
                Want::Pool => self.pool_obtainable(),
                Want::Slot => self.shared.has_free_slot() || self.pool_obtainable(),
            };
            if !servable {
                break;
            }
            let Some((_, queued)) = self.waiters.pop_oldest() else {
                break;
            };
            if !queued.waiter.try_claim() {
                effects.dropped.push(queued.waiter);
                continue;
            }
            match queued.want {
                Want::Pool => {
                    let Some((pool, seq)) = self.take_pool(effects) else {
                        unreachable!("checked above that a pool is free or creatable");
                    };
                    let grant =
                        self.grant(now, queued.lease_seconds, queued.meta, pool, seq, effects);
                    effects.granted.push((queued.waiter, grant));
                }
                Want::Slot => {
                    let Some(grant) =
                        self.grant_slot(now, queued.lease_seconds, queued.meta, effects)
                    else {
                        unreachable!("checked above that a slot is free or creatable");
                    };
                    effects.slots_granted.push((queued.waiter, grant));
                }
            }
        }
    }

    fn take_pool(&mut self, effects: &mut Effects<P, M, W>) -> Option<(P, PoolSeq)> {
        // The warmest pool (most recently released): its threads are running and
        // the cold end can age out (see "Idle retirement").
        if let Some(idle) = self.available.pop_back() {
            return Some((idle.pool, idle.seq));
        }
        (self.total_count() < self.limits.max_pools()).then(|| self.create_pool(effects))
    }

    fn create_pool(&mut self, effects: &mut Effects<P, M, W>) -> (P, PoolSeq) {
        self.pool_seq += 1;
        effects.events.push(Event::Created { seq: self.pool_seq });
        ((self.factory)(self.pool_seq), self.pool_seq)
    }

    fn grant(
        &mut self,
        now: f64,
        lease_seconds: f64,
        meta: M,
        pool: P,
        seq: PoolSeq,
        effects: &mut Effects<P, M, W>,
    ) -> Grant<P> {
        let (key, id) = self.ids.mint();
        let id: IdStr = IdStr::from(id);
        let timing = LeaseTiming {
            leased_at: now,
            lease_seconds,
            grace_seconds: self.grace_seconds,
        };
        let live = Arc::new(AtomicBool::new(true));
        let calls = std::sync::Arc::new(CallTracker::new());
        self.expiry_floor = self.expiry_floor.min(timing.hard_expires_at());
        effects.events.push(Event::Leased {
            id: id.clone(),
            meta: meta.clone(),
            lease_seconds,
            grace_seconds: self.grace_seconds,
        });
        self.leased.insert(
            key,
            Held {
                pool: pool.clone(),
                meta,
                timing,
                seq,
                id: id.clone(),
                live: live.clone(),
                calls: calls.clone(),
                draining: false,
            },
        );
        Grant {
            key,
            id,
            timing,
            pool,
            live,
            calls,
        }
    }
}
