//! The leak report's engine half: leases still held past their soft expiry are
//! reported once each ([`Event::Overdue`]), so an operator can find the code that holds
//! leases too long before the hard expiry revokes them.

use super::{Effects, Event, Manager, Waiter};
use crate::lease::{LeaseId, LeaseTiming};
use crate::metrics::LeaseMetrics;

/// One live lease as [`Manager::lease_views`] shows it.
#[derive(Debug)]
pub struct LeaseView<'a, M> {
    /// Lease id.
    pub id: LeaseId,
    /// Caller metadata.
    pub meta: &'a M,
    /// When it was granted and expires.
    pub timing: LeaseTiming,
    /// A call slot (`run()`), not a pool lease.
    pub slot: bool,
    /// Calls running or queued on it (a slot: its one call).
    pub calls_in_flight: u64,
    /// Released, its last calls still running.
    pub draining: bool,
    /// Reported as held past its soft expiry.
    pub overdue: bool,
}

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Reports (once) every lease and call slot past its soft expiry at `now`. Part
    /// of [`check`](Self::check); the front end's clock rings at
    /// [`next_overdue`](Self::next_overdue).
    pub(super) fn report_overdue(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        let mut reports = Vec::new();
        for (&key, held) in &mut self.leased {
            if !held.overdue && !held.draining && now >= held.timing.soft_expires_at() {
                held.overdue = true;
                let event = overdue_event(held.id, &held.meta, held.timing, now, false);
                reports.push((key, event));
            }
        }
        for (&key, slot) in &mut self.slots {
            if !slot.overdue && now >= slot.timing.soft_expires_at() {
                slot.overdue = true;
                let event = overdue_event(slot.id, &slot.meta, slot.timing, now, true);
                reports.push((key, event));
            }
        }
        // Reported in grant order.
        reports.sort_unstable_by_key(|(key, _)| *key);
        for (_, event) in reports {
            self.note(LeaseMetrics::overdue);
            self.emit(effects, event);
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

    /// Every live lease and call slot, oldest grant first: what an operator looking
    /// for a leak wants to see.
    #[must_use]
    pub fn lease_views(&self) -> Vec<LeaseView<'_, M>> {
        let leases = self.leased.iter().map(|(key, held)| {
            let view = LeaseView {
                id: held.id,
                meta: &held.meta,
                timing: held.timing,
                slot: false,
                calls_in_flight: held.calls_in_flight(),
                draining: held.draining,
                overdue: held.overdue,
            };
            (*key, view)
        });
        let slots = self.slots.iter().map(|(key, slot)| {
            let view = LeaseView {
                id: slot.id,
                meta: &slot.meta,
                timing: slot.timing,
                slot: true,
                calls_in_flight: 1,
                draining: false,
                overdue: slot.overdue,
            };
            (*key, view)
        });
        let mut all: Vec<_> = leases.chain(slots).collect();
        all.sort_unstable_by_key(|(key, _)| *key);
        all.into_iter().map(|(_, view)| view).collect()
    }
}

/// The report of a lease (`slot`: a call slot) found past its soft expiry at `now`.
fn overdue_event<M: Clone>(
    id: LeaseId,
    meta: &M,
    timing: LeaseTiming,
    now: f64,
    slot: bool,
) -> Event<M> {
    Event::Overdue {
        id,
        meta: meta.clone(),
        age: now - timing.leased_at,
        lease_seconds: timing.lease_seconds,
        until_revoked: (timing.hard_expires_at() - now).max(0.0),
        slot,
    }
}
