//! The process and interpreter backends: each leased pool wraps one standard-library
//! executor (`ProcessPoolExecutor` / `InterpreterPoolExecutor`), created lazily on
//! the first submission.
//!
//! # Why wrap the stdlib executor
//! `ProcessPoolExecutor` already does what a process pool must get right:
//! `initializer`/`initargs`, `mp_context`, `max_tasks_per_child`, dead-worker
//! detection, remote tracebacks, clean shutdown at interpreter exit. Its cost is per
//! *task* (110–220 µs gathered, docs/design-facts.md "Process backend"), not per call: 100
//! calls in one task cost 2–5 µs each. So this module keeps the executor and changes
//! what a task is.
//!
//! # Chunks
//! Queued calls wait in this pool's own FIFO. A dispatcher ([`ProcessPool::pump`])
//! takes up to [`leasepool::chunking::MAX_CHUNK`] of them, pickles each call on its own (so an
//! unpicklable call fails only its own await) and submits ONE executor task,
//! `_process_worker.run_chunk`, which returns one pickled outcome per call (so
//! exceptions and unpicklable results stay per call, and carry the stdlib's
//! `_RemoteTraceback` cause). At most [`CHUNKS_PER_WORKER`] × workers chunks are in
//! flight; everything else stays queued here, where a cancelled call is dropped
//! before it runs. The chunk size adapts to each callable's measured call time
//! (the engine's `leasepool::chunking` plans it): about 5 ms of calls per chunk, a
//! callable never measured or slow travels alone, and a worker stops starting new
//! calls of a chunk after [`CHUNK_BUDGET_SECONDS`] (the rest come back and are
//! re-queued at the front). With `max_tasks_per_child` every call is its own task,
//! so the limit keeps counting calls. Outcomes are delivered from the chunk future's
//! done-callback (the executor's management thread), and the event loop's doorbell is
//! rung once per chunk, after detaching.
//!
//! # Crash recovery
//! A worker that dies breaks the executor: it fails every task in flight and kills the
//! other workers. The first callback that sees `BrokenProcessPool` inspects the dead
//! processes' exit codes (before the executor kills the rest) and a shared progress
//! array (`[chunk seq, pid, call index]` per chunk slot, written by `run_chunk`):
//! the call that was running in the dead process fails with a `BrokenProcessPool`
//! naming the process and its exit code or signal; calls that had started elsewhere
//! (or had finished but whose results died with the process) fail with a message
//! naming the cause; calls that never started are re-queued. The broken executor is
//! dropped and the next dispatch creates a fresh one inside the same leased pool, so
//! the lease keeps working. A worker that exits with code 0 without running a call
//! means its initializer failed: like the stdlib, the pool is then broken for good
//! (so is one whose executors die [`leasepool::crash::MAX_BARREN_GENERATIONS`] times in a
//! row before completing anything). Those verdicts (the culprit, whether the pool is
//! unusable, what became of each call) are decided by the engine's `leasepool::crash`;
//! this module gathers the facts (exit statuses, progress records) and words the errors.
//!
//! # Hard revocation
//! [`ExecutorPool::revoke`] (a lease passed its hard expiry) fails every queued and
//! in-flight call with `LeaseExpiredError`, terminates the executor's processes and
//! kills the survivors after [`KILL_GRACE`]. A plain [`ExecutorPool::shutdown`]
//! (release above target, `stop()`) lets running calls finish. Interpreters cannot
//! be killed: revoking an interpreter pool fails the awaits but lets the calls end.
//!
//! # Interpreter backend
//! Same wrapper without chunks: nothing that runs in a sub-interpreter may import
//! `leasepool` (a PyO3 extension cannot be loaded there), so each call is submitted
//! to `InterpreterPoolExecutor` as the user's own callable.
//!
//! # Locking
//! One mutex per pool; no Python runs under it, and no job or Python object is
//! dropped under it (drops can run Python).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use leasepool::chunking::CallDurations;
use leasepool::crash::{
    classify_chunk, culprit, retry, unusable, CallVerdict, CrashFacts, DeadWorker, RaisedCalls,
    Unusable,
};
use pyo3::exceptions::PyRuntimeError;
use std::time::Instant;

use leasepool::metrics::CallMetrics;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::aio::{Completion, LoopBridge, LoopTask};
use crate::attach::attach_known_thread;
use crate::errors::guard_panics;
use crate::job::Job;
use crate::pool::{DrainBarrier, ExecutorPool, Reapable};
use crate::py_cache::{
    background_kill_after, background_release, background_run, broken_process_pool,
    broken_thread_pool, check_dask_arguments, coerce_log_level, dask_dumps_call, dask_pickle_dumps,
    describe_exit, exception_class, executor_processes, executor_threads, launch_processes,
    pickle_loads, raw_array, resolve_executor_settings, start_forwarding, stop_broken_processes,
    wait_for_teardown, worker_dumps, worker_initialize, worker_run_chunk,
};

/// Cells per chunk slot in the progress array: `[chunk seq, pid, index of the call
/// being run, bitmask of the calls that raised]` (`_process_worker.PROGRESS_CELLS`).
const PROGRESS_CELLS: usize = 4;
/// Chunks in flight per worker: enough to keep every worker fed while the next chunk
/// crosses the pipe, few enough that later calls stay cancellable here.
const CHUNKS_PER_WORKER: usize = 2;
/// A worker starts no further call of a chunk after this long.
const CHUNK_BUDGET_SECONDS: f64 = 0.02;
/// Between terminating a revoked pool's processes and killing the survivors.
const KILL_GRACE: Duration = Duration::from_millis(500);
/// How long a crash handler waits for a killed survivor of a broken executor to be
/// reaped (SIGKILL: normally immediate; a process in uninterruptible sleep may lag).
const SURVIVOR_REAP_SECONDS: f64 = 5.0;
use crate::sync::lock;

mod backend;
mod crash;
mod dask;
mod dispatch;
mod executor_pool;
mod exit;
mod interpreter;
mod kind;
mod process;
mod resilience;
pub(crate) use resilience::Resilience;
mod spawn;
pub(crate) use backend::ProcessBackend;
use backend::Settings;
use exit::*;
pub(crate) use kind::Kind;

/// Bridges whose doorbell must be rung once the deliveries of a batch are done.
#[derive(Default)]
struct Rings(Vec<Arc<LoopBridge>>);

impl Rings {
    fn add(&mut self, bridge: Option<Arc<LoopBridge>>) {
        if let Some(bridge) = bridge {
            if !self.0.iter().any(|b| Arc::ptr_eq(b, &bridge)) {
                self.0.push(bridge);
            }
        }
    }

    /// Rings after detaching, so the loop never wakes into a held GIL.
    fn ring(self, py: Python<'_>) {
        if !self.0.is_empty() {
            py.detach(|| {
                for bridge in &self.0 {
                    bridge.ring();
                }
            });
        }
    }
}

/// A queued call and whether its taker was already told it started.
struct Item {
    job: Job,
    claimed: bool,
    /// When it was dispatched (the interpreter backend's run time starts here).
    started: Option<Instant>,
    /// The manager's call metrics, if it keeps them; taken once the call's end is
    /// counted, so no path counts it twice.
    metrics: Option<Arc<CallMetrics>>,
    /// Runs so far that a worker's death cut short, plus one (see `crash::retry`).
    attempts: u32,
    /// The crash breaker's epoch when the call was admitted (`leasepool::breaker`).
    breaker_epoch: u64,
}

impl Item {
    /// A call for `pool`'s queue; its queue time starts now if calls are counted.
    fn queued(mut job: Job, metrics: Option<&Arc<CallMetrics>>, breaker_epoch: u64) -> Self {
        if metrics.is_some() {
            job.queued_at(Instant::now());
        }
        Self {
            job,
            claimed: false,
            started: None,
            metrics: metrics.cloned(),
            attempts: 1,
            breaker_epoch,
        }
    }

    /// The call, to run somewhere else (never claimed here, so not counted here).
    fn into_job(self) -> Job {
        self.job
    }

    /// Whether a dispatcher claimed the call already (it came back re-queued).
    fn is_claimed(&self) -> bool {
        self.claimed
    }

    /// Marks the call as started; `false` if nobody wants its outcome any more.
    fn claim(&mut self, py: Python<'_>) -> bool {
        if self.claimed {
            // A `concurrent.futures.Future` is RUNNING now: ask without re-claiming.
            return !self.job.is_cancelled(py);
        }
        self.claimed = self.job.is_wanted(py);
        if self.claimed {
            let now = Instant::now();
            if let Some(metrics) = &self.metrics {
                metrics.started(self.job.queued_ns(now));
            }
            self.started = Some(now);
        } else if let Some(metrics) = self.metrics.take() {
            metrics.cancelled();
        }
        self.claimed
    }

    /// Counts the call's end: it ran `ran_ns` and returned (`ok`) or raised.
    fn ended(&mut self, ran_ns: u64, ok: bool) {
        if let Some(metrics) = self.metrics.take() {
            metrics.ended(ran_ns, ok);
        }
    }

    /// Counts the call's end with the time since its dispatch (the interpreter
    /// backend, whose executor reports no timing).
    fn ended_now(&mut self, ok: bool) {
        let ran = self
            .started
            .map_or(0, |at| crate::job::duration_ns(at.elapsed()));
        self.ended(ran, ok);
    }

    fn fail(mut self, py: Python<'_>, err: PyErr, rings: &mut Rings) {
        if let Some(metrics) = self.metrics.take() {
            metrics.lost();
        }
        if self.claimed {
            rings.add(self.job.deliver(py, Err(err)));
        } else {
            self.job.fail(py, err);
        }
    }

    /// The pool shut down before this call started.
    fn cancel(mut self, py: Python<'_>, rings: &mut Rings) {
        if let Some(metrics) = self.metrics.take() {
            metrics.cancelled();
        }
        if self.claimed {
            rings.add(self.job.cancel_claimed(py));
        } else {
            self.job.cancel(py);
        }
    }

    /// Identifies the callable for duration bookkeeping (its address).
    fn key(&self) -> usize {
        self.job.parts().0.as_ptr() as usize
    }

    fn function_name(&self, py: Python<'_>) -> String {
        describe_callable(self.job.parts().0.bind(py))
    }
}

/// `module.qualname()` of a callable, for error messages (`functools.partial(...)`
/// around what a partial wraps).
fn describe_callable(func: &Bound<'_, PyAny>) -> String {
    let py = func.py();
    if let Ok(partial) = crate::py_cache::functools_partial(py) {
        if func.is_instance(partial).unwrap_or(false) {
            if let Ok(inner) = func.getattr("func") {
                let inner = describe_callable(&inner);
                return format!("functools.partial({})", inner.trim_end_matches("()"));
            }
        }
    }
    let name = func
        .getattr("__qualname__")
        .or_else(|_| func.getattr("__name__"))
        .and_then(|n| n.str().map(|s| s.to_string()))
        .unwrap_or_else(|_| {
            func.repr()
                .map_or_else(|_| "?".to_owned(), |r| r.to_string())
        });
    match func
        .getattr("__module__")
        .and_then(|m| m.extract::<String>())
    {
        Ok(module) => format!("{module}.{name}()"),
        Err(_) => format!("{name}()"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Takes work.
    Open,
    /// Shut down: queued calls were cancelled; running ones finish.
    Draining,
    /// Hard-revoked: everything failed, processes terminated.
    Revoked,
    /// The executor cannot work (its initializer fails).
    Broken,
}

/// What happened when an executor broke, worked out once per executor.
struct Crash {
    /// `worker process 1234 died with signal 9 (SIGKILL) while running f()`.
    cause: String,
    /// The dead processes: pid and how each died.
    dead: Vec<(i64, String)>,
    /// The pool must not be used again (an initializer fails).
    fatal: Option<String>,
    /// A surviving process could not be reaped: its progress may still change, so
    /// nothing of this executor is re-queued (at most once beats at least once).
    unsettled: bool,
}

/// One executor of a pool (a fresh one replaces it when it breaks).
struct Generation {
    id: u64,
    /// Always `Some` until dropped.
    executor: Option<Py<PyAny>>,
    completed: AtomicBool,
    crash: PyOnceLock<Crash>,
    /// Chunks the executor failed when it broke, waiting for `settle_crash`.
    casualties: Mutex<Vec<Casualty>>,
    /// The first casualty arrived: a settler is on its way.
    settling: AtomicBool,
    /// `settle_crash` took the casualties: any later one is failed on arrival.
    settled: AtomicBool,
}

/// A chunk failed by a broken executor, before anyone decided what to do with it.
struct Casualty {
    seq: u64,
    slot: usize,
    items: Vec<Item>,
    err: PyErr,
}

impl Generation {
    fn executor<'py>(&self, py: Python<'py>) -> Bound<'py, PyAny> {
        match &self.executor {
            Some(executor) => executor.bind(py).clone(),
            None => py.None().into_bound(py),
        }
    }
}

impl Drop for Generation {
    /// Lets go of the executor on a `threading.Thread` of its own. The last reference
    /// may go in one of the executor's done-callbacks, i.e. on its management thread,
    /// while it holds its `shutdown_lock` (`terminate_broken` in 3.13 and 3.14); in
    /// CPython 3.13 the executor's weakref callback takes that same lock, so
    /// finalising the executor there would deadlock. The thread is a `threading` one
    /// because a thread the engine spawned would have to attach to the interpreter,
    /// and attaching races `fork()` (see `_background.py`).
    fn drop(&mut self) {
        let Some(executor) = self.executor.take() else {
            return;
        };
        let mut executor = Some(executor);
        attach_known_thread(|py| {
            let handed_over = background_release(py)
                .and_then(|release| release.call1((executor.take(),)))
                .and_then(|started| started.is_truthy())
                .unwrap_or(false);
            if !handed_over {
                // Interpreter shutdown: no thread can start; the executor's own exit
                // hook joins its processes, so leaking this reference is harmless.
                std::mem::forget(executor.take());
            }
        });
        // Not attachable (interpreter gone): nothing may be touched, not even refcounts.
        std::mem::forget(executor);
    }
}

/// Calls submitted to the executor as one task.
struct Chunk {
    generation: Arc<Generation>,
    slot: usize,
    items: Vec<Item>,
    /// The executor's future for this chunk, once submitted.
    future: Option<Py<PyAny>>,
}

struct State {
    mode: Mode,
    broken_message: String,
    queue: VecDeque<Item>,
    /// In-flight chunks by sequence number (registered before submission).
    chunks: HashMap<u64, Chunk>,
    /// Chunks taken from the queue and not yet finished (registered or not).
    in_flight: usize,
    free_slots: Vec<usize>,
    next_chunk: u64,
    generation: Option<Arc<Generation>>,
    /// The spawner thread is creating the next executor.
    spawning: bool,
    /// A thread is moving chunks to the executor (see [`ProcessPool::pump`]).
    dispatching: bool,
    next_generation: u64,
    /// Executors that broke in a row before completing any chunk.
    barren: u32,
    /// Measured seconds per call of each callable (by address; moving average).
    durations: CallDurations<usize>,
    barrier: Option<Arc<DrainBarrier>>,
    drained: bool,
    /// A drain's deadline abandoned the calls still running (interpreter backend):
    /// shutting down does not wait for them, and nothing is joined.
    abandoned: bool,
    /// What `stop()` joins once the pool drained: a process executor's management
    /// thread (which joins the worker processes) and those processes; an
    /// interpreter executor's worker threads.
    reapable: Reapable,
}

/// One leased executor of the process or interpreter backend.
pub(crate) struct ProcessPool {
    this: Weak<ProcessPool>,
    seq: u64,
    backend: Arc<ProcessBackend>,
    cap: usize,
    state: Mutex<State>,
    /// `[chunk seq, pid, call index]` per slot (process backend), then one halt flag;
    /// made with the first executor and shared with every later one.
    progress: PyOnceLock<Py<PyAny>>,
    /// Mirrors `Mode::Broken` without the state lock: read after every call of a lease.
    broken: AtomicBool,
    /// Calls whose outcome came back from the executor (a graceful drain's `finished`).
    finished: AtomicU64,
    /// `backend="auto"`: where a call that cannot be pickled runs instead.
    fallback: OnceLock<Arc<dyn crate::pool::Reroute>>,
}

use crate::errors::new_exception as make_error;

fn lease_expired(py: Python<'_>, message: &str) -> PyErr {
    make_error(exception_class(py, "LeaseExpiredError"), message)
}

impl ProcessPool {
    fn new(seq: u64, backend: Arc<ProcessBackend>) -> Arc<Self> {
        // A Dask pool is `workers` concurrent tasks on the cluster; a process pool
        // keeps a second chunk queued per worker so none idles between chunks.
        let per_worker = if backend.kind == Kind::Dask {
            1
        } else {
            CHUNKS_PER_WORKER
        };
        let cap = per_worker * backend.workers.max(1);
        let pool = Arc::new_cyclic(|this| Self {
            this: this.clone(),
            seq,
            backend,
            cap,
            state: Mutex::new(State {
                mode: Mode::Open,
                broken_message: String::new(),
                queue: VecDeque::new(),
                chunks: HashMap::new(),
                in_flight: 0,
                free_slots: (0..cap).rev().collect(),
                next_chunk: 0,
                generation: None,
                spawning: false,
                dispatching: false,
                next_generation: 0,
                barren: 0,
                durations: CallDurations::default(),
                barrier: None,
                drained: false,
                abandoned: false,
                reapable: Reapable::default(),
            }),
            progress: PyOnceLock::new(),
            broken: AtomicBool::new(false),
            finished: AtomicU64::new(0),
            fallback: OnceLock::new(),
        });
        crate::lifecycle::track(&pool);
        pool
    }

    fn kind(&self) -> Kind {
        self.backend.kind
    }

    /// Calls that cannot be pickled go to `fallback` instead of failing
    /// (`backend="auto"`). Set once, before the pool is used.
    pub(crate) fn reroute_unpicklable_to(&self, fallback: Arc<dyn crate::pool::Reroute>) {
        let _ = self.fallback.set(fallback);
    }

    fn settings(&self) -> PyResult<&Arc<Settings>> {
        self.backend.settings.get().ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err("leasepool: the manager was never started")
        })
    }

    fn closed_error(&self, py: Python<'_>, mode: Mode, message: &str) -> PyErr {
        match mode {
            Mode::Broken => make_error(self.broken_cls(py), message),
            Mode::Revoked => crate::errors::lease_error(py, &leasepool::LeaseError::ExpiredRevoked),
            _ => crate::errors::lease_error(py, &leasepool::LeaseError::Inactive),
        }
    }

    fn broken_cls<'py>(&self, py: Python<'py>) -> PyResult<&'py Bound<'py, PyAny>> {
        self.kind().broken_class(py)
    }

    /// Tells every worker to start no further call (`run_chunk` checks the flag before
    /// each one): at shutdown, chunks already handed to the executor but not started
    /// come back unrun and are cancelled, instead of running after `stop()`.
    fn halt_workers(&self, py: Python<'_>) {
        if let Some(progress) = self.progress.get(py) {
            let _ = progress.bind(py).set_item(PROGRESS_CELLS * self.cap, 1);
        }
    }

    /// If the pool was shut down and nothing runs or waits any more: the drain barrier.
    fn take_drained(&self, st: &mut State) -> Option<Option<Arc<DrainBarrier>>> {
        if st.mode != Mode::Open && !st.drained && st.in_flight == 0 && st.queue.is_empty() {
            st.drained = true;
            Some(st.barrier.take())
        } else {
            None
        }
    }

    /// The pool drained: release its executor (its workers are idle) and arrive at
    /// the barrier.
    ///
    /// Never `executor.shutdown()` here or anywhere an executor's done-callback may
    /// run: the stdlib runs some callbacks under the executor's own `shutdown_lock`
    /// (`ThreadPoolExecutor` after a failed initializer, `terminate_broken` in 3.13
    /// and 3.14), and CPython 3.11's shutdown races a `max_tasks_per_child` exit on
    /// the management thread. Dropping
    /// the executor is the stdlib's other way out: its weakref callback wakes the
    /// management thread (or the worker threads), which stop the workers. The
    /// threads are kept for `join_threads`.
    fn finish_drain(&self, py: Python<'_>, drained: Option<Option<Arc<DrainBarrier>>>) {
        let Some(barrier) = drained else { return };
        let generation = lock(&self.state).generation.take();
        if let Some(generation) = generation {
            let executor = generation.executor(py);
            let list = |glue: PyResult<&Bound<'_, PyAny>>| -> Vec<Py<PyAny>> {
                glue.and_then(|f| f.call1((&executor,))?.extract())
                    .unwrap_or_default()
            };
            let reapable = Reapable {
                threads: list(executor_threads(py)),
                processes: list(executor_processes(py)),
            };
            lock(&self.state).reapable.extend(reapable);
            if crate::lifecycle::exiting() {
                lock(&KEPT_FOR_EXIT).push(generation);
            } else {
                drop(generation);
            }
        }
        if let Some(barrier) = barrier {
            barrier.arrive(py);
        }
    }

    /// Terminates a generation's worker processes; kills survivors after a grace.
    fn terminate_processes(py: Python<'_>, executor: &Bound<'_, PyAny>) {
        let processes: Vec<Py<PyAny>> = executor_processes(py)
            .and_then(|f| f.call1((executor,))?.extract())
            .unwrap_or_default();
        for process in &processes {
            crate::errors::best_effort(py, process.bind(py).call_method0("terminate"));
        }
        if processes.is_empty() {
            return;
        }
        let killer = background_kill_after(py)
            .and_then(|kill_after| kill_after.call1((KILL_GRACE.as_secs_f64(), processes)));
        if let Err(err) = killer {
            crate::errors::report_unraisable(py, err, None);
        }
    }
}
