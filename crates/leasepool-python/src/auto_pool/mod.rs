//! `backend="auto"`: one leased pool with thread workers *and* process workers; each
//! call goes where its callable's route says (`routing.rs`, the engine's
//! `leasepool::routing`). Both halves are the ordinary thread and process pools: this
//! only routes calls and makes the two look like one pool to the manager (one
//! shutdown, one drain barrier, one tally, one reaping).

mod routing;

use std::sync::Arc;

use leasepool::routing::Route;
use leasepool::DrainReport;
use pyo3::prelude::*;

use crate::job::Job;
use crate::pool::{DrainBarrier, ExecutorPool, Reapable, Reroute};
use crate::process_pool::ProcessPool;
use crate::thread_pool::ThreadPool;

pub(crate) use routing::Routing;

/// A leased pool of `backend="auto"`.
pub(crate) struct AutoPool {
    threads: Arc<ThreadPool>,
    processes: Arc<ProcessPool>,
    routing: Arc<Routing>,
}

impl AutoPool {
    /// Joins a thread pool and a process pool (both still empty: no thread and no
    /// process starts before a call needs one). Cheap: runs under the engine's lock.
    pub(crate) fn new(
        threads: Arc<ThreadPool>,
        processes: Arc<ProcessPool>,
        routing: Arc<Routing>,
    ) -> Arc<Self> {
        processes.reroute_unpicklable_to(Arc::new(ToThreads {
            threads: threads.clone(),
            routing: routing.clone(),
        }));
        Arc::new(Self {
            threads,
            processes,
            routing,
        })
    }

    fn half(&self, route: Route) -> &dyn ExecutorPool {
        match route {
            Route::Thread => &*self.threads,
            Route::Process => &*self.processes,
        }
    }
}

impl ExecutorPool for AutoPool {
    fn submit(&self, py: Python<'_>, mut job: Job) -> Result<(), (Job, PyErr)> {
        let route = self.routing.route(py, &mut job);
        self.half(route).submit(py, job)
    }

    fn submit_many(&self, py: Python<'_>, jobs: Vec<Job>) -> Result<(), (Vec<Job>, PyErr)> {
        let (mut on_threads, mut on_processes) = (Vec::new(), Vec::new());
        for mut job in jobs {
            match self.routing.route(py, &mut job) {
                Route::Thread => on_threads.push(job),
                Route::Process => on_processes.push(job),
            }
        }
        let mut refused: Option<(Vec<Job>, PyErr)> = None;
        for (route, jobs) in [(Route::Thread, on_threads), (Route::Process, on_processes)] {
            if jobs.is_empty() {
                continue;
            }
            if let Err((jobs, err)) = self.half(route).submit_many(py, jobs) {
                match &mut refused {
                    Some((all, _)) => all.extend(jobs),
                    None => refused = Some((jobs, err)),
                }
            }
        }
        refused.map_or(Ok(()), Err)
    }

    fn shutdown(&self, py: Python<'_>, barrier: Option<Arc<DrainBarrier>>) {
        let Some(outer) = barrier else {
            self.threads.shutdown(py, None);
            self.processes.shutdown(py, None);
            return;
        };
        // Drained once both halves are: one arrival at the caller's barrier.
        let both = DrainBarrier::new(2, Box::new(move |py| outer.arrive(py)));
        self.threads.shutdown(py, Some(both.clone()));
        self.processes.shutdown(py, Some(both.clone()));
        both.arrive(py);
    }

    fn revoke(&self, py: Python<'_>) {
        self.threads.revoke(py);
        self.processes.revoke(py);
    }

    fn tally(&self) -> DrainReport {
        let mut report = self.threads.tally();
        report.absorb(&self.processes.tally());
        report
    }

    fn abort(&self, py: Python<'_>) -> DrainReport {
        let mut report = self.threads.abort(py);
        report.absorb(&self.processes.abort(py));
        report
    }

    fn is_broken(&self) -> bool {
        self.threads.is_broken() || self.processes.is_broken()
    }

    fn broken_error(&self, py: Python<'_>) -> PyErr {
        if self.threads.is_broken() {
            self.threads.broken_error(py)
        } else {
            self.processes.broken_error(py)
        }
    }

    fn take_reapable(&self) -> Reapable {
        let mut reapable = self.threads.take_reapable();
        reapable.extend(self.processes.take_reapable());
        reapable
    }
}

/// Where the process half sends a call it cannot pickle: the thread half.
struct ToThreads {
    threads: Arc<ThreadPool>,
    routing: Arc<Routing>,
}

impl Reroute for ToThreads {
    fn reroute(&self, py: Python<'_>, job: Job, err: PyErr) {
        let func = job.parts().0.bind(py).clone();
        let key = job.costs().map_or(0, |(key, _)| *key);
        self.routing.unpicklable(py, key, &func, &err);
        if let Err((job, refused)) = self.threads.submit(py, job) {
            job.fail(py, refused);
        }
    }
}
