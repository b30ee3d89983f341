//! Typed errors of the engine. Their `Display` text is neutral (no front end's names)
//! and, where 0.1.3 worded the same condition without naming a Python class, the
//! same; the Python binding maps the rest to 0.1.3's messages (`errors.rs` there).

use std::fmt;

/// A rejected configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A count option that is not an integer (a `bool`, a float, a string).
    NotAnInteger(&'static str),
    /// A count option `<= 0`.
    NotPositive(&'static str),
    /// A duration that is not a finite number (NaN, infinity, not a number at all);
    /// `allow_zero` tells which bound the message names.
    NotFiniteSeconds {
        /// The option's name.
        name: &'static str,
        /// `0` is allowed (a grace period).
        allow_zero: bool,
    },
    /// A duration `<= 0` where it must be positive.
    NotPositiveSeconds(&'static str),
    /// A duration `< 0` where `0` is allowed.
    NegativeSeconds(&'static str),
    /// `min_pools > max_pools`.
    MinAboveMax,
    /// The reserved pools leave none for unreserved callers.
    ReservedTooMany,
    /// Routing thresholds out of order: `0 <= to_thread_share < to_process_share <= 1`
    /// does not hold.
    SharesOutOfOrder,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Front ends word these for their users (the Python binding uses
        // leasepool 0.1.3's messages); these are the engine's own.
        match self {
            Self::NotAnInteger(name) => write!(f, "`{name}` is not a whole number"),
            Self::NotPositive(name) => write!(f, "`{name}` must be at least 1"),
            Self::NotPositiveSeconds(name) => write!(f, "`{name}` must be a positive duration"),
            Self::NotFiniteSeconds { name, .. } => write!(f, "`{name}` must be a finite duration"),
            Self::NegativeSeconds(name) => write!(f, "`{name}` must not be negative"),
            Self::MinAboveMax => f.write_str("`min_pools` exceeds `max_pools`"),
            Self::ReservedTooMany => {
                f.write_str("the reserved pools must leave at least one pool unreserved")
            }
            Self::SharesOutOfOrder => f.write_str(
                "routing shares must satisfy 0 <= to_thread_share < to_process_share <= 1",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Why a lease could not be granted or used.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LeaseError {
    /// The manager is not running.
    NotStarted,
    /// No pool could be granted at once and the caller asked not to wait.
    Unavailable {
        /// The configured cap that was reached.
        max_pools: usize,
        /// Seconds until capacity is likely (see [`crate::admission::RetryEstimator`]).
        retry_after: f64,
    },
    /// The caller would have waited, but as many callers as allowed already wait.
    QueueFull {
        /// The configured bound on waiters.
        max_waiters: usize,
        /// Seconds until capacity is likely.
        retry_after: f64,
    },
    /// `lease_seconds` was not a positive number.
    InvalidLeaseSeconds,
    /// `lease_seconds` was NaN or infinite.
    NonFiniteLeaseSeconds,
    /// The lease was released or revoked earlier.
    Inactive,
    /// The lease was released and is draining its calls in flight.
    Released,
    /// The lease passed its hard expiry; it has now been revoked.
    ExpiredRevoked,
    /// The manager is draining (graceful shutdown): it grants nothing any more.
    Draining,
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStarted => f.write_str("the lease manager is not started"),
            Self::Unavailable { max_pools, .. } => {
                write!(f, "all {max_pools} pools are leased")
            }
            Self::QueueFull { max_waiters, .. } => {
                write!(f, "{max_waiters} callers are already waiting for a pool")
            }
            Self::InvalidLeaseSeconds => f.write_str("the lease duration must be positive"),
            Self::NonFiniteLeaseSeconds => f.write_str("the lease duration must be finite"),
            Self::Inactive => f.write_str("the lease is no longer active"),
            Self::Released => f.write_str("the lease was released"),
            Self::ExpiredRevoked => f.write_str("the lease expired and was revoked"),
            Self::Draining => f.write_str("the lease manager is draining"),
        }
    }
}

impl LeaseError {
    /// For a refusal that sheds load, how long until capacity is likely (e.g. for
    /// an HTTP 503's `Retry-After`).
    #[must_use]
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.retry_after_seconds()
            .map(|seconds| std::time::Duration::try_from_secs_f64(seconds).unwrap_or_default())
    }

    /// [`retry_after`](Self::retry_after) in seconds, as the engine estimates it.
    #[must_use]
    pub fn retry_after_seconds(&self) -> Option<f64> {
        match self {
            Self::Unavailable { retry_after, .. } | Self::QueueFull { retry_after, .. } => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

impl std::error::Error for LeaseError {}
