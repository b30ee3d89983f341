//! Getting a lease: admission, an immediate grant or a place in the FIFO queue, and
//! hand-off of free pools and slots to the oldest waiters (see the module docs,
//! "Hand-off").

use super::{Acquired, Effects, Event, Grant, Held, IdStr, Manager, Queued, Waiter, Want};
use crate::drain::CallTracker;
use crate::error::LeaseError;
use crate::lease::LeaseTiming;
use crate::slots::PoolSeq;
use crate::sync::{Arc, AtomicBool};
use crate::waiters::Ticket;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
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
    pub(super) fn admit(
        &mut self,
        now: f64,
        lease_seconds: f64,
        effects: &mut Effects<P, M, W>,
    ) -> Result<(), LeaseError> {
        crate::settings::lease_seconds(lease_seconds)?;
        if !self.running {
            return Err(LeaseError::NotStarted);
        }
        if self.is_draining() {
            return Err(LeaseError::Draining);
        }
        if now >= self.expiry_floor {
            self.revoke_expired(now, effects);
        }
        Ok(())
    }

    /// Queues a request that could not be served at once, behind everyone queued; a
    /// caller without a waiter (`wait=False`) is refused instead.
    pub(super) fn enqueue(
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

    /// Hands what is free to the oldest claimable waiters, strictly in order: the
    /// queue stops at the first waiter whose request cannot be met yet.
    pub(super) fn serve_waiters(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
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

    /// Records a new lease of `pool` and returns what the front end needs to use it
    /// without the lock.
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
