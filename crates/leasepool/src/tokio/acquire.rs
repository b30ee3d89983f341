//! Getting a lease: served at once (the hot path: one lock, no allocation), or
//! queued for FIFO hand-off (a oneshot channel, built under the same lock, so
//! nobody takes the caller's place in between).
//!
//! Who answers a queued caller is decided by queue membership, under the engine
//! lock: the engine answers only waiters it removes from its queue (granted, or
//! refused by a drain or stop), and a caller that gives up (dropped, timed out)
//! withdraws itself only if it is still queued. Exactly one side wins; no claim flag
//! is needed.

use std::time::Duration;

use tokio::sync::oneshot;

use super::lease::Wait;
use super::{lock, AcquireError, GrantResult, Lease, LeaseManager, Locked};
use crate::admission::Tenant;
use crate::expiry::monotonic;
use crate::manager::{Acquired, Effects, Grant, Waiter};
use crate::LeaseError;

/// A queued `acquire()`: the grant travels through a oneshot channel. Dropped
/// unsent (the manager stopped), the caller gets [`LeaseError::NotStarted`].
pub(super) struct QueuedAcquire<P> {
    pub(super) grant_tx: Option<oneshot::Sender<GrantResult<P>>>,
}

impl<P> Waiter for QueuedAcquire<P> {
    /// A queued caller withdraws itself before it goes (see the module docs), so its
    /// receiver is open; checked anyway, it costs one load.
    fn try_claim(&self) -> bool {
        self.grant_tx.as_ref().is_some_and(|tx| !tx.is_closed())
    }
}

/// What asking the engine gave: an answer now, or a place in the queue.
enum Begun<P: Clone + Send + 'static> {
    Answered(Result<Grant<P>, LeaseError>),
    Queued(Wait<P>),
}

/// The engine's lease time (seconds) for a caller's `Duration`; zero is refused by
/// the engine ([`LeaseError::InvalidLeaseSeconds`]).
fn seconds(lease_time: Duration) -> f64 {
    lease_time.as_secs_f64()
}

impl<P: Clone + Send + 'static> LeaseManager<P> {
    /// Leases a free pool now, or fails with [`LeaseError::Unavailable`] (never
    /// overtaking callers already waiting).
    ///
    /// # Errors
    /// [`LeaseError::Unavailable`] (with [`LeaseError::retry_after`]),
    /// [`LeaseError::Draining`] during a [`drain`](Self::drain),
    /// [`LeaseError::NotStarted`] after [`stop`](Self::stop).
    ///
    /// # Examples
    /// ```
    /// # let limits = leasepool::PoolLimits::builder(1).build().unwrap();
    /// # let manager = leasepool::tokio::LeaseManager::new(limits, std::time::Duration::from_secs(30), |seq| seq);
    /// let held = manager.try_acquire().expect("the only pool is free");
    /// assert!(manager.try_acquire().is_err(), "and now it is not");
    /// drop(held);
    /// ```
    pub fn try_acquire(&self) -> Result<Lease<P>, LeaseError> {
        self.try_acquire_as(Tenant::default())
    }

    /// [`try_acquire`](Self::try_acquire) for `tenant` (owner, priority, reserved
    /// class). A refusal carries [`LeaseError::retry_after`].
    ///
    /// # Errors
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_as(&self, tenant: Tenant) -> Result<Lease<P>, LeaseError> {
        let mut fx = Effects::default();
        let acquired = lock(&self.shared.engine).acquire_as(
            monotonic(),
            self.shared.default_lease_seconds,
            tenant,
            (),
            None,
            &mut fx,
        );
        self.shared.perform(fx);
        match acquired? {
            Acquired::Granted(grant) => Ok(self.lease(grant)),
            Acquired::Queued(_) => unreachable!("no waiter was offered"),
        }
    }

    /// Leases a pool for the default lease time, waiting in arrival order.
    ///
    /// # Errors
    /// [`LeaseError::NotStarted`] if the manager is (or gets) stopped,
    /// [`LeaseError::Draining`] if a [`drain`](Self::drain) begins first,
    /// [`LeaseError::QueueFull`] (with [`LeaseError::retry_after`]) when an
    /// admission policy bounds the waiters and the bound is reached,
    /// [`LeaseError::InvalidLeaseSeconds`] if the manager was made by
    /// [`new`](Self::new) with a zero default lease time.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future while it waits removes the waiter, and a pool
    /// handed over just before the drop goes to the next waiter (see the module docs).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # let limits = leasepool::PoolLimits::builder(1).build().unwrap();
    /// # let manager = leasepool::tokio::LeaseManager::new(limits, std::time::Duration::from_secs(30), |seq| seq);
    /// let lease = manager.acquire().await.expect("a running manager");
    /// assert_eq!(*lease.pool(), 1);
    /// # }
    /// ```
    pub async fn acquire(&self) -> Result<Lease<P>, LeaseError> {
        let lease_seconds = self.shared.default_lease_seconds;
        self.acquire_seconds(Tenant::default(), lease_seconds).await
    }

    /// Like [`acquire`](Self::acquire) for an explicit lease time (before the
    /// limits' grace period).
    ///
    /// # Errors
    /// [`LeaseError::InvalidLeaseSeconds`] for a zero `lease_time`, else as
    /// [`acquire`](Self::acquire).
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`acquire`](Self::acquire).
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// # use std::time::Duration;
    /// # let limits = leasepool::PoolLimits::builder(1).build().unwrap();
    /// # let manager = leasepool::tokio::LeaseManager::new(limits, Duration::from_secs(30), |seq| seq);
    /// let lease = manager.acquire_for(Duration::from_secs(5)).await.unwrap();
    /// assert_eq!(lease.lease_time(), Duration::from_secs(5));
    /// # }
    /// ```
    pub async fn acquire_for(&self, lease_time: Duration) -> Result<Lease<P>, LeaseError> {
        self.acquire_seconds(Tenant::default(), seconds(lease_time))
            .await
    }

    /// Leases a pool for `tenant` (owner, priority, reserved class; see
    /// [`crate::admission`]) for `lease_time` (the default lease time if `None`),
    /// waiting in the order the admission policy gives.
    ///
    /// # Errors
    /// As [`acquire_for`](Self::acquire_for), and [`LeaseError::QueueFull`] (with
    /// [`LeaseError::retry_after`]) when the policy's waiter bound is reached.
    ///
    /// # Cancel safety
    /// Cancel-safe, as [`acquire`](Self::acquire), in every admission mode.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use leasepool::Tenant;
    /// # let limits = leasepool::PoolLimits::builder(1).build().unwrap();
    /// # let manager = leasepool::tokio::LeaseManager::new(limits, std::time::Duration::from_secs(30), |seq| seq);
    /// let checkout = Tenant { owner: Some(7), ..Tenant::default() };
    /// let lease = manager.acquire_as(checkout, None).await.unwrap();
    /// # drop(lease);
    /// # }
    /// ```
    pub async fn acquire_as(
        &self,
        tenant: Tenant,
        lease_time: Option<Duration>,
    ) -> Result<Lease<P>, LeaseError> {
        let lease_seconds = lease_time.map_or(self.shared.default_lease_seconds, seconds);
        self.acquire_seconds(tenant, lease_seconds).await
    }

    /// The one unbounded acquire.
    async fn acquire_seconds(
        &self,
        tenant: Tenant,
        lease_seconds: f64,
    ) -> Result<Lease<P>, LeaseError> {
        let mut wait = match self.begin(tenant, lease_seconds) {
            Begun::Answered(answer) => return answer.map(|grant| self.lease(grant)),
            Begun::Queued(wait) => wait,
        };
        match wait.outcome(None, lease_seconds).await {
            Ok(grant) => Ok(self.lease(grant)),
            Err(AcquireError::Lease(error)) => Err(error),
            Err(AcquireError::TimedOut { .. }) => unreachable!("no deadline, no timeout"),
        }
    }

    /// [`acquire_as`](Self::acquire_as), timing out at `until` (tokio's clock) if
    /// given: the implementation of the bounded waits (see `timeout.rs`).
    pub(super) async fn acquire_until(
        &self,
        tenant: Tenant,
        lease_time: Option<Duration>,
        until: Option<tokio::time::Instant>,
    ) -> Result<Lease<P>, AcquireError> {
        let lease_seconds = lease_time.map_or(self.shared.default_lease_seconds, seconds);
        let mut wait = match self.begin(tenant, lease_seconds) {
            Begun::Answered(answer) => return Ok(self.lease(answer?)),
            Begun::Queued(wait) => wait,
        };
        let grant = wait.outcome(until, lease_seconds).await?;
        Ok(self.lease(grant))
    }

    /// Asks the engine once, under one lock: a grant (or refusal) now, else a place
    /// in the queue. The waiter is built only when needed, so the uncontended
    /// acquire allocates nothing.
    fn begin(&self, tenant: Tenant, lease_seconds: f64) -> Begun<P> {
        let (begun, fx) = {
            let mut locked = lock(&self.shared.engine);
            let now = monotonic();
            let Locked { engine, effects } = &mut *locked;
            let begun = match engine.probe_as(now, lease_seconds, tenant, (), effects) {
                Ok(grant) => Begun::Answered(Ok(grant)),
                Err(LeaseError::Unavailable { .. }) => {
                    let (grant_tx, grant_rx) = oneshot::channel();
                    let waiter = QueuedAcquire {
                        grant_tx: Some(grant_tx),
                    };
                    match engine.acquire_as(now, lease_seconds, tenant, (), Some(waiter), effects) {
                        Ok(Acquired::Granted(grant)) => Begun::Answered(Ok(grant)),
                        Ok(Acquired::Queued(ticket)) => Begun::Queued(Wait {
                            shared: self.shared.clone(),
                            ticket,
                            grant_rx: Some(grant_rx),
                        }),
                        Err(error) => Begun::Answered(Err(error)),
                    }
                }
                Err(error) => Begun::Answered(Err(error)),
            };
            (begun, locked.take_effects())
        };
        if let Some(fx) = fx {
            self.shared.perform(fx);
        }
        begun
    }

    pub(super) fn lease(&self, grant: Grant<P>) -> Lease<P> {
        Lease {
            grant: Some(grant),
            shared: self.shared.clone(),
        }
    }
}
