//! Range rules for configuration values, one place for every front end.
//!
//! A front end turns its own input into numbers (the Python binding rejects `bool`,
//! takes counts through `operator.index` and durations through `float()`, as
//! leasepool 0.1.3 does) and asks these functions whether the numbers are usable.
//! Front ends word the errors (the Python binding with 0.1.3's messages).

use crate::error::{ConfigError, LeaseError};

/// A count option (`max_pools`, `workers_per_pool`, a batch size...): must be `> 0`.
///
/// # Errors
/// [`ConfigError::NotPositive`] naming the option.
pub fn positive(name: &'static str, value: i64) -> Result<i64, ConfigError> {
    if value <= 0 {
        return Err(ConfigError::NotPositive(name));
    }
    Ok(value)
}

/// A duration in seconds: finite, and `> 0` (or `>= 0` with `allow_zero`).
///
/// A NaN grace made leases never expire, an infinite one never revoked them, a
/// negative one revoked them at once, and a zero check interval made the checker
/// spin: all are refused here, at construction, not at first use.
///
/// # Errors
/// [`ConfigError::NotFiniteSeconds`], [`ConfigError::NotPositiveSeconds`] or
/// [`ConfigError::NegativeSeconds`] naming the option.
pub fn seconds(name: &'static str, value: f64, allow_zero: bool) -> Result<f64, ConfigError> {
    if !value.is_finite() {
        return Err(ConfigError::NotFiniteSeconds { name, allow_zero });
    }
    if allow_zero {
        if value < 0.0 {
            return Err(ConfigError::NegativeSeconds(name));
        }
    } else if value <= 0.0 {
        return Err(ConfigError::NotPositiveSeconds(name));
    }
    Ok(value)
}

/// The `lease_seconds` of one acquire: finite and `> 0`.
///
/// # Errors
/// [`LeaseError::NonFiniteLeaseSeconds`] or [`LeaseError::InvalidLeaseSeconds`].
pub fn lease_seconds(value: f64) -> Result<f64, LeaseError> {
    if !value.is_finite() {
        return Err(LeaseError::NonFiniteLeaseSeconds);
    }
    if value <= 0.0 {
        return Err(LeaseError::InvalidLeaseSeconds);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_must_be_positive() {
        assert_eq!(positive("max_pools", 1), Ok(1));
        assert_eq!(
            positive("max_pools", 0),
            Err(ConfigError::NotPositive("max_pools"))
        );
        assert_eq!(
            positive("max_pools", -3).unwrap_err().to_string(),
            "`max_pools` must be at least 1"
        );
    }

    #[test]
    fn durations_must_be_finite_and_in_range() {
        assert_eq!(seconds("check_interval", 0.5, false), Ok(0.5));
        assert_eq!(seconds("lease_grace_seconds", 0.0, true), Ok(0.0));
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(
                seconds("check_interval", bad, false)
                    .unwrap_err()
                    .to_string(),
                "`check_interval` must be a finite duration"
            );
            assert_eq!(
                seconds("lease_grace_seconds", bad, true)
                    .unwrap_err()
                    .to_string(),
                "`lease_grace_seconds` must be a finite duration"
            );
        }
        assert_eq!(
            seconds("check_interval", 0.0, false)
                .unwrap_err()
                .to_string(),
            "`check_interval` must be a positive duration"
        );
        assert_eq!(
            seconds("lease_grace_seconds", -1.0, true)
                .unwrap_err()
                .to_string(),
            "`lease_grace_seconds` must not be negative"
        );
    }

    #[test]
    fn lease_seconds_must_be_finite_and_positive() {
        assert_eq!(lease_seconds(30.0), Ok(30.0));
        assert_eq!(lease_seconds(0.0), Err(LeaseError::InvalidLeaseSeconds));
        assert_eq!(
            lease_seconds(f64::NAN),
            Err(LeaseError::NonFiniteLeaseSeconds)
        );
        assert_eq!(
            lease_seconds(f64::INFINITY),
            Err(LeaseError::NonFiniteLeaseSeconds)
        );
    }
}
