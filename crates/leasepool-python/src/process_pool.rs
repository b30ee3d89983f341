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
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use leasepool::chunking::CallDurations;
use leasepool::crash::{
    classify_chunk, culprit, unusable, CallVerdict, CrashFacts, DeadWorker, Unusable,
};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use crate::attach::attach_known_thread;
use crate::bridge::{Completion, LoopBridge, LoopTask};
use crate::errors::guard_panics;
use crate::job::Job;
use crate::pool::{DrainBarrier, ExecutorPool, Reapable};
use crate::py_cache::{
    background_kill_after, background_release, background_run, broken_process_pool,
    broken_thread_pool, coerce_log_level, exception_class, mp_wait, pickle_loads, raw_array,
    resolve_executor_cls, start_forwarding, worker_dumps, worker_initialize, worker_run_chunk,
};

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

/// Which standard-library executor a pool wraps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Process,
    Interpreter,
}

/// Resolved at the first `start()`: how every executor of this manager is built.
struct Settings {
    executor_cls: Py<PyAny>,
    /// Keyword arguments for the executor, without `initializer`/`initargs` for the
    /// process backend (those are composed per executor, see `initargs_tail`).
    kwargs: Py<PyDict>,
    /// `(log_setup, user_initializer, user_initargs)`: the end of the arguments of
    /// `_process_worker.initialize` (after the progress array).
    initargs_tail: Py<PyTuple>,
    /// `max_tasks_per_child` is set: one call per task, so it keeps counting calls.
    one_call_per_task: bool,
    /// The user set `thread_name_prefix` (interpreter backend).
    has_thread_prefix: bool,
    /// The parent end of log forwarding: `(queue, target logger)`.
    log_forwarding: Option<(Py<PyAny>, Py<PyAny>)>,
}

/// The manager-wide part of the process and interpreter backends: configuration,
/// executor settings and the log-forwarding listener.
pub(crate) struct ProcessBackend {
    kind: Kind,
    backend: Py<PyAny>,
    workers: usize,
    name_prefix: String,
    executor_kwargs: Py<PyDict>,
    process_logging: Py<PyAny>,
    logger: Py<PyAny>,
    settings: OnceLock<Arc<Settings>>,
    listener: Mutex<Option<Py<PyAny>>>,
}

impl ProcessBackend {
    /// The backend for `backend_name`, or `None` for the thread backend.
    #[allow(clippy::too_many_arguments)] // the manager's configuration, passed through
    pub(crate) fn for_backend(
        py: Python<'_>,
        backend_name: &str,
        backend: &Bound<'_, PyAny>,
        workers: usize,
        name_prefix: &str,
        executor_kwargs: &Py<PyDict>,
        process_logging: &Bound<'_, PyAny>,
        logger: &Py<PyAny>,
    ) -> Option<Arc<Self>> {
        let kind = match backend_name {
            "process" => Kind::Process,
            "interpreter" => Kind::Interpreter,
            _ => return None,
        };
        Some(Arc::new(Self {
            kind,
            backend: backend.clone().unbind(),
            workers,
            name_prefix: name_prefix.to_owned(),
            executor_kwargs: executor_kwargs.clone_ref(py),
            process_logging: process_logging.clone().unbind(),
            logger: logger.clone_ref(py),
            settings: OnceLock::new(),
            listener: Mutex::new(None),
        }))
    }

    /// A new (empty, process-less) pool; cheap, no Python (runs under the engine lock).
    pub(crate) fn pool(self: &Arc<Self>, seq: u64) -> Arc<ProcessPool> {
        ProcessPool::new(seq, self.clone())
    }

    /// Resolves the executor settings (first start only; validates the executor
    /// arguments the way constructing the executor does) and starts log forwarding.
    pub(crate) fn start(&self, py: Python<'_>) -> PyResult<()> {
        let settings = match self.settings.get() {
            Some(settings) => settings.clone(),
            None => {
                let resolved = Arc::new(self.resolve(py)?);
                self.settings.get_or_init(|| resolved).clone()
            }
        };
        if let Some((queue, target)) = &settings.log_forwarding {
            if lock(&self.listener).is_none() {
                let listener = start_forwarding(py)?.call1((queue, target))?.unbind();
                let raced = lock(&self.listener).replace(listener);
                if let Some(other) = raced {
                    // Started twice at once: keep one listener.
                    other.bind(py).call_method0("stop")?;
                }
                let log = self.logger.bind(py);
                if log.call_method1("isEnabledFor", (10,))?.is_truthy()? {
                    log.call_method1(
                        "debug",
                        (
                            "Process log forwarding started target_logger=%s level=%s",
                            target.bind(py).getattr("name")?,
                            coerce_log_level(py)?
                                .call1((self.process_logging.bind(py).getattr("level")?,))?,
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// Stops log forwarding (after the pools' processes were joined, so every record
    /// they sent is handled first).
    pub(crate) fn stop(&self, py: Python<'_>) {
        let listener = lock(&self.listener).take();
        if let Some(listener) = listener {
            if let Err(err) = listener.bind(py).call_method0("stop") {
                crate::errors::report_unraisable(py, err, None);
            }
        }
    }

    fn resolve(&self, py: Python<'_>) -> PyResult<Settings> {
        let executor_cls = resolve_executor_cls(py)?.call1((self.backend.bind(py),))?;
        let kwargs = self.executor_kwargs.bind(py).copy()?;
        let none = py.None();
        let mut initargs_tail = PyTuple::empty(py);
        let mut log_forwarding = None;
        let one_call_per_task = kwargs
            .get_item("max_tasks_per_child")?
            .is_some_and(|v| !v.is_none());
        let has_thread_prefix = kwargs.contains("thread_name_prefix")?;
        let probe_kwargs = kwargs.copy()?;
        if self.kind == Kind::Process {
            let initializer = kwargs
                .get_item("initializer")?
                .unwrap_or_else(|| none.bind(py).clone());
            let initargs = match kwargs.get_item("initargs")? {
                Some(args) => py.get_type::<PyTuple>().call1((args,))?,
                None => PyTuple::empty(py).into_any(),
            };
            let _ = kwargs.del_item("initializer");
            let _ = kwargs.del_item("initargs");
            let config = self.process_logging.bind(py);
            let mut log_setup = none.bind(py).clone();
            if config.getattr("enabled")?.is_truthy()? {
                // The queue comes from the executor's context. As in leasepool 0.1.3,
                // without an explicit `mp_context` that context never forks: the
                // listener thread already runs in the parent (forkserver where
                // available, else spawn; spawn with max_tasks_per_child, which is
                // what ProcessPoolExecutor picks then).
                let mp = py.import("multiprocessing")?;
                let context = match kwargs.get_item("mp_context")? {
                    Some(ctx) if !ctx.is_none() => ctx,
                    _ => {
                        let methods = mp.call_method0("get_all_start_methods")?;
                        let method = if one_call_per_task {
                            "spawn"
                        } else if methods.contains("forkserver")? {
                            "forkserver"
                        } else {
                            "spawn"
                        };
                        let ctx = mp.call_method1("get_context", (method,))?;
                        kwargs.set_item("mp_context", &ctx)?;
                        probe_kwargs.set_item("mp_context", &ctx)?;
                        ctx
                    }
                };
                let queue = context.call_method1("Queue", (-1,))?;
                let level = coerce_log_level(py)?.call1((config.getattr("level")?,))?;
                let clear = config.getattr("clear_child_handlers")?.is_truthy()?;
                log_setup = PyTuple::new(
                    py,
                    [
                        queue.clone(),
                        level,
                        clear.into_pyobject(py)?.to_owned().into_any(),
                    ],
                )?
                .into_any();
                let target = match config.getattr("target_logger")? {
                    t if t.is_none() => self.logger.bind(py).clone(),
                    t => t,
                };
                log_forwarding = Some((queue.unbind(), target.unbind()));
            }
            initargs_tail = PyTuple::new(py, [log_setup, initializer, initargs])?;
            probe_kwargs.set_item("initializer", worker_initialize(py)?)?;
            let mut probe_args = vec![none.bind(py).clone()];
            probe_args.extend(initargs_tail.iter());
            probe_kwargs.set_item("initargs", PyTuple::new(py, probe_args)?)?;
        } else if !has_thread_prefix {
            probe_kwargs.set_item("thread_name_prefix", format!("{}-0", self.name_prefix))?;
        }
        // Constructing an executor starts no process or thread; it raises the same
        // TypeError/ValueError for bad arguments that leasepool 0.1.1 raised at start().
        let probe = executor_cls.call((self.workers,), Some(&probe_kwargs))?;
        probe.call_method1("shutdown", (false,))?;
        Ok(Settings {
            executor_cls: executor_cls.unbind(),
            kwargs: kwargs.unbind(),
            initargs_tail: initargs_tail.unbind(),
            one_call_per_task,
            has_thread_prefix,
            log_forwarding,
        })
    }
}

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
}

impl Item {
    /// Marks the call as started; `false` if nobody wants its outcome any more.
    fn claim(&mut self, py: Python<'_>) -> bool {
        if self.claimed {
            // A `concurrent.futures.Future` is RUNNING now: ask without re-claiming.
            return !self.job.is_cancelled(py);
        }
        self.claimed = self.job.is_wanted(py);
        self.claimed
    }

    fn fail(self, py: Python<'_>, err: PyErr, rings: &mut Rings) {
        if self.claimed {
            rings.add(self.job.deliver(py, Err(err)));
        } else {
            self.job.fail(py, err);
        }
    }

    /// The pool shut down before this call started.
    fn cancel(self, py: Python<'_>, rings: &mut Rings) {
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

/// `module.qualname()` of a callable, for error messages.
fn describe_callable(func: &Bound<'_, PyAny>) -> String {
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
}

static LIVE_POOLS: Mutex<Vec<Weak<ProcessPool>>> = Mutex::new(Vec::new());
static HOOKS_REGISTERED: AtomicBool = AtomicBool::new(false);
/// Interpreter exit began (our exit hook ran): no executor is created any more.
static EXITING: AtomicBool = AtomicBool::new(false);
/// Spawner threads started and not finished. The exit hook waits for them: an
/// executor whose manager thread starts after the stdlib's own exit hook has listed
/// the threads to join is never woken, and `multiprocessing`'s exit handler then
/// joins its idle workers forever.
///
/// Worker processes are forked *during* a spawn and inherit both this count and the
/// exit hook, so the count is tied to the process that keeps it: a forked child
/// never waits for (or locks anything of) its parent's spawns.
static SPAWNS_IN_FLIGHT: Mutex<usize> = Mutex::new(0);
static SPAWN_COUNT_OWNER: AtomicU32 = AtomicU32::new(0);
static SPAWNS_DONE: std::sync::Condvar = std::sync::Condvar::new();
/// How long the exit hook waits for spawns in flight.
const EXIT_SPAWN_WAIT: Duration = Duration::from_secs(10);

fn spawn_started() {
    let mut in_flight = lock(&SPAWNS_IN_FLIGHT);
    SPAWN_COUNT_OWNER.store(std::process::id(), Ordering::Release);
    *in_flight += 1;
}

fn spawn_finished() {
    let mut in_flight = lock(&SPAWNS_IN_FLIGHT);
    *in_flight = in_flight.saturating_sub(1);
    SPAWNS_DONE.notify_all();
}

/// Waits (bounded) until no spawn of this process is in flight.
fn wait_for_spawns() {
    if SPAWN_COUNT_OWNER.load(Ordering::Acquire) != std::process::id() {
        return; // nothing spawned here, or an inherited count (a forked child)
    }
    let in_flight = lock(&SPAWNS_IN_FLIGHT);
    let waited = SPAWNS_DONE.wait_timeout_while(in_flight, EXIT_SPAWN_WAIT, |n| *n > 0);
    drop(waited);
}
/// Executors drained during interpreter exit, kept alive (never dropped) so that the
/// stdlib's own exit hook wakes and joins their management threads. Dropping one
/// there instead makes its management thread close its wakeup pipe while
/// `concurrent.futures.process._python_exit` writes to it without the executor's
/// lock (`OSError: [Errno 9] Bad file descriptor`, "Exception ignored" at exit).
static KEPT_FOR_EXIT: Mutex<Vec<Arc<Generation>>> = Mutex::new(Vec::new());

/// `threading` exit hook (runs before `ProcessPoolExecutor`'s own, which then joins
/// the workers): stop dispatching and cancel what has not started.
#[pyfunction]
pub(crate) fn _shutdown_process_pools(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    // Runs before the stdlib's exit hook (registered earlier): let every executor
    // being created right now finish, so that hook finds and joins it.
    py.detach(wait_for_spawns);
    let pools: Vec<Arc<ProcessPool>> = std::mem::take(&mut *lock(&LIVE_POOLS))
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for pool in pools {
        pool.shutdown(py, None);
    }
}

/// `os.register_at_fork(after_in_child=...)`: a forked child owns none of the
/// parent's executors; forget them without touching them.
#[pyfunction]
pub(crate) fn _forget_process_pools_after_fork() {
    if let Ok(mut pools) = LIVE_POOLS.try_lock() {
        std::mem::forget(std::mem::take(&mut *pools));
    }
}

fn register_hooks(py: Python<'_>) {
    if HOOKS_REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    let registered = (|| -> PyResult<()> {
        // Import first so that ProcessPoolExecutor's exit hook is registered before
        // ours, and therefore runs after it.
        py.import("concurrent.futures.process")?;
        let exit_hook = wrap_pyfunction!(_shutdown_process_pools, py)?;
        py.import("threading")?
            .call_method1("_register_atexit", (exit_hook,))?;
        let fork_hook = wrap_pyfunction!(_forget_process_pools_after_fork, py)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("after_in_child", fork_hook)?;
        py.import("os")?
            .call_method("register_at_fork", (), Some(&kwargs))?;
        Ok(())
    })();
    if registered.is_err() {
        // Interpreter shutdown already began: nothing left to hook into.
        HOOKS_REGISTERED.store(false, Ordering::Release);
    }
}

use crate::errors::new_exception as make_error;

fn lease_expired(py: Python<'_>, message: &str) -> PyErr {
    make_error(exception_class(py, "LeaseExpiredError"), message)
}

/// `exit code 3` / `signal 9 (SIGKILL)`.
fn describe_exit(py: Python<'_>, code: i64) -> String {
    if code >= 0 {
        return format!("exit code {code}");
    }
    let signal = -code;
    let name = py.import("signal").and_then(|m| {
        m.getattr("Signals")?
            .call1((signal,))?
            .getattr("name")?
            .extract::<String>()
    });
    match name {
        Ok(name) => format!("signal {signal} ({name})"),
        Err(_) => format!("signal {signal}"),
    }
}

impl ProcessPool {
    fn new(seq: u64, backend: Arc<ProcessBackend>) -> Arc<Self> {
        let cap = CHUNKS_PER_WORKER * backend.workers.max(1);
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
                reapable: Reapable::default(),
            }),
            progress: PyOnceLock::new(),
            broken: AtomicBool::new(false),
        });
        let mut live = lock(&LIVE_POOLS);
        live.retain(|weak| weak.strong_count() > 0);
        live.push(Arc::downgrade(&pool));
        pool
    }

    fn kind(&self) -> Kind {
        self.backend.kind
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
        match self.kind() {
            Kind::Process => broken_process_pool(py),
            Kind::Interpreter => broken_thread_pool(py),
        }
    }

    /// Calls for the next chunk, as the engine's planner
    /// ([`CallDurations::chunk_size`]) decides from the measured call times; one per
    /// task for interpreters and under `max_tasks_per_child`.
    fn chunk_size(&self, st: &State) -> usize {
        if self.kind() == Kind::Interpreter
            || self
                .backend
                .settings
                .get()
                .is_some_and(|s| s.one_call_per_task)
        {
            return 1;
        }
        st.durations
            .chunk_size(st.queue.iter().map(Item::key), st.queue.len(), self.cap)
    }

    /// The executor to submit to, created if there is none (outside the lock; if two
    /// threads race, the loser's unused executor is discarded). Only the spawner
    /// thread creates one (see [`Self::spawn_generation`]).
    fn create_generation(&self, py: Python<'_>) -> PyResult<Arc<Generation>> {
        if let Some(generation) = lock(&self.state).generation.clone() {
            return Ok(generation);
        }
        let settings = self.settings()?;
        register_hooks(py);
        let kwargs = settings.kwargs.bind(py).copy()?;
        match self.kind() {
            Kind::Process => {
                let progress = self.progress.get_or_try_init(py, || {
                    // One more cell after the slots: the halt flag (see `halt_workers`).
                    Ok::<_, PyErr>(raw_array(py)?.call1(("q", 3 * self.cap + 1))?.unbind())
                })?;
                let mut initargs = vec![progress.bind(py).clone()];
                initargs.extend(settings.initargs_tail.bind(py).iter());
                kwargs.set_item("initializer", worker_initialize(py)?)?;
                kwargs.set_item("initargs", PyTuple::new(py, initargs)?)?;
            }
            Kind::Interpreter => {
                if !settings.has_thread_prefix {
                    kwargs.set_item(
                        "thread_name_prefix",
                        format!("{}-{}", self.backend.name_prefix, self.seq),
                    )?;
                }
            }
        }
        let executor = settings
            .executor_cls
            .bind(py)
            .call((self.backend.workers,), Some(&kwargs))?;
        let (winner, loser) = {
            let mut st = lock(&self.state);
            if let Some(existing) = st.generation.clone() {
                (existing, Some(executor))
            } else {
                st.next_generation += 1;
                let generation = Arc::new(Generation {
                    id: st.next_generation,
                    executor: Some(executor.unbind()),
                    completed: AtomicBool::new(false),
                    crash: PyOnceLock::new(),
                    casualties: Mutex::new(Vec::new()),
                    settling: AtomicBool::new(false),
                    settled: AtomicBool::new(false),
                });
                st.generation = Some(generation.clone());
                (generation, None)
            }
        };
        if let Some(unused) = loser {
            crate::errors::best_effort(py, unused.call_method1("shutdown", (false,)));
        }
        Ok(winner)
    }

    /// Moves queued calls to the executor, one chunk at a time, while there is room.
    ///
    /// One thread dispatches at a time (the loop, the spawner and the executor's
    /// management thread all pump), so chunks reach `executor.submit` in queue order:
    /// a thread that finds another dispatching leaves its work to it. The dispatcher
    /// gives the role up in the same critical section in which it finds nothing
    /// more to take, so work queued meanwhile is never stranded.
    fn pump(self: &Arc<Self>, py: Python<'_>, rings: &mut Rings) {
        {
            let mut st = lock(&self.state);
            if std::mem::replace(&mut st.dispatching, true) {
                return;
            }
        }
        let _role = DispatchRole(self);
        loop {
            let (items, slot, seq) = {
                let mut st = lock(&self.state);
                if !matches!(st.mode, Mode::Open | Mode::Draining)
                    || st.queue.is_empty()
                    || st.in_flight >= self.cap
                {
                    st.dispatching = false;
                    return;
                }
                if st.generation.is_none() {
                    st.dispatching = false;
                    let start = !std::mem::replace(&mut st.spawning, true);
                    drop(st);
                    if start {
                        self.spawn_generation(py);
                    }
                    return;
                }
                let n = self.chunk_size(&st).min(st.queue.len());
                let items: Vec<Item> = st.queue.drain(..n).collect();
                st.in_flight += 1;
                let slot = st.free_slots.pop().unwrap_or(0);
                st.next_chunk += 1;
                (items, slot, st.next_chunk)
            };
            self.dispatch(py, items, slot, seq, rings);
        }
    }

    /// Claims, serialises, registers and submits one chunk.
    fn dispatch(
        self: &Arc<Self>,
        py: Python<'_>,
        items: Vec<Item>,
        slot: usize,
        seq: u64,
        rings: &mut Rings,
    ) {
        let mut payload: Vec<Py<PyAny>> = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        for mut item in items {
            if !item.claim(py) {
                continue;
            }
            match self.prepare(py, &item) {
                Ok(prepared) => {
                    payload.push(prepared);
                    kept.push(item);
                }
                Err(err) => item.fail(py, err, rings),
            }
        }
        if kept.is_empty() {
            self.settle_chunk(py, slot, Vec::new(), rings);
            return;
        }
        let Some(generation) = lock(&self.state).generation.clone() else {
            // Retired by a crash since `pump` looked: back to the queue, whose next
            // pump starts the spawner.
            self.settle_chunk(py, slot, kept, rings);
            return;
        };
        let refused = {
            let mut st = lock(&self.state);
            if matches!(st.mode, Mode::Open | Mode::Draining) {
                st.chunks.insert(
                    seq,
                    Chunk {
                        generation: generation.clone(),
                        slot,
                        items: kept,
                        future: None,
                    },
                );
                None
            } else {
                Some((kept, st.mode, st.broken_message.clone()))
            }
        };
        if let Some((kept, mode, message)) = refused {
            // Revoked or broken while this chunk was being prepared.
            for item in kept {
                item.fail(py, self.closed_error(py, mode, &message), rings);
            }
            self.settle_chunk(py, slot, Vec::new(), rings);
            return;
        }
        let executor = generation.executor(py);
        let submitted = match self.kind() {
            Kind::Process => worker_run_chunk(py).and_then(|run_chunk| {
                executor.call_method1(
                    "submit",
                    (
                        run_chunk,
                        slot,
                        seq,
                        PyList::new(py, payload)?,
                        CHUNK_BUDGET_SECONDS,
                    ),
                )
            }),
            Kind::Interpreter => payload[0]
                .bind(py)
                .cast::<PyTuple>()
                .map_err(PyErr::from)
                .and_then(|call| {
                    let args = call.get_item(0)?;
                    let kwargs = call.get_item(1)?;
                    let kwargs = kwargs.cast::<PyDict>().ok();
                    executor.call_method("submit", args.cast::<PyTuple>()?, kwargs)
                }),
        };
        let hooked = submitted.and_then(|future| {
            if let Some(chunk) = lock(&self.state).chunks.get_mut(&seq) {
                chunk.future = Some(future.clone().unbind());
            }
            let callback = Py::new(
                py,
                ChunkDone {
                    pool: self.clone(),
                    seq,
                },
            )?;
            future.call_method1("add_done_callback", (callback,))
        });
        if let Err(err) = hooked {
            // Never reached the executor (or cannot report back): settle it here.
            self.finish_chunk(py, seq, Err(err), true, rings);
        }
    }

    /// The call as the executor takes it: pickled `(fn, args, kwargs)` for the
    /// process backend, `((fn, *args), kwargs)` for the interpreter backend.
    fn prepare(&self, py: Python<'_>, item: &Item) -> PyResult<Py<PyAny>> {
        let (func, args, kwargs) = item.job.parts();
        let kwargs = match kwargs {
            Some(k) => k.bind(py).clone().into_any(),
            None => py.None().into_bound(py),
        };
        match self.kind() {
            Kind::Process => Ok(worker_dumps(py)?
                .call1(((func.clone_ref(py), args.clone_ref(py), kwargs),))?
                .unbind()),
            Kind::Interpreter => {
                let mut call = vec![func.bind(py).clone()];
                call.extend(args.bind(py).iter());
                Ok(
                    PyTuple::new(py, [PyTuple::new(py, call)?.into_any(), kwargs])?
                        .into_any()
                        .unbind(),
                )
            }
        }
    }

    /// A chunk's executor task is done (or could not be submitted): deliver, re-queue
    /// what did not run, and keep the pump going.
    fn finish_chunk(
        self: &Arc<Self>,
        py: Python<'_>,
        seq: u64,
        outcome: PyResult<Bound<'_, PyAny>>,
        from_submit: bool,
        rings: &mut Rings,
    ) {
        let Some(chunk) = lock(&self.state).chunks.remove(&seq) else {
            return;
        };
        let Chunk {
            generation,
            slot,
            items,
            future,
        } = chunk;
        drop(future);
        let mut requeue = Vec::new();
        let mut retire = false;
        match outcome {
            Ok(value) => match self.kind() {
                Kind::Process => {
                    self.deliver_chunk(py, &generation, &value, items, &mut requeue, rings)
                }
                Kind::Interpreter => {
                    generation.completed.store(true, Ordering::Release);
                    for item in items {
                        rings.add(item.job.deliver(py, Ok(value.clone().unbind())));
                    }
                }
            },
            Err(err) => {
                let broken = self
                    .broken_cls(py)
                    .is_ok_and(|cls| err.value(py).is_instance(cls).unwrap_or(false));
                if broken && from_submit && self.kind() == Kind::Process {
                    // Broke before this chunk reached it (a worker died while idle):
                    // nothing here started.
                    requeue = items;
                    retire = true;
                } else if broken && self.kind() == Kind::Process {
                    // Decided later, off this thread (see `record_casualty`).
                    return self.record_casualty(py, generation, seq, slot, items, err, rings);
                } else if broken {
                    // InterpreterPoolExecutor: an initializer failed; broken for good.
                    self.break_for_good(py, err.value(py).to_string());
                    for item in items {
                        item.fail(py, err.clone_ref(py), rings);
                    }
                } else {
                    for item in items {
                        item.fail(py, err.clone_ref(py), rings);
                    }
                }
            }
        }
        let old = if retire {
            self.retire_generation(&generation)
        } else {
            None
        };
        drop(old);
        drop(generation);
        self.settle_chunk(py, slot, requeue, rings);
        self.pump(py, rings);
    }

    /// A chunk failed because its executor broke (a worker died).
    ///
    /// This runs in the executor's done-callback, and on CPython 3.11 that is inside
    /// `terminate_broken`'s loop over its pending work items, which set `_broken`
    /// without the executor's lock: anything here that lets go of the GIL (blocking,
    /// starting a thread, even ringing a doorbell after detaching) lets a concurrent
    /// `submit()` that already passed the `_broken` check add to that dict mid-loop,
    /// and the management thread dies ("dictionary changed size during iteration"),
    /// stranding every call it held. So the casualty is only recorded here; the first
    /// one retires the executor (no dispatch uses it again) and asks the event loop to
    /// start a settler thread (`settle_crash`). Nothing is delivered yet.
    #[allow(clippy::too_many_arguments)]
    fn record_casualty(
        self: &Arc<Self>,
        py: Python<'_>,
        generation: Arc<Generation>,
        seq: u64,
        slot: usize,
        items: Vec<Item>,
        err: PyErr,
        rings: &mut Rings,
    ) {
        let bridge = items.iter().find_map(|item| item.job.bridge());
        let late = {
            // Checked and pushed under the lock the settler takes the list under: a
            // chunk failed between `submit()` and `add_done_callback()` arrives here on
            // the dispatching thread, possibly while the settler runs.
            let mut casualties = lock(&generation.casualties);
            if generation.settled.load(Ordering::Acquire) {
                Some(items)
            } else {
                casualties.push(Casualty {
                    seq,
                    slot,
                    items,
                    err,
                });
                None
            }
        };
        if let Some(items) = late {
            // After the settler looked: whether these started is unknown.
            let message = "the process pool broke; whether this call started is unknown, \
                           so it is not run again";
            for item in items {
                item.fail(py, make_error(broken_process_pool(py), message), rings);
            }
            self.settle_chunk(py, slot, Vec::new(), rings);
            self.pump(py, rings);
            return;
        }
        if generation.settling.swap(true, Ordering::AcqRel) {
            return;
        }
        // Both stay alive in the task: dropping the last reference to an executor
        // starts a thread (see `Generation::drop`), which must not happen here.
        let retired = self.retire_generation(&generation);
        let pool = self.clone();
        let start: LoopTask = Box::new(move |py| {
            let task = Py::new(py, SettleCrash { pool, generation });
            let started = task.and_then(|task| {
                background_run(py)?
                    .call1(("leasepool-crash", task))?
                    .is_truthy()
            });
            if let Err(err) = started {
                crate::errors::report_unraisable(py, err, None);
            }
            drop(retired);
        });
        match bridge {
            // The loop starts the thread: it may block for a moment, this may not.
            Some(bridge) => bridge.push(Completion::Call(start)),
            // Only `lease.executor.submit()` callers (no loop to ask): start it here.
            None => start(py),
        }
    }

    /// The settler thread: waits until the broken executor has failed all its work
    /// and stopped its processes (its management thread ends after joining them; the
    /// processes are killed if that takes longer than a grace), so the progress array
    /// is final, then fails the calls that started and re-queues those that did not.
    fn settle_crash(self: &Arc<Self>, py: Python<'_>, generation: &Arc<Generation>) {
        let executor = generation.executor(py);
        let processes = executor_processes(py, &executor);
        let manager_thread = executor
            .getattr("_executor_manager_thread")
            .ok()
            .filter(|thread| !thread.is_none());
        if let Some(thread) = &manager_thread {
            let alive = |thread: &Bound<'_, PyAny>| {
                crate::errors::best_effort(
                    py,
                    thread.call_method1("join", (SURVIVOR_REAP_SECONDS,)),
                );
                thread
                    .call_method0("is_alive")
                    .and_then(|a| a.is_truthy())
                    .unwrap_or(false)
            };
            if alive(thread) {
                for process in &processes {
                    crate::errors::best_effort(py, process.bind(py).call_method0("kill"));
                }
                alive(thread);
            }
        }
        let casualties = {
            let mut casualties = lock(&generation.casualties);
            generation.settled.store(true, Ordering::Release);
            std::mem::take(&mut *casualties)
        };
        let crash = generation
            .crash
            .get_or_init(py, || self.inspect_crash(py, generation, &casualties));
        if let Some(message) = &crash.fatal {
            self.break_for_good(py, message.clone());
        }
        let mut rings = Rings::default();
        for casualty in casualties {
            let Casualty {
                seq,
                slot,
                items,
                err,
            } = casualty;
            let mut requeue = Vec::new();
            self.crashed(py, crash, slot, seq, &err, items, &mut requeue, &mut rings);
            self.settle_chunk(py, slot, requeue, &mut rings);
        }
        // A `submit()` that passed the executor's broken check just before it broke can
        // add its work item after `terminate_broken` cleared them: that future never
        // completes. Its manager thread is gone now, so no worker ever got it: run it
        // on the next executor.
        let candidates: Vec<(u64, Py<PyAny>)> = lock(&self.state)
            .chunks
            .iter()
            .filter(|(_, chunk)| chunk.generation.id == generation.id)
            .filter_map(|(seq, chunk)| Some((*seq, chunk.future.as_ref()?.clone_ref(py))))
            .collect();
        // Checked outside the lock (no Python under it), removed under it.
        let never_done: Vec<u64> = candidates
            .into_iter()
            .filter(|(_, future)| {
                !future
                    .bind(py)
                    .call_method0("done")
                    .and_then(|done| done.is_truthy())
                    .unwrap_or(true)
            })
            .map(|(seq, _)| seq)
            .collect();
        let stranded: Vec<Chunk> = {
            let mut st = lock(&self.state);
            never_done
                .iter()
                .filter_map(|seq| st.chunks.remove(seq))
                .collect()
        };
        for chunk in stranded {
            let Chunk { slot, items, .. } = chunk;
            self.settle_chunk(py, slot, items, &mut rings);
        }
        self.pump(py, &mut rings);
        rings.ring(py);
    }

    /// Process backend: unpickle and deliver each outcome of a finished chunk.
    fn deliver_chunk(
        &self,
        py: Python<'_>,
        generation: &Generation,
        value: &Bound<'_, PyAny>,
        items: Vec<Item>,
        requeue: &mut Vec<Item>,
        rings: &mut Rings,
    ) {
        let outcomes = match value.cast::<PyList>() {
            Ok(parsed) => parsed,
            Err(err) => {
                let err = PyErr::from(err);
                for item in items {
                    item.fail(py, err.clone_ref(py), rings);
                }
                return;
            }
        };
        generation.completed.store(true, Ordering::Release);
        let ran = outcomes.len();
        let loads = match pickle_loads(py) {
            Ok(loads) => loads.clone(),
            Err(err) => {
                for item in items {
                    item.fail(py, err.clone_ref(py), rings);
                }
                return;
            }
        };
        let mut measured = Vec::with_capacity(ran);
        for (index, item) in items.into_iter().enumerate() {
            if index >= ran {
                requeue.push(item);
                continue;
            }
            let result = (|| -> PyResult<Py<PyAny>> {
                let (ok, data, seconds): (bool, Bound<'_, PyAny>, f64) =
                    outcomes.get_item(index)?.extract()?;
                measured.push((item.key(), seconds));
                let value = loads.call1((data,))?;
                if ok {
                    Ok(value.unbind())
                } else {
                    Err(PyErr::from_value(value))
                }
            })();
            rings.add(item.job.deliver(py, result));
        }
        let mut st = lock(&self.state);
        st.barren = 0;
        for (key, seconds) in measured {
            st.durations.record(key, seconds);
        }
    }

    /// Handles one chunk of an executor that broke (a worker process died).
    #[allow(clippy::too_many_arguments)]
    fn crashed(
        &self,
        py: Python<'_>,
        crash: &Crash,
        slot: usize,
        seq: u64,
        err: &PyErr,
        items: Vec<Item>,
        requeue: &mut Vec<Item>,
        rings: &mut Rings,
    ) {
        let facts = CrashFacts {
            culprit: crash.dead.first().map(|(pid, _)| *pid),
            unusable: crash.fatal.is_some(),
            unsettled: crash.unsettled,
        };
        let verdicts = classify_chunk(items.len(), self.progress_of(py, slot, seq), facts);
        let make = |message: String| {
            let err_new = make_error(broken_process_pool(py), message);
            let _ = err_new.value(py).setattr("__cause__", err.value(py));
            err_new
        };
        for (item, verdict) in items.into_iter().zip(verdicts) {
            let message = match verdict {
                CallVerdict::DiedRunning { pid } => {
                    let how = crash.dead.first().map_or("", |(_, how)| how.as_str());
                    format!(
                        "worker process {pid} died with {how} while running {}",
                        item.function_name(py)
                    )
                }
                CallVerdict::ResultLost { .. } => format!(
                    "{}; this call had completed in that process but its result was lost with it",
                    crash.cause
                ),
                CallVerdict::Terminated { pid } => format!(
                    "the process pool broke ({}); this call had started in worker \
                     process {pid}, which was terminated, and its outcome was lost",
                    crash.cause
                ),
                CallVerdict::PoolUnusable => crash.fatal.clone().unwrap_or_default(),
                CallVerdict::Unknown => format!(
                    "the process pool broke ({}); whether this call started is unknown \
                     (a worker process could not be stopped), so it is not run again",
                    crash.cause
                ),
                CallVerdict::Requeue => {
                    requeue.push(item);
                    continue;
                }
            };
            item.fail(py, make(message), rings);
        }
    }

    /// Tells every worker to start no further call (`run_chunk` checks the flag before
    /// each one): at shutdown, chunks already handed to the executor but not started
    /// come back unrun and are cancelled, instead of running after `stop()`.
    fn halt_workers(&self, py: Python<'_>) {
        if let Some(progress) = self.progress.get(py) {
            let _ = progress.bind(py).set_item(3 * self.cap, 1);
        }
    }

    /// `(pid, index of the running call)` of chunk `seq` if a worker started it.
    fn progress_of(&self, py: Python<'_>, slot: usize, seq: u64) -> Option<(i64, usize)> {
        let progress = self.progress.get(py)?.bind(py);
        let read = |i: usize| {
            progress
                .get_item(3 * slot + i)
                .and_then(|v| v.extract::<i64>())
        };
        let started = read(0).ok()?;
        if u64::try_from(started).ok()? != seq {
            return None;
        }
        Some((read(1).ok()?, usize::try_from(read(2).ok()?).ok()?))
    }

    /// Works out which processes died and why, and whether the pool is unusable.
    fn inspect_crash(
        &self,
        py: Python<'_>,
        generation: &Generation,
        casualties: &[Casualty],
    ) -> Crash {
        // What each in-flight chunk of this executor was running, by pid.
        let mut running: HashMap<i64, String> = HashMap::new();
        let mut note = |slot: usize, seq: u64, names: &dyn Fn(usize) -> Option<String>| {
            if let Some((pid, index)) = self.progress_of(py, slot, seq) {
                if let Some(name) = names(index) {
                    running.insert(pid, name);
                }
            }
        };
        for casualty in casualties {
            note(casualty.slot, casualty.seq, &|i| {
                casualty.items.get(i).map(|item| item.function_name(py))
            });
        }
        let others: Vec<(usize, u64, Vec<Py<PyAny>>)> = {
            let st = lock(&self.state);
            st.chunks
                .iter()
                .filter(|(_, c)| c.generation.id == generation.id)
                .map(|(s, c)| {
                    (
                        c.slot,
                        *s,
                        c.items
                            .iter()
                            .map(|i| i.job.parts().0.clone_ref(py))
                            .collect(),
                    )
                })
                .collect()
        };
        for (slot, seq, funcs) in &others {
            note(*slot, *seq, &|i| {
                funcs.get(i).map(|f| describe_callable(f.bind(py)))
            });
        }
        let (dead, all_reaped) = stop_broken_processes(py, &generation.executor(py));
        let dead: Vec<DeadWorker> = dead
            .into_iter()
            .map(|(pid, code)| DeadWorker { pid, code })
            .collect();
        // Every process is dead by now (the survivors stopped by the executor's
        // clean-up): the engine ranks which one broke the pool.
        let primary = culprit(&dead, |pid| running.contains_key(&pid));
        let cause = match primary {
            Some(DeadWorker { pid, code }) => {
                let how = describe_exit(py, code);
                match running.get(&pid) {
                    Some(name) => {
                        format!("worker process {pid} died with {how} while running {name}")
                    }
                    None => format!("worker process {pid} died with {how}"),
                }
            }
            None => "a worker process died unexpectedly".to_owned(),
        };
        let barren_before = lock(&self.state).barren;
        let completed_any = generation.completed.load(Ordering::Acquire);
        let fatal = match unusable(&dead, !running.is_empty(), completed_any, barren_before) {
            Some(Unusable::InitializerFailed) => Some(format!(
                "A process initializer failed ({cause} before running any call); \
                 the process pool is not usable anymore"
            )),
            Some(Unusable::Barren) => Some(format!(
                "Worker processes keep dying before completing any call ({cause}); \
                 the process pool is not usable anymore"
            )),
            None => None,
        };
        Crash {
            cause,
            // Only the culprit died of the crash; the others were stopped by the
            // executor's clean-up and their calls say so.
            dead: primary
                .iter()
                .map(|w| (w.pid, describe_exit(py, w.code)))
                .collect(),
            fatal,
            unsettled: !all_reaped,
        }
    }

    /// Forgets a broken executor (it already shuts itself down) so the next dispatch
    /// creates a fresh one. Returns it, to be dropped outside the lock.
    fn retire_generation(&self, generation: &Arc<Generation>) -> Option<Arc<Generation>> {
        let mut st = lock(&self.state);
        let current = st
            .generation
            .as_ref()
            .is_some_and(|g| g.id == generation.id);
        if !current {
            return None;
        }
        if !generation.completed.load(Ordering::Acquire) {
            st.barren += 1;
        }
        st.generation.take()
    }

    /// The pool can never work again: fail what is queued, refuse new work.
    fn break_for_good(&self, py: Python<'_>, message: String) {
        let queued: Vec<Item> = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Broken || st.mode == Mode::Revoked {
                return;
            }
            st.mode = Mode::Broken;
            st.broken_message = message.clone();
            self.broken.store(true, Ordering::Release);
            st.queue.drain(..).collect()
        };
        let mut rings = Rings::default();
        for item in queued {
            item.fail(
                py,
                make_error(self.broken_cls(py), message.clone()),
                &mut rings,
            );
        }
        rings.ring(py);
    }

    /// A chunk left flight: free its slot, put `requeue` back at the front (or fail or
    /// cancel it if the pool no longer runs work), and finish a drain if that was the
    /// last one.
    fn settle_chunk(&self, py: Python<'_>, slot: usize, requeue: Vec<Item>, rings: &mut Rings) {
        let (refused, mode, message, drained) = {
            let mut st = lock(&self.state);
            st.in_flight -= 1;
            st.free_slots.push(slot);
            let refused = match st.mode {
                Mode::Open => {
                    for item in requeue.into_iter().rev() {
                        st.queue.push_front(item);
                    }
                    Vec::new()
                }
                // Handed to the executor but never started: cancelled like the rest
                // of the queue at shutdown.
                Mode::Draining => requeue,
                Mode::Revoked | Mode::Broken => requeue,
            };
            (
                refused,
                st.mode,
                st.broken_message.clone(),
                self.take_drained(&mut st),
            )
        };
        for item in refused {
            if mode == Mode::Draining {
                item.cancel(py, rings);
            } else {
                item.fail(py, self.closed_error(py, mode, &message), rings);
            }
        }
        self.finish_drain(py, drained);
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
            let reapable = match self.kind() {
                Kind::Process => Reapable {
                    threads: executor
                        .getattr("_executor_manager_thread")
                        .ok()
                        .filter(|thread| !thread.is_none())
                        .map(|thread| vec![thread.unbind()])
                        .unwrap_or_default(),
                    processes: executor_processes(py, &executor),
                },
                Kind::Interpreter => Reapable {
                    threads: executor
                        .getattr("_threads")
                        .and_then(|threads| {
                            threads.try_iter()?.map(|t| t.map(Bound::unbind)).collect()
                        })
                        .unwrap_or_default(),
                    processes: Vec::new(),
                },
            };
            lock(&self.state).reapable.extend(reapable);
            if EXITING.load(Ordering::Acquire) {
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
        let processes: Vec<Py<PyAny>> = executor
            .getattr("_processes")
            .ok()
            .filter(|p| !p.is_none())
            .and_then(|p| p.call_method0("values").ok())
            .and_then(|v| v.try_iter().ok())
            .map(|it| it.filter_map(Result::ok).map(Bound::unbind).collect())
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

/// A snapshot of an executor's worker processes (`list()` of its `_processes` values,
/// taken in one step under the GIL while its management thread may change the dict).
fn executor_processes(py: Python<'_>, executor: &Bound<'_, PyAny>) -> Vec<Py<PyAny>> {
    executor
        .getattr("_processes")
        .ok()
        .filter(|p| !p.is_none())
        .and_then(|p| p.call_method0("values").ok())
        .and_then(|v| py.get_type::<PyList>().call1((v,)).ok())
        .and_then(|list| {
            list.try_iter()
                .ok()
                .map(|it| it.filter_map(Result::ok).map(Bound::unbind).collect())
        })
        .unwrap_or_default()
}

/// The exit code of a multiprocessing `Process`, if it is known to be dead.
fn exit_code(py: Python<'_>, process: &Bound<'_, PyAny>) -> Option<i64> {
    let read = || {
        process
            .getattr("exitcode")
            .ok()
            .and_then(|c| c.extract::<i64>().ok())
    };
    read().or_else(|| {
        // The sentinel can signal a death a moment before the exit status is there.
        let ready = process
            .getattr("sentinel")
            .and_then(|s| mp_wait(py)?.call1(([s], 0)))
            .and_then(|r| r.is_truthy())
            .unwrap_or(false);
        if ready {
            crate::errors::best_effort(py, process.call_method1("join", (1.0,)));
        }
        read()
    })
}

/// Stops every process of a broken executor before anyone reads its progress.
///
/// Returns the processes that had died on their own, `(pid, exitcode)`, and whether
/// every survivor was killed and reaped. On CPython 3.11 the executor fails its
/// futures (running this code in their callbacks) *before* it terminates the
/// surviving workers, so a survivor could still start the next call of its chunk
/// after the progress array said it had not: re-queuing that call would run it
/// twice. Once every process is dead the progress array is final.
fn stop_broken_processes(py: Python<'_>, executor: &Bound<'_, PyAny>) -> (Vec<(i64, i64)>, bool) {
    let mut dead = Vec::new();
    let mut survivors = Vec::new();
    for process in executor_processes(py, executor) {
        let process = process.into_bound(py);
        let pid = process.getattr("pid").and_then(|p| p.extract::<i64>());
        match (exit_code(py, &process), pid) {
            (Some(code), Ok(pid)) => dead.push((pid, code)),
            (None, _) => survivors.push(process),
            (Some(_), Err(_)) => {}
        }
    }
    for process in &survivors {
        crate::errors::best_effort(py, process.call_method0("kill"));
    }
    let mut all_reaped = true;
    for process in &survivors {
        crate::errors::best_effort(py, process.call_method1("join", (SURVIVOR_REAP_SECONDS,)));
        all_reaped &= exit_code(py, process).is_some();
    }
    (dead, all_reaped)
}

impl ExecutorPool for ProcessPool {
    fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn broken_error(&self, py: Python<'_>) -> PyErr {
        let message = lock(&self.state).broken_message.clone();
        make_error(self.broken_cls(py), message)
    }

    fn submit(&self, py: Python<'_>, job: Job) -> Result<(), (Job, PyErr)> {
        let refused = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Open {
                st.queue.push_back(Item {
                    job,
                    claimed: false,
                });
                None
            } else {
                Some((job, st.mode, st.broken_message.clone()))
            }
        };
        if let Some((job, mode, message)) = refused {
            return Err((job, self.closed_error(py, mode, &message)));
        }
        self.kick(py);
        Ok(())
    }

    fn submit_many(&self, py: Python<'_>, jobs: Vec<Job>) -> Result<(), (Vec<Job>, PyErr)> {
        let refused = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Open {
                st.queue.extend(jobs.into_iter().map(|job| Item {
                    job,
                    claimed: false,
                }));
                None
            } else {
                Some((jobs, st.mode, st.broken_message.clone()))
            }
        };
        if let Some((jobs, mode, message)) = refused {
            return Err((jobs, self.closed_error(py, mode, &message)));
        }
        self.kick(py);
        Ok(())
    }

    fn shutdown(&self, py: Python<'_>, barrier: Option<Arc<DrainBarrier>>) {
        let (cancelled, drained) = {
            let mut st = lock(&self.state);
            if barrier.is_some() {
                st.barrier = barrier;
            }
            if st.mode == Mode::Open {
                st.mode = Mode::Draining;
            }
            let cancelled: Vec<Item> = st.queue.drain(..).collect();
            let drained = self.take_drained(&mut st).or_else(|| {
                // Already drained before (e.g. shut down twice): the barrier is due now.
                if st.drained {
                    Some(st.barrier.take())
                } else {
                    None
                }
            });
            (cancelled, drained)
        };
        self.halt_workers(py);
        let mut rings = Rings::default();
        for item in cancelled {
            item.cancel(py, &mut rings);
        }
        rings.ring(py);
        self.finish_drain(py, drained);
    }

    fn revoke(&self, py: Python<'_>) {
        let (items, futures, generation, drained) = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Revoked {
                return;
            }
            st.mode = Mode::Revoked;
            let mut items: Vec<(Item, bool)> = st.queue.drain(..).map(|i| (i, false)).collect();
            let mut futures = Vec::new();
            for chunk in st.chunks.values_mut() {
                items.extend(chunk.items.drain(..).map(|i| (i, true)));
                futures.extend(chunk.future.as_ref().map(|f| f.clone_ref(py)));
            }
            (
                items,
                futures,
                st.generation.clone(),
                self.take_drained(&mut st),
            )
        };
        let mut rings = Rings::default();
        for (item, dispatched) in items {
            let message = match (dispatched, self.kind()) {
                (true, Kind::Process) => {
                    "Executor lease expired and was revoked; the worker processes running \
                     its calls were terminated"
                }
                (true, Kind::Interpreter) => {
                    "Executor lease expired and was revoked while this call was running"
                }
                (false, _) => "Executor lease expired and was revoked before this call started",
            };
            item.fail(py, lease_expired(py, message), &mut rings);
        }
        rings.ring(py);
        // Chunks the executor has not started never will; their callbacks find
        // nothing left to deliver.
        for future in futures {
            crate::errors::best_effort(py, future.bind(py).call_method0("cancel"));
        }
        if let Some(generation) = generation {
            if self.kind() == Kind::Process {
                // The executor sees its workers die, fails what it still holds and
                // shuts itself down.
                Self::terminate_processes(py, &generation.executor(py));
            }
        }
        self.finish_drain(py, drained);
    }

    fn take_reapable(&self) -> Reapable {
        std::mem::take(&mut lock(&self.state).reapable)
    }
}

impl ProcessPool {
    /// Creates the next executor and starts its worker processes on a `threading`
    /// thread of its own (`_background.run`), then dispatches from there. Starting
    /// processes takes milliseconds each (`workers_per_pool` of them, more with
    /// spawn/forkserver), and the caller is usually the event loop.
    fn spawn_generation(self: &Arc<Self>, py: Python<'_>) {
        if EXITING.load(Ordering::Acquire) {
            return self.spawn_failed(
                py,
                PyRuntimeError::new_err(
                    "leasepool: cannot start worker processes during interpreter shutdown",
                ),
            );
        }
        spawn_started();
        let task = Py::new(py, SpawnGeneration { pool: self.clone() });
        let started = task.and_then(|task| {
            background_run(py)?
                .call1(("leasepool-spawn", task))?
                .is_truthy()
        });
        match started {
            Ok(true) => {}
            Ok(false) => {
                spawn_finished();
                self.spawn_failed(
                    py,
                    PyRuntimeError::new_err(
                        "leasepool: cannot start worker processes during interpreter shutdown",
                    ),
                );
            }
            Err(err) => {
                spawn_finished();
                self.spawn_failed(py, err);
            }
        }
    }

    /// The spawner's work: a new executor with every worker process started.
    fn spawn_now(self: &Arc<Self>, py: Python<'_>) {
        let created = self.create_generation(py).and_then(|generation| {
            if self.kind() == Kind::Process {
                launch_processes(&generation.executor(py))?;
            }
            Ok(())
        });
        match created {
            Ok(()) => {
                lock(&self.state).spawning = false;
                self.kick(py);
            }
            Err(err) => self.spawn_failed(py, err),
        }
    }

    /// No executor could be made: what waits for one fails with the error.
    fn spawn_failed(&self, py: Python<'_>, err: PyErr) {
        let queued: Vec<Item> = {
            let mut st = lock(&self.state);
            st.spawning = false;
            st.queue.drain(..).collect()
        };
        let mut rings = Rings::default();
        for item in queued {
            item.fail(py, err.clone_ref(py), &mut rings);
        }
        let drained = self.take_drained(&mut lock(&self.state));
        rings.ring(py);
        self.finish_drain(py, drained);
    }

    /// Dispatches what fits and rings the loops that got outcomes meanwhile.
    fn kick(&self, py: Python<'_>) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let mut rings = Rings::default();
        this.pump(py, &mut rings);
        rings.ring(py);
    }
}

/// Done-callback of a chunk's executor future.
#[pyclass(module = "leasepool._engine", frozen)]
struct ChunkDone {
    pool: Arc<ProcessPool>,
    seq: u64,
}

#[pymethods]
impl ChunkDone {
    fn __call__(&self, py: Python<'_>, future: &Bound<'_, PyAny>) {
        let mut rings = Rings::default();
        let finished = guard_panics(|| {
            let outcome = future.call_method1("result", (0,));
            self.pool
                .finish_chunk(py, self.seq, outcome, false, &mut rings);
            Ok(())
        });
        if let Err(err) = finished {
            crate::errors::report_unraisable(py, err, Some(future));
        }
        rings.ring(py);
    }
}

/// Gives the dispatcher role back if a dispatch unwinds (a panic), so the pool is not
/// left without one; the normal exits of `pump` give it back under the lock.
struct DispatchRole<'a>(&'a ProcessPool);

impl Drop for DispatchRole<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.state).dispatching = false;
        }
    }
}

/// The spawner thread's target (see [`ProcessPool::spawn_generation`]).
#[pyclass(module = "leasepool._engine", frozen)]
struct SpawnGeneration {
    pool: Arc<ProcessPool>,
}

#[pymethods]
impl SpawnGeneration {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool process spawner", || {
            self.pool.spawn_now(py);
        });
        spawn_finished();
    }
}

/// Starts every worker process of a fresh `ProcessPoolExecutor` now, on this thread,
/// instead of at the first `submit()` (the stdlib starts them there: all at once
/// with fork, one per submit with spawn/forkserver). Private stdlib API, present in
/// 3.11–3.14; without it the executor starts them itself.
fn launch_processes(executor: &Bound<'_, PyAny>) -> PyResult<()> {
    let private_api = executor.hasattr("_launch_processes")?
        && executor.hasattr("_start_executor_manager_thread")?
        && executor.hasattr("_shutdown_lock")?;
    if !private_api {
        return Ok(());
    }
    // As `submit()` does it: under the executor's lock, processes first (the stdlib
    // refuses to fork once its manager thread runs).
    let shutdown_lock = executor.getattr("_shutdown_lock")?;
    shutdown_lock.call_method0("acquire")?;
    let launched = executor
        .call_method0("_launch_processes")
        .and_then(|_| executor.call_method0("_start_executor_manager_thread"));
    shutdown_lock.call_method0("release")?;
    launched.map(drop)
}

/// The settler thread's target (see [`ProcessPool::record_casualty`]).
#[pyclass(module = "leasepool._engine", frozen)]
struct SettleCrash {
    pool: Arc<ProcessPool>,
    generation: Arc<Generation>,
}

#[pymethods]
impl SettleCrash {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool process crash settler", || {
            self.pool.settle_crash(py, &self.generation);
        });
    }
}
