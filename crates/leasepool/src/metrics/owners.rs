//! The per-owner breakdown: bounded, so a service that names owners after requests
//! or users cannot grow it without limit. The first `capacity` owners seen keep their
//! own entry; the rest share one ("others"), and callers without an owner have theirs.

use std::collections::HashMap;
use std::sync::Arc;

use crate::admission::OwnerKey;

/// One owner's share of the lease events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OwnerShare {
    /// Leases granted.
    pub granted: u64,
    /// Requests refused or timed out.
    pub rejected: u64,
    /// Leases held now.
    pub held: u64,
    /// Total wait of granted requests, nanoseconds.
    pub wait_ns: u64,
    /// Total hold time of ended leases, nanoseconds.
    pub hold_ns: u64,
}

/// The breakdown: named owners, then the two shared entries.
#[derive(Debug, Clone)]
pub struct OwnerTable {
    capacity: usize,
    named: HashMap<OwnerKey, (Arc<str>, OwnerShare)>,
    anonymous: OwnerShare,
    others: OwnerShare,
}

/// A copy of an [`OwnerTable`].
#[derive(Debug, Clone, Default)]
pub struct OwnerTableSnapshot {
    /// Named owners (any order) with their shares.
    pub named: Vec<(Arc<str>, OwnerShare)>,
    /// Callers that named no owner.
    pub anonymous: OwnerShare,
    /// Owners past the table's capacity, together.
    pub others: OwnerShare,
}

impl OwnerTable {
    /// Room for `capacity` named owners.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            named: HashMap::new(),
            anonymous: OwnerShare::default(),
            others: OwnerShare::default(),
        }
    }

    /// Gives `owner` an entry of its own if it has none and there is room.
    pub fn name(&mut self, owner: OwnerKey, label: impl FnOnce() -> String) {
        if self.named.len() < self.capacity && !self.named.contains_key(&owner) {
            self.named
                .insert(owner, (Arc::from(label()), OwnerShare::default()));
        }
    }

    fn share(&mut self, owner: Option<OwnerKey>) -> &mut OwnerShare {
        match owner {
            None => &mut self.anonymous,
            Some(key) => match self.named.get_mut(&key) {
                Some((_, share)) => share,
                None => &mut self.others,
            },
        }
    }

    pub(crate) fn granted(&mut self, owner: Option<OwnerKey>, wait_ns: u64) {
        let share = self.share(owner);
        share.granted += 1;
        share.held += 1;
        share.wait_ns = share.wait_ns.saturating_add(wait_ns);
    }

    pub(crate) fn ended(&mut self, owner: Option<OwnerKey>, hold_ns: u64) {
        let share = self.share(owner);
        share.held = share.held.saturating_sub(1);
        share.hold_ns = share.hold_ns.saturating_add(hold_ns);
    }

    pub(crate) fn refused(&mut self, owner: Option<OwnerKey>) {
        self.share(owner).rejected += 1;
    }

    /// A copy of the table.
    #[must_use]
    pub fn snapshot(&self) -> OwnerTableSnapshot {
        OwnerTableSnapshot {
            named: self
                .named
                .values()
                .map(|(label, share)| (label.clone(), *share))
                .collect(),
            anonymous: self.anonymous,
            others: self.others,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_with_overflow_and_anonymous_entries() {
        let mut table = OwnerTable::new(2);
        for key in 1..=3 {
            table.name(key, || format!("owner-{key}"));
        }
        table.name(1, || unreachable!("already named: no label is made"));
        for owner in [Some(1), Some(2), Some(3), Some(4), None] {
            table.granted(owner, 10);
        }
        table.ended(Some(3), 5);
        table.refused(Some(1));
        let snap = table.snapshot();
        assert_eq!(snap.named.len(), 2);
        let one = snap
            .named
            .iter()
            .find(|(l, _)| &**l == "owner-1")
            .unwrap()
            .1;
        assert_eq!((one.granted, one.held, one.rejected), (1, 1, 1));
        assert_eq!(snap.others.granted, 2, "owners 3 and 4 share an entry");
        assert_eq!((snap.others.held, snap.others.hold_ns), (1, 5));
        assert_eq!(snap.anonymous.wait_ns, 10);
    }
}
