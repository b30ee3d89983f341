//! Done-callbacks: registering, scheduling on the loop, running them in their
//! contexts, and the exceptions asyncio expects a future to raise.

use super::awaiting::escapes_the_loop;
use super::*;

impl PyLeaseFuture {
    /// Hands every registered callback to `loop.call_soon` (loop thread only).
    pub(crate) fn schedule_callbacks(&self, py: Python<'_>, slf: &Py<Self>) {
        let callbacks = std::mem::take(&mut lock(&self.inner).callbacks);
        for (callback, context) in callbacks {
            self.call_soon(py, slf, callback, context);
        }
    }

    /// Runs every registered callback now, each in its own context (loop thread only,
    /// and only from a top-level loop callback — the completion drain — where this is
    /// exactly what a scheduled `Handle` would do one step later, minus the `Handle`).
    /// A failing callback is reported to the loop's exception handler, as asyncio does.
    ///
    /// A `KeyboardInterrupt` or `SystemExit` is returned instead (the drain lets it
    /// leave the loop, as asyncio's `Handle._run` does); the callbacks after it are
    /// handed to `loop.call_soon` first, so none is lost.
    pub(crate) fn run_callbacks(&self, py: Python<'_>, slf: &Py<Self>) -> PyResult<()> {
        let callbacks = std::mem::take(&mut lock(&self.inner).callbacks);
        let mut callbacks = callbacks.into_iter();
        while let Some((callback, context)) = callbacks.next() {
            if let Err(escaping) = self.run_callback(py, slf, &callback, context.as_ref()) {
                for (callback, context) in callbacks {
                    self.call_soon(py, slf, callback, context);
                }
                return Err(escaping);
            }
        }
        Ok(())
    }

    /// Runs one callback in its context (see [`run_callbacks`](Self::run_callbacks)).
    pub(crate) fn run_callback(
        &self,
        py: Python<'_>,
        slf: &Py<Self>,
        callback: &Py<PyAny>,
        context: Option<&Py<PyAny>>,
    ) -> PyResult<()> {
        let result = match context {
            None => callback.bind(py).call1((slf,)),
            Some(ctx) => ctx
                .bind(py)
                .call_method1(pyo3::intern!(py, "run"), (callback, slf)),
        };
        match result {
            Ok(_) => Ok(()),
            Err(err) if escapes_the_loop(py, &err) => Err(err),
            Err(err) => {
                self.report_callback_error(py, callback, &err);
                Ok(())
            }
        }
    }

    pub(super) fn report_callback_error(&self, py: Python<'_>, callback: &Py<PyAny>, err: &PyErr) {
        let reported = (|| -> PyResult<()> {
            let context = PyDict::new(py);
            let message = format!("Exception in callback {}", callback.bind(py).repr()?);
            context.set_item("message", message)?;
            context.set_item("exception", crate::errors::exception_value(py, err))?;
            self.bridge
                .event_loop()
                .bind(py)
                .call_method1("call_exception_handler", (context,))?;
            Ok(())
        })();
        if let Err(failure) = reported {
            crate::errors::report_unraisable(py, failure, None);
        }
    }

    pub(crate) fn call_soon(
        &self,
        py: Python<'_>,
        slf: &Py<Self>,
        callback: Py<PyAny>,
        context: Option<Py<PyAny>>,
    ) {
        let call_soon = self.bridge.call_soon().bind(py);
        let result = match context {
            None => call_soon.call1((callback, slf)),
            Some(ctx) => {
                let kwargs = PyDict::new(py);
                match kwargs.set_item(pyo3::intern!(py, "context"), ctx) {
                    Ok(()) => call_soon.call((callback, slf), Some(&kwargs)),
                    Err(err) => Err(err),
                }
            }
        };
        if let Err(err) = result {
            // The loop is closed: there is nobody left to call back.
            crate::errors::report_unraisable(py, err, Some(call_soon));
        }
    }

    pub(super) fn cancelled_exception(py: Python<'_>, msg: Option<&Py<PyAny>>) -> PyErr {
        match cancelled_error(py) {
            Ok(cls) => {
                let made = match msg {
                    Some(m) => cls.call1((m,)),
                    None => cls.call0(),
                };
                crate::errors::made_exception(made)
            }
            Err(err) => err,
        }
    }

    pub(super) fn invalid_state(py: Python<'_>, msg: &str) -> PyErr {
        crate::errors::new_exception(invalid_state_error(py), msg)
    }
}
