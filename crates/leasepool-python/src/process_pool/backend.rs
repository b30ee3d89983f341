//! The manager-wide part of the process and interpreter backends: the executor
//! settings resolved at `start()`, and the log-forwarding listener.

use super::*;

/// Resolved at the first `start()`: how every executor of this manager is built.
pub(super) struct Settings {
    pub(super) executor_cls: Py<PyAny>,
    /// Keyword arguments for the executor, without `initializer`/`initargs` for the
    /// process backend (those are composed per executor, see `initargs_tail`).
    pub(super) kwargs: Py<PyDict>,
    /// `(log_setup, user_initializer, user_initargs)`: the end of the arguments of
    /// `_process_worker.initialize` (after the progress array).
    pub(super) initargs_tail: Py<PyTuple>,
    /// `max_tasks_per_child` is set: one call per task, so it keeps counting calls.
    pub(super) one_call_per_task: bool,
    /// The user set `thread_name_prefix` (interpreter backend).
    pub(super) has_thread_prefix: bool,
    /// The parent end of log forwarding: `(queue, target logger)`.
    pub(super) log_forwarding: Option<(Py<PyAny>, Py<PyAny>)>,
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

    pub(super) fn resolve(&self, py: Python<'_>) -> PyResult<Settings> {
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
