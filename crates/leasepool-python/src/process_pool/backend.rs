//! The manager-wide part of the process, interpreter and dask backends: the executor
//! settings resolved at `start()`, and the log-forwarding listener.

use super::*;

/// Resolved at the first `start()`: how every executor of this manager is built.
pub(super) struct Settings {
    pub(super) executor_cls: Py<PyAny>,
    /// Keyword arguments for the executor, without `initializer`/`initargs` for the
    /// process backend (those are composed per executor, see `initargs_tail`).
    pub(super) kwargs: Py<PyDict>,
    /// `(log_setup, user_initializer, user_initargs, nice, auto, memory_limit)`: the end
    /// of the arguments of `_process_worker.initialize` (after the progress array).
    pub(super) initargs_tail: Py<PyTuple>,
    /// `max_tasks_per_child` is set: one call per task, so it keeps counting calls.
    pub(super) one_call_per_task: bool,
    /// The user set `thread_name_prefix` (interpreter backend).
    pub(super) has_thread_prefix: bool,
    /// The parent end of log forwarding: `(queue, target logger)`.
    pub(super) log_forwarding: Option<(Py<PyAny>, Py<PyAny>)>,
    /// The dask backend's `leasepool._dask.DaskConnection`.
    pub(super) connection: Option<Py<PyAny>>,
}

/// The manager-wide part of the process and interpreter backends: configuration,
/// executor settings and the log-forwarding listener.
pub(crate) struct ProcessBackend {
    pub(super) kind: Kind,
    pub(super) backend: Py<PyAny>,
    pub(super) workers: usize,
    pub(super) name_prefix: String,
    pub(super) executor_kwargs: Py<PyDict>,
    pub(super) process_logging: Py<PyAny>,
    pub(super) logger: Py<PyAny>,
    pub(super) settings: OnceLock<Arc<Settings>>,
    pub(super) listener: Mutex<Option<Py<PyAny>>>,
    /// The manager's call metrics, if it keeps them (set once, at construction).
    pub(super) metrics: OnceLock<Arc<CallMetrics>>,
    /// The process half of `backend="auto"` pools.
    auto: bool,
    /// The crash breaker and the context variables copied into workers.
    pub(super) resilience: super::resilience::Resilience,
}

impl ProcessBackend {
    /// The backend for `backend_name`, or `None` for the thread backend. Checks the
    /// dask backend's arguments.
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
        resilience: super::resilience::Resilience,
    ) -> PyResult<Option<Arc<Self>>> {
        let kind = match backend_name {
            "process" => Kind::Process,
            "interpreter" => Kind::Interpreter,
            "dask" => {
                // At construction, unlike the executors' arguments: a missing extra or
                // a wrong client is a deployment error, not one to find at `start()`.
                check_dask_arguments(py)?.call1((executor_kwargs,))?;
                Kind::Dask
            }
            "auto" => {
                check_auto_arguments(executor_kwargs.bind(py))?;
                Kind::Process
            }
            _ => return Ok(None),
        };
        // `backend="auto"`: this is the process half of its pools, whose workers run at
        // a lower CPU priority unless told otherwise (they must not take the CPU from
        // the event loop they were offloaded from).
        let (backend, executor_kwargs) = if backend_name == "auto" {
            let kwargs = executor_kwargs.bind(py).copy()?;
            if !kwargs.contains("worker_nice")? {
                kwargs.set_item("worker_nice", AUTO_WORKER_NICE)?;
            }
            // `leasepool._process_backend.AUTO_MARK`: a start method that never forks,
            // and workers that measure their run-queue wait.
            kwargs.set_item("_leasepool_auto_half", true)?;
            let process = crate::py_cache::normalize_backend(py)?.call1(("process",))?;
            (process, kwargs.unbind())
        } else {
            (backend.clone(), executor_kwargs.clone_ref(py))
        };
        Ok(Some(Arc::new(Self {
            kind,
            backend: backend.unbind(),
            workers,
            name_prefix: name_prefix.to_owned(),
            executor_kwargs,
            process_logging: process_logging.clone().unbind(),
            logger: logger.clone_ref(py),
            settings: OnceLock::new(),
            listener: Mutex::new(None),
            metrics: OnceLock::new(),
            auto: backend_name == "auto",
            resilience,
        })))
    }

    /// Whether this is the process half of `backend="auto"` pools.
    pub(crate) fn is_auto_half(&self) -> bool {
        self.auto
    }

    /// Counts this backend's calls in `metrics`.
    pub(crate) fn count_calls(&self, metrics: Arc<CallMetrics>) {
        let _ = self.metrics.set(metrics);
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
        self.reset_breaker();
        let listener = lock(&self.listener).take();
        if let Some(listener) = listener {
            if let Err(err) = listener.bind(py).call_method0("stop") {
                crate::errors::report_unraisable(py, err, None);
            }
        }
    }

    /// Resolves and checks the executor arguments (in `leasepool._process_backend`).
    pub(super) fn resolve(&self, py: Python<'_>) -> PyResult<Settings> {
        let resolved = resolve_executor_settings(py)?.call1((
            self.kind.name(),
            self.backend.bind(py),
            self.workers,
            &self.name_prefix,
            self.executor_kwargs.bind(py),
            self.process_logging.bind(py),
            self.logger.bind(py),
        ))?;
        let field = |name: &str| resolved.getattr(name);
        let kwargs = field("kwargs")?.cast_into::<PyDict>()?;
        let log_queue = field("log_queue")?;
        let log_forwarding = if log_queue.is_none() {
            None
        } else {
            Some((log_queue.unbind(), field("log_target")?.unbind()))
        };
        let connection = field("connection")?;
        Ok(Settings {
            connection: (!connection.is_none()).then(|| connection.unbind()),
            executor_cls: field("executor_cls")?.unbind(),
            kwargs: kwargs.unbind(),
            initargs_tail: field("initargs_tail")?.cast_into::<PyTuple>()?.unbind(),
            one_call_per_task: field("one_call_per_task")?.is_truthy()?,
            has_thread_prefix: field("has_thread_prefix")?.is_truthy()?,
            log_forwarding,
        })
    }
}

/// The default `worker_nice` of `backend="auto"`: its worker processes yield the CPU
/// to the event loop's process (measured in docs/offloading.md).
const AUTO_WORKER_NICE: i32 = 10;

/// `backend="auto"` runs every call on a thread or a process of its pool: only the
/// executor arguments both kinds of worker take (`initializer`, `initargs`: run in
/// every worker thread and every worker process) make sense, and the process half's
/// `worker_nice` and `mp_context`.
fn check_auto_arguments(executor_kwargs: &Bound<'_, PyDict>) -> PyResult<()> {
    for key in executor_kwargs.keys() {
        let name: String = key.extract()?;
        if !matches!(
            name.as_str(),
            "initializer" | "initargs" | "worker_nice" | "mp_context" | "max_worker_memory"
        ) {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "backend='auto' takes only initializer, initargs, worker_nice, mp_context \
                 and max_worker_memory as executor arguments (the first two run in every \
                 worker thread and process), not '{name}'"
            )));
        }
    }
    Ok(())
}
