//! Where pools come from and where they go: growth to the target, taking the warmest
//! free pool, keeping or retiring a freed one, and idle retirement above the target
//! (see the module docs, "Idle retirement").

use super::{Effects, Event, Idle, Manager, Waiter};
use crate::slots::PoolSeq;

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// When the next idle pool above `target` is due for retirement, if any.
    #[must_use]
    pub fn next_idle_retirement(&self, target: usize) -> Option<f64> {
        let target = self.sized(target);
        if self.total_count() <= target.min(self.limits.max_pools()) {
            return None;
        }
        self.available
            .front()
            .map(|idle| idle.since + self.idle_pool_seconds)
    }

    /// A pool nobody uses any more: kept (to the oldest waiter, under the target, or
    /// to idle out) or retired. `expired`: its last holder passed its hard expiry.
    pub(super) fn free_pool(
        &mut self,
        pool: P,
        seq: PoolSeq,
        expired: bool,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) -> bool {
        let target = self.sized(target);
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

    /// Retires free pools above `target`, coldest first, once idle long enough.
    pub(super) fn retire_idle_surplus(
        &mut self,
        now: f64,
        target: usize,
        effects: &mut Effects<P, M, W>,
    ) {
        let target = self.sized(target);
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

    /// Creates pools until the manager owns `target` of them (at most `max_pools`).
    pub(super) fn ensure_minimum(&mut self, target: usize, effects: &mut Effects<P, M, W>) {
        let target = self.sized(target).min(self.limits.max_pools());
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
    pub(super) fn pool_obtainable(&self) -> bool {
        !self.available.is_empty() || self.total_count() < self.limits.max_pools()
    }

    /// A pool for a new lease: the warmest free one, else a new one while under
    /// `max_pools`; `None` if neither.
    pub(super) fn take_pool(&mut self, effects: &mut Effects<P, M, W>) -> Option<(P, PoolSeq)> {
        self.note_demand(1, effects);
        // The warmest pool (most recently released): its threads are running and
        // the cold end can age out (see "Idle retirement").
        if let Some(idle) = self.available.pop_back() {
            return Some((idle.pool, idle.seq));
        }
        (self.total_count() < self.limits.max_pools()).then(|| self.create_pool(effects))
    }

    /// Builds the next pool with the factory, under the lock (hence
    /// [`PoolFactory`](super::PoolFactory)'s "cheap, must not block").
    fn create_pool(&mut self, effects: &mut Effects<P, M, W>) -> (P, PoolSeq) {
        self.pool_seq += 1;
        self.emit(effects, Event::Created { seq: self.pool_seq });
        self.note(crate::metrics::LeaseMetrics::pool_created);
        ((self.factory)(self.pool_seq), self.pool_seq)
    }
}
