//! The process flavour: every executor gets the shared progress array and the worker
//! initializer (`_process_worker.initialize`); a task is `run_chunk` over pickled
//! calls.

use super::*;

pub(super) fn configure(
    py: Python<'_>,
    pool: &ProcessPool,
    settings: &Settings,
    kwargs: &Bound<'_, PyDict>,
) -> PyResult<()> {
    let progress = pool.progress.get_or_try_init(py, || {
        // One more cell after the slots: the halt flag (see `halt_workers`).
        Ok::<_, PyErr>(
            raw_array(py)?
                .call1(("q", PROGRESS_CELLS * pool.cap + 1))?
                .unbind(),
        )
    })?;
    let mut initargs = vec![progress.bind(py).clone()];
    initargs.extend(settings.initargs_tail.bind(py).iter());
    kwargs.set_item("initializer", worker_initialize(py)?)?;
    kwargs.set_item("initargs", PyTuple::new(py, initargs)?)?;
    Ok(())
}

/// The call pickled on its own as `(fn, args, kwargs)` by `pickler`: an unpicklable
/// call fails only its own await.
pub(super) fn prepare(
    py: Python<'_>,
    pickler: &Bound<'_, PyAny>,
    func: &Py<PyAny>,
    args: &Py<PyTuple>,
    kwargs: Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    Ok(pickler
        .call1(((func.clone_ref(py), args.clone_ref(py), kwargs),))?
        .unbind())
}

/// One task: `run_chunk` over the pickled calls; the worker pickles the outcomes with
/// `pickle_outcome` if given (else as `ProcessPoolExecutor` pickles).
pub(super) fn submit<'py>(
    py: Python<'py>,
    executor: &Bound<'py, PyAny>,
    (slot, seq): (usize, u64),
    payload: Vec<Py<PyAny>>,
    pickle_outcome: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let calls = PyList::new(py, payload)?;
    let run_chunk = worker_run_chunk(py)?;
    match pickle_outcome {
        // Through `_process_backend.submit_task`: it re-wakes the executor's management
        // thread when the submission started a worker process.
        None => crate::py_cache::submit_task(py)?.call1((
            executor,
            run_chunk,
            slot,
            seq,
            calls,
            CHUNK_BUDGET_SECONDS,
        )),
        Some(pickler) => executor.call_method1(
            "submit",
            (run_chunk, slot, seq, calls, CHUNK_BUDGET_SECONDS, pickler),
        ),
    }
}
