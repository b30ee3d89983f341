//! A drain that stops early puts the rest back in order and asks for another drain.

use std::sync::atomic::{AtomicUsize, Ordering};

use leasepool::completion::{CompletionQueue, Doorbell};

#[derive(Default)]
struct CountingBell(AtomicUsize);

impl Doorbell for CountingBell {
    fn ring(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn clear(&self) {}
}

#[test]
fn requeued_items_come_first_in_order_and_ring_once() {
    let queue = CompletionQueue::new(CountingBell::default());
    for i in 0..5 {
        queue.push(i);
    }
    assert_eq!(queue.bell().0.load(Ordering::SeqCst), 1);
    let mut batch = queue.drain(3).into_iter();
    assert_eq!(batch.next(), Some(0));
    // Delivering item 0 had to stop the drain: 1 and 2 go back before 3 and 4.
    queue.push(5); // a producer meanwhile: armed by this push
    let rings_before = queue.bell().0.load(Ordering::SeqCst);
    queue.requeue_front(batch);
    assert_eq!(queue.bell().0.load(Ordering::SeqCst), rings_before);
    assert_eq!(queue.drain(16), vec![1, 2, 3, 4, 5]);
}

#[test]
fn requeue_into_a_disarmed_queue_rings() {
    let queue = CompletionQueue::new(CountingBell::default());
    queue.push(1);
    queue.push(2);
    let mut batch = queue.drain(16).into_iter();
    assert_eq!(batch.next(), Some(1));
    let rings_before = queue.bell().0.load(Ordering::SeqCst);
    queue.requeue_front(batch);
    assert_eq!(queue.bell().0.load(Ordering::SeqCst), rings_before + 1);
    assert_eq!(queue.drain(16), vec![2]);
    // Nothing left over: requeueing nothing neither rings nor arms.
    queue.requeue_front(Vec::new());
    assert_eq!(queue.bell().0.load(Ordering::SeqCst), rings_before + 1);
}
