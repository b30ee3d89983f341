//! Whom to serve next under the admission policy (see [`crate::admission`]): each
//! waiting group's oldest waiter is judged, the best ranked one whose own limits allow
//! it is chosen, and the queue stops when that one cannot be served yet (nobody barges
//! past the waiter whose turn it is).

use std::cmp::Reverse;

use super::{Effects, Group, Manager, Waiter, Want};
use crate::admission::{Charge, OwnerKey, Tenant, OVERTAKE_LIMIT};
use crate::lease::LeaseTiming;
use crate::waiters::Ticket;

/// How waiting groups are ranked: higher priority, then (fair share) fewer leases
/// held by the owner and the owner served least recently, then arrival.
type Rank = (Reverse<i32>, (usize, u64), Ticket);

/// What a request may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// It can be served now.
    Serve,
    /// It needs a pool and none is free: it, and everyone ranked behind it, waits.
    Block,
    /// Its own limits hold it back (owner limit, reserved capacity in use by its
    /// class, the unreserved pools in use while reserved ones are free): others go
    /// first.
    Skip,
}

impl<P: Clone, M: Clone, W: Waiter> Manager<P, M, W> {
    /// The queue group of a request.
    pub(super) fn group_of(&self, want: Want, tenant: Tenant) -> Group {
        Group {
            priority: tenant.priority,
            owner: tenant
                .owner
                .filter(|_| self.tenancy.policy().tracks_owners()),
            class: tenant.class,
            want,
        }
    }

    /// What a request of `tenant` for `want` may do now.
    pub(super) fn verdict(&self, want: Want, tenant: Tenant) -> Verdict {
        if self.tenancy.owner_at_limit(tenant.owner) {
            return Verdict::Skip;
        }
        if want == Want::Slot && self.shared.has_free_slot(tenant.class) {
            return Verdict::Serve;
        }
        if !self.pool_obtainable() {
            return Verdict::Block;
        }
        if self.tenancy.has_quota(tenant.class) {
            Verdict::Serve
        } else {
            Verdict::Skip
        }
    }

    /// Whether a new request must queue behind a waiter: one whose own limits do not
    /// hold it back is queued (with the default policy: anybody is queued).
    pub(super) fn someone_eligible_waits(&self) -> bool {
        if self.waiters.is_empty() {
            return false;
        }
        if self.tenancy.is_plain() {
            return true;
        }
        self.waiters
            .heads()
            .any(|(group, _)| self.verdict(group.want, group.tenant()) != Verdict::Skip)
    }

    /// The waiter to serve next, or `None` when nobody can be served now. Counts the
    /// overtakes of lower-priority waiters and serves the oldest eligible waiter
    /// after [`OVERTAKE_LIMIT`] of them.
    pub(super) fn next_waiter(&mut self) -> Option<Ticket> {
        let mut best: Option<(Rank, Verdict)> = None;
        let mut oldest: Option<(Ticket, i32, Verdict)> = None;
        for (group, head) in self.waiters.heads() {
            let verdict = self.verdict(group.want, group.tenant());
            if verdict == Verdict::Skip {
                continue;
            }
            let rank = (
                Reverse(group.priority),
                self.tenancy.fair_rank(group.owner),
                head,
            );
            if best.is_none_or(|(best_rank, _)| rank < best_rank) {
                best = Some((rank, verdict));
            }
            if oldest.is_none_or(|(ticket, ..)| head < ticket) {
                oldest = Some((head, group.priority, verdict));
            }
        }
        let ((Reverse(priority), _, ticket), verdict) = best?;
        let (oldest_ticket, oldest_priority, oldest_verdict) = oldest?;
        let overtaking = oldest_priority < priority;
        let (ticket, verdict) = if overtaking && self.overtakes >= OVERTAKE_LIMIT {
            (oldest_ticket, oldest_verdict)
        } else {
            (ticket, verdict)
        };
        if verdict != Verdict::Serve {
            return None;
        }
        if ticket == oldest_ticket {
            self.overtakes = 0;
        } else if overtaking {
            self.overtakes += 1;
        }
        Some(ticket)
    }

    /// Hands what is free to the waiters in turn (see [`Self::next_waiter`]).
    pub(super) fn serve_waiters(&mut self, now: f64, effects: &mut Effects<P, M, W>) {
        if self.waiters.is_empty() {
            // Every uncontended release: nobody to serve.
            return;
        }
        while let Some(ticket) = self.next_waiter() {
            let Some(queued) = self.waiters.remove(ticket) else {
                break;
            };
            if !queued.waiter.try_claim() {
                self.forget_if_idle(queued.tenant.owner);
                effects.dropped.push(queued.waiter);
                continue;
            }
            let (lease_seconds, tenant) = (queued.lease_seconds, queued.tenant);
            let waited = now - queued.queued_at;
            self.note(|metrics| metrics.granted(tenant.owner, waited));
            self.note_wait(waited);
            match queued.want {
                Want::Pool => {
                    let Some((pool, seq)) = self.take_pool(effects) else {
                        unreachable!("judged servable: a pool is free or creatable");
                    };
                    let grant =
                        self.grant(now, lease_seconds, tenant, queued.meta, pool, seq, effects);
                    effects.granted.push((queued.waiter, grant));
                }
                Want::Slot => {
                    let Some(grant) =
                        self.grant_slot(now, lease_seconds, tenant, queued.meta, effects)
                    else {
                        unreachable!("judged servable: a slot is free or creatable");
                    };
                    effects.slots_granted.push((queued.waiter, grant));
                }
            }
        }
    }

    /// Bookkeeping when a lease (pool or slot) ends: its owner's count, the hold
    /// time that feeds `retry_after`, and the metrics (`revoked`: at its hard expiry).
    pub(super) fn lease_over(
        &mut self,
        now: f64,
        timing: LeaseTiming,
        owner: Option<OwnerKey>,
        revoked: bool,
    ) {
        let held = now - timing.leased_at;
        self.retry.observe(held);
        self.note(|metrics| metrics.ended(owner, held, revoked));
        self.tenancy.lease_ended(owner);
        self.forget_if_idle(owner);
    }

    /// Fair share keeps an owner's last-served mark only while the owner competes
    /// (holds a lease or waits): memory stays bounded by the active owners.
    pub(super) fn forget_if_idle(&mut self, owner: Option<OwnerKey>) {
        if !self.tenancy.policy().is_fair() {
            return;
        }
        let waits = self.waiters.heads().any(|(group, _)| group.owner == owner);
        if !waits {
            self.tenancy.forget_if_idle(owner);
        }
    }

    /// How many owners fair share remembers: those that hold a lease or wait.
    #[must_use]
    pub fn fair_share_memory(&self) -> usize {
        self.tenancy.remembered_owners()
    }

    /// A pool counted against `charge` is in use no longer.
    pub(super) fn pool_discharged(&mut self, charge: Charge) {
        self.tenancy.discharge(charge);
    }
}
