//! `LeasedExecutorManager`: the Python class (constructor, methods, properties).

use super::admission::Admission;
use super::config::{self, NumberArgs, Numbers, Parts};
use super::observe::Observe;
use super::*;

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
        max_waiters = None,
        owner_limit = None,
        fair_share = None,
        reserved_pools = None,
        metrics = None,
        metrics_owners = None,
        track_acquire_site = None,
        autoscale = None,
        **executor_kwargs
    ))]
    #[pyo3(
        text_signature = "(*, backend='thread', max_pools, min_pools=1, units_per_pool=10, size_provider=None, check_interval=120.0, default_lease_seconds=300.0, lease_grace_seconds=15.0, workers_per_pool=4, name_prefix='leasepool', logger=None, process_logging=None, forward_process_logs=False, process_log_level=20, process_log_target_logger=None, clear_process_log_handlers=True, idle_pool_seconds=10.0, max_waiters=None, owner_limit=None, fair_share=False, reserved_pools=None, metrics=True, metrics_owners=0, track_acquire_site=False, autoscale=None, **executor_kwargs)"
    )]
    // The process-logging arguments are checked by `leasepool._config` (0.1.3's rules
    // and messages); everything else here.
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
        max_waiters: Option<&Bound<'_, PyAny>>,
        owner_limit: Option<&Bound<'_, PyAny>>,
        fair_share: Option<&Bound<'_, PyAny>>,
        reserved_pools: Option<&Bound<'_, PyAny>>,
        metrics: Option<&Bound<'_, PyAny>>,
        metrics_owners: Option<&Bound<'_, PyAny>>,
        track_acquire_site: Option<&Bound<'_, PyAny>>,
        autoscale: Option<&Bound<'_, PyAny>>,
        executor_kwargs: Option<Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let numbers = Numbers::check(NumberArgs {
            max_pools,
            min_pools,
            units_per_pool,
            workers_per_pool,
            default_lease_seconds,
            lease_grace_seconds,
            check_interval,
            idle_pool_seconds,
            autoscale,
        })?;
        let admission = Admission::check(max_waiters, owner_limit, fair_share, reserved_pools)?;
        let observe = Observe::check(metrics, metrics_owners, track_acquire_site)?;
        let (backend, backend_name) = config::backend(py, backend)?;
        let process_logging = process_logging_config(py)?.call1((
            &backend_name,
            process_logging,
            forward_process_logs,
            process_log_level,
            process_log_target_logger,
            clear_process_log_handlers,
        ))?;
        Ok(Self::tracked(ManagerCore::build(
            py,
            (numbers, admission, observe),
            Parts {
                backend,
                backend_name,
                logger,
                process_logging,
                name_prefix,
                executor_kwargs,
                size_provider,
            },
        )?))
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
            Box::new(move |py| core.start_step(py)),
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

    /// Graceful drain: grant nothing more, fail the queued waiters, let running work
    /// finish for up to `timeout` seconds, then cancel what is queued and stop what
    /// still runs, and stop as `stop()` does. Awaitable: a `DrainReport`.
    fn drain(&self, py: Python<'_>, timeout: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let timeout = coerce::seconds("timeout", timeout, true)?;
        crate::errors::guard_panics(|| self.core.drain_now(py, timeout))
    }

    /// Acquire an executor lease (awaitable).
    #[pyo3(signature = (*, lease_seconds = None, owner = None, wait = true, timeout = None, priority = None, reservation = None))]
    #[pyo3(
        text_signature = "($self, *, lease_seconds=None, owner=None, wait=True, timeout=None, priority=0, reservation=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &self,
        py: Python<'_>,
        lease_seconds: Option<&Bound<'_, PyAny>>,
        owner: Option<Py<PyAny>>,
        wait: bool,
        timeout: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        reservation: Option<&Bound<'_, PyAny>>,
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
        let request = match self
            .core
            .request(py, lease_seconds, owner, priority, reservation)
        {
            Ok(request) => request,
            Err(err) => return Ok(PyEngineCoroutine::failing(py, "acquire", err)?.into_any()),
        };
        crate::errors::guard_panics(|| self.core.acquire(py, request, wait, timeout))
    }

    /// Run `func(*args)` on one worker slot (awaitable): the one-call path.
    #[pyo3(signature = (func, /, *args, owner = None, timeout = None, wait = true, lease_seconds = None, priority = None, reservation = None))]
    #[pyo3(
        text_signature = "($self, func, /, *args, owner=None, timeout=None, wait=True, lease_seconds=None, priority=0, reservation=None)"
    )]
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
        priority: Option<&Bound<'_, PyAny>>,
        reservation: Option<&Bound<'_, PyAny>>,
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
        let request = match self
            .core
            .request(py, lease_seconds, owner, priority, reservation)
        {
            Ok(request) => request,
            Err(err) => return Ok(PyEngineCoroutine::failing(py, "run", err)?.into_any()),
        };
        crate::errors::guard_panics(|| self.core.run(py, func, args, request, wait, timeout))
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

    /// The dask backend's connection to its cluster (`leasepool._dask.DaskConnection`),
    /// once started; `None` otherwise. Read by `leasepool.integrations.dask`.
    #[getter]
    fn _dask_connection(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.core.process.as_ref()?.connection(py)
    }

    /// `min(max_pools, max(min_pools, ceil(size_provider() / units_per_pool)))`.
    fn desired_executor_count(&self, py: Python<'_>) -> usize {
        self.core.effective_target(py)
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

    /// The engine's counters and histograms (`leasepool.metrics.ManagerMetrics`).
    fn metrics(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        crate::errors::guard_panics(|| self.core.metrics_snapshot(py))
    }

    /// Every live lease, oldest first (`leasepool.metrics.LeaseInfo`).
    fn leases<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        crate::errors::guard_panics(|| self.core.lease_infos(py))
    }

    /// Diagnostics, with the same keys as leasepool 0.1.1.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let desired = self.core.effective_target(py);
        let (available, leased, total, leases, autoscale) = {
            let engine = lock(&self.core.engine);
            let leases: Vec<_> = engine
                .leases()
                .into_iter()
                .map(|(id, owner, timing)| (id, owner.clone(), timing))
                .collect();
            (
                engine.available_count(),
                engine.leased_count(),
                engine.total_count(),
                leases,
                engine.autoscale(),
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
            entry.set_item("lease_id", id.hex().as_str())?;
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
        // Only with these features on: a manager configured as in 0.1.3 shows 0.1.3's
        // keys.
        if let Some(view) = autoscale {
            out.set_item("autoscale", super::autoscale::view_dict(py, view)?)?;
        }
        if let Some(routing) = &self.core.routing {
            out.set_item("routing", super::autoscale::routing_list(py, routing)?)?;
        }
        if let Some(breaker) = self.core.process.as_ref().map(|p| p.breaker_stats(py)) {
            if let Some(breaker) = breaker? {
                out.set_item("crash_breaker", breaker)?;
            }
        }
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

impl PyLeasedExecutorManager {
    /// A new manager, registered for the fork and exit hooks.
    fn tracked(core: Arc<ManagerCore>) -> Self {
        crate::lifecycle::track(&core);
        Self { core }
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
