//! The queue of callers waiting for a pool.
//!
//! Waiters are keyed by a ticket drawn from a counter, so ticket order is arrival
//! order and removing a cancelled waiter is `O(log n)` without tombstones. Each waiter
//! also belongs to a *group* (for the manager: its priority, owner, reserved class and
//! what it wants); inside a group waiters are FIFO. The manager chooses among the
//! groups' oldest waiters ([`WaiterQueue::heads`]), so choosing is `O(groups)`, not
//! `O(waiters)`: a thousand waiters of one owner are one group. With the default
//! admission policy every waiter is in one group and the queue is plain FIFO.

use std::collections::{BTreeMap, BTreeSet};

/// A waiter's place in the queue.
pub type Ticket = u64;

struct Entry<G, W> {
    group: G,
    waiter: W,
}

/// Arrival-ordered waiters in FIFO groups.
pub struct WaiterQueue<G, W> {
    next_ticket: Ticket,
    waiting: BTreeMap<Ticket, Entry<G, W>>,
    groups: BTreeMap<G, BTreeSet<Ticket>>,
}

impl<G, W> std::fmt::Debug for WaiterQueue<G, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaiterQueue")
            .field("waiting", &self.waiting.len())
            .field("groups", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl<G, W> Default for WaiterQueue<G, W> {
    fn default() -> Self {
        Self {
            next_ticket: 0,
            waiting: BTreeMap::new(),
            groups: BTreeMap::new(),
        }
    }
}

impl<G: Ord + Copy, W> WaiterQueue<G, W> {
    /// Adds a waiter behind everyone already queued.
    pub fn push(&mut self, group: G, waiter: W) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.insert(ticket, Entry { group, waiter });
        self.groups.entry(group).or_default().insert(ticket);
        ticket
    }

    /// Removes the waiter holding `ticket`, if it is still queued.
    pub fn remove(&mut self, ticket: Ticket) -> Option<W> {
        let entry = self.waiting.remove(&ticket)?;
        if let Some(members) = self.groups.get_mut(&entry.group) {
            members.remove(&ticket);
            if members.is_empty() {
                self.groups.remove(&entry.group);
            }
        }
        Some(entry.waiter)
    }

    /// The waiter holding `ticket`, if it is still queued.
    #[must_use]
    pub fn get(&self, ticket: Ticket) -> Option<&W> {
        self.waiting.get(&ticket).map(|entry| &entry.waiter)
    }

    /// Each group with its oldest waiter's ticket.
    pub fn heads(&self) -> impl Iterator<Item = (&G, Ticket)> + '_ {
        self.groups
            .iter()
            .filter_map(|(group, members)| members.first().map(|ticket| (group, *ticket)))
    }

    /// Takes every waiter, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = W> {
        self.groups.clear();
        std::mem::take(&mut self.waiting)
            .into_values()
            .map(|entry| entry.waiter)
    }

    /// How many are waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether nobody waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_removal() {
        let mut q = WaiterQueue::default();
        let a = q.push((), 'a');
        let b = q.push((), 'b');
        let c = q.push((), 'c');
        assert_eq!(q.remove(b), Some('b'));
        assert_eq!(q.remove(b), None);
        assert_eq!(q.heads().collect::<Vec<_>>(), vec![(&(), a)]);
        assert_eq!(q.remove(a), Some('a'));
        assert_eq!(q.heads().collect::<Vec<_>>(), vec![(&(), c)]);
        assert_eq!(q.remove(c), Some('c'));
        assert!(q.is_empty());
        assert_eq!(q.heads().count(), 0, "empty groups are dropped");
    }

    #[test]
    fn each_group_is_fifo_and_reports_its_oldest() {
        let mut q = WaiterQueue::default();
        let a1 = q.push('a', 1);
        let b1 = q.push('b', 2);
        let a2 = q.push('a', 3);
        assert_eq!(q.heads().collect::<Vec<_>>(), vec![(&'a', a1), (&'b', b1)]);
        q.remove(a1);
        assert_eq!(q.heads().collect::<Vec<_>>(), vec![(&'a', a2), (&'b', b1)]);
        assert_eq!(q.len(), 2);
        assert_eq!(q.drain().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(q.heads().count(), 0);
    }
}
