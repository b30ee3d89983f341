//! The flavours of pool this module wraps, and what differs between them: how an
//! executor is configured, what a task is, and which exception means "broken". The
//! process flavour's specifics are in `process.rs`, the interpreter's in
//! `interpreter.rs`, the Dask cluster's in `dask.rs`; everything else (queueing,
//! dispatch, crash recovery, shutdown) is shared.

use super::*;

/// Which standard-library executor a pool wraps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// `ProcessPoolExecutor`: calls travel pickled, in chunks (`run_chunk`).
    Process,
    /// `InterpreterPoolExecutor`: one call per task, the user's own callable.
    Interpreter,
    /// A Dask cluster (`leasepool._dask.DaskExecutor`): calls travel pickled (by
    /// value where Dask would), in chunks (`run_chunk`), one Dask task per chunk.
    Dask,
}

impl Kind {
    /// The backend name (`ExecutorBackend.value`).
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Interpreter => "interpreter",
            Self::Dask => "dask",
        }
    }

    /// Whether every task carries exactly one call.
    pub(super) fn one_call_per_task(self) -> bool {
        self == Self::Interpreter
    }

    /// Whether the pool's worker processes are its own (started, watched and
    /// terminated here), not a cluster's.
    pub(super) fn owns_processes(self) -> bool {
        self == Self::Process
    }

    /// The exception a broken executor of this flavour raises (a Dask executor never
    /// breaks: a lost worker fails only its own calls).
    pub(super) fn broken_class(self, py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
        match self {
            Self::Process | Self::Dask => broken_process_pool(py),
            Self::Interpreter => broken_thread_pool(py),
        }
    }

    /// Adds what this pool's executor needs to `kwargs` (the worker initializer, or
    /// the threads' name).
    pub(super) fn configure(
        self,
        py: Python<'_>,
        pool: &ProcessPool,
        settings: &Settings,
        kwargs: &Bound<'_, PyDict>,
    ) -> PyResult<()> {
        match self {
            Self::Process => process::configure(py, pool, settings, kwargs),
            Self::Interpreter => interpreter::configure(pool, settings, kwargs),
            Self::Dask => Ok(()),
        }
    }

    /// The call as a task of this flavour carries it: for processes, the pickled call,
    /// or `(pickled call, context variables)` when `context_vars` has some set.
    pub(super) fn prepare(
        self,
        py: Python<'_>,
        backend: &ProcessBackend,
        item: &Item,
    ) -> PyResult<Py<PyAny>> {
        let (func, args, kwargs) = item.job.parts();
        let kwargs = kwargs.map_or_else(
            || py.None().into_bound(py),
            |k| k.bind(py).clone().into_any(),
        );
        let call = match self {
            Self::Process => process::prepare(py, worker_dumps(py)?, func, args, kwargs)?,
            // As Dask pickles a task: a script's own functions and lambdas travel by
            // value (`_dask.dumps_call`).
            Self::Dask => process::prepare(py, dask_dumps_call(py)?, func, args, kwargs)?,
            Self::Interpreter => return interpreter::prepare(py, func, args, kwargs),
        };
        match backend.context_of(py, item)? {
            Some(context) => Ok(PyTuple::new(py, [call, context])?.into_any().unbind()),
            None => Ok(call),
        }
    }

    /// Submits one task (the chunk `seq` in progress slot `slot`).
    pub(super) fn submit<'py>(
        self,
        py: Python<'py>,
        executor: &Bound<'py, PyAny>,
        slot: usize,
        seq: u64,
        payload: Vec<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self {
            Self::Process => process::submit(py, executor, (slot, seq), payload, None),
            // Outcomes pickled with Dask's pickler: a class of the caller's `__main__`,
            // which reached the worker by value, comes back the same way.
            Self::Dask => {
                let pickler = dask_pickle_dumps(py)?;
                process::submit(py, executor, (slot, seq), payload, Some(pickler))
            }
            Self::Interpreter => interpreter::submit(py, executor, payload),
        }
    }
}
