//! The native thread backend: one pool of `workers_per_pool` worker threads.
//!
//! Workers are `threading.Thread`s (real names, thread-locals, joined by the
//! interpreter at exit) whose target is the Rust loop in [`ThreadPool::work`]. A
//! worker stays attached to the interpreter while the queue has work and detaches
//! only to park on an empty queue, so the GIL's switch interval bounds event-loop lag
//! instead of every job paying a release/re-acquire (docs/design-facts.md, "Starvation trap").
//! The completion doorbell is rung after detaching when possible.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use std::time::Instant;

use leasepool::metrics::CallMetrics;
use leasepool::routing::CallCost;
use leasepool::worker_pool::{Exit, JobQueue, Push};
use leasepool::{DrainReport, RunningCalls};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::aio::LoopBridge;
use crate::errors::guard_panics;
use crate::job::Job;
use crate::pool::ExecutorPool;
use crate::py_cache::{broken_thread_pool, threading_thread};

/// What a call on this worker thread costs (`backend="auto"`): the thread's CPU time,
/// the wall time, and the time it was stalled — the CPU the process's other threads
/// used meanwhile (an estimate of waiting for the GIL) plus the thread's run-queue
/// wait (waiting for a CPU; Linux, from `/proc/thread-self/schedstat`).
struct CostMeter {
    at: Instant,
    thread_cpu: f64,
    process_cpu: f64,
    queued: f64,
}

impl CostMeter {
    fn start() -> Self {
        Self {
            at: Instant::now(),
            thread_cpu: cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID),
            process_cpu: cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID),
            queued: run_queue_seconds(),
        }
    }

    fn stop(self) -> CallCost {
        let cpu = cpu_seconds(libc::CLOCK_THREAD_CPUTIME_ID) - self.thread_cpu;
        let others = cpu_seconds(libc::CLOCK_PROCESS_CPUTIME_ID) - self.process_cpu - cpu;
        CallCost {
            cpu,
            wall: self.at.elapsed().as_secs_f64(),
            stalled: others.max(0.0) + (run_queue_seconds() - self.queued).max(0.0),
        }
    }
}

/// CPU seconds of `clock` (a thread or process CPU clock).
fn cpu_seconds(clock: libc::clockid_t) -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both CPU clocks exist on every
    // platform we build for (Linux, macOS).
    unsafe { libc::clock_gettime(clock, &mut ts) };
    #[allow(clippy::cast_precision_loss)]
    let seconds = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
    seconds
}

/// Seconds this thread has spent runnable but waiting for a CPU (0 where the kernel
/// does not say: then nothing is subtracted).
fn run_queue_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0.0, |ns| {
            #[allow(clippy::cast_precision_loss)]
            let seconds = ns as f64 * 1e-9;
            seconds
        })
}

/// Settings shared by every pool of one manager.
pub(crate) struct ThreadPoolSettings {
    pub(crate) workers: usize,
    pub(crate) name_prefix: String,
    /// `thread_name_prefix` from the executor kwargs, if the user set one.
    pub(crate) thread_name_prefix: Option<String>,
    pub(crate) initializer: Option<Py<PyAny>>,
    pub(crate) initargs: Option<Py<PyTuple>>,
    /// The manager's call metrics, if it keeps them.
    pub(crate) metrics: Option<Arc<CallMetrics>>,
}

pub(crate) use crate::pool::DrainBarrier;
use crate::pool::Reapable;

/// One leased executor of the thread backend.
pub(crate) struct ThreadPool {
    this: Weak<ThreadPool>,
    queue: JobQueue<Job>,
    thread_prefix: String,
    settings: Arc<ThreadPoolSettings>,
    threads: Mutex<Vec<Py<PyAny>>>,
    on_drained: Mutex<Option<Arc<DrainBarrier>>>,
    broken: AtomicBool,
    /// Calls running, finished, and abandoned at a graceful drain's deadline.
    calls: RunningCalls,
}

#[pyclass(module = "leasepool._engine", frozen)]
pub(crate) struct PoolHandle {
    pool: Arc<ThreadPool>,
}

/// Thread target of every worker.
#[pyfunction]
pub(crate) fn _thread_pool_worker(py: Python<'_>, handle: &Bound<'_, PoolHandle>) {
    let pool = handle.get().pool.clone();
    crate::errors::contain_panics(py, "leasepool worker thread", || pool.work(py));
}

impl crate::lifecycle::ProcessScoped for ThreadPool {
    /// In a forked child the parent's worker threads are gone: the pool is not this
    /// process's to shut down.
    fn forget_after_fork(&self) -> bool {
        false
    }

    /// Like `ThreadPoolExecutor`: stop taking work so the interpreter can join the
    /// workers (calls already running finish; queued ones are cancelled).
    fn shut_down_at_exit(&self, py: Python<'_>) {
        self.shutdown(py, None);
    }
}

use crate::sync::lock;

impl ThreadPool {
    pub(crate) fn new(seq: u64, settings: Arc<ThreadPoolSettings>) -> Arc<Self> {
        let thread_prefix = settings
            .thread_name_prefix
            .clone()
            .unwrap_or_else(|| format!("{}-{seq}", settings.name_prefix));
        let pool = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            queue: JobQueue::new(settings.workers),
            thread_prefix,
            settings,
            threads: Mutex::new(Vec::new()),
            on_drained: Mutex::new(None),
            broken: AtomicBool::new(false),
            calls: RunningCalls::new(),
        });
        crate::lifecycle::track(&pool);
        pool
    }

    fn closed_error(&self, py: Python<'_>) -> PyErr {
        if self.broken.load(Ordering::Acquire) {
            broken_error(py)
        } else {
            crate::errors::lease_error(py, &leasepool::LeaseError::Inactive)
        }
    }

    fn start_worker(&self, py: Python<'_>, index: usize) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let started = (|| -> PyResult<Py<PyAny>> {
            let handle = Py::new(py, PoolHandle { pool: this })?;
            let target = wrap_pyfunction!(_thread_pool_worker, py)?;
            let kwargs = PyDict::new(py);
            kwargs.set_item("target", target)?;
            kwargs.set_item("args", (handle,))?;
            kwargs.set_item("name", format!("{}_{index}", self.thread_prefix))?;
            let thread = threading_thread(py)?.call((), Some(&kwargs))?;
            thread.call_method0("start")?;
            Ok(thread.unbind())
        })();
        match started {
            Ok(thread) => lock(&self.threads).push(thread),
            Err(err) => {
                // No thread could be started (e.g. interpreter shutdown). If no worker
                // is left to take the queue, fail what is queued instead of hanging.
                self.queue.worker_failed_to_start();
                if self.queue.running_workers() == 0 {
                    for job in self.queue.close() {
                        job.fail(py, err.clone_ref(py));
                    }
                    self.fire_drained(py);
                }
            }
        }
    }

    /// The worker loop (runs on a worker thread, attached).
    fn work(&self, py: Python<'_>) {
        if let Some(init) = &self.settings.initializer {
            let args = match &self.settings.initargs {
                Some(args) => args.bind(py).clone(),
                None => PyTuple::empty(py),
            };
            if let Err(err) = init.bind(py).call1(args) {
                self.break_pool(py, &err);
            }
        }
        let mut ring: Option<Arc<LoopBridge>> = None;
        loop {
            let job = if let Some(job) = self.queue.try_pop() {
                // Deliver the previous result before starting a possibly long call.
                if let Some(bridge) = ring.take() {
                    bridge.ring();
                }
                Some(job)
            } else {
                let pending = ring.take();
                py.detach(|| {
                    if let Some(bridge) = pending {
                        bridge.ring();
                    }
                    self.queue.pop_wait()
                })
            };
            let Some(job) = job else { break };
            if let Some(bridge) = self.run(py, job) {
                if let Some(previous) = ring.replace(bridge) {
                    previous.ring();
                }
            }
        }
        if let Some(bridge) = ring {
            bridge.ring();
        }
        if self.queue.worker_exited() == Exit::Last {
            self.fire_drained(py);
        }
    }

    /// Runs one job; returns the bridge whose doorbell must be rung, if any.
    fn run(&self, py: Python<'_>, job: Job) -> Option<Arc<LoopBridge>> {
        let metrics = self.settings.metrics.as_deref();
        if !job.is_wanted(py) {
            metrics.inspect(|m| m.cancelled());
            return None;
        }
        if !self.calls.start() {
            // Dequeued just before a drain's deadline abandoned the pool.
            metrics.inspect(|m| m.cancelled());
            return job.cancel_claimed(py);
        }
        let started = metrics.map(|m| {
            let now = Instant::now();
            m.started(job.queued_ns(now));
            now
        });
        let costs = job.costs().cloned();
        let meter = costs.as_ref().map(|_| CostMeter::start());
        let outcome = guard_panics(|| job.invoke(py));
        if let (Some((key, costs)), Some(meter)) = (costs, meter) {
            costs.thread_call_ended(py, key, meter.stop());
        }
        if let (Some(m), Some(started)) = (metrics, started) {
            m.ended(crate::job::duration_ns(started.elapsed()), outcome.is_ok());
        }
        self.calls.end();
        job.deliver(py, outcome)
    }

    /// Counts jobs the pool cancels unrun (it closed with them queued).
    fn count_cancelled(&self, jobs: usize) {
        if let Some(metrics) = &self.settings.metrics {
            (0..jobs).for_each(|_| metrics.cancelled());
        }
    }

    /// An initializer failed: like `ThreadPoolExecutor`, the pool becomes unusable and
    /// everything queued fails with `BrokenThreadPool`.
    fn break_pool(&self, py: Python<'_>, err: &PyErr) {
        if let Ok(logger) = py
            .import("concurrent.futures._base")
            .and_then(|m| m.getattr("LOGGER"))
        {
            let kwargs = PyDict::new(py);
            let _ = kwargs.set_item("exc_info", crate::errors::exception_value(py, err));
            crate::errors::best_effort(
                py,
                logger.call_method("critical", ("Exception in initializer:",), Some(&kwargs)),
            );
        }
        self.broken.store(true, Ordering::Release);
        let queued = self.queue.close();
        if let Some(metrics) = &self.settings.metrics {
            queued.iter().for_each(|_| metrics.lost());
        }
        for job in queued {
            job.fail(py, broken_error(py));
        }
    }

    fn fire_drained(&self, py: Python<'_>) {
        let barrier = lock(&self.on_drained).take();
        if let Some(barrier) = barrier {
            barrier.arrive(py);
        }
    }
}

impl ExecutorPool for ThreadPool {
    fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn broken_error(&self, py: Python<'_>) -> PyErr {
        broken_error(py)
    }

    fn submit(&self, py: Python<'_>, mut job: Job) -> Result<(), (Job, PyErr)> {
        if self.settings.metrics.is_some() {
            job.queued_at(Instant::now());
        }
        match self.queue.push(job) {
            Push::Queued => Ok(()),
            Push::StartWorker(index) => {
                self.start_worker(py, index);
                Ok(())
            }
            Push::Closed(job) => Err((job, self.closed_error(py))),
        }
    }

    fn submit_many(&self, py: Python<'_>, mut jobs: Vec<Job>) -> Result<(), (Vec<Job>, PyErr)> {
        if self.settings.metrics.is_some() {
            let now = Instant::now();
            jobs.iter_mut().for_each(|job| job.queued_at(now));
        }
        match self.queue.push_many(jobs) {
            Ok(start) => {
                for index in start {
                    self.start_worker(py, index);
                }
                Ok(())
            }
            Err(jobs) => Err((jobs, self.closed_error(py))),
        }
    }

    fn shutdown(&self, py: Python<'_>, barrier: Option<Arc<DrainBarrier>>) {
        if let Some(barrier) = barrier {
            *lock(&self.on_drained) = Some(barrier);
        }
        let queued = self.queue.close();
        self.count_cancelled(queued.len());
        for job in queued {
            job.cancel(py);
        }
        // Calls abandoned at a drain's deadline are not waited for.
        if self.queue.running_workers() == 0 || self.calls.is_abandoned() {
            self.fire_drained(py);
        }
    }

    fn tally(&self) -> DrainReport {
        DrainReport {
            finished: self.calls.finished(),
            cancelled: self.calls.refused(),
            ..DrainReport::default()
        }
    }

    fn abort(&self, py: Python<'_>) -> DrainReport {
        let mut cancelled = 0;
        let queued = self.queue.close();
        self.count_cancelled(queued.len());
        for job in queued {
            if !job.is_cancelled(py) {
                cancelled += 1;
            }
            job.cancel(py);
        }
        DrainReport {
            cancelled,
            killed: self.calls.abandon(),
            ..DrainReport::default()
        }
    }

    fn take_reapable(&self) -> Reapable {
        if self.calls.is_abandoned() {
            // Abandoned calls may never end: joining their threads would hold `stop()`.
            return Reapable::default();
        }
        Reapable {
            threads: std::mem::take(&mut *lock(&self.threads)),
            processes: Vec::new(),
        }
    }
}

fn broken_error(py: Python<'_>) -> PyErr {
    crate::errors::new_exception(
        broken_thread_pool(py),
        "A thread initializer failed, the thread pool is not usable anymore",
    )
}
