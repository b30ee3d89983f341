//! Call slots: pools shared by one-call leases (see the `manager` docs, "Call slots").
//!
//! A shared pool hosts at most `per_pool` slot leases, one per worker, so a call
//! granted a slot starts at once instead of queueing behind another call on the
//! pool. New slots go to the fullest pool with room: traffic packs onto as few pools
//! as it needs, and the others stay free (for whole-pool leases) or idle out.

use std::collections::BTreeMap;

use crate::admission::{Charge, ClassId, OwnerKey};
use crate::lease::{LeaseId, LeaseKey, LeaseTiming};

/// A pool's sequence number (1, 2, ... over the manager's life): its identity.
pub type PoolSeq = u64;

/// A call slot just granted: run the call on `pool`, then end the slot with
/// [`crate::Manager::end_slot`].
#[derive(Debug, Clone)]
pub struct SlotGrant<P> {
    /// Engine key of the slot lease.
    pub key: LeaseKey,
    /// Public id (shown as 32 hex digits).
    pub id: LeaseId,
    /// When it was granted and when it expires.
    pub timing: LeaseTiming,
    /// The shared pool the call runs on.
    pub pool: P,
    /// That pool's sequence number.
    pub seq: PoolSeq,
}

/// A live slot lease, as the manager tracks it.
#[derive(Debug)]
pub(crate) struct SlotHeld<M> {
    pub(crate) id: LeaseId,
    pub(crate) meta: M,
    pub(crate) timing: LeaseTiming,
    pub(crate) seq: PoolSeq,
    pub(crate) owner: Option<OwnerKey>,
    /// Reported as held past its soft expiry (once).
    pub(crate) overdue: bool,
}

#[derive(Debug)]
struct Shared<P> {
    pool: P,
    /// The reserved class whose one-call requests may use this pool (`None`: the
    /// unreserved ones), and the capacity it is counted against.
    class: Option<ClassId>,
    charge: Charge,
    /// Live slots (a revoked slot no longer counts, even if its call still runs).
    busy: usize,
    /// A slot here was revoked: no new slots; the pool is revoked when `busy` is 0.
    tainted: bool,
}

/// A pool that just lost its last slot.
#[derive(Debug)]
pub(crate) struct Emptied<P> {
    pub(crate) pool: P,
    pub(crate) seq: PoolSeq,
    pub(crate) tainted: bool,
    pub(crate) charge: Charge,
}

/// The pools hosting call slots.
#[derive(Debug)]
pub(crate) struct SharedPools<P> {
    per_pool: usize,
    pools: BTreeMap<PoolSeq, Shared<P>>,
}

impl<P> SharedPools<P> {
    pub(crate) fn new(per_pool: usize) -> Self {
        Self {
            per_pool: per_pool.max(1),
            pools: BTreeMap::new(),
        }
    }

    pub(crate) fn per_pool(&self) -> usize {
        self.per_pool
    }

    /// Pools hosting slots (tainted ones included: they still hold workers).
    pub(crate) fn len(&self) -> usize {
        self.pools.len()
    }

    /// Whether [`take_free_slot`](SharedPools::take_free_slot) would succeed.
    pub(crate) fn has_free_slot(&self, class: Option<ClassId>) -> bool {
        self.pools
            .values()
            .any(|shared| shared.class == class && !shared.tainted && shared.busy < self.per_pool)
    }

    /// Returns a slot of pool `seq`; `taint` marks the pool as revoked-when-empty.
    /// Hands the pool back if that was its last slot.
    pub(crate) fn end_slot(&mut self, seq: PoolSeq, taint: bool) -> Option<Emptied<P>> {
        let shared = self.pools.get_mut(&seq)?;
        shared.busy = shared.busy.saturating_sub(1);
        shared.tainted |= taint;
        if shared.busy > 0 {
            return None;
        }
        let shared = self.pools.remove(&seq)?;
        Some(Emptied {
            pool: shared.pool,
            seq,
            tainted: shared.tainted,
            charge: shared.charge,
        })
    }

    /// The pools hosting slots.
    pub(crate) fn pools(&self) -> impl Iterator<Item = &P> {
        self.pools.values().map(|shared| &shared.pool)
    }

    /// Takes every pool (the manager stops).
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = P> {
        std::mem::take(&mut self.pools)
            .into_values()
            .map(|shared| shared.pool)
    }
}

impl<P: Clone> SharedPools<P> {
    /// Takes a slot on the fullest untainted pool of `class` with room, if any.
    pub(crate) fn take_free_slot(&mut self, class: Option<ClassId>) -> Option<(P, PoolSeq)> {
        let per_pool = self.per_pool;
        let (seq, shared) = self
            .pools
            .iter_mut()
            .filter(|(_, shared)| {
                shared.class == class && !shared.tainted && shared.busy < per_pool
            })
            .max_by_key(|(_, shared)| shared.busy)?;
        shared.busy += 1;
        Some((shared.pool.clone(), *seq))
    }

    /// Starts sharing a free pool for the one-call requests of `class`, with one
    /// slot taken; the pool is counted against `charge` until it empties.
    pub(crate) fn host(
        &mut self,
        pool: P,
        seq: PoolSeq,
        class: Option<ClassId>,
        charge: Charge,
    ) -> P {
        self.pools.insert(
            seq,
            Shared {
                pool: pool.clone(),
                class,
                charge,
                busy: 1,
                tainted: false,
            },
        );
        pool
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn slots_pack_onto_the_fullest_pool_with_room() {
        let mut pools = SharedPools::new(2);
        pools.host('a', 1, None, Charge::General);
        pools.host('b', 2, None, Charge::General);
        assert_eq!(
            pools.take_free_slot(None),
            Some(('b', 2)),
            "ties go to the last"
        );
        assert!(!pools.has_free_slot(None) || pools.take_free_slot(None) == Some(('a', 1)));
        assert_eq!(pools.take_free_slot(None), None);
        assert!(pools.end_slot(1, false).is_none());
        assert_eq!(pools.take_free_slot(None), Some(('a', 1)));
    }

    #[test]
    fn a_tainted_pool_takes_no_slot_and_empties_tainted() {
        let mut pools = SharedPools::new(3);
        pools.host('a', 7, None, Charge::General);
        assert_eq!(pools.take_free_slot(None), Some(('a', 7)));
        assert!(pools.end_slot(7, true).is_none());
        assert!(!pools.has_free_slot(None));
        assert_eq!(pools.take_free_slot(None), None);
        let emptied = pools.end_slot(7, false).expect("last slot");
        assert!(emptied.tainted);
        assert_eq!((emptied.pool, emptied.seq), ('a', 7));
        assert_eq!(pools.len(), 0);
    }

    #[test]
    fn a_reserved_class_uses_only_its_own_shared_pools() {
        let mut pools = SharedPools::new(2);
        pools.host('r', 1, Some(0), Charge::Reserved(0));
        assert!(!pools.has_free_slot(None));
        assert_eq!(pools.take_free_slot(None), None);
        assert_eq!(pools.take_free_slot(Some(0)), Some(('r', 1)));
        assert!(pools.end_slot(1, false).is_none());
        let emptied = pools.end_slot(1, false).expect("last slot");
        assert_eq!(emptied.charge, Charge::Reserved(0));
    }
}
