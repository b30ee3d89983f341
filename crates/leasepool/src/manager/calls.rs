//! The call-slot operations of the [`Manager`] (see the module docs, "Call slots").

use super::{Effects, Event, Manager, SlotAcquired, Waiter, Want};
use crate::admission::Tenant;
use crate::error::LeaseError;
use crate::lease::{LeaseKey, LeaseTiming};
use crate::slots::{SlotGrant, SlotHeld};

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Leases one call slot now or, if `make_waiter` is given, queues the caller in
    /// the same FIFO queue as [`acquire`](Self::acquire). See "Call slots".
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire), with the waiter handed back.
    pub fn acquire_slot(
        &mut self,
        now: f64,
        lease_seconds: f64,
        meta: M,
        make_waiter: Option<W>,
        effects: &mut Effects<P, M, W>,
    ) -> Result<SlotAcquired<P, W>, (LeaseError, Option<W>)> {
        self.acquire_slot_as(
            now,
            lease_seconds,
            Tenant::default(),
            meta,
            make_waiter,
            effects,
        )
    }

    /// [`acquire_slot`](Self::acquire_slot) for `tenant` (see [`crate::admission`]).
    ///
    /// # Errors
    /// As [`acquire_as`](Self::acquire_as), with the waiter handed back when it was
    /// not queued because the request is invalid or the manager not running.
    pub fn acquire_slot_as(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        meta: M,
        make_waiter: Option<W>,
        effects: &mut Effects<P, M, W>,
    ) -> Result<SlotAcquired<P, W>, (LeaseError, Option<W>)> {
        if let Err(err) = self.admit(now, lease_seconds, tenant, effects) {
            return Err((err, make_waiter));
        }
        if self.servable_at_once(Want::Slot, tenant) {
            if let Some(grant) = self.grant_slot(now, lease_seconds, tenant, meta.clone(), effects)
            {
                self.note(|metrics| metrics.granted(tenant.owner, 0.0));
                return Ok(SlotAcquired::Granted(grant, make_waiter));
            }
        }
        self.enqueue(
            now,
            Want::Slot,
            lease_seconds,
            tenant,
            meta,
            make_waiter,
            effects,
        )
        .map(SlotAcquired::Queued)
        .map_err(|err| (err, None))
    }

    /// The call of slot `key` was finished with (run, failed or withdrawn): return
    /// the slot. Its pool goes back to `available` (or is retired, as
    /// [`release`](Self::release) decides) when this was its last slot, and the
    /// oldest waiters are served. `broken`: the pool can never run a call again; it
    /// takes no new slot and is retired with its last one. `false` for a slot
    /// already revoked or gone.
    pub fn end_slot(
        &mut self,
        key: LeaseKey,
        now: f64,
        target: usize,
        broken: bool,
        effects: &mut Effects<P, M, W>,
    ) -> bool {
        let Some(slot) = self.slots.remove(&key) else {
            return false;
        };
        let timing = slot.timing;
        self.lease_over(now, timing, slot.owner, false);
        let emptied = self.shared.end_slot(slot.seq, broken);
        self.emit(
            effects,
            Event::SlotEnded {
                id: slot.id,
                meta: slot.meta,
            },
        );
        if let Some(emptied) = emptied {
            self.pool_discharged(emptied.charge);
            if emptied.tainted {
                effects.revoked.push(emptied.pool);
            } else {
                self.free_pool(
                    emptied.pool,
                    emptied.seq,
                    timing.is_hard_expired(now),
                    now,
                    target,
                    effects,
                );
            }
        }
        if self.running {
            self.ensure_minimum(target, effects);
            self.serve_waiters(now, effects);
        }
        true
    }

    /// Revokes the call slots past their hard expiry; each taints its pool, which is
    /// revoked once its other slots have ended (see "Call slots").
    pub(super) fn revoke_expired_slots(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        let mut expired: Vec<LeaseKey> = self
            .slots
            .iter()
            .filter(|(_, slot)| slot.timing.is_hard_expired(now))
            .map(|(key, _)| *key)
            .collect();
        // Revoked (and reported) in grant order.
        expired.sort_unstable();
        for key in expired {
            let Some(slot) = self.slots.remove(&key) else {
                continue;
            };
            self.lease_over(now, slot.timing, slot.owner, true);
            self.emit(
                effects,
                Event::Revoked {
                    id: slot.id,
                    meta: slot.meta,
                    lease_seconds: slot.timing.lease_seconds,
                    grace_seconds: slot.timing.grace_seconds,
                },
            );
            if let Some(emptied) = self.shared.end_slot(slot.seq, true) {
                self.pool_discharged(emptied.charge);
                effects.revoked.push(emptied.pool);
            }
        }
    }

    /// Leases a slot on a shared pool of the tenant's class with room, or on a free
    /// pool that starts sharing; `None` if neither exists.
    pub(super) fn grant_slot(
        &mut self,
        now: f64,
        lease_seconds: f64,
        tenant: Tenant,
        meta: M,
        effects: &mut Effects<P, M, W>,
    ) -> Option<SlotGrant<P>> {
        let (pool, seq) = match self.shared.take_free_slot(tenant.class) {
            Some(found) => found,
            None => {
                let (pool, seq) = self.take_pool(effects)?;
                let charge = self.tenancy.charge(tenant.class);
                (self.shared.host(pool, seq, tenant.class, charge), seq)
            }
        };
        self.tenancy.lease_began(tenant.owner);
        let (key, id) = self.ids.mint();
        let timing = LeaseTiming {
            leased_at: now,
            lease_seconds,
            grace_seconds: self.grace_seconds,
        };
        self.expiry_floor = self.expiry_floor.min(timing.hard_expires_at());
        self.emit(
            effects,
            Event::SlotLeased {
                id,
                meta: meta.clone(),
                seq,
            },
        );
        self.slots.insert(
            key,
            SlotHeld {
                id,
                meta,
                timing,
                seq,
                owner: tenant.owner,
                overdue: false,
            },
        );
        Some(SlotGrant {
            key,
            id,
            timing,
            pool,
            seq,
        })
    }
}
