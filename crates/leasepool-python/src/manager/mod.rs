//! `LeasedExecutorManager`: the Python face of the engine's lease manager.
//!
//! [`ManagerCore`] is shared (via `Arc`) by the manager object, its leases, their
//! futures and the checker clock. It holds the engine state machine behind one mutex
//! and follows one rule: lock, mutate, unlock, *then* perform the effects (log,
//! settle futures, shut pools down). No Python code ever runs under the engine lock.
//!
//! Files: this one (the core, its drive/release/drain operations), `python.rs` (the
//! Python class), `acquire.rs`, `one_call.rs` (`manager.run`), `events.rs` (performing
//! effects, log records), `lifecycle.rs` (start, stop, the periodic check).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use leasepool::expiry::{monotonic, CheckerClock};
use leasepool::manager::{Acquired, Effects, Event, Grant, Manager, SlotAcquired};
use leasepool::waiters::Ticket;
use leasepool::{LeaseError, LeaseKey, PoolLimits, SlotGrant};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyList, PyTuple};

use crate::job::{Job, Target};

use crate::aio::{Completion, LoopBridge};
use crate::aio::{FutureHook, Outcome, PyLeaseFuture};
use crate::aio::{PyEngineCoroutine, Step};
use crate::auto_pool::{AutoPool, Routing};
use crate::coerce;
use crate::errors::{config_error, lease_error};
use crate::logging::{describe_error, DistinctErrors, Logger, DEBUG, INFO, WARNING};
use crate::pool::{reap_in_background, DrainBarrier, ExecutorPool, Reapable};
use crate::process_pool::{ProcessBackend, Resilience};
use crate::py_cache::{
    exception_class, get_logger, get_running_loop, normalize_backend, process_logging_config,
    split_worker_options, thread_pool_settings,
};
use crate::thread_pool::{ThreadPool, ThreadPoolSettings};

mod acquire;
mod admission;
mod autoscale;
mod config;
mod drain;
mod events;
mod lease;
mod lifecycle;
mod observe;
mod one_call;
mod python;
mod run;

pub(crate) use acquire::acquire_timeout_error;
use acquire::timeout_message;
pub(crate) use drain::PyDrainReport;
pub(crate) use lease::PyExecutorLease;
pub(crate) use observe::LeaseTag;
pub(crate) use python::PyLeasedExecutorManager;
pub(crate) use run::{QueuedCall, RunTimeout, SlotLink, WaitingCall, WaitingCallHook};

/// What a lease carries: its owner and, if tracked, its acquire site.
pub(crate) type Owner = Arc<LeaseTag>;

/// A lease request as the Python call gave it: the lease duration (the default if
/// `None`), the owner the lease carries, and who asks for admission control.
pub(crate) struct Request {
    lease_seconds: Option<f64>,
    owner: Py<PyAny>,
    tenant: leasepool::Tenant,
    /// The owner's name in the per-owner metrics, if they break owners down.
    label: observe::OwnerLabel,
    /// Where `acquire()`/`run()` was called, if tracked.
    site: Option<observe::AcquireSite>,
}
pub(crate) type Pool = Arc<dyn ExecutorPool>;
type Engine = Manager<Pool, Owner, Queued>;
type Fx = Effects<Pool, Owner, Queued>;

/// A queued `acquire()`: its future and the owner the lease will carry.
pub(crate) struct QueuedAcquire {
    future: Py<PyLeaseFuture>,
    owner: Owner,
}

/// A lease request from inside the binding (a WorkGrinder batch): told its outcome
/// directly instead of through an awaitable.
pub(crate) trait LeaseTaker: Send + Sync {
    /// Claims the lease about to be granted; `false` if the taker gave up.
    fn try_claim(&self) -> bool;
    /// The claimed lease (any thread).
    fn leased(&self, py: Python<'_>, lease: Bound<'_, PyExecutorLease>);
    /// No lease will come (the manager stopped, or refused the request).
    fn refused(&self, py: Python<'_>, err: PyErr);
}

/// Somebody in the engine's FIFO queue.
pub(crate) enum Queued {
    /// `acquire()`, waiting for a whole pool.
    Acquire(QueuedAcquire),
    /// `run()`, waiting for a call slot.
    Call(QueuedCall),
    /// A batch of the WorkGrinder, waiting for a whole pool for this owner.
    Taker(Owner, Arc<dyn LeaseTaker>),
}

impl Queued {
    /// The manager stopped: this waiter gets `err`.
    fn refuse(self, py: Python<'_>, err: PyErr) {
        match self {
            Self::Acquire(QueuedAcquire { future, .. }) | Self::Call(QueuedCall { future, .. }) => {
                PyLeaseFuture::settle(&future, py, Outcome::Error(err));
            }
            Self::Taker(_, taker) => taker.refused(py, err),
        }
    }
}

impl leasepool::Waiter for Queued {
    fn try_claim(&self) -> bool {
        match self {
            // A granted lease must reach its future: claim it now.
            Self::Acquire(acquire) => acquire.future.get().try_claim(),
            Self::Call(call) => call.is_wanted(),
            Self::Taker(_, taker) => taker.try_claim(),
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
    /// The admission policy's reserved class names, for requests naming one.
    admission: admission::Admission,
    observe: observe::Observe,
    /// The engine's controller sets the sizing target (`autoscale=`).
    autoscaled: bool,
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
    /// The process or interpreter backend (`None` for threads; `backend="auto"`: the
    /// process half of its pools).
    process: Option<Arc<ProcessBackend>>,
    /// `backend="auto"`: which callable runs where.
    routing: Option<Arc<Routing>>,
    /// The sizing target last computed. A call slot ending on a worker thread uses it
    /// instead of calling `size_provider` (user code) once per call there.
    last_target: AtomicUsize,
    /// A graceful drain in progress, and other deadlines on the clock (`drain.rs`).
    draining: drain::Draining,
    /// Call counts and timings, recorded by the pools' workers (`metrics=True`).
    calls: Option<Arc<leasepool::metrics::CallMetrics>>,
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
        engine.stop(monotonic(), &mut fx);
        let _ = crate::attach::attach_known_thread(|py| {
            for waiter in fx.refused.drain(..) {
                waiter.refuse(py, lease_error(py, &LeaseError::NotStarted));
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

/// Threads do not survive `fork`: in the child a manager forgets its pools, clock and
/// loop registration (without joining or closing anything that belongs to the
/// parent) and is left stopped; it can be started again in the child.
impl crate::lifecycle::ProcessScoped for ManagerCore {
    fn forget_after_fork(&self) -> bool {
        if let Ok(mut running) = self.running.try_write() {
            // The clock thread does not exist here: dropping it would join nothing.
            std::mem::forget(running.take());
        }
        if let Ok(mut engine) = self.engine.try_lock() {
            let mut fx = Fx::default();
            engine.stop(monotonic(), &mut fx);
            std::mem::forget(fx);
        }
        true
    }
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

    /// The sizing target the front end passes to the engine: `size_provider`'s (the
    /// engine raises it to its autoscaler's, if one runs).
    fn target(&self, py: Python<'_>) -> usize {
        let target = self.cfg.limits.desired(self.units(py));
        self.last_target.store(target, Ordering::Relaxed);
        target
    }

    /// The target in force, as `desired` reports it: [`target`](Self::target) raised
    /// to the autoscaler's.
    fn effective_target(&self, py: Python<'_>) -> usize {
        let target = self.target(py);
        if !self.cfg.autoscaled {
            return target;
        }
        lock(&self.engine)
            .autoscale()
            .map_or(target, |view| target.max(view.target))
    }

    fn settings(&self, py: Python<'_>) -> PyResult<Arc<ThreadPoolSettings>> {
        if let Some(settings) = self.pool_settings.get() {
            return Ok(settings.clone());
        }
        let kwargs = self.cfg.executor_kwargs.bind(py).copy()?;
        if self.routing.is_some() {
            // `backend="auto"`: the process half's own arguments.
            for name in ["worker_nice", "mp_context", "max_worker_memory"] {
                kwargs.del_item(name).ok();
            }
        }
        // Checked in `leasepool._config` (TypeError as ThreadPoolExecutor raises it).
        let (initializer, initargs, thread_name_prefix): (
            Option<Py<PyAny>>,
            Option<Py<PyTuple>>,
            Option<String>,
        ) = thread_pool_settings(py)?.call1((kwargs,))?.extract()?;
        let settings = Arc::new(ThreadPoolSettings {
            workers: self.cfg.workers_per_pool,
            name_prefix: self.cfg.name_prefix.clone(),
            thread_name_prefix,
            initializer,
            initargs,
            metrics: self.calls.clone(),
        });
        Ok(self.pool_settings.get_or_init(|| settings).clone())
    }

    fn make_lease(
        self: &Arc<Self>,
        py: Python<'_>,
        grant: Grant<Pool>,
        owner: Owner,
        bridge: &Arc<LoopBridge>,
    ) -> PyResult<Py<PyExecutorLease>> {
        self.with_clock(|clock| clock.arm_before(grant.timing.soft_expires_at()));
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
                        id.hex().as_str(),
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

    /// The running loop's bridge, if `method` may be served here; otherwise the
    /// awaitable that raises why (not started, or another loop than the manager's), as
    /// 0.1.3's coroutines raise at the `await`.
    fn serving_bridge(
        &self,
        py: Python<'_>,
        method: &'static str,
    ) -> Result<Arc<LoopBridge>, PyResult<Py<PyAny>>> {
        let refuse =
            |err: PyErr| Err(PyEngineCoroutine::failing(py, method, err).map(Py::into_any));
        let Some(bridge) = self.bridge() else {
            return refuse(lease_error(py, &LeaseError::NotStarted));
        };
        if let Err(err) = require_owner_loop(py, &bridge, method) {
            return refuse(err);
        }
        Ok(bridge)
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
        self.take_waiter(py, ticket, false)
    }

    /// [`withdraw_waiter`](Self::withdraw_waiter) for a waiter whose `timeout` passed:
    /// counted as an acquire timeout.
    pub(crate) fn time_out_waiter(self: &Arc<Self>, py: Python<'_>, ticket: Ticket) -> bool {
        self.take_waiter(py, ticket, true)
    }

    fn take_waiter(self: &Arc<Self>, py: Python<'_>, ticket: Ticket, timed_out: bool) -> bool {
        let mut fx = Fx::default();
        let removed = {
            let mut engine = lock(&self.engine);
            if timed_out {
                engine.time_out_waiter(ticket, monotonic(), &mut fx)
            } else {
                engine.withdraw_waiter(ticket, monotonic(), &mut fx)
            }
        };
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

    fn counts(&self) -> (usize, usize, usize) {
        let engine = lock(&self.engine);
        (
            engine.total_count(),
            engine.available_count(),
            engine.leased_count(),
        )
    }
}
