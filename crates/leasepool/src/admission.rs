//! Admission control: who may queue, whose request is served next, and when a refused
//! caller should come back.
//!
//! * **Bounded waiting**: with [`AdmissionPolicy::max_waiters`], a caller that would be
//!   the `N+1`-th waiter is refused at once (load shedding) instead of queueing.
//! * **Owner limits**: with [`AdmissionPolicy::owner_limit`], one owner holds at most
//!   `K` leases at once; its further requests wait (or are refused, without waiting)
//!   while others are served.
//! * **Fair share**: with [`AdmissionPolicy::fair_share`], a freed pool goes to the
//!   oldest waiter of the owner holding the fewest leases (FIFO within an owner);
//!   among owners holding equally few, to the one served least recently (round
//!   robin), so a flood from one owner delays another owner's waiter by at most one
//!   hand-off.
//! * **Reserved capacity**: [`AdmissionPolicy::reserve`] sets pools aside for a class
//!   of callers ([`Tenant::class`]). Unreserved callers use at most
//!   `max_pools - reserved` pools; a class uses its reserved pools first and may
//!   borrow from the unreserved rest like anybody.
//! * **Priority**: a higher [`Tenant::priority`] is served first (FIFO within one
//!   priority). Starvation is bounded: whenever a waiter of lower priority than the
//!   one served is queued, the hand-off counts as an *overtake*; after
//!   [`OVERTAKE_LIMIT`] overtakes in a row the oldest eligible waiter is served, so a
//!   waiter with `j` eligible waiters ahead of it in arrival order is served within
//!   `(j + 1) * (OVERTAKE_LIMIT + 1)` hand-offs.
//! * **Retry-after**: [`RetryEstimator`] turns the observed lease hold times into a
//!   cheap estimate of when capacity is likely (see its docs).
//!
//! The default policy is leasepool 0.1.3's: unbounded strict FIFO, no limits.

use std::collections::HashMap;

use crate::error::ConfigError;

/// Identifies an owner for limits and fair share. Front ends derive it from their
/// owner value (the Python binding hashes the owner's text).
pub type OwnerKey = u64;

/// Index of a reserved class: the order of [`AdmissionPolicy::reserve`] calls.
pub type ClassId = usize;

/// How many hand-offs in a row may overtake a lower-priority waiter before the
/// oldest eligible waiter is served (see the module docs).
pub const OVERTAKE_LIMIT: u32 = 8;

/// Longest `retry_after` ever suggested, in seconds: a day. Beyond that the number
/// would only say "not soon", and clients handle huge values badly.
pub const MAX_RETRY_AFTER: f64 = 86_400.0;

/// Shortest `retry_after` ever suggested, in seconds: a millisecond. A shed caller
/// is never told to come straight back (nothing is free until a lease ends), even
/// when holds are too short for the clock that stamps them to see.
pub const MIN_RETRY_AFTER: f64 = 0.001;

/// Who asks for a lease, as admission control sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tenant {
    /// The owner, for [`AdmissionPolicy::owner_limit`] and fair share; `None` for an
    /// anonymous caller (no owner limit applies; fair share treats all anonymous
    /// callers as one owner).
    pub owner: Option<OwnerKey>,
    /// Higher is served first; `0` by default.
    pub priority: i32,
    /// The reserved class the request may draw on, if any.
    pub class: Option<ClassId>,
}

/// The admission rules of a manager; the default is unbounded strict FIFO.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[must_use]
pub struct AdmissionPolicy {
    max_waiters: Option<usize>,
    owner_limit: Option<usize>,
    fair_share: bool,
    reserved: Vec<usize>,
}

impl AdmissionPolicy {
    /// At most `max_waiters` callers wait at once; `None` for no bound. `0` refuses
    /// every caller that cannot be served at once.
    pub fn max_waiters(mut self, max_waiters: Option<usize>) -> Self {
        self.max_waiters = max_waiters;
        self
    }

    /// At most `limit` live leases per owner; `None` for no limit.
    pub fn owner_limit(mut self, limit: Option<usize>) -> Self {
        self.owner_limit = limit;
        self
    }

    /// Serve the owner holding the fewest leases first (see the module docs).
    pub fn fair_share(mut self, fair: bool) -> Self {
        self.fair_share = fair;
        self
    }

    /// Reserves `pools` pools for a new class; its [`ClassId`] is the number of
    /// classes reserved before it.
    pub fn reserve(mut self, pools: usize) -> Self {
        self.reserved.push(pools);
        self
    }

    /// Checks the policy against the pool cap.
    ///
    /// # Errors
    /// [`ConfigError::NotPositive`] for an owner limit of 0 or an empty reservation,
    /// [`ConfigError::ReservedTooMany`] if the reservations leave no pool for
    /// unreserved callers.
    pub fn validate(&self, max_pools: usize) -> Result<(), ConfigError> {
        if self.owner_limit == Some(0) {
            return Err(ConfigError::NotPositive("owner_limit"));
        }
        if self.reserved.contains(&0) {
            return Err(ConfigError::NotPositive("reserved_pools"));
        }
        if self.reserved_total() >= max_pools {
            return Err(ConfigError::ReservedTooMany);
        }
        Ok(())
    }

    /// The waiter bound, if any.
    #[must_use]
    pub fn waiter_bound(&self) -> Option<usize> {
        self.max_waiters
    }

    /// The per-owner lease limit, if any.
    #[must_use]
    pub fn per_owner_limit(&self) -> Option<usize> {
        self.owner_limit
    }

    /// Whether fair share is on.
    #[must_use]
    pub fn is_fair(&self) -> bool {
        self.fair_share
    }

    /// Pools reserved per class, by [`ClassId`].
    #[must_use]
    pub fn reservations(&self) -> &[usize] {
        &self.reserved
    }

    fn reserved_total(&self) -> usize {
        self.reserved.iter().sum()
    }

    /// Whether the manager counts leases per owner (an owner limit or fair share):
    /// only then does a request's owner matter to admission.
    #[must_use]
    pub fn tracks_owners(&self) -> bool {
        self.owner_limit.is_some() || self.fair_share
    }
}

/// Which capacity a pool in use is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    /// The unreserved pools.
    General,
    /// A class's reserved pools.
    Reserved(ClassId),
}

/// Leases and pools in use per owner and per class, against the policy's limits.
#[derive(Debug)]
pub(crate) struct Tenancy {
    policy: AdmissionPolicy,
    general_capacity: usize,
    general_used: usize,
    reserved_used: Vec<usize>,
    held_by_owner: HashMap<OwnerKey, usize>,
    /// Fair share: when each competing owner was last granted a lease (a grant
    /// count), for round robin among owners holding equally few leases.
    last_served: HashMap<OwnerKey, u64>,
    grants: u64,
}

impl Tenancy {
    pub(crate) fn new(policy: AdmissionPolicy, max_pools: usize) -> Self {
        let general_capacity = max_pools.saturating_sub(policy.reserved_total());
        let reserved_used = vec![0; policy.reserved.len()];
        Self {
            policy,
            general_capacity,
            general_used: 0,
            reserved_used,
            held_by_owner: HashMap::new(),
            last_served: HashMap::new(),
            grants: 0,
        }
    }

    pub(crate) fn policy(&self) -> &AdmissionPolicy {
        &self.policy
    }

    /// Whether requests can ever be skipped for their own limits (owner limit,
    /// reserved capacity), or ranked other than by arrival (fair share); when not,
    /// the queue is plain FIFO and its head decides.
    pub(crate) fn is_plain(&self) -> bool {
        !self.policy.tracks_owners() && self.policy.reserved.is_empty()
    }

    /// Whether a request of `class` may take one more pool under its quota.
    pub(crate) fn has_quota(&self, class: Option<ClassId>) -> bool {
        let reserved_left = class.is_some_and(|class| {
            self.reserved_used.get(class).copied().unwrap_or(0)
                < self.policy.reserved.get(class).copied().unwrap_or(0)
        });
        reserved_left || self.general_used < self.general_capacity
    }

    /// Counts one more pool in use by `class`: against its reservation while that
    /// lasts, else against the unreserved pools.
    pub(crate) fn charge(&mut self, class: Option<ClassId>) -> Charge {
        if let Some(class) = class {
            if let (Some(used), Some(&reserved)) = (
                self.reserved_used.get_mut(class),
                self.policy.reserved.get(class),
            ) {
                if *used < reserved {
                    *used += 1;
                    return Charge::Reserved(class);
                }
            }
        }
        self.general_used += 1;
        Charge::General
    }

    /// A pool charged with `charge` is no longer in use.
    pub(crate) fn discharge(&mut self, charge: Charge) {
        let used = match charge {
            Charge::General => &mut self.general_used,
            Charge::Reserved(class) => &mut self.reserved_used[class],
        };
        *used = used.saturating_sub(1);
    }

    /// Whether `owner` holds as many leases as it may.
    pub(crate) fn owner_at_limit(&self, owner: Option<OwnerKey>) -> bool {
        match (self.policy.owner_limit, owner) {
            (Some(limit), Some(owner)) => self.held(owner) >= limit,
            _ => false,
        }
    }

    /// Live leases of `owner` (counted only when the policy needs it).
    pub(crate) fn held(&self, owner: OwnerKey) -> usize {
        self.held_by_owner.get(&owner).copied().unwrap_or(0)
    }

    /// How fair share ranks `owner` (lower first): leases held, then when last
    /// served (never: first). Anonymous callers are one owner. `(0, 0)` when fair
    /// share is off.
    pub(crate) fn fair_rank(&self, owner: Option<OwnerKey>) -> (usize, u64) {
        if !self.policy.fair_share {
            return (0, 0);
        }
        let key = owner.unwrap_or(ANONYMOUS);
        let last = self.last_served.get(&key).copied().unwrap_or(0);
        (self.held(key), last)
    }

    /// `owner` got a lease.
    pub(crate) fn lease_began(&mut self, owner: Option<OwnerKey>) {
        if !self.policy.tracks_owners() {
            return;
        }
        let key = owner.unwrap_or(ANONYMOUS);
        *self.held_by_owner.entry(key).or_insert(0) += 1;
        if self.policy.fair_share {
            self.grants += 1;
            self.last_served.insert(key, self.grants);
        }
    }

    /// Forgets when `owner` was last served, if it holds no lease: called once it
    /// has no waiter either, so the record lives only while the owner competes.
    pub(crate) fn forget_if_idle(&mut self, owner: Option<OwnerKey>) {
        let key = owner.unwrap_or(ANONYMOUS);
        if self.held(key) == 0 {
            self.last_served.remove(&key);
        }
    }

    /// How many owners fair share currently remembers (for tests of its memory).
    pub(crate) fn remembered_owners(&self) -> usize {
        self.last_served.len()
    }

    /// A lease of `owner` ended.
    pub(crate) fn lease_ended(&mut self, owner: Option<OwnerKey>) {
        if !self.policy.tracks_owners() {
            return;
        }
        let key = owner.unwrap_or(ANONYMOUS);
        if let Some(held) = self.held_by_owner.get_mut(&key) {
            *held -= 1;
            if *held == 0 {
                self.held_by_owner.remove(&key);
            }
        }
    }

    /// Everything was let go (the manager stopped).
    pub(crate) fn clear(&mut self) {
        self.general_used = 0;
        self.reserved_used.iter_mut().for_each(|used| *used = 0);
        self.held_by_owner.clear();
        self.last_served.clear();
    }
}

/// The key anonymous callers share in the per-owner counts. Owner keys are hashes, so
/// a collision with a real owner is as unlikely as any other.
const ANONYMOUS: OwnerKey = 0x6c65_6173_6570_6f6f;

/// Estimates when a refused caller is likely to find capacity.
///
/// Keeps an exponentially weighted mean `H` of how long leases are held (weight
/// [`Self::WEIGHT`] for the newest; measured when a lease ends, by release or
/// revocation). With `Q` callers queued ahead and `C` units of capacity (pools, or
/// slots for one-call requests), `C / H` leases end per second, so the caller's turn
/// comes after about `H * (Q + 1) / C` seconds. Before the first lease has ended, `H`
/// is the duration the caller asked for (an upper bound a well-behaved holder keeps).
/// The result is finite, between [`MIN_RETRY_AFTER`] and [`MAX_RETRY_AFTER`]; `O(1)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryEstimator {
    mean_hold: Option<f64>,
}

impl RetryEstimator {
    /// Weight of the newest sample in the moving mean.
    pub const WEIGHT: f64 = 0.2;

    /// A lease was held `seconds`.
    pub fn observe(&mut self, seconds: f64) {
        if !seconds.is_finite() || seconds < 0.0 {
            return;
        }
        let mean = match self.mean_hold {
            Some(mean) => mean + Self::WEIGHT * (seconds - mean),
            None => seconds,
        };
        // Below a nanosecond the mean says nothing, and a run of zero-length holds
        // (two stamps within one tick of a clock that moves in ticks) would decay it into
        // subnormal numbers, on which every float operation costs ~100 cycles: a
        // release became twice as slow before this floor.
        self.mean_hold = Some(if mean < Self::FLOOR { 0.0 } else { mean });
    }

    /// Means below this many seconds are taken as zero (see [`observe`](Self::observe)).
    pub const FLOOR: f64 = 1e-9;

    /// The mean hold time so far, if any lease has ended.
    #[must_use]
    pub fn mean_hold(&self) -> Option<f64> {
        self.mean_hold
    }

    /// Seconds until capacity is likely for a caller with `queued_ahead` callers ahead
    /// of it, `capacity` units, asking for a lease of `fallback_hold` seconds.
    #[must_use]
    pub fn retry_after(&self, queued_ahead: usize, capacity: usize, fallback_hold: f64) -> f64 {
        let hold = self.mean_hold.unwrap_or(fallback_hold);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        let estimate = hold * (queued_ahead as f64 + 1.0) / capacity.max(1) as f64;
        if estimate.is_nan() {
            return MIN_RETRY_AFTER;
        }
        estimate.clamp(MIN_RETRY_AFTER, MAX_RETRY_AFTER)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn zero_length_holds_never_make_the_mean_subnormal() {
        let mut retry = RetryEstimator::default();
        retry.observe(1.0);
        for _ in 0..10_000 {
            retry.observe(0.0);
            let mean = retry.mean_hold().expect("observed");
            assert!(mean == 0.0 || mean.is_normal(), "subnormal mean {mean:e}");
        }
        assert_eq!(retry.mean_hold(), Some(0.0));
        retry.observe(0.5);
        assert_eq!(retry.mean_hold(), Some(0.1), "and it still learns");
    }

    #[test]
    fn reservations_must_leave_an_unreserved_pool() {
        let policy = AdmissionPolicy::default().reserve(1).reserve(2);
        assert_eq!(policy.validate(3), Err(ConfigError::ReservedTooMany));
        assert_eq!(policy.validate(4), Ok(()));
        assert_eq!(
            AdmissionPolicy::default().reserve(0).validate(4),
            Err(ConfigError::NotPositive("reserved_pools"))
        );
        assert_eq!(
            AdmissionPolicy::default().owner_limit(Some(0)).validate(4),
            Err(ConfigError::NotPositive("owner_limit"))
        );
    }

    #[test]
    fn a_class_uses_its_reservation_first_then_borrows() {
        let policy = AdmissionPolicy::default().reserve(1);
        let mut tenancy = Tenancy::new(policy, 3);
        assert!(tenancy.has_quota(None));
        assert_eq!(tenancy.charge(Some(0)), Charge::Reserved(0));
        assert_eq!(tenancy.charge(Some(0)), Charge::General);
        assert_eq!(tenancy.charge(None), Charge::General);
        assert!(!tenancy.has_quota(None), "two unreserved pools in use");
        assert!(!tenancy.has_quota(Some(0)), "reservation in use too");
        tenancy.discharge(Charge::Reserved(0));
        assert!(!tenancy.has_quota(None));
        assert!(tenancy.has_quota(Some(0)));
    }

    #[test]
    fn owners_are_counted_only_when_the_policy_needs_it() {
        let mut plain = Tenancy::new(AdmissionPolicy::default(), 2);
        plain.lease_began(Some(7));
        assert_eq!(plain.held(7), 0);
        let mut limited = Tenancy::new(AdmissionPolicy::default().owner_limit(Some(1)), 2);
        limited.lease_began(Some(7));
        assert!(limited.owner_at_limit(Some(7)));
        assert!(
            !limited.owner_at_limit(None),
            "anonymous callers have no limit"
        );
        limited.lease_ended(Some(7));
        assert!(!limited.owner_at_limit(Some(7)));
    }

    #[test]
    fn retry_after_is_finite_and_scales_with_the_queue() {
        let mut estimator = RetryEstimator::default();
        assert!(
            (estimator.retry_after(0, 2, 4.0) - 2.0).abs() < 1e-9,
            "fallback"
        );
        estimator.observe(1.0);
        assert!((estimator.retry_after(3, 2, 4.0) - 2.0).abs() < 1e-9);
        estimator.observe(f64::NAN);
        estimator.observe(-1.0);
        assert_eq!(estimator.mean_hold(), Some(1.0), "bad samples ignored");
        estimator.observe(2.0);
        assert!((estimator.mean_hold().unwrap() - 1.2).abs() < 1e-9);
        assert_eq!(estimator.retry_after(0, 0, f64::NAN), 1.2);
        assert_eq!(
            RetryEstimator::default().retry_after(0, 1, f64::NAN),
            MIN_RETRY_AFTER
        );
        assert_eq!(
            RetryEstimator::default().retry_after(0, 1, 0.0),
            MIN_RETRY_AFTER
        );
        assert_eq!(
            RetryEstimator::default().retry_after(usize::MAX, 1, 1e300),
            MAX_RETRY_AFTER
        );
    }
}
