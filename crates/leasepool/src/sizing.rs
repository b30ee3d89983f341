//! Pool-count limits and the sizing rule.
//!
//! `desired = min(max_pools, max(min_pools, ceil(units / units_per_pool)))`, where
//! `units` is the application's load signal (connected devices, queue depth, ...).

use crate::error::ConfigError;
use crate::settings::positive;

/// Validated bounds on how many pools a manager may own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    min_pools: usize,
    max_pools: usize,
    units_per_pool: u64,
}

impl PoolLimits {
    /// Validates the limits in the order leasepool 0.1.1 checked them, so the first
    /// error reported for a bad combination is the same.
    ///
    /// # Errors
    /// The first violated rule, as a [`ConfigError`].
    pub fn new(
        max_pools: i64,
        min_pools: i64,
        units_per_pool: i64,
        workers_per_pool: i64,
    ) -> Result<Self, ConfigError> {
        let max_pools = positive("max_pools", max_pools)?;
        let min_pools = positive("min_pools", min_pools)?;
        let units_per_pool = positive("units_per_pool", units_per_pool)?;
        positive("workers_per_pool", workers_per_pool)?;
        if min_pools > max_pools {
            return Err(ConfigError::MinAboveMax);
        }
        let to_usize = |v: i64| usize::try_from(v).unwrap_or(usize::MAX);
        Ok(Self {
            min_pools: to_usize(min_pools),
            max_pools: to_usize(max_pools),
            units_per_pool: u64::try_from(units_per_pool).unwrap_or(u64::MAX),
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_order_matches_reference() {
        assert_eq!(
            PoolLimits::new(0, 0, 0, 0),
            Err(ConfigError::NotPositive("max_pools"))
        );
        assert_eq!(
            PoolLimits::new(1, 0, 0, 0),
            Err(ConfigError::NotPositive("min_pools"))
        );
        assert_eq!(
            PoolLimits::new(1, 1, 0, 0),
            Err(ConfigError::NotPositive("units_per_pool"))
        );
        assert_eq!(
            PoolLimits::new(1, 1, 1, 0),
            Err(ConfigError::NotPositive("workers_per_pool"))
        );
        assert_eq!(PoolLimits::new(1, 2, 1, 1), Err(ConfigError::MinAboveMax));
    }

    #[test]
    fn desired_rounds_up_and_clamps() {
        let limits = PoolLimits::new(10, 1, 10, 4).unwrap();
        assert_eq!(limits.desired(0), 1);
        assert_eq!(limits.desired(1), 1);
        assert_eq!(limits.desired(10), 1);
        assert_eq!(limits.desired(11), 2);
        assert_eq!(limits.desired(95), 10);
        assert_eq!(limits.desired(u64::MAX), 10);
        let floor = PoolLimits::new(5, 3, 10, 1).unwrap();
        assert_eq!(floor.desired(0), 3);
    }
}
