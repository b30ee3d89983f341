//! What a caller holds: a [`Lease`], and the guard ([`Wait`]) that keeps a queued
//! `acquire` cancel-safe.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::{lock, GrantResult, Shared};
use crate::claim::ClaimFlag;
use crate::expiry::monotonic;
use crate::lease::LeaseTiming;
use crate::manager::{Effects, Grant};
use crate::waiters::Ticket;

/// Keeps an `acquire()` future cancel-safe (see the module docs).
pub(super) struct Wait<P: Clone + Send + 'static> {
    pub(super) shared: Arc<Shared<P>>,
    pub(super) claim: Arc<ClaimFlag>,
    pub(super) ticket: Ticket,
    pub(super) grant_rx: Option<oneshot::Receiver<GrantResult<P>>>,
}

impl<P: Clone + Send + 'static> Drop for Wait<P> {
    fn drop(&mut self) {
        let Some(mut rx) = self.grant_rx.take() else {
            return;
        };
        // The dropped caller claims its own waiter: the engine can no longer grant it.
        // Withdrawn (not just removed): under an admission policy the engine serves
        // anyone its place in the queue held back.
        if self.claim.try_claim() {
            let mut fx = Effects::default();
            let removed =
                lock(&self.shared.engine).withdraw_waiter(self.ticket, monotonic(), &mut fx);
            drop(removed);
            self.shared.perform(fx);
            return;
        }
        // Claimed: the grant is in the channel or about to be sent. Closing first
        // makes a later send fail (and the sender release the grant); anything
        // already sent is taken back here and released.
        rx.close();
        if let Ok(Ok(grant)) = rx.try_recv() {
            self.shared.release(grant.key);
        }
    }
}

/// The right to use one pool until released (dropped), expired or revoked.
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

    /// The lease id (32 hex digits).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.grant().id
    }

    /// When the lease was granted and when it expires.
    #[must_use]
    pub fn timing(&self) -> LeaseTiming {
        self.grant().timing
    }

    /// Whether new work may still go through this lease: not revoked (at its hard
    /// expiry, by [`stop`](super::LeaseManager::stop), or at a drain's deadline) and
    /// not past its hard expiry.
    #[must_use]
    pub fn is_live(&self) -> bool {
        let grant = self.grant();
        grant.live.load(Ordering::Acquire) && !grant.timing.is_hard_expired(monotonic())
    }

    /// Returns the pool (same as dropping the lease).
    pub fn release(self) {}
}

impl<P: Clone + Send + 'static> Drop for Lease<P> {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take() {
            self.shared.release(grant.key);
        }
    }
}
