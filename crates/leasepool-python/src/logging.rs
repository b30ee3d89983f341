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
    /// The logger's own `_cache` dict (level -> enabled), which `logging` clears
    /// whenever any level changes; `None` for logger-likes without one.
    level_cache: Option<Py<PyDict>>,
}

impl Logger {
    pub(crate) fn new(py: Python<'_>, logger: Py<PyAny>) -> Self {
        let level_cache = logger
            .bind(py)
            .getattr("_cache")
            .ok()
            .and_then(|c| c.cast_into::<PyDict>().ok())
            .map(Bound::unbind);
        Self {
            logger,
            level_cache,
        }
    }

    /// `logger.isEnabledFor(level)`. `isEnabledFor` is Python code and the manager asks
    /// on every acquire and release, so answer from the logger's level cache (the
    /// same dict `isEnabledFor` consults, after the same `disabled` check) and call
    /// the method only on a cache miss.
    pub(crate) fn enabled(&self, py: Python<'_>, level: i32) -> bool {
        let logger = self.logger.bind(py);
        if let Some(cache) = &self.level_cache {
            if let Ok(Some(enabled)) = cache.bind(py).get_item(level) {
                let disabled = logger
                    .getattr(pyo3::intern!(py, "disabled"))
                    .and_then(|d| d.is_truthy())
                    .unwrap_or(false);
                return !disabled && enabled.is_truthy().unwrap_or(false);
            }
        }
        logger
            .call_method1(pyo3::intern!(py, "isEnabledFor"), (level,))
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
            crate::errors::report_unraisable(py, err, None);
        }
    }
}

/// Remembers which errors were already reported, so a failure that repeats on every
/// call is logged once (until [`clear`](Self::clear), e.g. after a success).
#[derive(Default)]
pub(crate) struct DistinctErrors {
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
    any: std::sync::atomic::AtomicBool,
}

impl DistinctErrors {
    /// At most this many distinct errors are remembered (an error text that changes on
    /// every call, e.g. with a counter in it, is reported this many times at most).
    const LIMIT: usize = 64;

    /// Whether `key` is new (and remembers it).
    pub(crate) fn first_time(&self, key: String) -> bool {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        self.any.store(true, std::sync::atomic::Ordering::Relaxed);
        if seen.len() >= Self::LIMIT {
            return false;
        }
        seen.insert(key)
    }

    /// Whether anything is remembered (cheap; checked on every success).
    pub(crate) fn has_any(&self) -> bool {
        self.any.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn clear(&self) {
        let mut seen = match self.seen.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        seen.clear();
        self.any.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `TypeName: message` of an exception, the identity [`DistinctErrors`] uses.
pub(crate) fn describe_error(py: Python<'_>, err: &PyErr) -> String {
    let name = err
        .get_type(py)
        .qualname()
        .map_or_else(|_| "Exception".to_owned(), |n| n.to_string());
    format!("{name}: {}", err.value(py))
}
