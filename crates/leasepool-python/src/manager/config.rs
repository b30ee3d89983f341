//! Building a manager from its constructor arguments: the numeric options checked in
//! leasepool 0.1.3's order, the pool factory, and the shared core.

use std::time::Duration;

use super::*;

/// The numeric constructor arguments, as given.
pub(super) struct NumberArgs<'a, 'py> {
    pub(super) max_pools: &'a Bound<'py, PyAny>,
    pub(super) min_pools: Option<&'a Bound<'py, PyAny>>,
    pub(super) units_per_pool: Option<&'a Bound<'py, PyAny>>,
    pub(super) workers_per_pool: Option<&'a Bound<'py, PyAny>>,
    pub(super) default_lease_seconds: Option<&'a Bound<'py, PyAny>>,
    pub(super) lease_grace_seconds: Option<&'a Bound<'py, PyAny>>,
    pub(super) check_interval: Option<&'a Bound<'py, PyAny>>,
    pub(super) idle_pool_seconds: Option<&'a Bound<'py, PyAny>>,
    pub(super) autoscale: Option<&'a Bound<'py, PyAny>>,
}

/// The numeric options, checked.
pub(super) struct Numbers {
    limits: PoolLimits,
    check_interval: f64,
    default_lease_seconds: f64,
    /// The built-in adaptive sizing, if asked for (`autoscale=`).
    autoscale: Option<leasepool::autoscale::AutoScalePolicy>,
}

impl Numbers {
    /// 0.1.3's order: the counts, then the durations, then `min_pools <= max_pools`
    /// (so the first error reported for a bad combination is the same).
    pub(super) fn check(args: NumberArgs<'_, '_>) -> PyResult<Self> {
        let count = |name, value: Option<&Bound<'_, PyAny>>, default: i64| {
            value.map_or(Ok(default), |value| coerce::count(name, value))
        };
        let seconds = |name, value: Option<&Bound<'_, PyAny>>, default: f64, allow_zero| {
            value.map_or(Ok(default), |value| {
                coerce::seconds(name, value, allow_zero)
            })
        };
        let max_pools = coerce::count("max_pools", args.max_pools)?;
        let min_pools = count("min_pools", args.min_pools, 1)?;
        let units_per_pool = count("units_per_pool", args.units_per_pool, 10)?;
        let workers_per_pool = count("workers_per_pool", args.workers_per_pool, 4)?;
        let default_lease_seconds = seconds(
            "default_lease_seconds",
            args.default_lease_seconds,
            300.0,
            false,
        )?;
        let grace = seconds("lease_grace_seconds", args.lease_grace_seconds, 15.0, true)?;
        let check_interval = seconds("check_interval", args.check_interval, 120.0, false)?;
        let idle = seconds(
            "idle_pool_seconds",
            args.idle_pool_seconds,
            DEFAULT_IDLE_POOL_SECONDS,
            true,
        )?;
        // Counts were checked positive: they fit.
        let whole = |n: i64| usize::try_from(n).unwrap_or(usize::MAX);
        let limits = PoolLimits::builder(whole(max_pools))
            .min_pools(whole(min_pools))
            .units_per_pool(u64::try_from(units_per_pool).unwrap_or(u64::MAX))
            // One call slot per worker: a granted call never queues behind another.
            .slots_per_pool(whole(workers_per_pool))
            .lease_grace(Duration::from_secs_f64(grace))
            .idle_pool_timeout(Duration::from_secs_f64(idle))
            .build()
            .map_err(|e| config_error(&e))?;
        Ok(Self {
            limits,
            check_interval,
            default_lease_seconds,
            autoscale: super::autoscale::policy(args.autoscale)?,
        })
    }
}

/// The backend as an `ExecutorBackend` (default: threads), and its name.
pub(super) fn backend<'py>(
    py: Python<'py>,
    backend: Option<Bound<'py, PyAny>>,
) -> PyResult<(Bound<'py, PyAny>, String)> {
    let given = backend.unwrap_or_else(|| pyo3::types::PyString::new(py, "thread").into_any());
    let backend = normalize_backend(py)?.call1((given,))?;
    let name = backend.getattr("value")?.extract()?;
    Ok((backend, name))
}

/// The manager's logger (default: `logging.getLogger("leasepool.manager")`).
pub(super) fn logger(py: Python<'_>, logger: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
    match logger {
        Some(logger) if !logger.is_none(py) => Ok(logger),
        _ => Ok(get_logger(py)?.call1(("leasepool.manager",))?.unbind()),
    }
}

/// Everything else a manager is built from, resolved.
pub(super) struct Parts<'py> {
    pub(super) backend: Bound<'py, PyAny>,
    pub(super) backend_name: String,
    /// As given (`None`: `leasepool.manager`'s logger).
    pub(super) logger: Option<Py<PyAny>>,
    pub(super) process_logging: Bound<'py, PyAny>,
    pub(super) name_prefix: String,
    /// As given (`None`: no keyword arguments for the executors).
    pub(super) executor_kwargs: Option<Bound<'py, PyDict>>,
    /// As given (`None` or Python's `None`: no provider).
    pub(super) size_provider: Option<Py<PyAny>>,
}

impl Parts<'_> {
    /// The process, interpreter, dask or auto backend's manager-wide part (`None` for
    /// threads).
    fn process_backend(
        &self,
        py: Python<'_>,
        workers: usize,
        executor_kwargs: &Py<PyDict>,
        logger: &Py<PyAny>,
        resilience: Resilience,
    ) -> PyResult<Option<Arc<ProcessBackend>>> {
        ProcessBackend::for_backend(
            py,
            &self.backend_name,
            &self.backend,
            workers,
            &self.name_prefix,
            executor_kwargs,
            &self.process_logging,
            logger,
            resilience,
        )
    }

    /// The keyword arguments for the executors (none if none were given), without the
    /// worker options (`max_worker_memory` stays, in bytes), which are checked here.
    fn take_executor_kwargs(&mut self, py: Python<'_>) -> PyResult<(Py<PyDict>, Resilience)> {
        let given = self
            .executor_kwargs
            .take()
            .unwrap_or_else(|| PyDict::new(py));
        let split = split_worker_options(py)?.call1((&self.backend_name, given))?;
        let kwargs = split.getattr("kwargs")?.cast_into::<PyDict>()?.unbind();
        let breaker: Option<(u32, f64, f64)> = split.getattr("breaker")?.extract()?;
        let context = split.getattr("context")?.cast_into::<PyTuple>()?;
        Ok((kwargs, Resilience::new(breaker, Some(context))?))
    }
}

impl ManagerCore {
    pub(super) fn build(
        py: Python<'_>,
        (numbers, admission, observe): (
            Numbers,
            super::admission::Admission,
            super::observe::Observe,
        ),
        mut parts: Parts<'_>,
    ) -> PyResult<Arc<Self>> {
        let Numbers {
            limits,
            check_interval,
            default_lease_seconds,
            autoscale,
        } = numbers;
        // Before anything is built for the backend.
        admission
            .policy
            .validate(limits.max_pools())
            .map_err(|e| config_error(&e))?;
        let (executor_kwargs, resilience) = parts.take_executor_kwargs(py)?;
        let size_provider = parts.size_provider.take().filter(|p| !p.is_none(py));
        let logger = self::logger(py, parts.logger.take())?;
        let workers = limits.slots_per_pool();
        let pool_settings: Arc<OnceLock<Arc<ThreadPoolSettings>>> = Arc::new(OnceLock::new());
        let process = parts.process_backend(py, workers, &executor_kwargs, &logger, resilience)?;
        let (factory, routing) = pool_factory(
            py,
            process.clone(),
            pool_settings.clone(),
            (&logger, workers),
        );
        let mut engine = new_engine(limits, &admission, autoscale, factory)?;
        let calls = observe.start_counting(&mut engine, process.as_deref());
        Ok(Arc::new(ManagerCore {
            engine: Mutex::new(engine),
            cfg: Config {
                backend: parts.backend.unbind(),
                backend_name: parts.backend_name,
                limits,
                check_interval,
                default_lease_seconds,
                workers_per_pool: workers,
                name_prefix: parts.name_prefix,
                executor_kwargs,
                admission,
                observe,
                autoscaled: autoscale.is_some(),
            },
            logger: Logger::new(py, logger),
            size_provider,
            provider_failures: DistinctErrors::default(),
            running: RwLock::new(None),
            pool_settings,
            process,
            routing,
            last_target: AtomicUsize::new(limits.min_pools()),
            draining: Default::default(),
            calls,
        }))
    }
}

/// The engine's state machine, with the admission policy and autoscaling asked for.
fn new_engine(
    limits: PoolLimits,
    admission: &super::admission::Admission,
    autoscale: Option<leasepool::autoscale::AutoScalePolicy>,
    factory: leasepool::manager::PoolFactory<Pool>,
) -> PyResult<Engine> {
    let mut engine = Manager::with_admission(limits, admission.policy.clone(), factory)
        .map_err(|e| config_error(&e))?;
    if let Some(policy) = autoscale {
        engine.enable_autoscale(policy);
    }
    Ok(engine)
}

/// The engine's pool factory (it runs under the engine lock, so it never calls
/// Python), and for `backend="auto"` the routing table its pools share.
fn pool_factory(
    py: Python<'_>,
    process: Option<Arc<ProcessBackend>>,
    thread_settings: Arc<OnceLock<Arc<ThreadPoolSettings>>>,
    (logger, workers): (&Py<PyAny>, usize),
) -> (leasepool::manager::PoolFactory<Pool>, Option<Arc<Routing>>) {
    let auto = process.as_ref().is_some_and(|p| p.is_auto_half());
    let routing = auto.then(|| Routing::new(Logger::new(py, logger.clone_ref(py))));
    let shared = routing.clone();
    let factory = Box::new(move |seq: u64| -> Pool {
        let threads = || ThreadPool::new(seq, resolved(&thread_settings, workers));
        match (&process, &shared) {
            (Some(process), Some(routing)) => {
                AutoPool::new(threads(), process.pool(seq), routing.clone())
            }
            (Some(process), None) => process.pool(seq),
            (None, _) => threads(),
        }
    });
    (factory, routing)
}

/// The thread pools' settings, resolved by `start()` before any pool is created; the
/// default is a defensive fallback, never a panic under the engine lock.
fn resolved(
    thread_settings: &OnceLock<Arc<ThreadPoolSettings>>,
    workers: usize,
) -> Arc<ThreadPoolSettings> {
    thread_settings.get().cloned().unwrap_or_else(|| {
        Arc::new(ThreadPoolSettings {
            workers,
            name_prefix: String::from("leasepool"),
            thread_name_prefix: None,
            initializer: None,
            initargs: None,
            metrics: None,
        })
    })
}
