//! Mapping engine errors and panics to Python exceptions.

use std::panic::{catch_unwind, AssertUnwindSafe};

use leasepool::{ConfigError, LeaseError};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::py_cache::exception_class;

/// The exception an exception class call just made, or whatever stopped it being made
/// (a missing class, a failing constructor): either way the caller has an error to raise.
pub(crate) fn made_exception(made: PyResult<Bound<'_, PyAny>>) -> PyErr {
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// `cls(message)` as a `PyErr` (`cls` as the cache or an import handed it over).
pub(crate) fn new_exception<'py, C>(cls: PyResult<C>, message: impl AsRef<str>) -> PyErr
where
    C: std::ops::Deref<Target = Bound<'py, PyAny>>,
{
    made_exception(cls.and_then(|cls| cls.call1((message.as_ref(),))))
}

fn leasepool_error(py: Python<'_>, class: &str, message: String) -> PyErr {
    new_exception(exception_class(py, class), message)
}

/// The message of `LeasePoolDrainingError`.
pub(crate) const DRAINING: &str = "LeasedExecutorManager is draining; no new leases are granted";

/// The Python exception for an engine error, with 0.1.1's type and message.
pub(crate) fn lease_error(py: Python<'_>, err: &LeaseError) -> PyErr {
    // The engine words its errors neutrally; these are leasepool 0.1.3's.
    let expired = |message: &str| leasepool_error(py, "LeaseExpiredError", message.to_owned());
    match err {
        LeaseError::NotStarted => leasepool_error(
            py,
            "LeasePoolNotStartedError",
            "LeasedExecutorManager is not started".to_owned(),
        ),
        LeaseError::Unavailable {
            max_pools,
            retry_after,
        } => with_retry_after(
            leasepool_error(
                py,
                "LeaseUnavailableError",
                format!("No executor available; max_pools={max_pools} reached"),
            ),
            py,
            *retry_after,
        ),
        LeaseError::QueueFull {
            max_waiters,
            retry_after,
        } => with_retry_after(
            leasepool_error(
                py,
                "LeaseQueueFullError",
                format!("No executor available; max_waiters={max_waiters} callers already waiting"),
            ),
            py,
            *retry_after,
        ),
        LeaseError::InvalidLeaseSeconds => PyValueError::new_err("lease_seconds must be > 0"),
        LeaseError::NonFiniteLeaseSeconds => {
            PyValueError::new_err("lease_seconds must be a finite number > 0")
        }
        LeaseError::Inactive => expired("Executor lease is no longer active"),
        LeaseError::Released => expired("Executor lease has been released"),
        LeaseError::ExpiredRevoked => expired("Executor lease expired and was revoked"),
        LeaseError::Draining => leasepool_error(py, "LeasePoolDrainingError", DRAINING.to_owned()),
        // A refusal the engine learns later: its own (neutral) words, never a panic.
        other => leasepool_error(py, "LeasePoolError", other.to_string()),
    }
}

/// `err` with its `retry_after` attribute set: the seconds until capacity is likely
/// (a shedding error's hint for clients, e.g. an HTTP `Retry-After`).
pub(crate) fn with_retry_after(err: PyErr, py: Python<'_>, retry_after: f64) -> PyErr {
    // Setting an attribute on a fresh exception instance cannot fail in practice; if it
    // did, the error itself still tells the caller what happened.
    let _ = err
        .value(py)
        .setattr(pyo3::intern!(py, "retry_after"), retry_after);
    err
}

/// A configuration error as leasepool 0.1.3 words it (a `ValueError`).
pub(crate) fn config_error(err: &ConfigError) -> PyErr {
    let message = match err {
        ConfigError::NotAnInteger(name) => format!("{name} must be an integer > 0"),
        ConfigError::NotPositive(name) | ConfigError::NotPositiveSeconds(name) => {
            format!("{name} must be > 0")
        }
        ConfigError::NotFiniteSeconds { name, allow_zero } => {
            let bound = if *allow_zero { ">= 0" } else { "> 0" };
            format!("{name} must be a finite number {bound}")
        }
        ConfigError::NegativeSeconds(name) => format!("{name} must be >= 0"),
        ConfigError::MinAboveMax => "min_pools cannot be greater than max_pools".to_owned(),
        ConfigError::ReservedTooMany => {
            "reserved_pools must leave at least one of max_pools unreserved".to_owned()
        }
        other => other.to_string(),
    };
    PyValueError::new_err(message)
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
        report_unraisable(py, err, Some(&context));
    }
}

/// Test hook: panics inside the engine's guard, to prove a panic reaches Python as a
/// `RuntimeError` (never `PanicException`, never an abort).
#[pyfunction]
pub(crate) fn _panic_for_tests() -> PyResult<()> {
    guard_panics(|| -> PyResult<()> { panic!("deliberate test panic") })
}

/// Test hook: moves the engine's clock `seconds` ahead of `time.monotonic()` (absolute,
/// `0` restores it), so tests drive expiry and idle retirement without sleeping.
#[pyfunction]
pub(crate) fn _set_clock_skew_for_tests(seconds: f64) {
    leasepool::expiry::set_clock_skew_for_tests(seconds);
}

/// Reports an error the engine cannot hand to anyone (it ran Python on behalf of
/// nobody who awaits it). A `KeyboardInterrupt` is never dropped: it is re-armed with
/// `PyErr_SetInterrupt`, so the main thread raises it again at its next check, as if
/// the Ctrl-C had arrived a moment later. Everything else goes to
/// `sys.unraisablehook`, as the interpreter does for errors in finalizers.
pub(crate) fn report_unraisable(py: Python<'_>, err: PyErr, obj: Option<&Bound<'_, PyAny>>) {
    if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
        // SAFETY: needs no lock and is documented as callable from any thread.
        unsafe { pyo3::ffi::PyErr_SetInterrupt() };
        return;
    }
    err.write_unraisable(py, obj);
}

/// The outcome of a best-effort call whose failure does not matter (cancelling a
/// timer, killing a process that may be gone), except that a `KeyboardInterrupt`
/// raised during it is re-armed, never dropped (see [`report_unraisable`]).
pub(crate) fn best_effort<T>(py: Python<'_>, result: PyResult<T>) {
    if let Err(err) = result {
        if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
            report_unraisable(py, err, None);
        }
    }
}

/// The exception object of `err`, carrying its traceback (Python 3.11 keeps the
/// traceback beside the value until it is raised again).
pub(crate) fn exception_value(py: Python<'_>, err: &PyErr) -> Py<PyAny> {
    let value = err.value(py);
    if let Some(tb) = err.traceback(py) {
        let _ = value.setattr("__traceback__", tb);
    }
    value.clone().into_any().unbind()
}
