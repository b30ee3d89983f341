//! Loom model: producers racing a drain never lose a wake-up. After everyone is done,
//! either the queue is empty or the doorbell is still rung (the consumer will come back).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

use leasepool::completion::{CompletionQueue, Doorbell};

#[derive(Default)]
struct Bell(AtomicBool);

impl Doorbell for Bell {
    fn ring(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn clear(&self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

#[test]
fn no_lost_wakeup() {
    loom::model(|| {
        let q = Arc::new(CompletionQueue::new(Bell::default()));
        let producers: Vec<_> = (0..2)
            .map(|i| {
                let q = q.clone();
                thread::spawn(move || q.push(i))
            })
            .collect();
        let mut seen = q.drain(1).len();
        for p in producers {
            p.join().unwrap();
        }
        let rung = q.bell().0.load(Ordering::SeqCst);
        assert!(
            q.is_empty() || rung,
            "items left behind without a pending wake-up"
        );
        if rung {
            seen += q.drain(8).len();
            assert_eq!(seen, 2);
        }
    });
}
