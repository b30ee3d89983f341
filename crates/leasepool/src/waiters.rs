//! The queue of callers waiting for a pool.
//!
//! Waiters are keyed by a ticket drawn from a counter, so ticket order is arrival
//! order; they live in a hash map by ticket, so queueing and removing a cancelled
//! waiter are `O(1)` (amortised) and allocate nothing in the steady state. Each waiter
//! also belongs to a *group* (for the manager: its priority, owner, reserved class and
//! what it wants); inside a group waiters are FIFO. The manager chooses among the
//! groups' oldest waiters ([`WaiterQueue::heads`]), so choosing is `O(groups)`, not
//! `O(waiters)`: a thousand waiters of one owner are one group. With the default
//! admission policy every waiter is in one group and the queue is plain FIFO.

use std::collections::{BTreeMap, VecDeque};

use crate::lease::LeaseMap;

/// A waiter's place in the queue.
pub type Ticket = u64;

struct Entry<G, W> {
    group: G,
    waiter: W,
}

/// One group's tickets in arrival order. Removal is lazy: a ticket whose waiter left
/// stays until it reaches the front (then it is popped) or until stale tickets
/// outnumber live ones (then the deque is compacted), so the front is always a live
/// waiter and the deque stays within a constant factor of the group's size.
#[derive(Default)]
struct Members {
    tickets: VecDeque<Ticket>,
    live: usize,
}

/// Arrival-ordered waiters in FIFO groups.
pub struct WaiterQueue<G, W> {
    next_ticket: Ticket,
    waiting: LeaseMap<Entry<G, W>>,
    groups: BTreeMap<G, Members>,
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
            waiting: LeaseMap::default(),
            groups: BTreeMap::new(),
        }
    }
}

/// Stale tickets a group may carry beyond its live ones before it is compacted.
const STALE_SLACK: usize = 32;

impl<G: Ord + Copy, W> WaiterQueue<G, W> {
    /// Adds a waiter behind everyone already queued.
    pub fn push(&mut self, group: G, waiter: W) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.insert(ticket, Entry { group, waiter });
        let members = self.groups.entry(group).or_default();
        members.tickets.push_back(ticket);
        members.live += 1;
        ticket
    }

    /// Removes the waiter holding `ticket`, if it is still queued.
    pub fn remove(&mut self, ticket: Ticket) -> Option<W> {
        let entry = self.waiting.remove(&ticket)?;
        let Some(members) = self.groups.get_mut(&entry.group) else {
            return Some(entry.waiter);
        };
        members.live -= 1;
        if members.live == 0 {
            self.groups.remove(&entry.group);
            return Some(entry.waiter);
        }
        // Keep the front live: pop the tickets whose waiters already left.
        while let Some(front) = members.tickets.front() {
            if self.waiting.contains_key(front) {
                break;
            }
            members.tickets.pop_front();
        }
        if members.tickets.len() > 2 * members.live + STALE_SLACK {
            let waiting = &self.waiting;
            members
                .tickets
                .retain(|ticket| waiting.contains_key(ticket));
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
            .filter_map(|(group, members)| members.tickets.front().map(|ticket| (group, *ticket)))
    }

    /// Takes every waiter, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = W> {
        self.groups.clear();
        let mut all: Vec<_> = self.waiting.drain().collect();
        all.sort_unstable_by_key(|(ticket, _)| *ticket);
        all.into_iter().map(|(_, entry)| entry.waiter)
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

    /// Random pushes and removals (most from the middle, so stale tickets pile up
    /// behind a long-lived head and compaction runs) against a plain list.
    #[test]
    fn matches_a_reference_list_under_random_removal() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut q = WaiterQueue::default();
        let mut reference: Vec<(Ticket, u8, u64)> = Vec::new();
        for step in 0..20_000_u64 {
            let roll = next() % 10;
            if roll < 5 || reference.is_empty() {
                let group = u8::try_from(next() % 3).unwrap_or(0);
                let ticket = q.push(group, step);
                reference.push((ticket, group, step));
            } else {
                // Remove anyone but, mostly, not the oldest of group 0.
                let index = usize::try_from(next()).unwrap_or(0) % reference.len();
                let (ticket, _, value) = reference.remove(index);
                assert_eq!(q.remove(ticket), Some(value));
                assert_eq!(q.remove(ticket), None, "removed once");
            }
            assert_eq!(q.len(), reference.len());
            let mut expected: Vec<(u8, Ticket)> = Vec::new();
            for group in 0..3 {
                if let Some((ticket, _, _)) = reference.iter().find(|(_, g, _)| *g == group) {
                    expected.push((group, *ticket));
                }
            }
            let heads: Vec<(u8, Ticket)> = q.heads().map(|(g, t)| (*g, t)).collect();
            assert_eq!(heads, expected, "step {step}");
            for members in q.groups.values() {
                assert!(members.tickets.len() <= 2 * members.live + STALE_SLACK + 1);
            }
        }
        let drained: Vec<u64> = q.drain().collect();
        let expected: Vec<u64> = reference.iter().map(|(_, _, value)| *value).collect();
        assert_eq!(drained, expected, "oldest first");
        assert!(q.is_empty());
    }
}
