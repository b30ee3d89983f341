//! Log records, emitted on the manager's `logging.Logger` exactly as 0.1.1 did.
//!
//! Every call checks `isEnabledFor` first, so a disabled level costs one cached
//! lookup and no formatting. Never called with a Rust lock held.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

pub(crate) const DEBUG: i32 = 10;
pub(crate) const INFO: i32 = 20;
pub(crate) const WARNING: i32 = 30;
pub(crate) const ERROR: i32 = 40;

/// A `logging.Logger` handle.
pub(crate) struct Logger {
    logger: Py<PyAny>,
}

impl Logger {
    pub(crate) fn new(logger: Py<PyAny>) -> Self {
        Self { logger }
    }

    pub(crate) fn enabled(&self, py: Python<'_>, level: i32) -> bool {
        self.logger
            .bind(py)
            .call_method1("isEnabledFor", (level,))
            .and_then(|v| v.is_truthy())
            .unwrap_or(false)
    }

    /// `logger.log(level, msg, *args)`; `exc` becomes `exc_info`.
    pub(crate) fn log<'py>(
        &self,
        py: Python<'py>,
        level: i32,
        msg: &str,
        args: impl IntoPyObject<'py, Target = PyTuple, Output = Bound<'py, PyTuple>>,
        exc: Option<&PyErr>,
    ) {
        if !self.enabled(py, level) {
            return;
        }
        let result = (|| -> PyResult<()> {
            let args = args.into_pyobject(py).map_err(Into::into)?;
            let mut all = vec![
                level.into_pyobject(py)?.into_any(),
                msg.into_pyobject(py)?.into_any(),
            ];
            all.extend(args.iter());
            let kwargs = PyDict::new(py);
            if let Some(err) = exc {
                kwargs.set_item("exc_info", err.value(py))?;
            }
            kwargs.set_item("stacklevel", 1)?;
            self.logger
                .bind(py)
                .call_method("log", PyTuple::new(py, all)?, Some(&kwargs))?;
            Ok(())
        })();
        if let Err(err) = result {
            // A broken handler must not break the engine; report like logging does.
            err.write_unraisable(py, None);
        }
    }
}
