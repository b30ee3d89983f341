//! The built-in adaptive sizing wired into the state machine (see
//! [`crate::autoscale`]): demand is observed where it rises (a pool taken into use,
//! a caller queued), waits where waiters are served, and the controller's target
//! raises the front end's sizing target wherever the manager uses one.

use super::{Effects, Event, Manager, Waiter};
use crate::autoscale::{AutoScalePolicy, AutoScaleView, AutoScaler, Resize};

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// Lets the controller set the sizing target from here on (the target the front
    /// end passes becomes a floor). Replaces an earlier policy.
    pub fn enable_autoscale(&mut self, policy: AutoScalePolicy) {
        self.autoscaler = Some(AutoScaler::new(policy, &self.limits));
    }

    /// What the controller saw and decided, if autoscaling is on.
    #[must_use]
    pub fn autoscale(&self) -> Option<AutoScaleView> {
        self.autoscaler.as_ref().map(AutoScaler::view)
    }

    /// When the front end should run [`check`](Self::check) for the controller's
    /// next window, if autoscaling is on and running.
    #[must_use]
    pub fn next_autoscale_tick(&self) -> Option<f64> {
        self.autoscaler
            .as_ref()
            .filter(|_| self.running)
            .and_then(AutoScaler::next_tick)
    }

    /// The sizing target in force: the front end's, raised to the controller's.
    pub(super) fn sized(&self, target: usize) -> usize {
        self.autoscaler
            .as_ref()
            .map_or(target, |scaler| target.max(scaler.target()))
    }

    /// Pools in use plus callers waiting for capacity (what the controller calls
    /// demand); `extra`: pools just taken but not yet recorded as in use. Waiters count
    /// only when no pool is free or creatable: otherwise they wait for their own
    /// limits (an owner limit, a class quota), and pools made for them would idle.
    fn demand(&self, extra: usize) -> usize {
        let waiting = if self.pool_obtainable() {
            0
        } else {
            self.waiters.len()
        };
        self.leased.len() + self.shared.len() + waiting + extra
    }

    /// A stopped manager forgets what its autoscaler learnt: a restart begins at
    /// `min_pools` with a fresh window.
    pub(super) fn reset_autoscale(&mut self) {
        if let Some(scaler) = self.autoscaler.as_mut() {
            *scaler = AutoScaler::new(*scaler.policy(), &self.limits);
        }
    }

    /// Demand may have risen (`extra` pools are being taken into use).
    pub(super) fn note_demand(&mut self, extra: usize, effects: &mut Effects<P, M, W>) {
        if self.autoscaler.is_none() {
            return;
        }
        let demand = self.demand(extra);
        let resize = self
            .autoscaler
            .as_mut()
            .and_then(|scaler| scaler.observe_demand(demand));
        push_resize(resize, effects);
    }

    /// A waiter was served after `waited` seconds.
    pub(super) fn note_wait(&mut self, waited: f64) {
        if let Some(scaler) = self.autoscaler.as_mut() {
            scaler.observe_wait(waited);
        }
    }

    /// The periodic check's turn of the controller: closes the window if it ended.
    pub(super) fn autoscale_tick(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        let demand = self.demand(0);
        let resize = self
            .autoscaler
            .as_mut()
            .and_then(|scaler| scaler.tick(now, demand));
        push_resize(resize, effects);
    }
}

fn push_resize<M>(resize: Option<Resize>, effects: &mut Effects<impl Sized, M, impl Sized>) {
    if let Some(Resize { from, to, reason }) = resize {
        effects.events.push(Event::Resized { from, to, reason });
    }
}
