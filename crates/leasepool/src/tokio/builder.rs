//! [`Builder`]: every option of a [`LeaseManager`] in one place, checked when the
//! manager is built.

use std::time::Duration;

use super::LeaseManager;
use crate::admission::AdmissionPolicy;
use crate::autoscale::AutoScalePolicy;
use crate::error::ConfigError;
use crate::manager::Manager;
use crate::sizing::PoolLimitsBuilder;
use crate::PoolLimits;

/// The lease time when the builder is not told one: 0.1.3's `lease_seconds`
/// default.
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(300);

/// Builds a [`LeaseManager`]; start with [`LeaseManager::builder`].
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use leasepool::tokio::LeaseManager;
/// use leasepool::AdmissionPolicy;
///
/// let manager = LeaseManager::builder(4)
///     .min_pools(1)
///     .lease_time(Duration::from_secs(30))
///     .lease_grace(Duration::from_secs(5))
///     .admission(AdmissionPolicy::default().max_waiters(Some(64)))
///     .metrics(16)
///     .build(|seq| format!("client-{seq}"))?;
/// let lease = manager.acquire().await?;
/// assert_eq!(lease.pool(), "client-1");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    limits: PoolLimitsBuilder,
    lease_time: Duration,
    admission: Option<AdmissionPolicy>,
    metrics: Option<usize>,
    autoscale: Option<AutoScalePolicy>,
}

impl Builder {
    pub(super) fn new(max_pools: usize) -> Self {
        Self {
            limits: PoolLimits::builder(max_pools),
            lease_time: DEFAULT_LEASE_TIME,
            admission: None,
            metrics: None,
            autoscale: None,
        }
    }

    /// Pools kept even when idle (default 0; at most `max_pools`).
    pub fn min_pools(mut self, min_pools: usize) -> Self {
        self.limits = self.limits.min_pools(min_pools);
        self
    }

    /// Load units one pool serves, for [`LeaseManager::set_load`] (default 1).
    pub fn units_per_pool(mut self, units: u64) -> Self {
        self.limits = self.limits.units_per_pool(units);
        self
    }

    /// How long a lease lasts unless the caller says otherwise
    /// ([`acquire_for`](LeaseManager::acquire_for)); default
    /// [`DEFAULT_LEASE_TIME`]. Must not be zero.
    pub fn lease_time(mut self, lease_time: Duration) -> Self {
        self.lease_time = lease_time;
        self
    }

    /// How long past its lease time a lease is left before it is revoked.
    pub fn lease_grace(mut self, grace: Duration) -> Self {
        self.limits = self.limits.lease_grace(grace);
        self
    }

    /// How long a pool above the target stays idle before it is retired (default
    /// zero: at once).
    pub fn idle_pool_timeout(mut self, timeout: Duration) -> Self {
        self.limits = self.limits.idle_pool_timeout(timeout);
        self
    }

    /// The admission policy (see [`crate::admission`]); default: unbounded strict
    /// FIFO.
    pub fn admission(mut self, policy: AdmissionPolicy) -> Self {
        self.admission = Some(policy);
        self
    }

    /// Turns the metrics on, with a per-owner breakdown of `owners` named owners
    /// (see [`LeaseManager::with_metrics`]).
    pub fn metrics(mut self, owners: usize) -> Self {
        self.metrics = Some(owners);
        self
    }

    /// Turns the built-in adaptive sizing on (see [`LeaseManager::with_autoscale`]).
    pub fn autoscale(mut self, policy: AutoScalePolicy) -> Self {
        self.autoscale = Some(policy);
        self
    }

    /// A started manager that creates its pools with `factory(seq)` (seq = 1, 2,
    /// ...). The factory runs under the manager's lock: it must be cheap and must
    /// not block (start expensive resources lazily).
    ///
    /// # Errors
    /// [`ConfigError`] for limits out of range (`max_pools` zero, `min_pools` above
    /// it), a zero lease time, or an admission policy the limits cannot honour.
    pub fn build<P: Clone + Send + 'static>(
        self,
        factory: impl FnMut(u64) -> P + Send + 'static,
    ) -> Result<LeaseManager<P>, ConfigError> {
        let limits = self.limits.build()?;
        if self.lease_time.is_zero() {
            return Err(ConfigError::NotPositiveSeconds("lease_time"));
        }
        let policy = self.admission.unwrap_or_default();
        let engine = Manager::with_admission(limits, policy, Box::new(factory))?;
        let mut manager = LeaseManager::started(engine, limits, self.lease_time);
        if let Some(owners) = self.metrics {
            manager = manager.with_metrics(owners);
        }
        if let Some(policy) = self.autoscale {
            manager = manager.with_autoscale(policy);
        }
        Ok(manager)
    }
}
