//! What a caller holds: a [`Lease`], and the guard ([`Wait`]) that keeps a queued
//! `acquire` cancel-safe.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{lock, AcquireError, GrantResult, Shared};
use crate::expiry::monotonic;
use crate::lease::{LeaseId, LeaseTiming};
use crate::manager::{Effects, Grant};
use crate::waiters::Ticket;
use crate::LeaseError;

/// Keeps an `acquire()` future cancel-safe (see the module docs).
pub(super) struct Wait<P: Clone + Send + 'static> {
    pub(super) shared: Arc<Shared<P>>,
    pub(super) ticket: Ticket,
    pub(super) grant_rx: Option<oneshot::Receiver<GrantResult<P>>>,
}

impl<P: Clone + Send + 'static> Wait<P> {
    /// Waits for the engine's answer: the grant, or the refusal (a drain began; the
    /// manager stopped). With `until` (tokio's clock), a wait still unanswered then
    /// times out (see [`time_out`](Self::time_out)). Dropped while waiting, the guard
    /// withdraws the waiter (see `Drop`).
    pub(super) async fn outcome(
        &mut self,
        until: Option<Instant>,
        lease_seconds: f64,
    ) -> Result<Grant<P>, AcquireError> {
        let Some(rx) = self.grant_rx.as_mut() else {
            return Err(LeaseError::NotStarted.into());
        };
        let received = match until {
            None => rx.await,
            Some(until) => match tokio::time::timeout_at(until, &mut *rx).await {
                Ok(received) => received,
                Err(_elapsed) => {
                    if let Some(retry_after) = self.time_out(lease_seconds) {
                        return Err(AcquireError::TimedOut { retry_after });
                    }
                    // The engine answered first: its grant or refusal is on its way
                    // (sent right after its lock is dropped), so this wait is short.
                    match self.grant_rx.as_mut() {
                        Some(rx) => rx.await,
                        None => return Err(LeaseError::NotStarted.into()),
                    }
                }
            },
        };
        self.grant_rx = None;
        match received {
            Ok(Ok(grant)) => Ok(grant),
            // Refused: a drain began.
            Ok(Err(error)) => Err(error.into()),
            // The sender was dropped unsent: the manager stopped.
            Err(_) => Err(LeaseError::NotStarted.into()),
        }
    }

    /// The caller's deadline passed: withdraws the waiter as timed out (the engine
    /// counts it in `acquire_timeouts` and serves the waiters it held back) and
    /// returns the retry estimate. `None` if the engine answered first.
    fn time_out(&mut self, lease_seconds: f64) -> Option<Duration> {
        let mut fx = Effects::default();
        let timed_out = {
            let mut engine = lock(&self.shared.engine);
            // Under the engine lock the waiter is either still queued (and times out
            // here) or was already answered: granted, or refused by a drain or stop,
            // and removed from the queue by the engine under this same lock.
            let removed = engine.time_out_waiter(self.ticket, monotonic(), &mut fx);
            removed.map(|waiter| (waiter, engine.retry_after(false, lease_seconds)))
        };
        self.shared.perform(fx);
        let (waiter, retry_after) = timed_out?;
        drop(waiter);
        // Withdrawn: nothing can arrive any more, nothing to give back on drop.
        self.grant_rx = None;
        Some(Duration::try_from_secs_f64(retry_after).unwrap_or_default())
    }
}

impl<P: Clone + Send + 'static> Drop for Wait<P> {
    fn drop(&mut self) {
        let Some(mut rx) = self.grant_rx.take() else {
            return;
        };
        // Still queued: withdrawn under the engine lock, so the engine can no longer
        // answer it (and, under an admission policy, serves anyone its place in the
        // queue held back).
        let mut fx = Effects::default();
        let now = monotonic();
        let removed = lock(&self.shared.engine).withdraw_waiter(self.ticket, now, &mut fx);
        if removed.is_some() {
            drop(removed);
            self.shared.perform(fx);
            return;
        }
        // Already answered: the grant is in the channel or about to be sent. Closing
        // first makes a later send fail (and the sender release the grant); anything
        // already sent is taken back here and released.
        rx.close();
        if let Ok(Ok(grant)) = rx.try_recv() {
            self.shared.release(grant.key);
        }
    }
}

/// The right to use one pool until released (dropped), expired or revoked.
///
/// Dropping it returns the pool at once (to the oldest waiter, if any).
#[must_use = "dropping a lease returns its pool at once"]
pub struct Lease<P: Clone + Send + 'static> {
    pub(super) grant: Option<Grant<P>>,
    pub(super) shared: Arc<Shared<P>>,
}

impl<P: Clone + Send + 'static> Lease<P> {
    fn grant(&self) -> &Grant<P> {
        self.grant
            .as_ref()
            .unwrap_or_else(|| unreachable!("a lease holds its grant until dropped"))
    }

    /// The leased pool.
    #[must_use]
    pub fn pool(&self) -> &P {
        &self.grant().pool
    }

    /// The lease id (shown as 32 hex digits).
    #[must_use]
    pub fn id(&self) -> LeaseId {
        self.grant().id
    }

    /// When the lease was granted and when it expires.
    #[must_use]
    pub fn timing(&self) -> LeaseTiming {
        self.grant().timing
    }

    /// Whether new work may still go through this lease: not revoked (at its hard
    /// expiry, by [`stop`](super::LeaseManager::stop), or at a drain's deadline) and
    /// not past its hard expiry.
    ///
    /// Asks the manager (a brief lock): its leases share no flag with their holders,
    /// which keeps a grant free of allocations and reference counts.
    #[must_use]
    pub fn is_live(&self) -> bool {
        let grant = self.grant();
        !grant.timing.is_hard_expired(monotonic()) && lock(&self.shared.engine).holds(grant.key)
    }

    /// The lease time asked for (the soft expiry is this long after the grant; the
    /// hard expiry, which revokes it, a grace period later).
    #[must_use]
    pub fn lease_time(&self) -> Duration {
        Duration::try_from_secs_f64(self.grant().timing.lease_seconds).unwrap_or(Duration::MAX)
    }

    /// Time left until the hard expiry revokes the lease (zero once passed).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        let left = self.grant().timing.hard_expires_at() - monotonic();
        Duration::try_from_secs_f64(left.max(0.0)).unwrap_or(Duration::MAX)
    }

    /// Returns the pool (same as dropping the lease).
    pub fn release(self) {}
}

impl<P: Clone + Send + std::fmt::Debug + 'static> std::fmt::Debug for Lease<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let grant = self.grant();
        f.debug_struct("Lease")
            .field("id", &grant.id)
            .field("pool", &grant.pool)
            .field("live", &self.is_live())
            .field("remaining", &self.remaining())
            .finish()
    }
}

impl<P: Clone + Send + 'static> Drop for Lease<P> {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take() {
            self.shared.release(grant.key);
        }
    }
}
