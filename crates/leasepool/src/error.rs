//! Typed errors of the engine. Their `Display` text is neutral (no front end's names)
//! and, where 0.1.3 worded the same condition without naming a Python class, the
//! same; the Python binding maps the rest to 0.1.3's messages (`errors.rs` there).

use std::fmt;

/// A rejected configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnInteger(name) => write!(f, "{name} must be an integer > 0"),
            Self::NotPositive(name) | Self::NotPositiveSeconds(name) => {
                write!(f, "{name} must be > 0")
            }
            Self::NotFiniteSeconds { name, allow_zero } => {
                let bound = if *allow_zero { ">= 0" } else { "> 0" };
                write!(f, "{name} must be a finite number {bound}")
            }
            Self::NegativeSeconds(name) => write!(f, "{name} must be >= 0"),
            Self::MinAboveMax => f.write_str("min_pools cannot be greater than max_pools"),
        }
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
    /// `lease_seconds` was NaN or infinite.
    NonFiniteLeaseSeconds,
    /// The lease was released or revoked earlier.
    Inactive,
    /// The lease was released and is draining its calls in flight.
    Released,
    /// The lease passed its hard expiry; it has now been revoked.
    ExpiredRevoked,
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStarted => f.write_str("the lease manager is not started"),
            Self::Unavailable { max_pools } => {
                write!(f, "No executor available; max_pools={max_pools} reached")
            }
            Self::InvalidLeaseSeconds => f.write_str("lease_seconds must be > 0"),
            Self::NonFiniteLeaseSeconds => f.write_str("lease_seconds must be a finite number > 0"),
            Self::Inactive => f.write_str("Executor lease is no longer active"),
            Self::Released => f.write_str("Executor lease has been released"),
            Self::ExpiredRevoked => f.write_str("Executor lease expired and was revoked"),
        }
    }
}

impl std::error::Error for LeaseError {}
