//! The await protocol: one `send` step, cancellation and abandonment, the C-level
//! `am_send` slot, and re-raising outcomes.

use super::*;

impl PyLeaseFuture {
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
    pub(super) fn step(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        match Self::send_step(slf) {
            SendStep::Yield(obj) => Ok(obj),
            SendStep::Return(value) => Err(PyStopIteration::new_err((value,))),
            SendStep::Raise(err) => Err(err),
        }
    }

    /// The awaiting coroutine is going away without the value (throw/close).
    pub(super) fn abandon(slf: &Bound<'_, Self>) {
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
    pub(super) fn discard_if_undelivered(this: &Self, py: Python<'_>, only_unconsumed: bool) {
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

    pub(super) fn cancel_impl(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> bool {
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
pub(super) fn escapes_the_loop(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py)
        || err.is_instance_of::<pyo3::exceptions::PySystemExit>(py)
}
