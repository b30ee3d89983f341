//! Mapping engine errors and panics to Python exceptions.

use std::panic::{catch_unwind, AssertUnwindSafe};

use leasepool::{ConfigError, LeaseError};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::py_cache::exception_class;

fn leasepool_error(py: Python<'_>, class: &str, message: String) -> PyErr {
    match exception_class(py, class) {
        Ok(cls) => match cls.call1((message,)) {
            Ok(exc) => PyErr::from_value(exc),
            Err(err) => err,
        },
        Err(err) => err,
    }
}

/// The Python exception for an engine error, with 0.1.1's type and message.
pub(crate) fn lease_error(py: Python<'_>, err: &LeaseError) -> PyErr {
    let message = err.to_string();
    match err {
        LeaseError::NotStarted => leasepool_error(py, "LeasePoolNotStartedError", message),
        LeaseError::Unavailable { .. } => leasepool_error(py, "LeaseUnavailableError", message),
        LeaseError::InvalidLeaseSeconds => PyValueError::new_err(message),
        LeaseError::Inactive | LeaseError::ExpiredRevoked => {
            leasepool_error(py, "LeaseExpiredError", message)
        }
    }
}

/// The `ValueError` for a rejected configuration.
pub(crate) fn config_error(err: &ConfigError) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// Runs `f`, turning a Rust panic into a `RuntimeError` so that no `PanicException`
/// (a `BaseException`, which asyncio would not contain) ever reaches user code.
pub(crate) fn guard_panics<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let detail = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(PyRuntimeError::new_err(format!(
                "leasepool engine error (a bug, please report it): {detail}"
            )))
        }
    }
}

/// For callbacks with nowhere to return an error (loop callbacks, worker threads):
/// runs `f`; a panic is reported like an unraisable exception (`sys.unraisablehook`)
/// instead of unwinding into the interpreter.
pub(crate) fn contain_panics(py: Python<'_>, what: &str, f: impl FnOnce()) {
    let outcome = guard_panics(|| {
        f();
        Ok(())
    });
    if let Err(err) = outcome {
        let context = pyo3::types::PyString::new(py, what);
        err.write_unraisable(py, Some(&context));
    }
}

/// Test hook: panics inside the engine's guard, to prove a panic reaches Python as a
/// `RuntimeError` (never `PanicException`, never an abort).
#[pyfunction]
pub(crate) fn _panic_for_tests() -> PyResult<()> {
    guard_panics(|| -> PyResult<()> { panic!("deliberate test panic") })
}
