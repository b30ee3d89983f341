//! The interpreter flavour: nothing that runs in a sub-interpreter may import
//! leasepool (a PyO3 extension cannot be loaded there), so a task is the user's own
//! callable, one call per task.

use super::*;

pub(super) fn configure(
    pool: &ProcessPool,
    settings: &Settings,
    kwargs: &Bound<'_, PyDict>,
) -> PyResult<()> {
    if !settings.has_thread_prefix {
        let prefix = format!("{}-{}", pool.backend.name_prefix, pool.seq);
        kwargs.set_item("thread_name_prefix", prefix)?;
    }
    Ok(())
}

/// `((fn, *args), kwargs)`.
pub(super) fn prepare(
    py: Python<'_>,
    func: &Py<PyAny>,
    args: &Py<PyTuple>,
    kwargs: Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let mut call = vec![func.bind(py).clone()];
    call.extend(args.bind(py).iter());
    let task = PyTuple::new(py, [PyTuple::new(py, call)?.into_any(), kwargs])?;
    Ok(task.into_any().unbind())
}

pub(super) fn submit<'py>(
    py: Python<'py>,
    executor: &Bound<'py, PyAny>,
    payload: Vec<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let Some(call) = payload.into_iter().next() else {
        return Err(PyRuntimeError::new_err("an empty interpreter task"));
    };
    let call = call.into_bound(py);
    let call = call.cast::<PyTuple>()?;
    let args = call.get_item(0)?;
    let kwargs = call.get_item(1)?;
    executor.call_method(
        "submit",
        args.cast::<PyTuple>()?,
        kwargs.cast::<PyDict>().ok(),
    )
}
