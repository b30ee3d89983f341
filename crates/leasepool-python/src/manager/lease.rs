//! `ExecutorLease`: the temporary right to run work on one leased pool.
//!
//! A lease carries its pool and a liveness flag shared with the engine, so `run()`
//! and `executor.submit()` check and submit without taking the manager's lock; only
//! an expired lease goes through the manager (to be revoked).
//!
//! Every call submitted through a lease is counted in the engine's [`CallTracker`]
//! and carries a [`LeaseLink`] that uncounts it when the job is finished with, so a
//! released lease drains before its pool moves on (engine `manager` docs, "Draining").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use leasepool::expiry::monotonic;
use leasepool::manager::Grant;
use leasepool::{Begin, CallTracker, LeaseError, LeaseKey, LeaseTiming};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};

use super::{ManagerCore, Owner, Pool};
use crate::aio::LoopBridge;
use crate::aio::{Outcome, PyLeaseFuture};
use crate::errors::lease_error;
use crate::job::{CallCounter, Job, Target};
use crate::py_cache::{concurrent_future, leased_executor_cls};

#[pyclass(name = "ExecutorLease", module = "leasepool.manager", frozen, weakref)]
pub(crate) struct PyExecutorLease {
    core: Arc<ManagerCore>,
    key: LeaseKey,
    id: Py<PyString>,
    owner: Owner,
    timing: LeaseTiming,
    pool: Pool,
    live: Arc<AtomicBool>,
    link: Arc<LeaseLink>,
    released: AtomicBool,
    bridge: Arc<LoopBridge>,
    executor: PyOnceLock<Py<PyAny>>,
}

impl PyExecutorLease {
    pub(crate) fn new(
        py: Python<'_>,
        core: Arc<ManagerCore>,
        grant: Grant<Pool>,
        owner: Owner,
        bridge: Arc<LoopBridge>,
    ) -> PyResult<Py<Self>> {
        // The binding's manager always hands out cells (it never calls
        // `lease_cells(false)`); fresh ones would only ever be a stand-in.
        let cells = grant.cells.unwrap_or_default();
        let link = Arc::new(LeaseLink {
            core: Arc::downgrade(&core),
            key: grant.key,
            calls: cells.calls,
            pool: grant.pool.clone(),
        });
        Py::new(
            py,
            Self {
                core,
                key: grant.key,
                id: PyString::new(py, grant.id.hex().as_str()).unbind(),
                owner,
                timing: grant.timing,
                link,
                pool: grant.pool,
                live: cells.live,
                released: AtomicBool::new(false),
                bridge,
                executor: PyOnceLock::new(),
            },
        )
    }

    /// Returns the lease to the manager (idempotent); a lease whose pool broke is
    /// retired with it instead.
    pub(crate) fn release_now(&self, py: Python<'_>) {
        if !self.released.swap(true, Ordering::AcqRel) {
            if self.pool.is_broken() {
                self.core.retire_broken(py, self.key, &self.pool);
            } else {
                self.core.release_key(py, self.key);
            }
        }
    }

    /// Whether new work may be submitted; revokes the lease if it hard-expired.
    fn admit(&self, py: Python<'_>) -> Result<(), LeaseError> {
        // Acquire pairs with the engine's Release store when it removes the lease.
        if !self.live.load(Ordering::Acquire) {
            return Err(self.link.inactive_error());
        }
        if self.timing.is_hard_expired(monotonic()) {
            return self.core.check_lease(py, self.key);
        }
        Ok(())
    }

    /// Admits `calls` new calls and counts them in flight, or says why not.
    fn admit_calls(&self, py: Python<'_>, calls: u64) -> Result<(), LeaseError> {
        self.admit(py)?;
        self.link.begin(py, calls)
    }

    /// Submits a WorkGrinder batch (one queue operation for all of it).
    pub(crate) fn submit_jobs(
        &self,
        py: Python<'_>,
        jobs: Vec<Job>,
    ) -> Result<(), (Vec<Job>, PyErr)> {
        let count = u64::try_from(jobs.len()).unwrap_or(u64::MAX);
        if let Err(err) = self.admit_calls(py, count) {
            return Err((jobs, lease_error(py, &err)));
        }
        let jobs = jobs
            .into_iter()
            .map(|job| job.counted_by(self.link.clone()))
            .collect();
        self.pool.submit_many(py, jobs)
    }

    /// A call not yet tied to a lease (the WorkGrinder's items).
    pub(crate) fn capture_job(
        py: Python<'_>,
        func: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        target: Target,
    ) -> PyResult<Job> {
        let kwargs = kwargs.filter(|k| !k.is_empty()).map(|k| k.clone().unbind());
        Job::capture(py, func, args.clone().unbind(), kwargs, target)
    }

    /// A counted call of this lease (call after [`admit_calls`](Self::admit_calls)).
    fn job(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        target: Target,
    ) -> PyResult<Job> {
        match Self::capture_job(py, func, args, kwargs, target) {
            Ok(job) => Ok(job.counted_by(self.link.clone())),
            Err(err) => {
                self.link.call_ended(py);
                Err(err)
            }
        }
    }
}

/// Ties a job to the lease it was submitted through: when the job is finished with
/// (run, failed or cancelled), [`call_ended`](Self::call_ended) uncounts it.
pub(crate) struct LeaseLink {
    /// Weak: queued jobs must not keep a dropped manager alive (its `Drop` closes
    /// the pools, which cancels them).
    core: Weak<ManagerCore>,
    key: LeaseKey,
    calls: Arc<CallTracker>,
    pool: Pool,
}

impl LeaseLink {
    fn begin(&self, py: Python<'_>, calls: u64) -> Result<(), LeaseError> {
        match self.calls.begin_many(calls) {
            Begin::Admitted => Ok(()),
            Begin::Released { finished_drain } => {
                if finished_drain {
                    if let Some(core) = self.core.upgrade() {
                        core.finish_drain(py, self.key);
                    }
                }
                Err(self.inactive_error())
            }
        }
    }

    /// 0.1.3's two messages: "released" while the lease drains, "no longer active"
    /// once it is gone.
    fn inactive_error(&self) -> LeaseError {
        if self.calls.is_released() && self.calls.in_flight() > 0 {
            LeaseError::Released
        } else {
            LeaseError::Inactive
        }
    }
}

impl CallCounter for LeaseLink {
    /// One call of the lease is finished with. A broken pool ends the lease (0.1.3
    /// retires an executor on the first call that reports it broken); the last call
    /// of a released lease lets its pool go.
    fn call_ended(&self, py: Python<'_>) {
        let finished_drain = self.calls.end();
        let broken = self.pool.is_broken();
        if !broken && !finished_drain {
            return;
        }
        let Some(core) = self.core.upgrade() else {
            return;
        };
        if broken {
            core.retire_broken(py, self.key, &self.pool);
        } else {
            core.finish_drain(py, self.key);
        }
    }
}

#[pymethods]
impl PyExecutorLease {
    #[getter]
    fn lease_id(&self, py: Python<'_>) -> Py<PyString> {
        self.id.clone_ref(py)
    }

    #[getter]
    fn owner(&self, py: Python<'_>) -> Py<PyAny> {
        self.owner.clone_ref(py)
    }

    #[getter]
    fn lease_seconds(&self) -> f64 {
        self.timing.lease_seconds
    }

    #[getter]
    fn grace_seconds(&self) -> f64 {
        self.timing.grace_seconds
    }

    #[getter]
    fn leased_at(&self) -> f64 {
        self.timing.leased_at
    }

    #[getter]
    fn soft_expires_at(&self) -> f64 {
        self.timing.soft_expires_at()
    }

    #[getter]
    fn hard_expires_at(&self) -> f64 {
        self.timing.hard_expires_at()
    }

    /// A `concurrent.futures.Executor` that submits through this lease.
    #[getter]
    fn executor(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        slf.get()
            .executor
            .get_or_try_init(py, || {
                let submit = slf.getattr("_submit")?;
                Ok::<_, PyErr>(leased_executor_cls(py)?.call1((submit,))?.unbind())
            })
            .map(|e| e.clone_ref(py))
    }

    /// Run `fn(*args, **kwargs)` on the leased pool; await the result.
    #[pyo3(
        signature = (fn_, /, *args, **kwargs),
        text_signature = "($self, fn, /, *args, **kwargs)"
    )]
    fn run(
        &self,
        py: Python<'_>,
        fn_: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyLeaseFuture>> {
        crate::errors::guard_panics(|| {
            if let Err(err) = self.admit_calls(py, 1) {
                let err = lease_error(py, &err);
                return PyLeaseFuture::ready(py, self.bridge.clone(), Outcome::Error(err), None);
            }
            let hook = self.pool.cancel_hook();
            let future = match PyLeaseFuture::pending(py, self.bridge.clone(), hook) {
                Ok(future) => future,
                Err(err) => {
                    self.link.call_ended(py);
                    return Err(err);
                }
            };
            let job = self.job(py, fn_, args, kwargs, Target::Future(future.clone_ref(py)))?;
            if let Err((job, err)) = self.pool.submit(py, job) {
                job.fail(py, err);
            }
            Ok(future)
        })
    }

    /// `Executor.submit` for `lease.executor`: returns a `concurrent.futures.Future`.
    #[pyo3(
        signature = (fn_, /, *args, **kwargs),
        text_signature = "($self, fn, /, *args, **kwargs)"
    )]
    fn _submit(
        &self,
        py: Python<'_>,
        fn_: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        crate::errors::guard_panics(|| {
            self.admit_calls(py, 1).map_err(|e| lease_error(py, &e))?;
            let future = match concurrent_future(py).and_then(|cls| cls.call0()) {
                Ok(future) => future.unbind(),
                Err(err) => {
                    self.link.call_ended(py);
                    return Err(err);
                }
            };
            let job = self.job(
                py,
                fn_,
                args,
                kwargs,
                Target::Concurrent(future.clone_ref(py)),
            )?;
            if let Err((job, err)) = self.pool.submit(py, job) {
                drop(job);
                return Err(err);
            }
            Ok(future)
        })
    }

    /// Return the lease to the manager (awaitable; idempotent).
    fn release(&self, py: Python<'_>) -> PyResult<Py<PyLeaseFuture>> {
        crate::errors::guard_panics(|| {
            self.release_now(py);
            PyLeaseFuture::ready(py, self.bridge.clone(), Outcome::Value(py.None()), None)
        })
    }

    fn __aenter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyLeaseFuture>> {
        let this = slf.get();
        PyLeaseFuture::ready(
            slf.py(),
            this.bridge.clone(),
            Outcome::Value(slf.clone().into_any().unbind()),
            None,
        )
    }

    fn __aexit__(
        &self,
        py: Python<'_>,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyLeaseFuture>> {
        self.release(py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "<ExecutorLease lease_id={} owner={} live={}>",
            self.id.bind(py),
            self.owner
                .bind(py)
                .repr()
                .map_or_else(|_| "?".to_owned(), |r| r.to_string()),
            self.live.load(Ordering::Acquire),
        )
    }
}
