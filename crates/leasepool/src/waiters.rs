//! The FIFO queue of callers waiting for a pool.
//!
//! Waiters are keyed by a ticket drawn from a counter, so iteration order is arrival
//! order and removing a cancelled waiter is `O(log n)` without tombstones.

use std::collections::BTreeMap;

/// A waiter's place in the queue.
pub type Ticket = u64;

/// Arrival-ordered waiters.
#[derive(Debug)]
pub struct WaiterQueue<W> {
    next_ticket: Ticket,
    waiting: BTreeMap<Ticket, W>,
}

impl<W> Default for WaiterQueue<W> {
    fn default() -> Self {
        Self {
            next_ticket: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<W> WaiterQueue<W> {
    /// Adds a waiter behind everyone already queued.
    pub fn push(&mut self, waiter: W) -> Ticket {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        self.waiting.insert(ticket, waiter);
        ticket
    }

    /// Removes the waiter holding `ticket`, if it is still queued.
    pub fn remove(&mut self, ticket: Ticket) -> Option<W> {
        self.waiting.remove(&ticket)
    }

    /// The oldest waiter, left in place.
    #[must_use]
    pub fn peek_oldest(&self) -> Option<(&Ticket, &W)> {
        self.waiting.first_key_value()
    }

    /// Takes the oldest waiter.
    pub fn pop_oldest(&mut self) -> Option<(Ticket, W)> {
        self.waiting.pop_first()
    }

    /// Takes every waiter, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = W> {
        std::mem::take(&mut self.waiting).into_values()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_with_removal() {
        let mut q = WaiterQueue::default();
        let a = q.push('a');
        let b = q.push('b');
        let _c = q.push('c');
        assert_eq!(q.remove(b), Some('b'));
        assert_eq!(q.remove(b), None);
        assert_eq!(q.pop_oldest(), Some((a, 'a')));
        assert_eq!(q.pop_oldest().map(|(_, w)| w), Some('c'));
        assert!(q.is_empty());
    }
}
