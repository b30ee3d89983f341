//! A bounded wait for a lease: [`LeaseManager::acquire_timeout`]. Unlike a
//! `tokio::time::timeout` around [`acquire`](LeaseManager::acquire) (a cancellation,
//! which the manager cannot tell from any other), the manager knows the caller gave
//! up because time ran out: the waiter leaves the queue through
//! [`Manager::time_out_waiter`](crate::Manager::time_out_waiter), which counts it in
//! the metrics' `acquire_timeouts` and serves the waiters it held back, and the
//! caller gets a `retry_after` estimate.

use std::fmt;
use std::time::Duration;

use super::{Lease, LeaseManager};
use crate::admission::Tenant;
use crate::LeaseError;

/// Why [`LeaseManager::acquire_timeout`] returned without a lease.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AcquireError {
    /// Refused or failed as [`LeaseManager::acquire_as`] would be.
    Lease(LeaseError),
    /// No pool was granted in time; the request left the queue.
    TimedOut {
        /// How long until capacity is likely (as [`LeaseError::retry_after`]).
        retry_after: Duration,
    },
}

impl AcquireError {
    /// For a timeout or a refusal that sheds load, how long until capacity is
    /// likely (e.g. for an HTTP 503's `Retry-After`).
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Lease(error) => error.retry_after(),
            Self::TimedOut { retry_after } => Some(*retry_after),
        }
    }
}

impl From<LeaseError> for AcquireError {
    fn from(error: LeaseError) -> Self {
        Self::Lease(error)
    }
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lease(error) => error.fmt(f),
            Self::TimedOut { .. } => f.write_str("timed out waiting for a pool"),
        }
    }
}

impl std::error::Error for AcquireError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Lease(error) => Some(error),
            Self::TimedOut { .. } => None,
        }
    }
}

impl<P: Clone + Send + 'static> LeaseManager<P> {
    /// [`acquire`](Self::acquire), waiting at most `timeout` (on tokio's clock, so a
    /// paused test clock governs it).
    ///
    /// # Errors
    /// [`AcquireError::TimedOut`] (counted in the metrics' `acquire_timeouts`), or
    /// [`AcquireError::Lease`] with what [`acquire`](Self::acquire) fails with.
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`acquire`](Self::acquire). A grant that races the timeout
    /// wins: the lease is returned, not lost.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use leasepool::tokio::{AcquireError, LeaseManager};
    ///
    /// let manager = LeaseManager::builder(1).build(|seq| seq).unwrap();
    /// let held = manager.acquire().await.unwrap();
    /// match manager.acquire_timeout(Duration::from_millis(250)).await {
    ///     Err(AcquireError::TimedOut { retry_after }) => assert!(retry_after > Duration::ZERO),
    ///     other => panic!("the only pool is held: {other:?}"),
    /// }
    /// # drop(held);
    /// # }
    /// ```
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Lease<P>, AcquireError> {
        self.acquire_as_timeout(Tenant::default(), None, timeout)
            .await
    }

    /// [`acquire_as`](Self::acquire_as) for `tenant`, waiting at most `timeout` (see
    /// [`acquire_timeout`](Self::acquire_timeout)).
    ///
    /// # Errors
    /// As [`acquire_timeout`](Self::acquire_timeout), and those of
    /// [`acquire_as`](Self::acquire_as) in [`AcquireError::Lease`].
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`acquire`](Self::acquire).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use leasepool::Tenant;
    /// # let manager = leasepool::tokio::LeaseManager::builder(1).build(|seq| seq).unwrap();
    /// let checkout = Tenant { owner: Some(7), priority: 1, ..Tenant::default() };
    /// let lease = manager
    ///     .acquire_as_timeout(checkout, Some(Duration::from_secs(5)), Duration::from_millis(250))
    ///     .await
    ///     .unwrap();
    /// assert_eq!(lease.lease_time(), Duration::from_secs(5));
    /// # }
    /// ```
    pub async fn acquire_as_timeout(
        &self,
        tenant: Tenant,
        lease_time: Option<Duration>,
        timeout: Duration,
    ) -> Result<Lease<P>, AcquireError> {
        // Too far to represent: no deadline.
        let until = tokio::time::Instant::now().checked_add(timeout);
        self.acquire_until(tenant, lease_time, until).await
    }
}
