//! `WorkGrinder`: the Python class, and the hooks that withdraw a cancelled item.

use leasepool::grinder::BatchPolicy;
use pyo3::exceptions::PyValueError;
use pyo3::types::{PyDict, PyTuple};

use super::*;
use crate::aio::{PyEngineCoroutine, Step};
use crate::coerce;
use crate::job::Target;
use crate::manager::PyExecutorLease;
use crate::manager::PyLeasedExecutorManager;
use crate::py_cache::{concurrent_future, get_logger};

/// Batches many async submitters onto leased executors (see the package docs).
#[pyclass(
    name = "WorkGrinder",
    module = "leasepool.grinder",
    frozen,
    subclass,
    weakref
)]
pub(crate) struct PyWorkGrinder {
    core: Arc<GrinderCore>,
}

impl PyWorkGrinder {
    /// The loop bridge of a started grinder, or the awaitable that raises
    /// "WorkGrinder is not started" for `what`.
    fn started_bridge(
        &self,
        py: Python<'_>,
        what: &'static str,
    ) -> PyResult<Result<Arc<LoopBridge>, Py<PyAny>>> {
        match self.core.bridge() {
            Some(bridge) => match require_owner_loop(py, &bridge) {
                Ok(()) => Ok(Ok(bridge)),
                Err(err) => Ok(Err(PyEngineCoroutine::failing(py, what, err)?.into_any())),
            },
            None => {
                let err = runtime_error("WorkGrinder is not started");
                Ok(Err(PyEngineCoroutine::failing(py, what, err)?.into_any()))
            }
        }
    }

    fn job(
        py: Python<'_>,
        func: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        target: Target,
    ) -> PyResult<Job> {
        PyExecutorLease::capture_job(py, func, args, kwargs, target)
    }

    /// May `submit_from_thread()` go ahead? `Err` (raised) for misuse; `Ok(Err)` for a
    /// refusal the returned future carries (as 0.1.3 reports them).
    fn thread_bridge(&self, py: Python<'_>) -> PyResult<Result<(), PyErr>> {
        let (ever_started, bridge) = {
            let state = lock(&self.core.state);
            (state.ever_started, state.bridge.clone())
        };
        if !ever_started {
            return Err(runtime_error("WorkGrinder is not started"));
        }
        let Some(bridge) = bridge else {
            return Ok(Err(runtime_error("WorkGrinder is not started")));
        };
        reject_owner_loop_thread(py, &bridge, "submit_from_thread")?;
        let closed = bridge
            .event_loop()
            .bind(py)
            .call_method0("is_closed")
            .and_then(|v| v.is_truthy())
            .unwrap_or(true);
        if closed {
            return Ok(Err(runtime_error("WorkGrinder event loop is closed")));
        }
        Ok(Ok(()))
    }

    /// Withdraws item `id` from the pending queue when `future` is cancelled.
    fn withdraw_on_cancel(
        &self,
        py: Python<'_>,
        future: &Bound<'_, PyAny>,
        id: u64,
    ) -> PyResult<()> {
        let callback = Py::new(
            py,
            WithdrawIfCancelled {
                core: Arc::downgrade(&self.core),
                id,
            },
        )?;
        future.call_method1(pyo3::intern!(py, "add_done_callback"), (callback,))?;
        Ok(())
    }
}

/// `submit()`'s future hook: a cancelled pending item leaves the queue at once.
struct WithdrawOnCancel {
    core: std::sync::Weak<GrinderCore>,
    id: u64,
}

impl crate::aio::FutureHook for WithdrawOnCancel {
    fn on_cancel(&self, py: Python<'_>) {
        if let Some(core) = self.core.upgrade() {
            core.withdraw(py, self.id);
        }
    }
}

/// The same for the `asyncio.Future` of `enqueue()` and the
/// `concurrent.futures.Future` of `submit_from_thread()` (a done-callback).
#[pyclass(module = "leasepool._engine", frozen)]
struct WithdrawIfCancelled {
    core: std::sync::Weak<GrinderCore>,
    id: u64,
}

#[pymethods]
impl WithdrawIfCancelled {
    fn __call__(&self, py: Python<'_>, future: &Bound<'_, PyAny>) {
        crate::errors::contain_panics(py, "leasepool grinder withdraw", || {
            let cancelled = future
                .call_method0(pyo3::intern!(py, "cancelled"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(false);
            if cancelled {
                if let Some(core) = self.core.upgrade() {
                    core.withdraw(py, self.id);
                }
            }
        });
    }
}

#[pymethods]
impl PyWorkGrinder {
    #[new]
    #[pyo3(signature = (
        *,
        executor_manager,
        max_wait_seconds = None,
        batch_size_threshold = None,
        lease_seconds = None,
        owner_prefix = "work-grinder".to_owned(),
        logger = None,
        max_pending = None,
        wait = true,
        submit_timeout = None,
    ))]
    #[pyo3(
        text_signature = "(*, executor_manager, max_wait_seconds=10.0, batch_size_threshold=20, lease_seconds=60.0, owner_prefix='work-grinder', logger=None, max_pending=None, wait=True, submit_timeout=None)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        executor_manager: &Bound<'_, PyLeasedExecutorManager>,
        max_wait_seconds: Option<&Bound<'_, PyAny>>,
        batch_size_threshold: Option<&Bound<'_, PyAny>>,
        lease_seconds: Option<&Bound<'_, PyAny>>,
        owner_prefix: String,
        logger: Option<Py<PyAny>>,
        max_pending: Option<i64>,
        wait: bool,
        submit_timeout: Option<f64>,
    ) -> PyResult<Self> {
        // 0.1.3's rules and order (see `coerce`).
        let max_wait_seconds = match max_wait_seconds {
            Some(value) => coerce::seconds("max_wait_seconds", value, false)?,
            None => 10.0,
        };
        let batch_size_threshold = match batch_size_threshold {
            Some(value) => coerce::count("batch_size_threshold", value)?,
            None => 20,
        };
        let lease_seconds = match lease_seconds {
            Some(value) => coerce::seconds("lease_seconds", value, false)?,
            None => 60.0,
        };
        let max_pending = match max_pending {
            None => None,
            Some(n) if n > 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Some(_) => return Err(PyValueError::new_err("max_pending must be > 0")),
        };
        let logger = match logger {
            Some(l) if !l.is_none(py) => l,
            _ => get_logger(py)?.call1(("leasepool.grinder",))?.unbind(),
        };
        let policy = BatchPolicy {
            batch_size_threshold: usize::try_from(batch_size_threshold).unwrap_or(usize::MAX),
            max_wait_seconds,
            max_outstanding: max_pending,
        };
        let core = Arc::new(GrinderCore {
            manager: executor_manager.get().core().clone(),
            settings: Settings {
                lease_seconds,
                owner_prefix,
                max_pending,
                wait,
                submit_timeout,
            },
            logger: Logger::new(py, logger),
            state: Mutex::new(State {
                engine: Grinder::new(policy),
                ever_started: false,
                bridge: None,
                batches: HashMap::new(),
                stop_waiters: Vec::new(),
                drain: None,
            }),
            space: Condvar::new(),
            work_seq: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
        });
        crate::lifecycle::track(&core);
        Ok(Self { core })
    }

    /// Start batching on the running event loop (idempotent).
    fn start(&self, py: Python<'_>) -> PyResult<Py<PyEngineCoroutine>> {
        let core = self.core.clone();
        PyEngineCoroutine::new(
            py,
            "WorkGrinder.start",
            Box::new(move |py| {
                core.start_now(py)?;
                Ok(Step::Done(py.None()))
            }),
        )
    }

    /// Stop: drain every pending item, or cancel them with `cancel_pending=True`.
    #[pyo3(signature = (*, cancel_pending = false))]
    fn stop(&self, py: Python<'_>, cancel_pending: bool) -> PyResult<Py<PyEngineCoroutine>> {
        let core = self.core.clone();
        PyEngineCoroutine::new(
            py,
            "WorkGrinder.stop",
            Box::new(move |py| core.stop_now(py, cancel_pending)),
        )
    }

    /// Graceful drain: accept nothing more, send what is pending off in a last batch,
    /// let batches finish for up to `timeout` seconds, then cancel the items not
    /// started. Awaitable: a `DrainReport`.
    fn drain(&self, py: Python<'_>, timeout: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let timeout = coerce::seconds("timeout", timeout, true)?;
        crate::errors::guard_panics(|| self.core.drain_now(py, timeout))
    }

    /// Queue `fn(*args, **kwargs)` and await its result.
    #[pyo3(
        signature = (fn_, /, *args, owner = None, **kwargs),
        text_signature = "($self, fn, /, *args, owner=None, **kwargs)"
    )]
    fn submit(
        &self,
        py: Python<'_>,
        fn_: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        owner: Option<Py<PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        crate::errors::guard_panics(|| {
            let owner = owner.unwrap_or_else(|| py.None());
            let bridge = match self.started_bridge(py, "WorkGrinder.submit")? {
                Ok(bridge) => bridge,
                Err(refusal) => return Ok(refusal),
            };
            let id = self.core.next_work_id();
            let hook = WithdrawOnCancel {
                core: Arc::downgrade(&self.core),
                id,
            };
            let future = PyLeaseFuture::pending(py, bridge.clone(), Some(Box::new(hook)))?;
            let job = Self::job(py, fn_, args, kwargs, Target::Future(future.clone_ref(py)))?;
            let item = Item { job, id, owner };
            if let Err((item, err)) = self.core.submit_item(py, item, Some(None)) {
                drop(item);
                return Ok(PyLeaseFuture::ready(py, bridge, Outcome::Error(err), None)?.into_any());
            }
            Ok(future.into_any())
        })
    }

    /// Queue `fn(*args, **kwargs)`; await it to get an `asyncio.Future` of the result.
    #[pyo3(
        signature = (fn_, /, *args, owner = None, **kwargs),
        text_signature = "($self, fn, /, *args, owner=None, **kwargs)"
    )]
    fn enqueue(
        &self,
        py: Python<'_>,
        fn_: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        owner: Option<Py<PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        crate::errors::guard_panics(|| {
            let owner = owner.unwrap_or_else(|| py.None());
            let bridge = match self.started_bridge(py, "WorkGrinder.enqueue")? {
                Ok(bridge) => bridge,
                Err(refusal) => return Ok(refusal),
            };
            let result = bridge
                .event_loop()
                .bind(py)
                .call_method0("create_future")?
                .unbind();
            let accepted = PyLeaseFuture::pending(py, bridge.clone(), None)?;
            let job = Self::job(
                py,
                fn_,
                args,
                kwargs,
                Target::Asyncio(result.clone_ref(py), bridge.clone()),
            )?;
            let id = self.core.next_work_id();
            self.withdraw_on_cancel(py, result.bind(py), id)?;
            let ack = Some((accepted.clone_ref(py), result.clone_ref(py)));
            let item = Item { job, id, owner };
            match self.core.submit_item(py, item, Some(ack)) {
                Ok(_) => Ok(accepted.into_any()),
                Err((item, err)) => {
                    drop(item);
                    Ok(PyLeaseFuture::ready(py, bridge, Outcome::Error(err), None)?.into_any())
                }
            }
        })
    }

    /// Queue from any thread; returns a `concurrent.futures.Future`.
    #[pyo3(
        signature = (fn_, /, *args, owner = None, **kwargs),
        text_signature = "($self, fn, /, *args, owner=None, **kwargs)"
    )]
    fn submit_from_thread(
        &self,
        py: Python<'_>,
        fn_: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        owner: Option<Py<PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        crate::errors::guard_panics(|| {
            let owner = owner.unwrap_or_else(|| py.None());
            let result = concurrent_future(py)?.call0()?.unbind();
            let submitted = match self.thread_bridge(py)? {
                Ok(()) => {
                    let target = Target::Concurrent(result.clone_ref(py));
                    let job = Self::job(py, fn_, args, kwargs, target)?;
                    let id = self.core.next_work_id();
                    self.withdraw_on_cancel(py, result.bind(py), id)?;
                    self.core.submit_blocking(py, Item { job, id, owner })
                }
                Err(err) => Err(err),
            };
            if let Err(err) = submitted {
                let value = crate::errors::exception_value(py, &err);
                result.bind(py).call_method1("set_exception", (value,))?;
            }
            Ok(result)
        })
    }

    /// Diagnostics (safe from any thread).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.core.stats(py)
    }

    /// Counters, gauges and histograms: a `leasepool.metrics.GrinderMetrics` (safe
    /// from any thread).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        crate::errors::guard_panics(|| self.core.metrics(py))
    }

    /// `stats()` as an awaitable.
    fn astats(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let stats = self.core.stats(py)?.into_any().unbind();
        match self.core.bridge() {
            Some(bridge) => {
                Ok(PyLeaseFuture::ready(py, bridge, Outcome::Value(stats), None)?.into_any())
            }
            None => Ok(PyEngineCoroutine::ready(py, "WorkGrinder.astats", stats)?.into_any()),
        }
    }

    /// `stats()` for another thread (kept for 0.1.1 compatibility; `stats()` is
    /// thread-safe too).
    #[pyo3(signature = (timeout = None))]
    fn stats_from_thread<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let _ = timeout;
        let (ever_started, bridge) = {
            let state = lock(&self.core.state);
            (state.ever_started, state.bridge.clone())
        };
        if !ever_started {
            return Err(runtime_error("WorkGrinder is not started"));
        }
        if let Some(bridge) = bridge {
            reject_owner_loop_thread(py, &bridge, "stats_from_thread")?;
        }
        self.core.stats(py)
    }
}
