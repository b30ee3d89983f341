//! The leak report's engine half: leases still held past their soft expiry are
//! reported once each ([`Event::Overdue`]), so an operator can find the code that holds
//! leases too long before the hard expiry revokes them.

use super::{Effects, Event, Manager, Waiter};

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Reports (once) every lease and call slot past its soft expiry at `now`. Part
    /// of [`check`](Self::check); the front end's clock rings at
    /// [`next_overdue`](Self::next_overdue).
    pub(super) fn report_overdue(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        let mut found = 0_u64;
        for held in self.leased.values_mut() {
            let timing = held.timing;
            if held.overdue || held.draining || now < timing.soft_expires_at() {
                continue;
            }
            held.overdue = true;
            found += 1;
            effects.events.push(Event::Overdue {
                id: held.id.clone(),
                meta: held.meta.clone(),
                age: now - timing.leased_at,
                lease_seconds: timing.lease_seconds,
                until_revoked: (timing.hard_expires_at() - now).max(0.0),
                slot: false,
            });
        }
        for slot in self.slots.values_mut() {
            let timing = slot.timing;
            if slot.overdue || now < timing.soft_expires_at() {
                continue;
            }
            slot.overdue = true;
            found += 1;
            effects.events.push(Event::Overdue {
                id: slot.id.clone(),
                meta: slot.meta.clone(),
                age: now - timing.leased_at,
                lease_seconds: timing.lease_seconds,
                until_revoked: (timing.hard_expires_at() - now).max(0.0),
                slot: true,
            });
        }
        for _ in 0..found {
            self.note(super::super::metrics::LeaseMetrics::overdue);
        }
    }

    /// The earliest soft expiry of a live lease not yet reported overdue: when the
    /// front end should run [`check`](Self::check) next for the leak report.
    #[must_use]
    pub fn next_overdue(&self) -> Option<f64> {
        let leases = self
            .leased
            .values()
            .filter(|held| !held.overdue && !held.draining)
            .map(|held| held.timing.soft_expires_at());
        let slots = self
            .slots
            .values()
            .filter(|slot| !slot.overdue)
            .map(|slot| slot.timing.soft_expires_at());
        leases.chain(slots).min_by(f64::total_cmp)
    }
}
