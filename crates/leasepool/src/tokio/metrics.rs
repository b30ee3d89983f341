//! Metrics of a [`LeaseManager`]: opt-in counters and histograms recorded by the
//! engine under its own lock ([`crate::metrics`]), owner labels for the per-owner
//! breakdown, and the gauges (the state at one moment), which need no opt-in.

use super::{lock, LeaseManager};
use crate::admission::OwnerKey;
use crate::metrics::LeaseMetricsSnapshot;

/// The pools and waiters of a [`LeaseManager`] at one moment, read under one lock
/// (so they agree with each other, unlike separate calls to
/// [`counts`](LeaseManager::counts) and [`waiting`](LeaseManager::waiting)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Pools free to lease.
    pub pools_available: usize,
    /// Pools leased (here one per live lease).
    pub pools_leased: usize,
    /// Pools owned: available plus leased.
    pub pools_total: usize,
    /// The pool count the load signal asks for now
    /// ([`set_load`](LeaseManager::set_load)), which [`check`](LeaseManager::check)
    /// grows to and idles down to.
    pub pools_desired: usize,
    /// Callers waiting for a pool.
    pub waiters: usize,
}

impl<P: Clone + Send + 'static> LeaseManager<P> {
    /// Turns the metrics on (a builder step: `LeaseManager::new(..).with_metrics(16)`,
    /// or after [`with_admission`](Self::with_admission)); read them with
    /// [`metrics`](Self::metrics). `owners`: how many owners get an entry of their
    /// own in the per-owner breakdown (0: no breakdown); owners are those named with
    /// [`name_owner`](Self::name_owner), the rest are summed in `others`.
    ///
    /// Counting starts here, so call it on the new manager, before it is cloned or
    /// used; the pools it made at construction count as created. Calling it again
    /// starts counting afresh.
    ///
    /// Recording costs no atomic instruction and no extra lock: the engine counts
    /// under the lock it takes anyway.
    #[must_use]
    pub fn with_metrics(self, owners: usize) -> Self {
        lock(&self.shared.engine).enable_metrics(owners);
        self
    }

    /// What was counted since [`with_metrics`](Self::with_metrics) (`None` without
    /// it): leases granted, released, revoked at their hard expiry, ended by
    /// [`stop`](Self::stop) or a [`drain`](Self::drain)'s deadline, overdue (held past
    /// their soft expiry: counted by [`check`](Self::check)); requests refused by
    /// reason and [`acquire_timeout`](Self::acquire_timeout)s that timed out; pools
    /// created and retired; the acquire-wait and lease-hold histograms (nanoseconds,
    /// on the engine's clock); the per-owner breakdown.
    #[must_use]
    pub fn metrics(&self) -> Option<LeaseMetricsSnapshot> {
        lock(&self.shared.engine).metrics()
    }

    /// Gives the owner key `owner` (a [`Tenant::owner`](crate::Tenant::owner)) the
    /// label `label` in the per-owner breakdown, if it has none yet and the
    /// breakdown has room (see [`with_metrics`](Self::with_metrics)); a no-op
    /// otherwise. Cheap to call on every request: the label is converted only when
    /// the owner is new.
    pub fn name_owner(&self, owner: OwnerKey, label: impl Into<String>) {
        if let Some(metrics) = lock(&self.shared.engine).metrics_mut() {
            metrics.name_owner(owner, || label.into());
        }
    }

    /// The pools and waiters now (see [`Gauges`]); available with or without
    /// [`with_metrics`](Self::with_metrics).
    #[must_use]
    pub fn gauges(&self) -> Gauges {
        let engine = lock(&self.shared.engine);
        Gauges {
            pools_available: engine.available_count(),
            pools_leased: engine.leased_count(),
            pools_total: engine.total_count(),
            pools_desired: self.shared.target(&engine),
            waiters: engine.waiter_count(),
        }
    }
}
