//! Typed errors of the engine. Their `Display` text is the exact message leasepool
//! 0.1.1 used, because the Python binding raises them verbatim.

use std::fmt;

/// A rejected configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// `max_pools <= 0`.
    MaxPools,
    /// `min_pools <= 0`.
    MinPools,
    /// `units_per_pool <= 0`.
    UnitsPerPool,
    /// `workers_per_pool <= 0`.
    WorkersPerPool,
    /// `min_pools > max_pools`.
    MinAboveMax,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MaxPools => "max_pools must be > 0",
            Self::MinPools => "min_pools must be > 0",
            Self::UnitsPerPool => "units_per_pool must be > 0",
            Self::WorkersPerPool => "workers_per_pool must be > 0",
            Self::MinAboveMax => "min_pools cannot be greater than max_pools",
        })
    }
}

impl std::error::Error for ConfigError {}

/// Why a lease could not be granted or used.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseError {
    /// The manager is not running.
    NotStarted,
    /// Every pool is leased and the caller asked not to wait.
    Unavailable {
        /// The configured cap that was reached.
        max_pools: usize,
    },
    /// `lease_seconds` was not a positive number.
    InvalidLeaseSeconds,
    /// The lease was released or revoked earlier.
    Inactive,
    /// The lease passed its hard expiry; it has now been revoked.
    ExpiredRevoked,
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStarted => f.write_str("LeasedExecutorManager is not started"),
            Self::Unavailable { max_pools } => {
                write!(f, "No executor available; max_pools={max_pools} reached")
            }
            Self::InvalidLeaseSeconds => f.write_str("lease_seconds must be > 0"),
            Self::Inactive => f.write_str("Executor lease is no longer active"),
            Self::ExpiredRevoked => f.write_str("Executor lease expired and was revoked"),
        }
    }
}

impl std::error::Error for LeaseError {}
