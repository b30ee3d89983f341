//! Ending a pool lease on its holder's word: release, the drain that may follow it
//! (see the module docs, "Draining"), or retirement of a pool reported broken.

use std::collections::hash_map::Entry;

use super::{Effects, Event, Held, Manager, Waiter};
use crate::lease::LeaseKey;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
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
        // One lookup: the lease is taken out, or stays only to drain.
        let Entry::Occupied(mut entry) = self.leased.entry(key) else {
            return false;
        };
        let held = entry.get_mut();
        if held.draining {
            return false;
        }
        held.end();
        let idle = held
            .cells
            .as_ref()
            .is_none_or(|cells| cells.calls.release());
        if !idle {
            held.draining = true;
            let draining = Event::Draining {
                id: held.id,
                meta: held.meta.clone(),
                pending: held.calls_in_flight(),
            };
            self.emit(effects, draining);
            return true;
        }
        let held = entry.remove();
        self.free_lease(held, now, target, effects);
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
        held.end();
        self.lease_over(now, held.timing, held.owner, false);
        self.pool_discharged(held.charge);
        self.emit(
            effects,
            Event::RetiredBroken {
                id: held.id,
                meta: held.meta,
            },
        );
        effects.retired.push(held.pool);
        if self.running {
            self.ensure_minimum(target, effects);
            self.serve_waiters(now, effects);
        }
        true
    }

    /// Ends the lease `key` and frees its pool: the common end of
    /// [`release`](Self::release) (no calls in flight) and
    /// [`finish_drain`](Self::finish_drain).
    fn let_go(&mut self, key: LeaseKey, now: f64, target: usize, effects: &mut Effects<P, M, W>) {
        if let Some(held) = self.leased.remove(&key) {
            self.free_lease(held, now, target, effects);
        }
    }

    /// Frees the pool of `held`, a lease just taken out of the table.
    fn free_lease(
        &mut self,
        held: Held<P, M>,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) {
        held.end();
        self.lease_over(now, held.timing, held.owner, false);
        self.pool_discharged(held.charge);
        let expired = held.timing.is_hard_expired(now);
        let kept = self.free_pool(held.pool, held.seq, expired, now, target, effects);
        self.emit(
            effects,
            Event::Released {
                id: held.id,
                meta: held.meta,
                kept,
            },
        );
        if self.running {
            self.ensure_minimum(target, effects);
            self.serve_waiters(now, effects);
        }
    }
}
