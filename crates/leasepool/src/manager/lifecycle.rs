//! Starting and stopping the [`Manager`]: `stop` retires every pool, revokes every
//! lease and refuses every waiter.

use super::{Effects, Manager, Waiter};
use crate::metrics::Refusal;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Starts the manager (idempotent) and grows it to `target` pools.
    pub fn start(&mut self, target: usize, effects: &mut Effects<P, M, W>) {
        self.running = true;
        self.ensure_minimum(target, effects);
    }

    /// Stops the manager at `now`: every pool is retired, every lease revoked, every
    /// waiter refused. The metrics count those leases as `leases_stopped` and the
    /// waiters as refused (`Draining`).
    pub fn stop(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        self.note_stop_for_drain();
        self.running = false;
        effects
            .retired
            .extend(self.available.drain(..).map(|idle| idle.pool));
        let mut leased: Vec<_> = self.leased.drain().collect();
        // Shut down in grant order.
        leased.sort_unstable_by_key(|(key, _)| *key);
        for (_, held) in leased {
            held.end();
            let held_for = now - held.timing.leased_at;
            // Counted as stopped, not revoked: `leases_revoked` is the hard expiry's
            // (a shutdown with leases held is not the holders' overrun).
            self.note(|metrics| metrics.stopped(held.owner, held_for));
            effects.retired.push(held.pool);
        }
        effects.retired.extend(self.shared.drain());
        let slots: Vec<_> = self.slots.drain().collect();
        for (_, slot) in slots {
            let held_for = now - slot.timing.leased_at;
            self.note(|metrics| metrics.stopped(slot.owner, held_for));
        }
        self.tenancy.clear();
        self.reset_autoscale();
        self.overtakes = 0;
        self.expiry_floor = f64::INFINITY;
        self.refuse_waiters(effects);
    }

    /// Refuses every queued waiter (the manager stops or drains); returns how many.
    pub(super) fn refuse_waiters(&mut self, effects: &mut Effects<P, M, W>) -> usize {
        let before = effects.refused.len();
        let mut metrics = self.metrics.take();
        effects.refused.extend(self.waiters.drain().map(|queued| {
            if let Some(metrics) = metrics.as_mut() {
                metrics.refused(queued.tenant.owner, Refusal::Draining);
            }
            queued.waiter
        }));
        self.metrics = metrics;
        effects.refused.len() - before
    }
}
