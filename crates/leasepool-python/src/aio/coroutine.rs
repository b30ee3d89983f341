//! `EngineCoroutine`: a lazily-run coroutine for operations that must happen inside a
//! running event loop (`start()`, `stop()`) or that fail before any loop is bound.
//!
//! Nothing runs until the first `send(None)`; the body then either finishes at once
//! or returns a [`PyLeaseFuture`] to wait on, which the coroutine yields until done.
//! This keeps `loop.run_until_complete(manager.start())` and `asyncio.run(...)`
//! working, where the awaitable is created before the loop runs.

use std::sync::Mutex;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;

use crate::aio::{make_exception, PyLeaseFuture};

/// What a coroutine body produced.
pub(crate) enum Step {
    /// Finished with this value.
    Done(Py<PyAny>),
    /// Wait for this future, then run the continuation with the loop thread's `py`.
    Await(Py<PyLeaseFuture>, Option<Body>),
}

pub(crate) type Body = Box<dyn FnOnce(Python<'_>) -> PyResult<Step> + Send>;

impl Step {
    /// Runs this step to its end, then raises `err` instead of returning its value
    /// (a `start()` that must undo itself before it fails).
    pub(crate) fn then_raise(self, err: PyErr) -> PyResult<Step> {
        match self {
            Step::Done(_) => Err(err),
            Step::Await(future, next) => Ok(Step::Await(
                future,
                Some(Box::new(move |py| {
                    let step = match next {
                        Some(body) => body(py)?,
                        None => Step::Done(py.None()),
                    };
                    step.then_raise(err)
                })),
            )),
        }
    }
}

enum State {
    Fresh(Body),
    Waiting(Py<PyLeaseFuture>, Option<Body>),
    Finished,
}

#[pyclass(name = "EngineCoroutine", module = "leasepool._engine", frozen)]
pub(crate) struct PyEngineCoroutine {
    name: &'static str,
    state: Mutex<State>,
}

impl PyEngineCoroutine {
    pub(crate) fn new(py: Python<'_>, name: &'static str, body: Body) -> PyResult<Py<Self>> {
        Py::new(
            py,
            Self {
                name,
                state: Mutex::new(State::Fresh(body)),
            },
        )
    }

    /// A coroutine that raises `err` when first resumed.
    pub(crate) fn failing(py: Python<'_>, name: &'static str, err: PyErr) -> PyResult<Py<Self>> {
        Self::new(py, name, Box::new(move |_| Err(err)))
    }

    /// A coroutine that returns `value` when first resumed.
    pub(crate) fn ready(
        py: Python<'_>,
        name: &'static str,
        value: Py<PyAny>,
    ) -> PyResult<Py<Self>> {
        Self::new(py, name, Box::new(move |_| Ok(Step::Done(value))))
    }

    fn take(&self) -> State {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        std::mem::replace(&mut *guard, State::Finished)
    }

    fn put(&self, state: State) {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = state;
    }

    fn resume(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut state = self.take();
        loop {
            let step = match state {
                State::Finished => {
                    return Err(PyRuntimeError::new_err(
                        "cannot reuse already awaited coroutine",
                    ))
                }
                State::Fresh(body) => crate::errors::guard_panics(|| body(py))?,
                State::Waiting(future, next) => {
                    if !future.get().done_flag() {
                        let yielded = future.clone_ref(py).into_any();
                        future.get().mark_blocking();
                        self.put(State::Waiting(future, next));
                        return Ok(yielded);
                    }
                    let value = future.bind(py).call_method0("result")?.unbind();
                    match next {
                        None => Step::Done(value),
                        Some(body) => crate::errors::guard_panics(|| body(py))?,
                    }
                }
            };
            state = match step {
                Step::Done(value) => return Err(PyStopIteration::new_err((value,))),
                Step::Await(future, next) => State::Waiting(future, next),
            };
        }
    }
}

#[pymethods]
impl PyEngineCoroutine {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.resume(py)
    }

    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.resume(py)
    }

    #[pyo3(signature = (typ, val = None, tb = None))]
    fn throw(
        &self,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = tb;
        if let State::Waiting(future, _) = self.take() {
            crate::errors::best_effort(typ.py(), future.bind(typ.py()).call_method0("cancel"));
        }
        Err(make_exception(typ, val))
    }

    fn close(&self, py: Python<'_>) {
        if let State::Waiting(future, _) = self.take() {
            crate::errors::best_effort(py, future.bind(py).call_method0("cancel"));
        }
    }

    #[getter]
    fn __name__(&self) -> &'static str {
        self.name
    }

    #[getter]
    fn __qualname__(&self) -> &'static str {
        self.name
    }

    fn __repr__(&self) -> String {
        format!("<EngineCoroutine {}>", self.name)
    }
}

/// Told how a [`drive_detached`] chain ended.
pub(crate) type Finished = Box<dyn FnOnce(Python<'_>, PyResult<()>) + Send>;

/// Runs a chain of [`Step`]s without an awaiter: each awaited future continues the
/// chain from its done-callback, and `finished` is told the end. A graceful drain runs
/// its `stop()` this way, so cancelling one caller's await cannot leave the manager
/// half drained.
pub(crate) fn drive_detached(py: Python<'_>, step: PyResult<Step>, finished: Finished) {
    match step {
        Ok(Step::Done(_)) => finished(py, Ok(())),
        Err(err) => finished(py, Err(err)),
        Ok(Step::Await(future, next)) => {
            let driver = StepDriver {
                next: Mutex::new(Some((next, finished))),
            };
            let added = Py::new(py, driver).and_then(|driver| {
                future
                    .bind(py)
                    .call_method1(pyo3::intern!(py, "add_done_callback"), (driver,))
            });
            if let Err(err) = added {
                crate::errors::report_unraisable(py, err, None);
            }
        }
    }
}

/// The done-callback that continues a [`drive_detached`] chain.
#[pyclass(module = "leasepool._engine", frozen)]
struct StepDriver {
    next: Mutex<Option<(Option<Body>, Finished)>>,
}

#[pymethods]
impl StepDriver {
    fn __call__(&self, py: Python<'_>, _future: &Bound<'_, PyAny>) {
        let taken = match self.next.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some((next, finished)) = taken else {
            return;
        };
        crate::errors::contain_panics(py, "leasepool drain", || match next {
            None => finished(py, Ok(())),
            Some(body) => drive_detached(py, crate::errors::guard_panics(|| body(py)), finished),
        });
    }
}
