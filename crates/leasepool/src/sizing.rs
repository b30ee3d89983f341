//! Pool-count limits and the sizing rule.
//!
//! `desired = min(max_pools, max(min_pools, ceil(units / units_per_pool)))`, where
//! `units` is the application's load signal (connected devices, queue depth, ...).

use std::time::Duration;

use crate::error::ConfigError;

/// Validated bounds and timings of a manager's pools; see [`PoolLimits::builder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    min_pools: usize,
    max_pools: usize,
    units_per_pool: u64,
    slots_per_pool: usize,
    lease_grace: Duration,
    idle_pool_timeout: Duration,
}

/// Builds [`PoolLimits`]; every setting but `max_pools` has a default.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct PoolLimitsBuilder {
    limits: PoolLimits,
}

impl PoolLimits {
    /// Limits of at most `max_pools` pools, with defaults for the rest: at least one
    /// pool, 10 load units per pool, one call slot per pool, a 15 s grace after a
    /// lease's expiry, and pools above the target retired as soon as they are idle.
    pub fn builder(max_pools: usize) -> PoolLimitsBuilder {
        PoolLimitsBuilder {
            limits: Self {
                min_pools: 1,
                max_pools,
                units_per_pool: 10,
                slots_per_pool: 1,
                lease_grace: Duration::from_secs(15),
                idle_pool_timeout: Duration::ZERO,
            },
        }
    }

    /// How many concurrent calls one pool hosts (its worker count): the call slots a
    /// pool offers to one-call leases.
    #[must_use]
    pub fn slots_per_pool(&self) -> usize {
        self.slots_per_pool
    }

    /// How long past its expiry a lease keeps its pool before it is revoked.
    #[must_use]
    pub fn lease_grace(&self) -> Duration {
        self.lease_grace
    }

    /// How long a pool above the sizing target may stay idle before it is retired.
    #[must_use]
    pub fn idle_pool_timeout(&self) -> Duration {
        self.idle_pool_timeout
    }

    /// Lower bound on the pool count.
    #[must_use]
    pub fn min_pools(&self) -> usize {
        self.min_pools
    }

    /// Upper bound on the pool count.
    #[must_use]
    pub fn max_pools(&self) -> usize {
        self.max_pools
    }

    /// How many load units one pool serves.
    #[must_use]
    pub fn units_per_pool(&self) -> u64 {
        self.units_per_pool
    }

    /// The target pool count for a load of `units`.
    #[must_use]
    pub fn desired(&self, units: u64) -> usize {
        let by_load = usize::try_from(units.div_ceil(self.units_per_pool)).unwrap_or(usize::MAX);
        by_load.max(self.min_pools).min(self.max_pools)
    }
}

impl PoolLimitsBuilder {
    /// The fewest pools the manager keeps (default 1).
    pub fn min_pools(mut self, min_pools: usize) -> Self {
        self.limits.min_pools = min_pools;
        self
    }

    /// How many load units one pool serves (default 10).
    pub fn units_per_pool(mut self, units_per_pool: u64) -> Self {
        self.limits.units_per_pool = units_per_pool;
        self
    }

    /// How many concurrent calls one pool hosts (default 1).
    pub fn slots_per_pool(mut self, slots_per_pool: usize) -> Self {
        self.limits.slots_per_pool = slots_per_pool;
        self
    }

    /// How long past its expiry a lease keeps its pool (default 15 s).
    pub fn lease_grace(mut self, grace: Duration) -> Self {
        self.limits.lease_grace = grace;
        self
    }

    /// How long a pool above the target may idle before retirement (default 0).
    pub fn idle_pool_timeout(mut self, timeout: Duration) -> Self {
        self.limits.idle_pool_timeout = timeout;
        self
    }

    /// Checks the counts in the order leasepool 0.1.1 checked them (so the first
    /// error reported for a bad combination is the same).
    ///
    /// # Errors
    /// The first violated rule, as a [`ConfigError`].
    pub fn build(self) -> Result<PoolLimits, ConfigError> {
        let limits = self.limits;
        let counts = [
            ("max_pools", limits.max_pools as u64),
            ("min_pools", limits.min_pools as u64),
            ("units_per_pool", limits.units_per_pool),
            ("workers_per_pool", limits.slots_per_pool as u64),
        ];
        if let Some((name, _)) = counts.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::NotPositive(name));
        }
        if limits.min_pools > limits.max_pools {
            return Err(ConfigError::MinAboveMax);
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(max: usize, min: usize, units: u64, slots: usize) -> Result<PoolLimits, ConfigError> {
        PoolLimits::builder(max)
            .min_pools(min)
            .units_per_pool(units)
            .slots_per_pool(slots)
            .build()
    }

    #[test]
    fn validation_order_matches_reference() {
        assert_eq!(
            counts(0, 0, 0, 0),
            Err(ConfigError::NotPositive("max_pools"))
        );
        assert_eq!(
            counts(1, 0, 0, 0),
            Err(ConfigError::NotPositive("min_pools"))
        );
        assert_eq!(
            counts(1, 1, 0, 0),
            Err(ConfigError::NotPositive("units_per_pool"))
        );
        assert_eq!(
            counts(1, 1, 1, 0),
            Err(ConfigError::NotPositive("workers_per_pool"))
        );
        assert_eq!(counts(1, 2, 1, 1), Err(ConfigError::MinAboveMax));
    }

    #[test]
    fn builder_defaults() {
        let limits = PoolLimits::builder(3).build().unwrap();
        assert_eq!((limits.min_pools(), limits.max_pools()), (1, 3));
        assert_eq!((limits.units_per_pool(), limits.slots_per_pool()), (10, 1));
        assert_eq!(limits.lease_grace(), Duration::from_secs(15));
        assert_eq!(limits.idle_pool_timeout(), Duration::ZERO);
    }

    #[test]
    fn desired_rounds_up_and_clamps() {
        let limits = counts(10, 1, 10, 4).unwrap();
        assert_eq!(limits.desired(0), 1);
        assert_eq!(limits.desired(1), 1);
        assert_eq!(limits.desired(10), 1);
        assert_eq!(limits.desired(11), 2);
        assert_eq!(limits.desired(95), 10);
        assert_eq!(limits.desired(u64::MAX), 10);
        let floor = counts(5, 3, 10, 1).unwrap();
        assert_eq!(floor.desired(0), 3);
    }
}
