//! The Dask flavour's connection: the manager's own asynchronous client of the cluster
//! (`leasepool._dask.DaskConnection`), opened on the manager's loop at every `start()`
//! and closed at `stop()`. Both are awaited through a `LeaseFuture`, so `start()`
//! raises if the cluster cannot be reached and `stop()` returns once the client closed.
//! Tasks and chunks are the process flavour's (`process.rs`). A caller that gives up
//! on `await lease.run(...)` cancels the Dask task of its chunk once no caller of
//! that chunk waits any more ([`AbandonSweep`]).

use super::*;
use crate::aio::{FutureHook, Outcome, PyLeaseFuture};

impl ProcessBackend {
    /// Opens the Dask connection, if this is the dask backend: a future settled with
    /// `None` once connected, or with the exception that prevented it. `on_change()`
    /// is called on the loop whenever a worker joined or left; each worker that died
    /// with calls of this manager on it counts as a worker crash in its metrics.
    pub(crate) fn connect(
        &self,
        py: Python<'_>,
        bridge: &Arc<LoopBridge>,
        on_change: Py<PyAny>,
    ) -> PyResult<Option<Py<PyLeaseFuture>>> {
        let on_worker_lost = match self.metrics.get() {
            Some(metrics) => Py::new(py, CountCrash(metrics.clone()))?.into_any(),
            None => py.None(),
        };
        self.with_connection(py, bridge, "open", vec![on_change, on_worker_lost])
    }

    /// The dask backend's `DaskConnection` (once started), for
    /// `leasepool.integrations.dask`.
    pub(crate) fn connection(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.settings
            .get()
            .and_then(|s| s.connection.as_ref())
            .map(|c| c.clone_ref(py))
    }

    /// Closes the Dask connection, if this is the dask backend: a future settled once
    /// the client closed.
    pub(crate) fn disconnect(
        &self,
        py: Python<'_>,
        bridge: &Arc<LoopBridge>,
    ) -> PyResult<Option<Py<PyLeaseFuture>>> {
        self.with_connection(py, bridge, "close", Vec::new())
    }

    fn with_connection(
        &self,
        py: Python<'_>,
        bridge: &Arc<LoopBridge>,
        method: &str,
        extra: Vec<Py<PyAny>>,
    ) -> PyResult<Option<Py<PyLeaseFuture>>> {
        let Some(connection) = self.settings.get().and_then(|s| s.connection.as_ref()) else {
            return Ok(None);
        };
        let done = PyLeaseFuture::pending(py, bridge.clone(), None)?;
        let settle = Py::new(
            py,
            SettleWith {
                future: done.clone_ref(py),
            },
        )?;
        let mut args = vec![settle.into_any()];
        args.extend(extra);
        connection
            .bind(py)
            .call_method1(method, PyTuple::new(py, args)?)?;
        Ok(Some(done))
    }
}

/// Counts a Dask worker that died under calls of this manager (`worker_crashes`).
#[pyclass(module = "leasepool._engine", frozen)]
struct CountCrash(Arc<CallMetrics>);

#[pymethods]
impl CountCrash {
    fn __call__(&self) {
        self.0.crashed();
    }
}

/// What a connection is told to call when it opened (with the error, or `None`) or
/// closed: settles the future `start()`/`stop()` awaits with that value.
#[pyclass(module = "leasepool._engine", frozen)]
struct SettleWith {
    future: Py<PyLeaseFuture>,
}

#[pymethods]
impl SettleWith {
    #[pyo3(signature = (value = None))]
    fn __call__(&self, py: Python<'_>, value: Option<Py<PyAny>>) {
        crate::errors::contain_panics(py, "leasepool dask connection", || {
            let value = value.unwrap_or_else(|| py.None());
            PyLeaseFuture::settle(&self.future, py, Outcome::Value(value));
        });
    }
}

impl ProcessPool {
    /// The hook a `lease.run` future of this pool carries (dask flavour only).
    pub(super) fn abandon_hook(&self) -> Option<Box<dyn FutureHook>> {
        (self.kind() == Kind::Dask)
            .then(|| Box::new(AbandonSweep(self.this.clone())) as Box<dyn FutureHook>)
    }

    /// Cancels, on the cluster, every chunk in flight whose callers all gave up.
    /// Only `LeaseFuture` callers count (reading them calls no Python, so the state
    /// lock is never held across Python code); a chunk with another caller runs on.
    fn sweep_abandoned(&self, py: Python<'_>) {
        let abandoned: Vec<Py<PyAny>> = {
            let st = lock(&self.state);
            st.chunks
                .values()
                .filter(|chunk| {
                    !chunk.items.is_empty() && chunk.items.iter().all(|i| i.job.gave_up())
                })
                .filter_map(|chunk| chunk.future.as_ref().map(|f| f.clone_ref(py)))
                .collect()
        };
        for future in abandoned {
            crate::errors::best_effort(py, future.bind(py).call_method0("cancel"));
        }
    }
}

/// On a cancelled `lease.run` future: cancel the chunks nobody waits for any more.
struct AbandonSweep(Weak<ProcessPool>);

impl FutureHook for AbandonSweep {
    fn on_cancel(&self, py: Python<'_>) {
        if let Some(pool) = self.0.upgrade() {
            pool.sweep_abandoned(py);
        }
    }
}
