//! Batch formation: when pending items leave as a batch.
//!
//! Submissions queue here until either `batch_size_threshold` are pending or the
//! oldest has waited `max_wait_seconds`; then everything pending leaves as one batch
//! (each batch leases one executor). With `max_outstanding` set, an item counts
//! against the bound from acceptance until it finishes, and submitters beyond it are
//! parked in arrival order, each with its acknowledgement `A` (what tells that
//! submitter its item was accepted), until items finish.

use std::collections::VecDeque;

/// Batching parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchPolicy {
    /// Dispatch as soon as this many items are pending.
    pub batch_size_threshold: usize,
    /// Dispatch once the oldest pending item has waited this long (seconds).
    pub max_wait_seconds: f64,
    /// Most items accepted and not yet finished; `None` for no bound.
    pub max_outstanding: Option<usize>,
}

/// What the caller must do after [`Batcher::offer`].
#[derive(Debug, PartialEq)]
pub enum Offer<T> {
    /// Queued; a timer is already due for it.
    Queued,
    /// Queued as the only pending item: make sure a timer fires at this deadline.
    ArmTimer(f64),
    /// The threshold was reached: run this batch now.
    Dispatch(Vec<T>),
    /// The bound on outstanding items is reached: the item is handed back.
    Full(T),
}

/// What is due at a given moment.
#[derive(Debug, PartialEq)]
pub enum Due<T> {
    /// Nothing pending.
    Idle,
    /// Pending items, but none due before this deadline.
    WaitUntil(f64),
    /// Run this batch now.
    Dispatch(Vec<T>),
}

/// See the module docs.
#[derive(Debug)]
pub struct Batcher<T, A = ()> {
    policy: BatchPolicy,
    pending: VecDeque<(T, f64)>,
    parked: VecDeque<(T, A)>,
    outstanding: usize,
}

/// A parked item admitted into freed space: what to do for it, and its submitter's
/// acknowledgement.
pub type Admitted<T, A> = (Offer<T>, A);

impl<T, A> Batcher<T, A> {
    /// An empty batcher.
    #[must_use]
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            pending: VecDeque::new(),
            parked: VecDeque::new(),
            outstanding: 0,
        }
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> BatchPolicy {
        self.policy
    }

    /// Items waiting to be batched.
    #[must_use]
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Submitters parked for lack of space.
    #[must_use]
    pub fn parked_len(&self) -> usize {
        self.parked.len()
    }

    /// Items accepted and not yet finished.
    #[must_use]
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// When the oldest pending item arrived.
    #[must_use]
    pub fn oldest_arrival(&self) -> Option<f64> {
        self.pending.front().map(|(_, at)| *at)
    }

    fn has_space(&self) -> bool {
        self.policy
            .max_outstanding
            .is_none_or(|max| self.outstanding < max)
    }

    /// Offers an item that arrives at `now`. Items parked earlier go first: a new
    /// item is refused while anybody is parked, so parking stays FIFO.
    pub fn offer(&mut self, item: T, now: f64) -> Offer<T> {
        if !self.has_space() || !self.parked.is_empty() {
            return Offer::Full(item);
        }
        self.accept(item, now)
    }

    fn accept(&mut self, item: T, now: f64) -> Offer<T> {
        self.outstanding += 1;
        self.pending.push_back((item, now));
        if self.pending.len() >= self.policy.batch_size_threshold {
            return Offer::Dispatch(self.take_pending());
        }
        if self.pending.len() == 1 {
            return Offer::ArmTimer(now + self.policy.max_wait_seconds);
        }
        Offer::Queued
    }

    /// Parks an item refused with [`Offer::Full`] until space frees up; `ack` comes
    /// back with it when it is admitted.
    pub fn park(&mut self, item: T, ack: A) {
        self.parked.push_back((item, ack));
    }

    /// Records that `count` accepted items finished; admits parked items into the
    /// freed space. Returns the admitted items with what to do for each.
    pub fn finished(&mut self, count: usize, now: f64) -> Vec<Admitted<T, A>> {
        self.outstanding = self.outstanding.saturating_sub(count);
        let mut admitted = Vec::new();
        while self.has_space() {
            let Some((item, ack)) = self.parked.pop_front() else {
                break;
            };
            admitted.push((self.accept(item, now), ack));
        }
        admitted
    }

    /// Takes back the pending item `is_it` picks (its submitter cancelled): it leaves
    /// at once, and the space it held admits parked items, returned as
    /// [`finished`](Self::finished) returns them. `None` if it is not pending any more
    /// (already in a batch).
    pub fn withdraw(
        &mut self,
        now: f64,
        mut is_it: impl FnMut(&T) -> bool,
    ) -> Option<(T, Vec<Admitted<T, A>>)> {
        let index = self.pending.iter().position(|(item, _)| is_it(item))?;
        let (item, _) = self.pending.remove(index)?;
        let admitted = self.finished(1, now);
        Some((item, admitted))
    }

    /// What is due at `now`.
    pub fn due(&mut self, now: f64) -> Due<T> {
        match self.oldest_arrival() {
            None => Due::Idle,
            Some(at) if now - at >= self.policy.max_wait_seconds => {
                Due::Dispatch(self.take_pending())
            }
            Some(at) => Due::WaitUntil(at + self.policy.max_wait_seconds),
        }
    }

    /// Takes every pending item (a flush), oldest first.
    pub fn take_pending(&mut self) -> Vec<T> {
        self.pending.drain(..).map(|(item, _)| item).collect()
    }

    /// Takes every parked item with its acknowledgement (they were never accepted),
    /// oldest first.
    pub fn take_parked(&mut self) -> Vec<(T, A)> {
        self.parked.drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withdrawing_a_pending_item_frees_its_space_for_a_parked_one() {
        let mut b = Batcher::<i32, &str>::new(policy(10, Some(2)));
        assert!(matches!(b.offer(1, 0.0), Offer::ArmTimer(_)));
        assert!(matches!(b.offer(2, 0.0), Offer::Queued));
        let Offer::Full(three) = b.offer(3, 0.0) else {
            panic!("no space")
        };
        b.park(three, "three");
        let (gone, admitted) = b.withdraw(0.5, |&i| i == 1).expect("pending");
        assert_eq!(gone, 1);
        assert_eq!(admitted, vec![(Offer::Queued, "three")]);
        assert_eq!(
            (b.pending_len(), b.parked_len(), b.outstanding()),
            (2, 0, 2)
        );
        assert_eq!(b.oldest_arrival(), Some(0.0));
        assert!(b.withdraw(0.5, |&i| i == 1).is_none(), "only once");
        assert_eq!(b.take_pending(), vec![2, 3]);
    }

    fn policy(threshold: usize, max: Option<usize>) -> BatchPolicy {
        BatchPolicy {
            batch_size_threshold: threshold,
            max_wait_seconds: 2.0,
            max_outstanding: max,
        }
    }

    #[test]
    fn threshold_dispatches_everything_pending() {
        let mut b = Batcher::<i32>::new(policy(3, None));
        assert_eq!(b.offer(1, 0.0), Offer::ArmTimer(2.0));
        assert_eq!(b.offer(2, 0.5), Offer::Queued);
        assert_eq!(b.offer(3, 0.6), Offer::Dispatch(vec![1, 2, 3]));
        assert_eq!(b.pending_len(), 0);
        assert_eq!(b.offer(4, 1.0), Offer::ArmTimer(3.0));
    }

    #[test]
    fn oldest_item_age_dispatches() {
        let mut b = Batcher::<char>::new(policy(10, None));
        let _ = b.offer('a', 0.0);
        let _ = b.offer('b', 1.0);
        assert_eq!(b.due(1.5), Due::WaitUntil(2.0));
        assert_eq!(b.due(2.0), Due::Dispatch(vec!['a', 'b']));
        assert_eq!(b.due(5.0), Due::Idle);
    }

    #[test]
    fn bounded_outstanding_parks_fifo_and_admits_on_finish() {
        let mut b = Batcher::<i32, char>::new(policy(10, Some(2)));
        let _ = b.offer(1, 0.0);
        let _ = b.offer(2, 0.0);
        assert_eq!(b.offer(3, 0.0), Offer::Full(3));
        b.park(3, 'c');
        assert_eq!(b.offer(4, 0.0), Offer::Full(4), "no overtaking the parked");
        b.park(4, 'd');
        assert_eq!(b.take_pending(), vec![1, 2]);
        let admitted = b.finished(1, 1.0);
        assert_eq!(admitted, vec![(Offer::ArmTimer(3.0), 'c')]);
        assert_eq!(b.parked_len(), 1);
        assert_eq!(b.outstanding(), 2);
        let admitted = b.finished(2, 1.5);
        assert_eq!(admitted, vec![(Offer::Queued, 'd')]);
        assert_eq!(b.take_pending(), vec![3, 4]);
    }
}
