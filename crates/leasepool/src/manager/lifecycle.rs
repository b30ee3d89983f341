//! Starting and stopping the [`Manager`]: `stop` retires every pool, revokes every
//! lease and refuses every waiter.

use super::{Effects, Manager, Waiter};
use crate::sync::Ordering;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Starts the manager (idempotent) and grows it to `target` pools.
    pub fn start(&mut self, target: usize, effects: &mut Effects<P, M, W>) {
        self.running = true;
        self.ensure_minimum(target, effects);
    }

    /// Stops the manager: every pool is retired, every lease revoked, every waiter refused.
    pub fn stop(&mut self, effects: &mut Effects<P, M, W>) {
        self.note_stop_for_drain();
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
        self.tenancy.clear();
        self.overtakes = 0;
        self.expiry_floor = f64::INFINITY;
        effects
            .refused
            .extend(self.waiters.drain().map(|queued| queued.waiter));
    }
}
