//! Loom model of the shipped `JobQueue` (the thread pool's job FIFO and its worker
//! counters): a producer racing a worker that drains and parks never loses a job or
//! a wake-up, every job is taken once, and the worker learns it was the last of the
//! closed pool.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use leasepool::worker_pool::{Exit, JobQueue, Push};

/// A worker's loop as the binding runs it: drain without parking, park when empty,
/// leave when closed. Returns how it left.
fn work(queue: &JobQueue<u32>, taken: &AtomicUsize) -> Exit {
    loop {
        while queue.try_pop().is_some() {
            taken.fetch_add(1, Ordering::SeqCst);
        }
        match queue.pop_wait() {
            Some(_) => {
                taken.fetch_add(1, Ordering::SeqCst);
            }
            None => return queue.worker_exited(),
        }
    }
}

#[test]
fn every_job_is_taken_with_no_lost_wakeup_and_the_last_worker_knows() {
    let mut model = loom::model::Builder::new();
    // Bounded preemptions keep the search finite; 3 covers every interleaving of a
    // push racing a park, a close racing both, and the exit count.
    model.preemption_bound = Some(3);
    model.check(|| {
        let queue = Arc::new(JobQueue::new(1));
        let taken = Arc::new(AtomicUsize::new(0));
        let Push::StartWorker(0) = queue.push(0) else {
            panic!("the first job starts the first worker");
        };
        let worker = {
            let (queue, taken) = (queue.clone(), taken.clone());
            thread::spawn(move || work(&queue, &taken))
        };
        let producer = {
            let queue = queue.clone();
            thread::spawn(move || match queue.push(1) {
                Push::Queued => 1,
                Push::StartWorker(_) => panic!("one worker at most"),
                Push::Closed(_) => 0,
            })
        };
        let accepted = 1 + producer.join().unwrap();
        // Every accepted job is taken without a close to shake the worker awake: a
        // push that fails to wake the parked worker leaves this loop spinning, which
        // loom reports (it bounds the branches of a model).
        while taken.load(Ordering::SeqCst) < accepted {
            thread::yield_now();
        }
        assert!(queue.close().is_empty());
        assert_eq!(worker.join().unwrap(), Exit::Last);
        assert_eq!(queue.running_workers(), 0);
    });
}
