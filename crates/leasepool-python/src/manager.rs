//! `LeasedExecutorManager`: the Python face of the engine's lease manager.
//!
//! [`ManagerCore`] is shared (via `Arc`) by the manager object, its leases, their
//! futures and the checker clock. It holds the engine state machine behind one mutex
//! and follows one rule: lock, mutate, unlock, *then* perform the effects (log,
//! settle futures, shut pools down). No Python code ever runs under the engine lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use leasepool::expiry::{monotonic, CheckerClock};
use leasepool::manager::{Acquired, Effects, Event, Grant, Manager, SlotAcquired};
use leasepool::waiters::Ticket;
use leasepool::{LeaseError, LeaseKey, PoolLimits, SlotGrant};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyTuple};

use crate::job::{Job, Target};
use crate::run::{QueuedCall, RunTimeout, SlotLink, WaitingCall, WaitingCallHook};

use crate::bridge::{Completion, LoopBridge};
use crate::coerce;
use crate::coroutine::{PyEngineCoroutine, Step};
use crate::errors::{config_error, lease_error};
use crate::future::{FutureHook, Outcome, PyLeaseFuture};
use crate::lease::PyExecutorLease;
use crate::logging::{describe_error, DistinctErrors, Logger, DEBUG, INFO, WARNING};
use crate::pool::{reap_in_background, DrainBarrier, ExecutorPool, Reapable};
use crate::process_pool::ProcessBackend;
use crate::py_cache::{
    coerce_log_level, exception_class, get_logger, get_running_loop, normalize_backend,
    process_logging_config,
};
use crate::thread_pool::{ThreadPool, ThreadPoolSettings};

pub(crate) type Owner = Arc<Py<PyAny>>;
pub(crate) type Pool = Arc<dyn ExecutorPool>;
type Engine = Manager<Pool, Owner, Queued>;
type Fx = Effects<Pool, Owner, Queued>;

/// A queued `acquire()`: its future and the owner the lease will carry.
pub(crate) struct QueuedAcquire {
    future: Py<PyLeaseFuture>,
    owner: Owner,
}

/// Somebody in the engine's FIFO queue.
pub(crate) enum Queued {
    /// `acquire()`, waiting for a whole pool.
    Acquire(QueuedAcquire),
    /// `run()`, waiting for a call slot.
    Call(QueuedCall),
}

impl Queued {
    fn future(&self) -> &Py<PyLeaseFuture> {
        match self {
            Self::Acquire(acquire) => &acquire.future,
            Self::Call(call) => &call.future,
        }
    }
}

impl leasepool::Waiter for Queued {
    fn try_claim(&self) -> bool {
        match self {
            // A granted lease must reach its future: claim it now.
            Self::Acquire(acquire) => acquire.future.get().try_claim(),
            Self::Call(call) => call.is_wanted(),
        }
    }
}

struct Running {
    bridge: Arc<LoopBridge>,
    clock: CheckerClock,
}

/// Immutable configuration.
struct Config {
    backend: Py<PyAny>,
    backend_name: String,
    limits: PoolLimits,
    check_interval: f64,
    default_lease_seconds: f64,
    workers_per_pool: usize,
    name_prefix: String,
    executor_kwargs: Py<PyDict>,
}

pub(crate) struct ManagerCore {
    engine: Mutex<Engine>,
    cfg: Config,
    logger: Logger,
    size_provider: Option<Py<PyAny>>,
    /// The distinct `size_provider` errors already logged at WARNING.
    provider_failures: DistinctErrors,
    running: RwLock<Option<Running>>,
    /// Resolved at the first `start()`; shared with the engine's pool factory.
    pool_settings: Arc<OnceLock<Arc<ThreadPoolSettings>>>,
    /// The process or interpreter backend (`None` for threads).
    process: Option<Arc<ProcessBackend>>,
    /// The sizing target last computed. A call slot ending on a worker thread uses it
    /// instead of calling `size_provider` (user code) once per call there.
    last_target: AtomicUsize,
}

impl Drop for ManagerCore {
    /// A manager dropped without `stop()`: close its pools so parked workers exit now
    /// instead of lingering until interpreter exit, and fail anyone still waiting.
    /// (Leases keep the core alive, so no lease can outlive this.)
    fn drop(&mut self) {
        let engine = match self.engine.get_mut() {
            Ok(engine) => engine,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !engine.is_running() {
            return;
        }
        let mut fx = Fx::default();
        engine.stop(&mut fx);
        let _ = crate::attach::attach_known_thread(|py| {
            for waiter in fx.refused.drain(..) {
                let err = lease_error(py, &LeaseError::NotStarted);
                PyLeaseFuture::settle(waiter.future(), py, Outcome::Error(err));
            }
            for pool in fx.retired.drain(..).chain(fx.revoked.drain(..)) {
                pool.shutdown(py, None);
            }
        });
    }
}

/// How long a pool above the target may idle before it is retired: long enough that a
/// lease-per-request service reuses its pools (and their threads) instead of building
/// new ones for every burst, as anyio and trio keep idle workers ~10 s.
const DEFAULT_IDLE_POOL_SECONDS: f64 = 10.0;

/// `RuntimeError` if another event loop than the one the manager started on runs
/// here (0.1.3's message). Nothing has changed when this refuses.
fn require_owner_loop(py: Python<'_>, bridge: &LoopBridge, method: &str) -> PyResult<()> {
    if !bridge.foreign_loop_running(py) {
        return Ok(());
    }
    Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
        "LeasedExecutorManager.{method}() must be called from its owning event loop."
    )))
}

/// Every manager of this process, so a forked child can disown the parent's threads.
static MANAGERS: Mutex<Vec<Weak<ManagerCore>>> = Mutex::new(Vec::new());

/// `os.register_at_fork(after_in_child=...)`: threads do not survive `fork`, so in the
/// child every manager forgets its pools, clock and loop registration (without
/// joining or closing anything that belongs to the parent) and is left stopped; it
/// can be started again in the child.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    let cores: Vec<Arc<ManagerCore>> = match MANAGERS.try_lock() {
        Ok(guard) => guard.iter().filter_map(Weak::upgrade).collect(),
        Err(_) => return,
    };
    for core in cores {
        if let Ok(mut running) = core.running.try_write() {
            // The clock thread does not exist here: dropping it would join nothing.
            std::mem::forget(running.take());
        }
        if let Ok(mut engine) = core.engine.try_lock() {
            let mut fx = Fx::default();
            engine.stop(&mut fx);
            std::mem::forget(fx);
        }
    }
    crate::thread_pool::forget_pools_after_fork();
    crate::grinder::forget_loops_after_fork();
}

use crate::sync::lock;

impl ManagerCore {
    fn bridge(&self) -> Option<Arc<LoopBridge>> {
        let guard = match self.running.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.as_ref().map(|r| r.bridge.clone())
    }

    fn with_clock(&self, f: impl FnOnce(&CheckerClock)) {
        let guard = match self.running.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(running) = guard.as_ref() {
            f(&running.clock);
        }
    }

    /// The load signal: `size_provider()` as a non-negative int; 0 if it raises.
    fn units(&self, py: Python<'_>) -> u64 {
        let Some(provider) = &self.size_provider else {
            return 0;
        };
        let read = provider
            .bind(py)
            .call0()
            .and_then(|v| py.get_type::<PyInt>().call1((v,)))
            .and_then(|v| {
                if v.lt(0)? {
                    Ok(0)
                } else {
                    Ok(v.extract::<u64>().unwrap_or(u64::MAX))
                }
            });
        match read {
            Ok(units) => {
                if self.provider_failures.has_any() {
                    self.provider_failures.clear();
                }
                units
            }
            Err(err) => {
                // 0.1.x's record, kept for drop-in log parity...
                self.logger
                    .log(py, DEBUG, "Could not read size_provider", (), Some(&err));
                // ...and one the default logging configuration shows: once per distinct
                // error until the provider succeeds again (it runs on every release).
                if self.provider_failures.first_time(describe_error(py, &err)) {
                    self.logger.log(
                        py,
                        WARNING,
                        "size_provider raised; pool sizing uses 0 units until it succeeds",
                        (),
                        Some(&err),
                    );
                }
                0
            }
        }
    }

    fn target(&self, py: Python<'_>) -> usize {
        let target = self.cfg.limits.desired(self.units(py));
        self.last_target.store(target, Ordering::Relaxed);
        target
    }

    fn settings(&self, py: Python<'_>) -> PyResult<Arc<ThreadPoolSettings>> {
        if let Some(settings) = self.pool_settings.get() {
            return Ok(settings.clone());
        }
        let kwargs = self.cfg.executor_kwargs.bind(py);
        let mut initializer = None;
        let mut initargs = None;
        let mut thread_name_prefix = None;
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            match key.as_str() {
                "initializer" => initializer = (!value.is_none()).then(|| value.unbind()),
                "initargs" => {
                    initargs = Some(
                        py.get_type::<PyTuple>()
                            .call1((value,))?
                            .cast_into::<PyTuple>()?
                            .unbind(),
                    );
                }
                "thread_name_prefix" => {
                    thread_name_prefix = (!value.is_none())
                        .then(|| value.str().map(|s| s.to_string()))
                        .transpose()?;
                }
                other => {
                    return Err(PyTypeError::new_err(format!(
                        "ThreadPoolExecutor.__init__() got an unexpected keyword argument '{other}'"
                    )))
                }
            }
        }
        let settings = Arc::new(ThreadPoolSettings {
            workers: self.cfg.workers_per_pool,
            name_prefix: self.cfg.name_prefix.clone(),
            thread_name_prefix,
            initializer,
            initargs,
        });
        Ok(self.pool_settings.get_or_init(|| settings).clone())
    }

    /// Performs the effects of an engine operation (after the lock was dropped).
    fn perform(self: &Arc<Self>, py: Python<'_>, fx: Fx, bridge: Option<&Arc<LoopBridge>>) {
        let Effects {
            granted,
            slots_granted,
            refused,
            dropped,
            retired,
            revoked,
            events,
        } = fx;
        self.log_events(py, events);
        for (waiter, grant) in granted {
            let Queued::Acquire(QueuedAcquire { future, owner }) = waiter else {
                // The engine grants pools to pool waiters only.
                continue;
            };
            let outcome = match bridge {
                Some(bridge) => match self.make_lease(py, grant, owner, bridge) {
                    Ok(lease) => Outcome::Value(lease.into_any()),
                    Err(err) => Outcome::Error(err),
                },
                None => Outcome::Error(lease_error(py, &LeaseError::NotStarted)),
            };
            PyLeaseFuture::settle_claimed(&future, py, outcome);
        }
        for (waiter, grant) in slots_granted {
            match waiter {
                Queued::Call(call) => self.start_call(py, call.job, grant),
                // The engine grants slots to slot waiters only; give it back.
                Queued::Acquire(_) => self.end_slot(py, grant.key, false),
            }
        }
        for waiter in refused {
            let err = lease_error(py, &LeaseError::NotStarted);
            PyLeaseFuture::settle(waiter.future(), py, Outcome::Error(err));
        }
        drop(dropped);
        for pool in retired {
            pool.shutdown(py, None);
        }
        for pool in revoked {
            pool.revoke(py);
        }
    }

    fn log_events(&self, py: Python<'_>, events: Vec<Event<Owner>>) {
        if events.is_empty() {
            return;
        }
        let info = self.logger.enabled(py, INFO);
        // Asked only when a slot record comes up: the lease path pays for one check.
        let mut debug: Option<bool> = None;
        let mut debug_enabled =
            |py| *debug.get_or_insert_with(|| info || self.logger.enabled(py, DEBUG));
        for event in events {
            match event {
                Event::Created { seq } if info => self.logger.log(
                    py,
                    INFO,
                    "Created executor backend=%s seq=%s workers=%s",
                    (&self.cfg.backend_name, seq, self.cfg.workers_per_pool),
                    None,
                ),
                Event::Leased {
                    id,
                    meta,
                    lease_seconds,
                    grace_seconds,
                } if info => self.logger.log(
                    py,
                    INFO,
                    "Leased executor backend=%s lease_id=%s owner=%s seconds=%s grace=%s",
                    (
                        &self.cfg.backend_name,
                        &*id,
                        meta.clone_ref(py),
                        lease_seconds,
                        grace_seconds,
                    ),
                    None,
                ),
                Event::Draining { id, meta, pending } if info => self.logger.log(
                    py,
                    INFO,
                    "Released executor lease_id=%s owner=%s pending=%s draining=True",
                    (&*id, meta.clone_ref(py), pending),
                    None,
                ),
                Event::Released { id, meta, kept } if info => self.logger.log(
                    py,
                    INFO,
                    "Finalized released executor lease_id=%s owner=%s kept=%s",
                    (&*id, meta.clone_ref(py), kept),
                    None,
                ),
                Event::SlotLeased { id, meta, seq } if debug_enabled(py) => self.logger.log(
                    py,
                    DEBUG,
                    "Leased executor slot backend=%s lease_id=%s owner=%s seq=%s",
                    (&self.cfg.backend_name, &*id, meta.clone_ref(py), seq),
                    None,
                ),
                Event::SlotEnded { id, meta } if debug_enabled(py) => self.logger.log(
                    py,
                    DEBUG,
                    "Finished executor slot lease_id=%s owner=%s",
                    (&*id, meta.clone_ref(py)),
                    None,
                ),
                Event::Revoked {
                    id,
                    meta,
                    lease_seconds,
                    grace_seconds,
                } => self.logger.log(
                    py,
                    WARNING,
                    "Revoking expired executor lease_id=%s owner=%s lease_seconds=%s grace=%s",
                    (&*id, meta.clone_ref(py), lease_seconds, grace_seconds),
                    None,
                ),
                _ => {}
            }
        }
    }

    fn make_lease(
        self: &Arc<Self>,
        py: Python<'_>,
        grant: Grant<Pool>,
        owner: Owner,
        bridge: &Arc<LoopBridge>,
    ) -> PyResult<Py<PyExecutorLease>> {
        self.with_clock(|clock| clock.arm_before(grant.timing.hard_expires_at()));
        PyExecutorLease::new(py, self.clone(), grant, owner, bridge.clone())
    }

    /// Releases `key` (idempotent). A lease with calls in flight starts draining.
    pub(crate) fn release_key(self: &Arc<Self>, py: Python<'_>, key: LeaseKey) {
        self.drive(py, |engine, now, target, fx| {
            engine.release(key, now, target, fx)
        });
    }

    /// The last call of the draining lease `key` ended (any thread; idempotent).
    pub(crate) fn finish_drain(self: &Arc<Self>, py: Python<'_>, key: LeaseKey) {
        self.drive(py, |engine, now, target, fx| {
            engine.finish_drain(key, now, target, fx)
        });
    }

    /// The pool of lease `key` broke for good: end the lease and retire the pool
    /// (any thread; idempotent). Logged as 0.1.3 does, with the pool's error.
    pub(crate) fn retire_broken(self: &Arc<Self>, py: Python<'_>, key: LeaseKey, pool: &Pool) {
        let target = self.target(py);
        let mut fx = Fx::default();
        if !lock(&self.engine).retire_broken(key, monotonic(), target, &mut fx) {
            return;
        }
        let err = pool.broken_error(py);
        for event in &fx.events {
            if let Event::RetiredBroken { id, meta } = event {
                let exc = err.value(py);
                let exc_type = exc.get_type().name().map(|n| n.to_string());
                self.logger.log(
                    py,
                    WARNING,
                    "Retiring broken executor lease_id=%s owner=%s exc_type=%s exc=%r",
                    (
                        &**id,
                        meta.clone_ref(py),
                        exc_type.unwrap_or_default(),
                        exc.clone(),
                    ),
                    None,
                );
            }
        }
        let bridge = self.bridge();
        self.perform(py, fx, bridge.as_ref());
    }

    /// Runs one engine operation under the lock and performs its effects after it.
    fn drive(
        self: &Arc<Self>,
        py: Python<'_>,
        op: impl FnOnce(&mut Engine, f64, usize, &mut Fx) -> bool,
    ) {
        let target = self.target(py);
        self.drive_with_target(py, target, op);
    }

    fn drive_with_target(
        self: &Arc<Self>,
        py: Python<'_>,
        target: usize,
        op: impl FnOnce(&mut Engine, f64, usize, &mut Fx) -> bool,
    ) {
        let mut fx = Fx::default();
        let (changed, idle_deadline) = {
            let mut engine = lock(&self.engine);
            let changed = op(&mut engine, monotonic(), target, &mut fx);
            (changed, engine.next_idle_retirement(target))
        };
        // A pool kept above the target must be retired when it has idled out.
        if let Some(deadline) = idle_deadline {
            self.with_clock(|clock| clock.arm_before(deadline));
        }
        if changed {
            let bridge = self.bridge();
            self.perform(py, fx, bridge.as_ref());
        }
    }

    /// The call of slot `key` was finished with (any thread; idempotent).
    pub(crate) fn end_slot(self: &Arc<Self>, py: Python<'_>, key: LeaseKey, broken: bool) {
        let target = self.last_target.load(Ordering::Relaxed);
        self.drive_with_target(py, target, |engine, now, target, fx| {
            engine.end_slot(key, now, target, broken, fx)
        });
    }

    /// Takes a cancelled or timed-out waiter out of the queue and serves those behind
    /// it. Returns whether it was still queued (not granted meanwhile).
    pub(crate) fn withdraw_waiter(self: &Arc<Self>, py: Python<'_>, ticket: Ticket) -> bool {
        let mut fx = Fx::default();
        let removed = lock(&self.engine).withdraw_waiter(ticket, monotonic(), &mut fx);
        let withdrawn = removed.is_some();
        // Dropped here, after the engine's lock was released.
        drop(removed);
        if !fx.is_empty() {
            let bridge = self.bridge();
            self.perform(py, fx, bridge.as_ref());
        }
        withdrawn
    }

    /// Cancels a `loop.call_later` handle, on the loop's thread.
    pub(crate) fn cancel_timer(&self, py: Python<'_>, timer: Py<PyAny>) {
        let Some(bridge) = self.bridge() else { return };
        bridge.run_on_loop(
            py,
            Box::new(move |py| {
                crate::errors::best_effort(py, timer.bind(py).call_method0("cancel"));
            }),
        );
    }

    /// Submits a call that was just granted a slot.
    fn start_call(self: &Arc<Self>, py: Python<'_>, job: Job, grant: SlotGrant<Pool>) {
        self.with_clock(|clock| clock.arm_before(grant.timing.hard_expires_at()));
        let job = job.on_slot(SlotLink {
            core: Arc::downgrade(self),
            key: grant.key,
            pool: grant.pool.clone(),
        });
        if let Err((job, err)) = grant.pool.submit(py, job) {
            // Dropping the failed job gives the slot back.
            job.fail(py, err);
        }
    }

    /// `manager.run(func, *args)`: one call on one worker slot (see `run.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        self: &Arc<Self>,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        lease_seconds: Option<f64>,
        owner: Py<PyAny>,
        wait: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let Some(bridge) = self.bridge() else {
            let err = lease_error(py, &LeaseError::NotStarted);
            return Ok(PyEngineCoroutine::failing(py, "run", err)?.into_any());
        };
        if let Err(err) = require_owner_loop(py, &bridge, "run") {
            return Ok(PyEngineCoroutine::failing(py, "run", err)?.into_any());
        }
        let timeout = match timeout {
            Some(t) if wait && !t.is_none() => Some((t.extract::<f64>()?, t.str()?.to_string())),
            _ => None,
        };
        // As `acquire(timeout<=0)`: take capacity now or fail with the timeout error.
        let expired_timeout = timeout
            .as_ref()
            .filter(|(seconds, _)| *seconds <= 0.0)
            .map(|(_, text)| timeout_message(text));
        let may_queue = wait && expired_timeout.is_none();
        // Queued callers get a hook that withdraws them from the queue on cancel.
        let waiting = may_queue.then(|| WaitingCall::new(self));
        let hook = waiting
            .clone()
            .map(|w| Box::new(WaitingCallHook(w)) as Box<dyn FutureHook>);
        let future = PyLeaseFuture::pending(py, bridge.clone(), hook)?;
        let job = Job::capture(py, func, args, None, Target::Future(future.clone_ref(py)))?;
        let call = QueuedCall {
            job,
            future: future.clone_ref(py),
        };
        let lease_seconds = lease_seconds.unwrap_or(self.cfg.default_lease_seconds);
        match self.take_slot(py, &bridge, call, lease_seconds, owner, may_queue) {
            Ok(None) => {}
            Ok(Some(ticket)) => {
                if let Some(waiting) = &waiting {
                    let _ = waiting.ticket.set(ticket);
                    if let Some((seconds, text)) = timeout {
                        self.arm_run_timeout(py, &bridge, waiting, &future, seconds, &text)?;
                    }
                }
            }
            Err(err) => {
                let err = match (err, expired_timeout) {
                    (LeaseError::Unavailable { .. }, Some(message)) => {
                        acquire_timeout_error(py, message)
                    }
                    (err, _) => lease_error(py, &err),
                };
                PyLeaseFuture::settle(&future, py, Outcome::Error(err));
            }
        }
        Ok(future.into_any())
    }

    /// Takes a call slot for `call` and starts it (`Ok(None)`), or queues it when
    /// `may_queue` (`Ok(Some(ticket))`).
    fn take_slot(
        self: &Arc<Self>,
        py: Python<'_>,
        bridge: &Arc<LoopBridge>,
        call: QueuedCall,
        lease_seconds: f64,
        owner: Py<PyAny>,
        may_queue: bool,
    ) -> Result<Option<Ticket>, LeaseError> {
        // The call travels in the waiter when it may queue, else it stays here.
        let (waiter, kept) = if may_queue {
            (Some(Queued::Call(call)), None)
        } else {
            (None, Some(call))
        };
        let mut fx = Fx::default();
        let acquired = lock(&self.engine).acquire_slot(
            monotonic(),
            lease_seconds,
            Arc::new(owner),
            waiter,
            &mut fx,
        );
        self.perform(py, fx, Some(bridge));
        match acquired {
            Ok(SlotAcquired::Granted(grant, returned)) => {
                let call = match returned {
                    Some(Queued::Call(call)) => Some(call),
                    _ => kept,
                };
                match call {
                    Some(call) => self.start_call(py, call.job, grant),
                    // Cannot happen: the call is either in the waiter or kept.
                    None => self.end_slot(py, grant.key, false),
                }
                Ok(None)
            }
            Ok(SlotAcquired::Queued(ticket)) => Ok(Some(ticket)),
            // The unused call (in the waiter or kept) is dropped here, unlocked.
            Err((err, _waiter)) => Err(err),
        }
    }

    fn arm_run_timeout(
        &self,
        py: Python<'_>,
        bridge: &LoopBridge,
        waiting: &Arc<WaitingCall>,
        future: &Py<PyLeaseFuture>,
        seconds: f64,
        text: &str,
    ) -> PyResult<()> {
        let fire = Py::new(
            py,
            RunTimeout {
                waiting: waiting.clone(),
                future: future.clone_ref(py),
                message: timeout_message(text),
            },
        )?;
        // `call_later` with a delay <= 0 still runs on the next iteration, as
        // `acquire(timeout=0)` on a busy manager fails at once.
        let handle = bridge
            .event_loop()
            .bind(py)
            .call_method1("call_later", (seconds.max(0.0), fire))?;
        *lock(&waiting.timer) = Some(handle.unbind());
        if !future.get().is_pending() {
            // Granted (or cancelled) before the timer was stored: nobody else will
            // cancel it.
            if let Some(timer) = lock(&waiting.timer).take() {
                crate::errors::best_effort(py, timer.bind(py).call_method0("cancel"));
            }
        }
        Ok(())
    }

    /// The submit-path expiry check: revokes the lease if it passed its hard expiry.
    pub(crate) fn check_lease(
        self: &Arc<Self>,
        py: Python<'_>,
        key: LeaseKey,
    ) -> Result<(), LeaseError> {
        let now = monotonic();
        let target = self.target(py);
        let mut fx = Fx::default();
        let result = lock(&self.engine).check_lease(key, now, target, &mut fx);
        let bridge = self.bridge();
        self.perform(py, fx, bridge.as_ref());
        result
    }

    /// The periodic check (runs on the loop thread when the clock rings).
    fn tick(self: &Arc<Self>, py: Python<'_>) {
        let Some(bridge) = self.bridge() else { return };
        let target = self.target(py);
        let now = monotonic();
        let mut fx = Fx::default();
        let next = {
            let mut engine = lock(&self.engine);
            engine.check(now, target, &mut fx);
            [
                engine.next_hard_expiry(),
                engine.next_idle_retirement(target),
            ]
            .into_iter()
            .flatten()
            .fold(now + self.cfg.check_interval, f64::min)
        };
        self.perform(py, fx, Some(&bridge));
        self.with_clock(|clock| clock.reset(next));
    }

    fn start_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        if let Some(bridge) = self.bridge() {
            return require_owner_loop(py, &bridge, "start");
        }
        match &self.process {
            Some(process) => process.start(py)?,
            None => {
                self.settings(py)?;
            }
        }
        let event_loop = get_running_loop(py)?.call0()?;
        let bridge = LoopBridge::attach(py, &event_loop)?;
        let target = self.target(py);
        let mut fx = Fx::default();
        lock(&self.engine).start(target, &mut fx);
        let weak_core: Weak<Self> = Arc::downgrade(self);
        let weak_bridge = Arc::downgrade(&bridge);
        let clock = CheckerClock::start(
            format!("{}-checker", self.cfg.name_prefix),
            monotonic() + self.cfg.check_interval,
            move || {
                let (Some(bridge), core) = (weak_bridge.upgrade(), weak_core.clone()) else {
                    return;
                };
                bridge.push(Completion::Call(Box::new(move |py| {
                    if let Some(core) = core.upgrade() {
                        core.tick(py);
                    }
                })));
            },
        )?;
        {
            let mut running = match self.running.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *running = Some(Running {
                bridge: bridge.clone(),
                clock,
            });
        }
        self.perform(py, fx, Some(&bridge));
        if self.logger.enabled(py, INFO) {
            let (total, available, leased) = self.counts();
            let target = self.target(py);
            self.logger.log(
                py,
                INFO,
                "LeasedExecutorManager started backend=%s total=%s available=%s leased=%s target=%s",
                (&self.cfg.backend_name, total, available, leased, target),
                None,
            );
        }
        Ok(())
    }

    fn stop_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<Step> {
        if let Some(bridge) = self.bridge() {
            // Refused before anything changes: the manager stays running and stoppable.
            require_owner_loop(py, &bridge, "stop")?;
        }
        let running = {
            let mut guard = match self.running.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            guard.take()
        };
        let Some(Running { bridge, clock }) = running else {
            self.logger
                .log(py, INFO, "LeasedExecutorManager stopped", (), None);
            return Ok(Step::Done(py.None()));
        };
        drop(clock);
        let mut fx = Fx::default();
        lock(&self.engine).stop(&mut fx);
        let retired = std::mem::take(&mut fx.retired);
        self.perform(py, fx, Some(&bridge));
        let stopped = PyLeaseFuture::pending(py, bridge.clone(), None)?;
        let to_settle = stopped.clone_ref(py);
        let barrier = DrainBarrier::new(
            retired.len(),
            Box::new(move |py| {
                PyLeaseFuture::settle(&to_settle, py, Outcome::Value(py.None()));
            }),
        );
        for pool in &retired {
            pool.shutdown(py, Some(barrier.clone()));
        }
        barrier.arrive(py);
        let core = self.clone();
        Ok(Step::Await(
            stopped,
            Some(Box::new(move |py| {
                let mut reapable = Reapable::default();
                for pool in &retired {
                    reapable.extend(pool.take_reapable());
                }
                let reaped = PyLeaseFuture::pending(py, bridge.clone(), None)?;
                reap_in_background(py, reapable, &reaped)?;
                Ok(Step::Await(
                    reaped,
                    Some(Box::new(move |py| {
                        if let Some(process) = &core.process {
                            process.stop(py);
                        }
                        bridge.detach(py)?;
                        core.logger
                            .log(py, INFO, "LeasedExecutorManager stopped", (), None);
                        Ok(Step::Done(py.None()))
                    })),
                ))
            })),
        ))
    }

    fn counts(&self) -> (usize, usize, usize) {
        let engine = lock(&self.engine);
        (
            engine.total_count(),
            engine.available_count(),
            engine.leased_count(),
        )
    }

    pub(crate) fn acquire(
        self: &Arc<Self>,
        py: Python<'_>,
        lease_seconds: Option<f64>,
        owner: Py<PyAny>,
        wait: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let Some(bridge) = self.bridge() else {
            let err = lease_error(py, &LeaseError::NotStarted);
            return Ok(PyEngineCoroutine::failing(py, "acquire", err)?.into_any());
        };
        if let Err(err) = require_owner_loop(py, &bridge, "acquire") {
            return Ok(PyEngineCoroutine::failing(py, "acquire", err)?.into_any());
        }
        let lease_seconds = lease_seconds.unwrap_or(self.cfg.default_lease_seconds);
        let owner: Owner = Arc::new(owner);
        let now = monotonic();
        let mut fx = Fx::default();
        let first = lock(&self.engine).acquire(now, lease_seconds, owner.clone(), None, &mut fx);
        let result = match first {
            Ok(Acquired::Granted(grant)) => {
                self.perform(py, fx, Some(&bridge));
                let lease = self.make_lease(py, grant, owner, &bridge)?;
                let hook = AcquireHook::boxed(self);
                return Ok(PyLeaseFuture::ready(
                    py,
                    bridge,
                    Outcome::Value(lease.into_any()),
                    Some(hook),
                )?
                .into_any());
            }
            Ok(Acquired::Queued(_)) => unreachable!("no waiter was offered"),
            Err(LeaseError::Unavailable { .. }) if wait => None,
            Err(err) => Some(err),
        };
        if let Some(err) = result {
            self.perform(py, fx, Some(&bridge));
            return Ok(ready_error(py, bridge, lease_error(py, &err))?.into_any());
        }
        let timeout = match timeout {
            Some(t) if !t.is_none() => Some((t.extract::<f64>()?, t.str()?.to_string())),
            _ => None,
        };
        if let Some((seconds, text)) = &timeout {
            if *seconds <= 0.0 {
                self.perform(py, fx, Some(&bridge));
                let err = acquire_timeout_error(py, timeout_message(text));
                return Ok(ready_error(py, bridge, err)?.into_any());
            }
        }
        let hook = Arc::new(AcquireHookInner {
            core: Arc::downgrade(self),
            ticket: OnceLock::new(),
            timer: Mutex::new(None),
        });
        let future = PyLeaseFuture::pending(
            py,
            bridge.clone(),
            Some(Box::new(AcquireHook(hook.clone()))),
        )?;
        let waiter = Queued::Acquire(QueuedAcquire {
            future: future.clone_ref(py),
            owner: owner.clone(),
        });
        let second =
            lock(&self.engine).acquire(now, lease_seconds, owner.clone(), Some(waiter), &mut fx);
        match second {
            Ok(Acquired::Queued(ticket)) => {
                let _ = hook.ticket.set(ticket);
            }
            Ok(Acquired::Granted(grant)) => {
                // A pool came free between our two looks.
                let outcome = match self.make_lease(py, grant, owner, &bridge) {
                    Ok(lease) => Outcome::Value(lease.into_any()),
                    Err(err) => Outcome::Error(err),
                };
                PyLeaseFuture::settle(&future, py, outcome);
            }
            Err(err) => {
                PyLeaseFuture::settle(&future, py, Outcome::Error(lease_error(py, &err)));
            }
        }
        self.perform(py, fx, Some(&bridge));
        if let Some((seconds, text)) = timeout {
            if future.get().is_pending() {
                let fire = Py::new(
                    py,
                    AcquireTimeout {
                        future: future.clone_ref(py),
                        message: timeout_message(&text),
                    },
                )?;
                let handle = bridge
                    .event_loop()
                    .bind(py)
                    .call_method1("call_later", (seconds, fire))?;
                *lock(&hook.timer) = Some(handle.unbind());
            }
        }
        Ok(future.into_any())
    }
}

/// `LeaseAcquireTimeoutError`: a `TimeoutError` (catchable as before) that tells an
/// acquire timeout apart from one raised by the user's own call.
pub(crate) fn acquire_timeout_error(py: Python<'_>, message: String) -> PyErr {
    crate::errors::new_exception(exception_class(py, "LeaseAcquireTimeoutError"), message)
}

fn timeout_message(text: &str) -> String {
    format!("Timed out waiting for an executor after {text}s")
}

fn ready_error(py: Python<'_>, bridge: Arc<LoopBridge>, err: PyErr) -> PyResult<Py<PyLeaseFuture>> {
    PyLeaseFuture::ready(py, bridge, Outcome::Error(err), None)
}

struct AcquireHookInner {
    core: Weak<ManagerCore>,
    ticket: OnceLock<Ticket>,
    timer: Mutex<Option<Py<PyAny>>>,
}

/// Keeps a waiter's queue entry, timer and granted lease consistent with its future.
struct AcquireHook(Arc<AcquireHookInner>);

impl AcquireHook {
    fn boxed(core: &Arc<ManagerCore>) -> Box<dyn FutureHook> {
        Box::new(Self(Arc::new(AcquireHookInner {
            core: Arc::downgrade(core),
            ticket: OnceLock::new(),
            timer: Mutex::new(None),
        })))
    }
}

impl FutureHook for AcquireHook {
    fn on_cancel(&self, py: Python<'_>) {
        let (Some(core), Some(ticket)) = (self.0.core.upgrade(), self.0.ticket.get()) else {
            return;
        };
        core.withdraw_waiter(py, *ticket);
    }

    fn on_settled(&self, py: Python<'_>) {
        let timer = lock(&self.0.timer).take();
        if let Some(timer) = timer {
            let Some(core) = self.0.core.upgrade() else {
                return;
            };
            let Some(bridge) = core.bridge() else { return };
            bridge.run_on_loop(
                py,
                Box::new(move |py| {
                    crate::errors::best_effort(py, timer.bind(py).call_method0("cancel"));
                }),
            );
        }
    }

    fn on_discard(&self, py: Python<'_>, value: &Py<PyAny>) {
        if let Ok(lease) = value.bind(py).cast::<PyExecutorLease>() {
            lease.get().release_now(py);
        }
    }
}

#[pyclass(module = "leasepool._engine", frozen)]
struct AcquireTimeout {
    future: Py<PyLeaseFuture>,
    message: String,
}

#[pymethods]
impl AcquireTimeout {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool acquire timeout", || {
            let err = acquire_timeout_error(py, self.message.clone());
            PyLeaseFuture::abort(&self.future, py, Outcome::Error(err));
        });
    }
}

/// Bounded async manager of leased executors (see the package docs).
#[pyclass(
    name = "LeasedExecutorManager",
    module = "leasepool.manager",
    frozen,
    subclass,
    weakref
)]
pub(crate) struct PyLeasedExecutorManager {
    core: Arc<ManagerCore>,
}

impl PyLeasedExecutorManager {
    pub(crate) fn core(&self) -> &Arc<ManagerCore> {
        &self.core
    }
}

#[pymethods]
impl PyLeasedExecutorManager {
    #[new]
    #[pyo3(signature = (
        *,
        backend = None,
        max_pools,
        min_pools = None,
        units_per_pool = None,
        size_provider = None,
        check_interval = None,
        default_lease_seconds = None,
        lease_grace_seconds = None,
        workers_per_pool = None,
        name_prefix = "leasepool".to_owned(),
        logger = None,
        process_logging = None,
        forward_process_logs = false,
        process_log_level = None,
        process_log_target_logger = None,
        clear_process_log_handlers = true,
        idle_pool_seconds = None,
        **executor_kwargs
    ))]
    #[pyo3(
        text_signature = "(*, backend='thread', max_pools, min_pools=1, units_per_pool=10, size_provider=None, check_interval=120.0, default_lease_seconds=300.0, lease_grace_seconds=15.0, workers_per_pool=4, name_prefix='leasepool', logger=None, process_logging=None, forward_process_logs=False, process_log_level=20, process_log_target_logger=None, clear_process_log_handlers=True, idle_pool_seconds=10.0, **executor_kwargs)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        backend: Option<Bound<'_, PyAny>>,
        max_pools: &Bound<'_, PyAny>,
        min_pools: Option<&Bound<'_, PyAny>>,
        units_per_pool: Option<&Bound<'_, PyAny>>,
        size_provider: Option<Py<PyAny>>,
        check_interval: Option<&Bound<'_, PyAny>>,
        default_lease_seconds: Option<&Bound<'_, PyAny>>,
        lease_grace_seconds: Option<&Bound<'_, PyAny>>,
        workers_per_pool: Option<&Bound<'_, PyAny>>,
        name_prefix: String,
        logger: Option<Py<PyAny>>,
        process_logging: Option<Bound<'_, PyAny>>,
        forward_process_logs: bool,
        process_log_level: Option<Bound<'_, PyAny>>,
        process_log_target_logger: Option<Bound<'_, PyAny>>,
        clear_process_log_handlers: bool,
        idle_pool_seconds: Option<&Bound<'_, PyAny>>,
        executor_kwargs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        // 0.1.3's order: the counts, then the durations, then min_pools <= max_pools.
        let count = |name, value: Option<&Bound<'_, PyAny>>, default: i64| match value {
            Some(value) => coerce::count(name, value),
            None => Ok(default),
        };
        let seconds = |name, value: Option<&Bound<'_, PyAny>>, default: f64, allow_zero| match value
        {
            Some(value) => coerce::seconds(name, value, allow_zero),
            None => Ok(default),
        };
        let max_pools = coerce::count("max_pools", max_pools)?;
        let min_pools = count("min_pools", min_pools, 1)?;
        let units_per_pool = count("units_per_pool", units_per_pool, 10)?;
        let workers_per_pool = count("workers_per_pool", workers_per_pool, 4)?;
        let default_lease_seconds =
            seconds("default_lease_seconds", default_lease_seconds, 300.0, false)?;
        let lease_grace_seconds = seconds("lease_grace_seconds", lease_grace_seconds, 15.0, true)?;
        let check_interval = seconds("check_interval", check_interval, 120.0, false)?;
        let idle_pool_seconds = seconds(
            "idle_pool_seconds",
            idle_pool_seconds,
            DEFAULT_IDLE_POOL_SECONDS,
            true,
        )?;
        let limits = PoolLimits::new(max_pools, min_pools, units_per_pool, workers_per_pool)
            .map_err(|e| config_error(&e))?;
        let backend = match backend {
            Some(b) => normalize_backend(py)?.call1((b,))?,
            None => normalize_backend(py)?.call1(("thread",))?,
        };
        let backend_name: String = backend.getattr("value")?.extract()?;
        let logger = match logger {
            Some(l) if !l.is_none(py) => l,
            _ => get_logger(py)?.call1(("leasepool.manager",))?.unbind(),
        };
        let level = match process_log_level {
            Some(l) => l,
            None => INFO.into_pyobject(py)?.into_any(),
        };
        let process_logging = match process_logging {
            Some(cfg) if !cfg.is_none() => {
                if forward_process_logs
                    || level.ne(INFO)?
                    || process_log_target_logger
                        .as_ref()
                        .is_some_and(|l| !l.is_none())
                    || !clear_process_log_handlers
                {
                    return Err(pyo3::exceptions::PyValueError::new_err(
                        "Pass either process_logging or the forward_process_logs/process_log_* arguments, not both.",
                    ));
                }
                cfg
            }
            _ => {
                let kwargs = PyDict::new(py);
                kwargs.set_item("enabled", forward_process_logs)?;
                kwargs.set_item("level", &level)?;
                kwargs.set_item("target_logger", process_log_target_logger)?;
                kwargs.set_item("clear_child_handlers", clear_process_log_handlers)?;
                process_logging_config(py)?.call((), Some(&kwargs))?
            }
        };
        if process_logging.getattr("enabled")?.is_truthy()? && backend_name != "process" {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "process log forwarding is only supported for process backend",
            ));
        }
        coerce_log_level(py)?.call1((process_logging.getattr("level")?,))?;
        let workers = usize::try_from(workers_per_pool).unwrap_or(1);
        let settings_cell: Arc<OnceLock<Arc<ThreadPoolSettings>>> = Arc::new(OnceLock::new());
        let factory_settings = settings_cell.clone();
        let executor_kwargs =
            executor_kwargs.map_or_else(|| PyDict::new(py).unbind(), Bound::unbind);
        let process = ProcessBackend::for_backend(
            py,
            &backend_name,
            &backend,
            workers,
            &name_prefix,
            &executor_kwargs,
            &process_logging,
            &logger,
        );
        let factory_process = process.clone();
        let factory = Box::new(move |seq: u64| {
            if let Some(process) = &factory_process {
                let pool: Pool = process.pool(seq);
                return pool;
            }
            // Pools are only created after start() resolved the settings; the default
            // is a defensive fallback, never a panic under the engine lock.
            let settings = factory_settings.get().cloned().unwrap_or_else(|| {
                Arc::new(ThreadPoolSettings {
                    workers,
                    name_prefix: String::from("leasepool"),
                    thread_name_prefix: None,
                    initializer: None,
                    initargs: None,
                })
            });
            let pool: Pool = ThreadPool::new(seq, settings);
            pool
        });
        let mut engine = Manager::new(limits, lease_grace_seconds, factory);
        engine.set_idle_pool_seconds(idle_pool_seconds);
        // One call slot per worker: a granted call never queues behind another.
        engine.set_slots_per_pool(workers);
        let core = Arc::new(ManagerCore {
            engine: Mutex::new(engine),
            cfg: Config {
                backend: backend.unbind(),
                backend_name,
                limits,
                check_interval,
                default_lease_seconds,
                workers_per_pool: workers,
                name_prefix,
                executor_kwargs,
            },
            logger: Logger::new(py, logger),
            size_provider: size_provider.filter(|p| !p.is_none(py)),
            provider_failures: DistinctErrors::default(),
            running: RwLock::new(None),
            pool_settings: settings_cell,
            process,
            last_target: AtomicUsize::new(usize::try_from(min_pools).unwrap_or(1)),
        });
        let mut managers = lock(&MANAGERS);
        managers.retain(|weak| weak.strong_count() > 0);
        managers.push(Arc::downgrade(&core));
        drop(managers);
        Ok(Self { core })
    }

    /// The backend, as an `ExecutorBackend`.
    #[getter]
    fn backend(&self, py: Python<'_>) -> Py<PyAny> {
        self.core.cfg.backend.clone_ref(py)
    }

    /// Start the manager on the running event loop (idempotent).
    fn start(&self, py: Python<'_>) -> PyResult<Py<PyEngineCoroutine>> {
        let core = self.core.clone();
        PyEngineCoroutine::new(
            py,
            "LeasedExecutorManager.start",
            Box::new(move |py| {
                core.start_now(py)?;
                Ok(Step::Done(py.None()))
            }),
        )
    }

    /// Stop: shut every pool down, fail every waiter, wait for the worker threads.
    fn stop(&self, py: Python<'_>) -> PyResult<Py<PyEngineCoroutine>> {
        let core = self.core.clone();
        PyEngineCoroutine::new(
            py,
            "LeasedExecutorManager.stop",
            Box::new(move |py| core.stop_now(py)),
        )
    }

    /// Acquire an executor lease (awaitable).
    #[pyo3(signature = (*, lease_seconds = None, owner = None, wait = true, timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        lease_seconds: Option<&Bound<'_, PyAny>>,
        owner: Option<Py<PyAny>>,
        wait: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        // Checked first, as 0.1.3 does (even on a stopped manager); raised at the await.
        let lease_seconds = match lease_seconds {
            Some(value) if !value.is_none() => match coerce::seconds("lease_seconds", value, false)
            {
                Ok(seconds) => Some(seconds),
                Err(err) => {
                    return Ok(PyEngineCoroutine::failing(py, "acquire", err)?.into_any());
                }
            },
            _ => None,
        };
        let owner = owner.unwrap_or_else(|| py.None());
        crate::errors::guard_panics(|| self.core.acquire(py, lease_seconds, owner, wait, timeout))
    }

    /// Run `func(*args)` on one worker slot (awaitable): the one-call path.
    #[pyo3(signature = (func, /, *args, owner = None, timeout = None, wait = true, lease_seconds = None))]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        owner: Option<Py<PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        wait: bool,
        lease_seconds: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let lease_seconds = match lease_seconds {
            Some(value) if !value.is_none() => match coerce::seconds("lease_seconds", value, false)
            {
                Ok(seconds) => Some(seconds),
                Err(err) => return Ok(PyEngineCoroutine::failing(py, "run", err)?.into_any()),
            },
            _ => None,
        };
        let owner = owner.unwrap_or_else(|| py.None());
        crate::errors::guard_panics(|| {
            self.core
                .run(py, func, args, lease_seconds, owner, wait, timeout)
        })
    }

    /// Release a lease by id (awaitable; idempotent; unknown ids are ignored).
    fn release(&self, py: Python<'_>, lease_id: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        crate::errors::guard_panics(|| {
            if let Ok(id) = lease_id.extract::<&str>() {
                let key = lock(&self.core.engine).key_of(id);
                if let Some(key) = key {
                    self.core.release_key(py, key);
                }
            }
            ready_none(py, self.core.bridge())
        })
    }

    /// Wake the checker so it re-reads `size_provider` now.
    fn notify_scale_changed(&self) {
        self.core.with_clock(CheckerClock::poke);
    }

    /// `min(max_pools, max(min_pools, ceil(size_provider() / units_per_pool)))`.
    fn desired_executor_count(&self, py: Python<'_>) -> usize {
        self.core.target(py)
    }

    #[getter]
    fn available_count(&self) -> usize {
        self.core.counts().1
    }

    #[getter]
    fn leased_count(&self) -> usize {
        self.core.counts().2
    }

    #[getter]
    fn total_count(&self) -> usize {
        self.core.counts().0
    }

    /// Diagnostics, with the same keys as leasepool 0.1.1.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let desired = self.core.target(py);
        let (available, leased, total, leases) = {
            let engine = lock(&self.core.engine);
            let leases: Vec<_> = engine
                .leases()
                .into_iter()
                .map(|(id, owner, timing)| (id.clone(), owner.clone(), timing))
                .collect();
            (
                engine.available_count(),
                engine.leased_count(),
                engine.total_count(),
                leases,
            )
        };
        let now = monotonic();
        let limits = self.core.cfg.limits;
        let out = PyDict::new(py);
        out.set_item("backend", &self.core.cfg.backend_name)?;
        out.set_item("desired", desired)?;
        out.set_item("max_pools", limits.max_pools())?;
        out.set_item("min_pools", limits.min_pools())?;
        out.set_item("available", available)?;
        out.set_item("leased", leased)?;
        out.set_item("total", total)?;
        out.set_item("workers_per_pool", self.core.cfg.workers_per_pool)?;
        let list = PyList::empty(py);
        for (id, owner, timing) in leases {
            let entry = PyDict::new(py);
            entry.set_item("lease_id", &*id)?;
            entry.set_item("owner", owner.clone_ref(py))?;
            entry.set_item(
                "seconds_until_soft_expiry",
                (timing.soft_expires_at() - now).max(0.0),
            )?;
            entry.set_item(
                "seconds_until_hard_expiry",
                (timing.hard_expires_at() - now).max(0.0),
            )?;
            list.append(entry)?;
        }
        out.set_item("leases", list)?;
        Ok(out)
    }

    fn __repr__(&self) -> String {
        let (total, available, leased) = self.core.counts();
        format!(
            "<LeasedExecutorManager backend={} total={total} available={available} leased={leased}>",
            self.core.cfg.backend_name
        )
    }
}

/// An awaitable that yields `None` at once.
pub(crate) fn ready_none(py: Python<'_>, bridge: Option<Arc<LoopBridge>>) -> PyResult<Py<PyAny>> {
    match bridge {
        Some(bridge) => {
            Ok(PyLeaseFuture::ready(py, bridge, Outcome::Value(py.None()), None)?.into_any())
        }
        None => Ok(PyEngineCoroutine::ready(py, "release", py.None())?.into_any()),
    }
}
