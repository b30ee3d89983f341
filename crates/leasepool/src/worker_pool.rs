//! The job queue behind one pool of worker threads.
//!
//! Workers are started lazily, like `ThreadPoolExecutor`'s: a push asks for a new
//! worker only when the queued jobs outnumber the workers parked on the queue and the
//! pool is below its size. The front end owns the threads; this type only decides.
//!
//! Workers should drain the queue with [`JobQueue::try_pop`] while they are allowed to
//! run (for the Python binding: while attached to the interpreter) and call the
//! blocking [`JobQueue::pop_wait`] only when it is empty (after detaching), so a busy
//! pool never pays a park/unpark round trip per job.
//!
//! Closing the queue hands every queued job back to the closer (to be cancelled),
//! wakes all parked workers and makes every later pop return `None`; jobs already
//! taken by workers run to completion.

use std::collections::VecDeque;

use crate::sync::{lock, Condvar, Mutex};

#[derive(Debug)]
struct State<J> {
    jobs: VecDeque<J>,
    closed: bool,
    parked: usize,
    started: usize,
    running: usize,
}

/// What [`JobQueue::push`] asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Push<J> {
    /// Queued; enough workers will see it.
    Queued,
    /// Queued; start a new worker with this index (0-based) to run it.
    StartWorker(usize),
    /// The queue is closed; the job is handed back untouched.
    Closed(J),
}

/// Outcome of a worker leaving its loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// Other workers are still running.
    Others,
    /// This was the last worker of a closed pool.
    Last,
}

/// A FIFO of jobs shared by up to `max_workers` workers.
#[derive(Debug)]
pub struct JobQueue<J> {
    state: Mutex<State<J>>,
    available: Condvar,
    max_workers: usize,
}

impl<J> JobQueue<J> {
    /// An open, empty queue for at most `max_workers` workers.
    #[must_use]
    pub fn new(max_workers: usize) -> Self {
        Self {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                closed: false,
                parked: 0,
                started: 0,
                running: 0,
            }),
            available: Condvar::new(),
            max_workers: max_workers.max(1),
        }
    }

    /// Queues `job`.
    pub fn push(&self, job: J) -> Push<J> {
        let mut state = lock(&self.state);
        if state.closed {
            return Push::Closed(job);
        }
        state.jobs.push_back(job);
        if state.parked > 0 {
            self.available.notify_one();
        }
        if state.jobs.len() > state.parked && state.started < self.max_workers {
            let index = state.started;
            state.started += 1;
            state.running += 1;
            return Push::StartWorker(index);
        }
        Push::Queued
    }

    /// Queues many jobs at once (one lock, at most one wake-up per parked worker).
    /// Returns the indices of workers to start; jobs are handed back if closed.
    pub fn push_many(&self, jobs: impl IntoIterator<Item = J>) -> Result<Vec<usize>, Vec<J>> {
        let mut state = lock(&self.state);
        if state.closed {
            return Err(jobs.into_iter().collect());
        }
        state.jobs.extend(jobs);
        let wake = state.parked.min(state.jobs.len());
        for _ in 0..wake {
            self.available.notify_one();
        }
        let mut start = Vec::new();
        while state.jobs.len() > state.parked + start.len() && state.started < self.max_workers {
            start.push(state.started);
            state.started += 1;
            state.running += 1;
        }
        Ok(start)
    }

    /// Takes the oldest job without blocking. `None` if empty or closed.
    pub fn try_pop(&self) -> Option<J> {
        let mut state = lock(&self.state);
        if state.closed {
            return None;
        }
        state.jobs.pop_front()
    }

    /// Takes the oldest job, parking until one arrives. `None` once closed.
    pub fn pop_wait(&self) -> Option<J> {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return None;
            }
            if let Some(job) = state.jobs.pop_front() {
                return Some(job);
            }
            state.parked += 1;
            state = match self.available.wait(state) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            state.parked -= 1;
        }
    }

    /// Closes the queue and returns the jobs nobody started, oldest first.
    pub fn close(&self) -> Vec<J> {
        let mut state = lock(&self.state);
        state.closed = true;
        self.available.notify_all();
        state.jobs.drain(..).collect()
    }

    /// Whether [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }

    /// Records that a worker returned from its loop (after `pop` gave `None`).
    pub fn worker_exited(&self) -> Exit {
        let mut state = lock(&self.state);
        state.running -= 1;
        if state.running == 0 && state.closed {
            Exit::Last
        } else {
            Exit::Others
        }
    }

    /// Records that a requested worker could not be started after all.
    pub fn worker_failed_to_start(&self) -> Exit {
        let mut state = lock(&self.state);
        state.started -= 1;
        state.running -= 1;
        if state.running == 0 && state.closed {
            Exit::Last
        } else {
            Exit::Others
        }
    }

    /// Workers started and not yet exited.
    #[must_use]
    pub fn running_workers(&self) -> usize {
        lock(&self.state).running
    }

    /// Jobs waiting for a worker.
    #[must_use]
    pub fn queued(&self) -> usize {
        lock(&self.state).jobs.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn starts_workers_lazily_up_to_the_limit() {
        let q = JobQueue::new(2);
        assert_eq!(q.push(1), Push::StartWorker(0));
        assert_eq!(q.push(2), Push::StartWorker(1));
        assert_eq!(q.push(3), Push::Queued);
        assert_eq!(q.try_pop(), Some(1));
        assert_eq!(q.close(), vec![2, 3]);
        assert_eq!(q.push(4), Push::Closed(4));
        assert_eq!(q.pop_wait(), None);
        assert_eq!(q.worker_exited(), Exit::Others);
        assert_eq!(q.worker_exited(), Exit::Last);
    }

    #[test]
    fn parked_worker_is_woken_and_no_new_worker_is_started() {
        let q = std::sync::Arc::new(JobQueue::new(4));
        assert_eq!(q.push(0), Push::StartWorker(0));
        assert_eq!(q.try_pop(), Some(0));
        let worker = {
            let q = q.clone();
            std::thread::spawn(move || q.pop_wait())
        };
        while lock(&q.state).parked == 0 {
            std::thread::yield_now();
        }
        assert_eq!(q.push(7), Push::Queued);
        assert_eq!(worker.join().unwrap(), Some(7));
    }
}
