//! The Python face of `LeaseFuture`: the asyncio future API, the coroutine API, and
//! helpful errors for a forgotten `await`.

use super::*;

#[pymethods]
impl PyLeaseFuture {
    #[getter]
    fn _asyncio_future_blocking(&self) -> bool {
        self.blocking.load(Ordering::Relaxed)
    }

    #[setter(_asyncio_future_blocking)]
    fn set_asyncio_future_blocking(&self, value: bool) {
        self.blocking.store(value, Ordering::Relaxed);
    }

    #[getter]
    fn _log_traceback(&self) -> bool {
        lock(&self.inner).log_exception
    }

    /// As asyncio: only `False` may be set (the exception was handled elsewhere).
    #[setter(_log_traceback)]
    fn set_log_traceback(&self, value: bool) -> PyResult<()> {
        if value {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "_log_traceback can only be set to False",
            ));
        }
        lock(&self.inner).log_exception = false;
        Ok(())
    }

    /// `async with manager.acquire()` (without `await`) lands here: say what is wrong.
    fn __aenter__(&self) -> PyResult<()> {
        Err(PyTypeError::new_err(format!(
            "'LeaseFuture' object does not support the asynchronous context manager \
             protocol. {FORGOT_AWAIT}"
        )))
    }

    fn __aexit__(
        &self,
        _exc_type: &Bound<'_, PyAny>,
        _exc: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.__aenter__()
    }

    // The attributes of a lease, reached on the awaitable instead (`lease =
    // manager.acquire()` without `await`): an `AttributeError` with the hint. Named
    // getters, not `__getattr__`, so no other attribute lookup pays for the check.
    #[getter]
    fn run(&self) -> PyResult<()> {
        Err(forgot_await("run"))
    }

    #[getter]
    fn release(&self) -> PyResult<()> {
        Err(forgot_await("release"))
    }

    #[getter]
    fn executor(&self) -> PyResult<()> {
        Err(forgot_await("executor"))
    }

    #[getter]
    fn lease_id(&self) -> PyResult<()> {
        Err(forgot_await("lease_id"))
    }

    #[getter]
    fn _loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.bridge.event_loop().clone_ref(py)
    }

    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.bridge.event_loop().clone_ref(py)
    }

    fn done(&self) -> bool {
        self.claim.is_done()
    }

    fn cancelled(&self) -> bool {
        self.done() && matches!(lock(&self.inner).outcome, Some(Outcome::Cancelled(_)))
    }

    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if !self.done() {
            return Err(Self::invalid_state(py, "Result is not set."));
        }
        let mut inner = lock(&self.inner);
        inner.consumed = true;
        inner.log_exception = false;
        match inner.outcome.as_ref() {
            Some(Outcome::Value(v)) => Ok(v.clone_ref(py)),
            Some(Outcome::Error(e)) => Err(e.clone_ref(py)),
            Some(Outcome::Cancelled(msg)) => {
                let msg = msg.as_ref().map(|m| m.clone_ref(py));
                drop(inner);
                Err(Self::cancelled_exception(py, msg.as_ref()))
            }
            None => Err(Self::invalid_state(py, "Result is not set.")),
        }
    }

    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        if !self.done() {
            return Err(Self::invalid_state(py, "Exception is not set."));
        }
        let mut inner = lock(&self.inner);
        inner.consumed = true;
        inner.log_exception = false;
        match inner.outcome.as_ref() {
            Some(Outcome::Value(_)) | None => Ok(None),
            Some(Outcome::Error(e)) => Ok(Some(e.value(py).clone().into_any().unbind())),
            Some(Outcome::Cancelled(msg)) => {
                let msg = msg.as_ref().map(|m| m.clone_ref(py));
                drop(inner);
                Err(Self::cancelled_exception(py, msg.as_ref()))
            }
        }
    }

    #[pyo3(signature = (callback, *, context = None))]
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>, context: Option<Py<PyAny>>) {
        let this = slf.get();
        {
            let mut inner = lock(&this.inner);
            if !this.claim.is_done() {
                inner.callbacks.push((callback, context));
                return;
            }
        }
        // Already done: the callback must still run from the loop, not inline. On the
        // loop thread, queue it on the bridge (one doorbell ring per burst, e.g. a
        // `gather` over futures the workers already finished) instead of paying for a
        // `loop.call_soon` handle per callback.
        if this.bridge.on_loop_thread() {
            this.bridge.push(Completion::Callback(
                callback,
                slf.clone().unbind(),
                context,
            ));
        } else {
            this.call_soon(slf.py(), &slf.clone().unbind(), callback, context);
        }
    }

    fn remove_done_callback(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<usize> {
        let removed = {
            let mut inner = lock(&self.inner);
            let before = inner.callbacks.len();
            let mut kept = Vec::with_capacity(before);
            let mut gone = Vec::new();
            for (cb, ctx) in inner.callbacks.drain(..) {
                if cb.bind(py).eq(callback)? {
                    gone.push((cb, ctx));
                } else {
                    kept.push((cb, ctx));
                }
            }
            inner.callbacks = kept;
            gone
        };
        Ok(removed.len())
    }

    #[pyo3(signature = (msg = None))]
    fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> bool {
        Self::cancel_impl(slf, msg)
    }

    #[getter]
    fn _cancel_message(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        match lock(&self.inner).outcome.as_ref() {
            Some(Outcome::Cancelled(msg)) => msg.as_ref().map(|m| m.clone_ref(py)),
            _ => None,
        }
    }

    fn _make_cancelled_error(&self, py: Python<'_>) -> Py<PyAny> {
        let msg = self._cancel_message(py);
        Self::cancelled_exception(py, msg.as_ref())
            .value(py)
            .clone()
            .into_any()
            .unbind()
    }

    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::step(slf)
    }

    fn send(slf: &Bound<'_, Self>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Self::step(slf)
    }

    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        slf: &Bound<'_, Self>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = tb;
        Self::abandon(slf);
        Err(make_exception(typ, val))
    }

    fn close(slf: &Bound<'_, Self>) {
        Self::abandon(slf);
    }

    fn __repr__(&self) -> String {
        let state = match self.claim.state() {
            Claim::Pending => "pending",
            Claim::Claimed => "settling",
            Claim::Done => match lock(&self.inner).outcome {
                Some(Outcome::Cancelled(_)) => "cancelled",
                Some(Outcome::Error(_)) => "finished (exception)",
                _ => "finished",
            },
        };
        format!("<LeaseFuture {state}>")
    }
}

const FORGOT_AWAIT: &str = "It is an awaitable: did you forget `await`? \
     (e.g. `lease = await manager.acquire()`, `async with await manager.acquire() as lease:`)";

pub(super) fn forgot_await(name: &str) -> PyErr {
    pyo3::exceptions::PyAttributeError::new_err(format!(
        "'LeaseFuture' object has no attribute '{name}'. {FORGOT_AWAIT}"
    ))
}
