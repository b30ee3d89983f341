//! Getting a lease: admission, an immediate grant or a place in the FIFO queue, and
//! hand-off of free pools and slots to the oldest waiters (see the module docs,
//! "Hand-off").

use super::admission::Verdict;
use super::{Acquired, Effects, Event, Grant, Held, LeaseCells, Manager, Queued, Waiter, Want};
use crate::admission::Tenant;
use crate::error::LeaseError;
use crate::lease::LeaseTiming;
use crate::metrics::Refusal;
use crate::slots::PoolSeq;
use crate::waiters::Ticket;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Grants a lease now or, if `make_waiter` is given, queues the caller; an
    /// anonymous caller of priority 0 (see [`acquire_as`](Self::acquire_as)).
    ///
    /// # Errors
    /// As [`acquire_as`](Self::acquire_as).
    pub fn acquire(
        &mut self,
        now: f64,
        lease_seconds: f64,
        meta: M,
        make_waiter: Option<W>,
        effects: &mut Effects<P, M, W>,
    ) -> Result<Acquired<P>, LeaseError> {
        self.acquire_as(
            now,
            lease_seconds,
            Tenant::default(),
            meta,
            make_waiter,
            effects,
        )
    }

    /// Grants `tenant` a lease now or, if `make_waiter` is given, queues the caller.
    ///
    /// A new caller never overtakes a queued one whose own limits do not hold it
    /// back (see [`crate::admission`]): while such a caller waits, a caller without a
    /// waiter gets [`LeaseError::Unavailable`].
    ///
    /// # Errors
    /// [`LeaseError::NotStarted`], [`LeaseError::InvalidLeaseSeconds`],
    /// [`LeaseError::Unavailable`] when no pool can be granted and no waiter was
    /// given, [`LeaseError::QueueFull`] when the admission policy's waiter bound is
    /// reached.
    pub fn acquire_as(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        meta: M,
        make_waiter: Option<W>,
        effects: &mut Effects<P, M, W>,
    ) -> Result<Acquired<P>, LeaseError> {
        self.admit(now, lease_seconds, tenant, effects)?;
        if let Some(grant) = self.grant_at_once(now, lease_seconds, tenant, &meta, effects) {
            return Ok(Acquired::Granted(grant));
        }
        self.enqueue(
            now,
            Want::Pool,
            lease_seconds,
            tenant,
            meta,
            make_waiter,
            effects,
        )
        .map(Acquired::Queued)
    }

    /// Grants `tenant` a lease if it can be served at once, else says
    /// [`LeaseError::Unavailable`] *without* counting a refusal: for a front end that
    /// asks first without a waiter (a caller served at once allocates none) and
    /// then queues the caller with [`acquire_as`](Self::acquire_as).
    ///
    /// # Errors
    /// As [`acquire_as`](Self::acquire_as) without a waiter.
    pub fn probe_as(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        meta: M,
        effects: &mut Effects<P, M, W>,
    ) -> Result<Grant<P>, LeaseError> {
        self.admit(now, lease_seconds, tenant, effects)?;
        self.grant_at_once(now, lease_seconds, tenant, &meta, effects)
            .ok_or_else(|| LeaseError::Unavailable {
                max_pools: self.limits.max_pools(),
                retry_after: self.retry_after(false, lease_seconds),
            })
    }

    /// A pool lease for `tenant` now, if nobody it must not overtake waits and a
    /// pool is free or creatable.
    fn grant_at_once(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        meta: &M,
        effects: &mut Effects<P, M, W>,
    ) -> Option<Grant<P>> {
        if !self.servable_at_once(Want::Pool, tenant) {
            return None;
        }
        let (pool, seq) = self.take_pool(effects)?;
        let grant = self.grant(now, lease_seconds, tenant, meta.clone(), pool, seq, effects);
        self.note(|metrics| metrics.granted(tenant.owner, 0.0));
        Some(grant)
    }

    /// Whether a new request can be served without queueing: nobody it must not
    /// overtake waits, and its own limits and the free capacity allow it.
    pub(super) fn servable_at_once(&self, want: Want, tenant: Tenant) -> bool {
        if self.tenancy.is_plain() && want == Want::Pool {
            // The default policy (the hot path): as leasepool 0.1.3, nobody waits and
            // a pool is free or creatable.
            return self.waiters.is_empty() && self.pool_obtainable();
        }
        !self.someone_eligible_waits() && self.verdict(want, tenant) == Verdict::Serve
    }

    /// The checks every request passes first: a valid `lease_seconds`, a running
    /// manager, and no lease left past its hard expiry (when one can be).
    pub(super) fn admit(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        effects: &mut Effects<P, M, W>,
    ) -> Result<(), LeaseError> {
        crate::settings::lease_seconds(lease_seconds)?;
        if !self.running {
            return Err(LeaseError::NotStarted);
        }
        if self.is_draining() {
            self.note(|metrics| metrics.refused(tenant.owner, Refusal::Draining));
            return Err(LeaseError::Draining);
        }
        if now >= self.expiry_floor {
            self.revoke_expired(now, effects);
        }
        Ok(())
    }

    /// Queues a request that could not be served at once, behind everyone queued; a
    /// caller without a waiter (`wait=False`), or one beyond the waiter bound, is
    /// refused instead, with an estimate of when to come back.
    #[allow(clippy::too_many_arguments)] // the request's facts, and where its resize goes
    pub(super) fn enqueue(
        &mut self,
        now: f64,
        want: Want,
        lease_seconds: f64,
        tenant: Tenant,
        meta: M,
        make_waiter: Option<W>,
        effects: &mut Effects<P, M, W>,
    ) -> Result<Ticket, LeaseError> {
        let Some(waiter) = make_waiter else {
            self.note(|metrics| metrics.refused(tenant.owner, Refusal::Unavailable));
            return Err(LeaseError::Unavailable {
                max_pools: self.limits.max_pools(),
                retry_after: self.retry_after(want == Want::Slot, lease_seconds),
            });
        };
        if let Some(max_waiters) = self.tenancy.policy().waiter_bound() {
            if self.waiters.len() >= max_waiters {
                self.note(|metrics| metrics.refused(tenant.owner, Refusal::QueueFull));
                return Err(LeaseError::QueueFull {
                    max_waiters,
                    retry_after: self.retry_after(want == Want::Slot, lease_seconds),
                });
            }
        }
        let group = self.group_of(want, tenant);
        let ticket = self.waiters.push(
            group,
            Queued {
                waiter,
                lease_seconds,
                meta,
                want,
                tenant,
                queued_at: now,
            },
        );
        self.note_demand(0, effects);
        Ok(ticket)
    }

    /// Removes a queued waiter (after the caller has made it unclaimable).
    pub fn cancel_waiter(&mut self, ticket: Ticket) -> Option<W> {
        let queued = self.waiters.remove(ticket)?;
        self.forget_if_idle(queued.tenant.owner);
        Some(queued.waiter)
    }

    /// Removes a waiter whose wait timed out, counting the timeout, and serves the
    /// waiters behind it (as [`withdraw_waiter`](Self::withdraw_waiter)).
    pub fn time_out_waiter(
        &mut self,
        ticket: Ticket,
        now: f64,
        effects: &mut Effects<P, M, W>,
    ) -> Option<W> {
        let owner = self.waiters.get(ticket)?.tenant.owner;
        self.note(|metrics| metrics.refused(owner, Refusal::TimedOut));
        self.withdraw_waiter(ticket, now, effects)
    }

    /// Removes a queued waiter (cancelled, timed out) and serves the waiters behind
    /// it: a request at the head that could not be served may have been all that
    /// kept the ones behind it from what is free.
    pub fn withdraw_waiter(
        &mut self,
        ticket: Ticket,
        now: f64,
        effects: &mut Effects<P, M, W>,
    ) -> Option<W> {
        let removed = self.waiters.remove(ticket)?;
        self.forget_if_idle(removed.tenant.owner);
        if self.running {
            self.serve_waiters(now, effects);
        }
        Some(removed.waiter)
    }

    /// Records a new lease of `pool` and returns what the front end needs to use it
    /// without the lock.
    #[allow(clippy::too_many_arguments)] // each is one fact of the new lease
    pub(super) fn grant(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        meta: M,
        pool: P,
        seq: PoolSeq,
        effects: &mut Effects<P, M, W>,
    ) -> Grant<P> {
        let (key, id) = self.ids.mint();
        let timing = LeaseTiming {
            leased_at: now,
            lease_seconds,
            grace_seconds: self.grace_seconds,
        };
        let cells = self.cells.then(LeaseCells::new);
        let charge = self.tenancy.charge(tenant.class);
        self.tenancy.lease_began(tenant.owner);
        self.expiry_floor = self.expiry_floor.min(timing.hard_expires_at());
        self.emit(
            effects,
            Event::Leased {
                id,
                meta: meta.clone(),
                lease_seconds,
                grace_seconds: self.grace_seconds,
            },
        );
        self.leased.insert(
            key,
            Held {
                pool: pool.clone(),
                meta,
                timing,
                seq,
                id,
                cells: cells.clone(),
                draining: false,
                owner: tenant.owner,
                charge,
                overdue: false,
            },
        );
        Grant {
            key,
            id,
            timing,
            pool,
            cells,
        }
    }
}
