//! Hard expiry: revoking leases that outlived their lease and grace period, from the
//! submit path (`check_lease`) and the periodic `check`.

use super::{Effects, Event, Manager, Waiter};
use crate::error::LeaseError;
use crate::lease::LeaseKey;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
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
            held.end();
            self.lease_over(now, held.timing, held.owner, true);
            self.pool_discharged(held.charge);
            effects.revoked.push(held.pool);
        }
        self.ensure_minimum(target, effects);
        self.serve_waiters(now, effects);
        Err(LeaseError::ExpiredRevoked)
    }

    /// The periodic check: revoke expired leases, report the ones past their soft
    /// expiry, grow to `target`, retire idle pools above it, and serve waiters.
    pub fn check(&mut self, now: f64, target: usize, effects: &mut Effects<P, M, W>) {
        if !self.running {
            return;
        }
        self.revoke_expired(now, effects);
        self.report_overdue(now, effects);
        self.autoscale_tick(now, effects);
        self.ensure_minimum(target, effects);
        self.retire_idle_surplus(now, target, effects);
        self.serve_waiters(now, effects);
    }

    /// Revokes every lease and call slot past its hard expiry and recomputes the
    /// expiry floor; then, if the manager runs, serves the waiters (a revoked lease
    /// frees a pool or, under an owner limit, its owner's turn).
    pub(super) fn revoke_expired(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        let mut expired: Vec<LeaseKey> = self
            .leased
            .iter()
            .filter(|(_, held)| held.timing.is_hard_expired(now))
            .map(|(key, _)| *key)
            .collect();
        // Revoked (and reported) in grant order.
        expired.sort_unstable();
        for key in expired {
            if let Some(held) = self.leased.remove(&key) {
                held.end();
                let timing = held.timing;
                self.lease_over(now, timing, held.owner, true);
                self.pool_discharged(held.charge);
                self.emit(
                    effects,
                    Event::Revoked {
                        id: held.id,
                        meta: held.meta,
                        lease_seconds: timing.lease_seconds,
                        grace_seconds: timing.grace_seconds,
                    },
                );
                effects.revoked.push(held.pool);
            }
        }
        self.revoke_expired_slots(now, effects);
        self.expiry_floor = self.next_hard_expiry().unwrap_or(f64::INFINITY);
        if self.running {
            self.serve_waiters(now, effects);
        }
    }
}
