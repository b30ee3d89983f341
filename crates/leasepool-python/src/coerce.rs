//! Python values → numbers for configuration options, with leasepool 0.1.3's type
//! rules. Which numbers are acceptable is the engine's rule (`leasepool::settings`);
//! this module only translates, and every rejection is a `ValueError` with 0.1.3's
//! message (never a `TypeError` from a conversion, never a silent truncation).

use leasepool::settings;
use leasepool::ConfigError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat};

use crate::errors::config_error;

/// A count option: an integer (anything with `__index__`, so `2.5` and `"3"` are
/// refused) that is not a `bool`, and `> 0`. Integers beyond 64 bits saturate.
pub(crate) fn count(name: &'static str, value: &Bound<'_, PyAny>) -> PyResult<i64> {
    let not_an_integer = || config_error(&ConfigError::NotAnInteger(name));
    if value.is_instance_of::<PyBool>() {
        return Err(not_an_integer());
    }
    let py = value.py();
    // SAFETY: `value` is a live object; PyNumber_Index returns a new reference or NULL
    // with an exception set.
    let index = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyNumber_Index(value.as_ptr())) }
        .map_err(|_| not_an_integer())?;
    let number = match index.extract::<i64>() {
        Ok(number) => number,
        Err(_) if index.gt(0)? => i64::MAX,
        Err(_) => i64::MIN,
    };
    settings::positive(name, number).map_err(|e| config_error(&e))
}

/// A duration in seconds: what `float()` accepts (so a numeric string too, as in
/// 0.1.3), not a `bool`, finite, and `> 0` (`>= 0` with `allow_zero`).
pub(crate) fn seconds(
    name: &'static str,
    value: &Bound<'_, PyAny>,
    allow_zero: bool,
) -> PyResult<f64> {
    let not_finite = || config_error(&ConfigError::NotFiniteSeconds { name, allow_zero });
    if value.is_instance_of::<PyBool>() {
        return Err(not_finite());
    }
    let number = if let Ok(float) = value.cast::<PyFloat>() {
        float.value()
    } else {
        let py = value.py();
        // SAFETY: as above; PyNumber_Float is `float(value)`.
        let float =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyNumber_Float(value.as_ptr())) }
                .map_err(|_| not_finite())?;
        float.extract::<f64>().map_err(|_| not_finite())?
    };
    settings::seconds(name, number, allow_zero).map_err(|e| config_error(&e))
}

/// `max_worker_memory` given as text (`"512MiB"`): bytes, as the engine reads sizes.
#[pyfunction]
pub(crate) fn parse_memory_size(text: &str) -> PyResult<u64> {
    leasepool::bytesize::parse_size(text)
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("max_worker_memory: {e}")))
}
