//! `LeaseFuture`: the awaitable every engine operation returns.
//!
//! It speaks both asyncio protocols at once:
//!
//! * **future** — `_asyncio_future_blocking`, `get_loop`, `add_done_callback`,
//!   `result`, `cancel`, ... — so `await`, `asyncio.gather` (no Task per call),
//!   `wait_for`, `wait` and `shield` treat it as a native future;
//! * **coroutine** — `send`/`throw`/`close`, registered with
//!   `collections.abc.Coroutine` — so `asyncio.create_task`, `TaskGroup.create_task`
//!   and `asyncio.run` accept it where leasepool 0.1.1 returned a coroutine.
//!
//! # States
//!
//! The engine's [`ClaimFlag`]: `Pending → Claimed → Done`. Whoever wins the claim (a
//! worker with a result, the manager handing over a pool, `cancel()`, a timeout) is
//! the only one allowed to set the outcome. It is lock-free so the manager can claim
//! a waiter under its own lock without touching Python; the loom models check this
//! very type.
//!
//! # Hooks
//!
//! An acquire future carries a [`FutureHook`]: cancelling a queued waiter removes it
//! from the manager's queue, and a granted lease that nobody will ever see (the task
//! was cancelled after the grant, or the awaitable was dropped unawaited) is released
//! so the pool is handed on instead of leaking.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyStopIteration, PyTypeError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple, PyType};

use leasepool::{Claim, ClaimFlag};

use crate::bridge::{Completion, LoopBridge};
use crate::py_cache::{cancelled_error, invalid_state_error};

/// Final state of a future.
pub(crate) enum Outcome {
    Value(Py<PyAny>),
    Error(PyErr),
    Cancelled(Option<Py<PyAny>>),
}

/// Reactions to lifecycle events of a future (see module docs).
pub(crate) trait FutureHook: Send + Sync {
    /// The pending future was cancelled (or timed out).
    fn on_cancel(&self, _py: Python<'_>) {}
    /// The future settled (any outcome).
    fn on_settled(&self, _py: Python<'_>) {}
    /// A value was produced that no consumer will ever receive.
    fn on_discard(&self, _py: Python<'_>, _value: &Py<PyAny>) {}
}

struct Inner {
    outcome: Option<Outcome>,
    callbacks: Vec<(Py<PyAny>, Option<Py<PyAny>>)>,
    /// `result()`/`exception()` or the await protocol handed the outcome out.
    consumed: bool,
    /// The awaiting coroutine was thrown into or closed before the value was delivered.
    abandoned: bool,
    /// An exception is stored that nobody retrieved yet: logged at drop, as asyncio's
    /// "Future exception was never retrieved" (asyncio's `_log_traceback`).
    log_exception: bool,
}

#[pyclass(name = "LeaseFuture", module = "leasepool._engine", frozen, weakref)]
pub(crate) struct PyLeaseFuture {
    /// Who may settle it (see "States").
    claim: ClaimFlag,
    blocking: AtomicBool,
    inner: Mutex<Inner>,
    bridge: Arc<LoopBridge>,
    hook: Option<Box<dyn FutureHook>>,
}

use crate::sync::lock;

impl PyLeaseFuture {
    fn build(
        bridge: Arc<LoopBridge>,
        hook: Option<Box<dyn FutureHook>>,
        outcome: Option<Outcome>,
    ) -> Self {
        let log_exception = matches!(outcome, Some(Outcome::Error(_)));
        Self {
            claim: if outcome.is_some() {
                ClaimFlag::done()
            } else {
                ClaimFlag::new()
            },
            blocking: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                outcome,
                callbacks: Vec::new(),
                consumed: false,
                abandoned: false,
                log_exception,
            }),
            bridge,
            hook,
        }
    }

    /// A pending future bound to `bridge`'s loop.
    pub(crate) fn pending(
        py: Python<'_>,
        bridge: Arc<LoopBridge>,
        hook: Option<Box<dyn FutureHook>>,
    ) -> PyResult<Py<Self>> {
        Py::new(py, Self::build(bridge, hook, None))
    }

    /// An already-settled future: awaiting it costs no loop round trip.
    pub(crate) fn ready(
        py: Python<'_>,
        bridge: Arc<LoopBridge>,
        outcome: Outcome,
        hook: Option<Box<dyn FutureHook>>,
    ) -> PyResult<Py<Self>> {
        Py::new(py, Self::build(bridge, hook, Some(outcome)))
    }

    pub(crate) fn is_pending(&self) -> bool {
        self.claim.is_pending()
    }

    /// Claims the right to settle the future. Lock-free and Python-free, so the
    /// manager can call it under its own lock.
    pub(crate) fn try_claim(&self) -> bool {
        self.claim.try_claim()
    }

    /// Stores the outcome of a claimed future and marks it done; returns whether the
    /// value must be discarded because its consumer already went away.
    fn store(&self, py: Python<'_>, outcome: Outcome) -> Option<Py<PyAny>> {
        let mut inner = lock(&self.inner);
        let discard = match (&outcome, inner.abandoned) {
            (Outcome::Value(v), true) => Some(v.clone_ref(py)),
            _ => None,
        };
        inner.log_exception = matches!(outcome, Outcome::Error(_));
        inner.outcome = Some(outcome);
        self.claim.finish();
        discard
    }

    /// Stores the outcome of a claimed future and tells the hook.
    fn finish(&self, py: Python<'_>, outcome: Outcome) {
        let discard = self.store(py, outcome);
        if let Some(hook) = &self.hook {
            hook.on_settled(py);
            if let Some(value) = discard {
                hook.on_discard(py, &value);
            }
        }
    }

    /// Settles a claimed future and gets its callbacks scheduled on the loop: right
    /// away when called on the loop thread, else through the bridge's queue.
    pub(crate) fn settle_claimed(slf: &Py<Self>, py: Python<'_>, outcome: Outcome) {
        let this = slf.get();
        this.finish(py, outcome);
        if this.bridge.on_loop_thread() {
            this.schedule_callbacks(py, slf);
        } else {
            this.bridge.push(Completion::Settled(slf.clone_ref(py)));
        }
    }

    /// Like [`settle_claimed`](Self::settle_claimed) from a worker thread, leaving the
    /// doorbell to the caller: returns whether it must be rung.
    pub(crate) fn settle_claimed_deferred(
        slf: &Py<Self>,
        py: Python<'_>,
        outcome: Outcome,
    ) -> bool {
        let this = slf.get();
        this.finish(py, outcome);
        this.bridge
            .push_deferred(Completion::Settled(slf.clone_ref(py)))
    }

    /// Claims and settles; `false` if someone else settled it first.
    pub(crate) fn settle(slf: &Py<Self>, py: Python<'_>, outcome: Outcome) -> bool {
        if !slf.get().try_claim() {
            return false;
        }
        Self::settle_claimed(slf, py, outcome);
        true
    }

    pub(crate) fn done_flag(&self) -> bool {
        self.claim.is_done()
    }

    pub(crate) fn mark_blocking(&self) {
        self.blocking.store(true, Ordering::Relaxed);
    }

    pub(crate) fn bridge(&self) -> &Arc<LoopBridge> {
        &self.bridge
    }

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

    fn report_callback_error(&self, py: Python<'_>, callback: &Py<PyAny>, err: &PyErr) {
        let reported = (|| -> PyResult<()> {
            let context = PyDict::new(py);
            let message = format!("Exception in callback {}", callback.bind(py).repr()?);
            context.set_item("message", message)?;
            context.set_item("exception", crate::job::exception_value(py, err))?;
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

    fn call_soon(
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

    fn cancelled_exception(py: Python<'_>, msg: Option<&Py<PyAny>>) -> PyErr {
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

    fn invalid_state(py: Python<'_>, msg: &str) -> PyErr {
        crate::errors::new_exception(invalid_state_error(py), msg)
    }

    /// One step of the await protocol: yield ourselves while pending, else finish.
    fn send_step(slf: &Bound<'_, Self>) -> SendStep {
        let py = slf.py();
        let this = slf.get();
        if !this.claim.is_done() {
            this.blocking.store(true, Ordering::Relaxed);
            return SendStep::Yield(slf.clone().into_any().unbind());
        }
        let mut inner = lock(&this.inner);
        inner.consumed = true;
        inner.log_exception = false;
        match inner.outcome.as_ref() {
            Some(Outcome::Value(v)) => SendStep::Return(v.clone_ref(py)),
            Some(Outcome::Error(e)) => SendStep::Raise(e.clone_ref(py)),
            Some(Outcome::Cancelled(msg)) => {
                let msg = msg.as_ref().map(|m| m.clone_ref(py));
                drop(inner);
                SendStep::Raise(Self::cancelled_exception(py, msg.as_ref()))
            }
            None => SendStep::Raise(Self::invalid_state(py, "Result is not set.")),
        }
    }

    /// The iterator form of [`send_step`](Self::send_step) (`__next__`/`send`), used
    /// where the interpreter does not go through `am_send` (e.g. under a tracer).
    fn step(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        match Self::send_step(slf) {
            SendStep::Yield(obj) => Ok(obj),
            SendStep::Return(value) => Err(PyStopIteration::new_err((value,))),
            SendStep::Raise(err) => Err(err),
        }
    }

    /// The awaiting coroutine is going away without the value (throw/close).
    fn abandon(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let this = slf.get();
        match this.claim.state() {
            Claim::Pending => {
                let _ = Self::cancel_impl(slf, None);
            }
            Claim::Claimed => {
                let mut inner = lock(&this.inner);
                if this.claim.state() == Claim::Claimed {
                    inner.abandoned = true;
                    return;
                }
                drop(inner);
                Self::discard_if_undelivered(this, py, false);
            }
            _ => Self::discard_if_undelivered(this, py, false),
        }
    }

    /// Releases an undelivered value through the hook. With `only_unconsumed`, a
    /// value handed out by `result()` counts as delivered (gather/wait_for read it);
    /// without it (the awaiting coroutine was thrown into), only the await counts.
    fn discard_if_undelivered(this: &Self, py: Python<'_>, only_unconsumed: bool) {
        let Some(hook) = &this.hook else { return };
        let value = {
            let mut inner = lock(&this.inner);
            if inner.abandoned || (only_unconsumed && inner.consumed) {
                return;
            }
            let Some(Outcome::Value(v)) = inner.outcome.as_ref() else {
                return;
            };
            let v = v.clone_ref(py);
            inner.abandoned = true;
            v
        };
        hook.on_discard(py, &value);
    }

    fn cancel_impl(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> bool {
        Self::abort(&slf.clone().unbind(), slf.py(), Outcome::Cancelled(msg))
    }

    /// Settles a pending future early (cancel, timeout): the hook withdraws it first,
    /// e.g. removes a waiter from the manager's queue.
    pub(crate) fn abort(slf: &Py<Self>, py: Python<'_>, outcome: Outcome) -> bool {
        let this = slf.get();
        if !this.try_claim() {
            return false;
        }
        if let Some(hook) = &this.hook {
            hook.on_cancel(py);
        }
        Self::settle_claimed(slf, py, outcome);
        true
    }
}

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

fn forgot_await(name: &str) -> PyErr {
    pyo3::exceptions::PyAttributeError::new_err(format!(
        "'LeaseFuture' object has no attribute '{name}'. {FORGOT_AWAIT}"
    ))
}

impl PyLeaseFuture {
    /// asyncio's report for a future whose exception nobody retrieved, sent to the
    /// loop's exception handler (on the loop's thread when the loop still runs).
    fn report_unretrieved(&self, py: Python<'_>, err: &PyErr) {
        let reported = (|| -> PyResult<()> {
            let context = PyDict::new(py);
            context.set_item("message", "LeaseFuture exception was never retrieved")?;
            context.set_item("exception", crate::job::exception_value(py, err))?;
            let event_loop = self.bridge.event_loop().bind(py);
            let handler = event_loop.getattr(pyo3::intern!(py, "call_exception_handler"))?;
            if !self.bridge.on_loop_thread()
                && event_loop
                    .call_method1("call_soon_threadsafe", (&handler, &context))
                    .is_ok()
            {
                return Ok(());
            }
            handler.call1((context,))?;
            Ok(())
        })();
        if let Err(failure) = reported {
            crate::errors::report_unraisable(py, failure, None);
        }
    }
}

impl Drop for PyLeaseFuture {
    fn drop(&mut self) {
        if !self.claim.is_done() {
            return;
        }
        let inner = match self.inner.get_mut() {
            Ok(inner) => inner,
            Err(poisoned) => poisoned.into_inner(),
        };
        let unretrieved = if inner.log_exception {
            match inner.outcome.take() {
                Some(Outcome::Error(err)) => Some(err),
                other => {
                    inner.outcome = other;
                    None
                }
            }
        } else {
            None
        };
        if self.hook.is_none() && unretrieved.is_none() {
            return;
        }
        let _ = crate::attach::attach_known_thread(|py| {
            if let Some(err) = unretrieved {
                self.report_unretrieved(py, &err);
            }
            // A granted lease dropped unawaited: hand the pool on instead of leaking it.
            if self.hook.is_some() {
                Self::discard_if_undelivered(self, py, true);
            }
        });
    }
}

enum SendStep {
    Yield(Py<PyAny>),
    Return(Py<PyAny>),
    Raise(PyErr),
}

/// `tp_as_async->am_send` of `LeaseFuture`.
///
/// `await`, `yield from` and asyncio's C Task step through `PyIter_Send`, which uses
/// this slot when present: a finished future hands its value back as
/// `PYGEN_RETURN` instead of raising (and allocating) a `StopIteration` on every
/// await. PyO3 has no syntax for the slot, so [`install_am_send`] sets it on the
/// type at module initialisation.
unsafe extern "C" fn lease_future_am_send(
    iter: *mut ffi::PyObject,
    _value: *mut ffi::PyObject,
    result: *mut *mut ffi::PyObject,
) -> ffi::PySendResult {
    // SAFETY: CPython calls am_send on an attached thread.
    let py = unsafe { Python::assume_attached() };
    let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: `iter` is a live object whose type carries this slot.
        let any = unsafe { Bound::from_borrowed_ptr(py, iter) };
        match any.cast::<PyLeaseFuture>() {
            Ok(future) => PyLeaseFuture::send_step(future),
            Err(err) => SendStep::Raise(err.into()),
        }
    }))
    .unwrap_or_else(|_| {
        SendStep::Raise(pyo3::exceptions::PyRuntimeError::new_err(
            "leasepool engine error (a bug, please report it): panic in LeaseFuture send",
        ))
    });
    let (status, object) = match step {
        SendStep::Yield(obj) => (ffi::PySendResult::PYGEN_NEXT, obj.into_ptr()),
        SendStep::Return(obj) => (ffi::PySendResult::PYGEN_RETURN, obj.into_ptr()),
        SendStep::Raise(err) => {
            err.restore(py);
            (ffi::PySendResult::PYGEN_ERROR, std::ptr::null_mut())
        }
    };
    // SAFETY: `result` is the out-pointer CPython passed us.
    unsafe { *result = object };
    status
}

/// Installs [`lease_future_am_send`] on the `LeaseFuture` type.
pub(crate) fn install_am_send(py: Python<'_>) {
    let tp = py.get_type::<PyLeaseFuture>().as_type_ptr();
    // SAFETY: `tp` is our heap type, created with an `am_await` slot (so `tp_as_async`
    // points into the type object itself), and no instance exists yet.
    unsafe {
        let as_async = (*tp).tp_as_async;
        if !as_async.is_null() {
            (*as_async).am_send = Some(lease_future_am_send);
            ffi::PyType_Modified(tp);
        }
    }
}

/// Builds the exception `throw(typ, val)` must raise (generator semantics).
pub(crate) fn make_exception(typ: &Bound<'_, PyAny>, val: Option<&Bound<'_, PyAny>>) -> PyErr {
    if let Ok(cls) = typ.cast::<PyType>() {
        let made = match val {
            Some(v) if v.is_instance(cls).unwrap_or(false) => Ok(v.clone()),
            Some(v) if v.is_none() => cls.call0(),
            Some(v) if v.is_instance_of::<PyTuple>() => cls.call1(
                v.cast::<PyTuple>()
                    .map_or_else(|_| PyTuple::empty(typ.py()), Clone::clone),
            ),
            Some(v) => cls.call1((v,)),
            None => cls.call0(),
        };
        return crate::errors::made_exception(made);
    }
    if typ.is_instance_of::<pyo3::exceptions::PyBaseException>() {
        return PyErr::from_value(typ.clone());
    }
    PyTypeError::new_err("exceptions must be classes or instances deriving from BaseException")
}

/// `KeyboardInterrupt` and `SystemExit`: the exceptions an asyncio loop re-raises from
/// a callback instead of reporting them to its exception handler.
fn escapes_the_loop(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
        || err.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
}
