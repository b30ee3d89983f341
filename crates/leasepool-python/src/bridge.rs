//! The bridge from engine threads to one asyncio event loop.
//!
//! Worker threads (and the checker clock) push [`Completion`]s; the loop drains them.
//! The doorbell is an eventfd registered with `loop.add_reader`, so a burst of
//! results costs the loop one wake-up, and the worker rings it after detaching from
//! the interpreter (see `thread_pool.rs`), so the loop never wakes into a held GIL.
//! Loops without `add_reader` get one coalesced `call_soon_threadsafe` per burst.

use std::sync::{Arc, OnceLock, Weak};
use std::thread::ThreadId;

use leasepool::completion::{CompletionQueue, Doorbell, FdDoorbell};
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;

use crate::future::{Outcome, PyLeaseFuture};

/// Most completions handled per loop callback; the rest wait one loop turn so a
/// flood of results cannot monopolise the loop.
const DRAIN_BATCH: usize = 4096;

/// A closure to run on the loop thread.
pub(crate) type LoopTask = Box<dyn FnOnce(Python<'_>) + Send>;

/// A unit of work for the loop thread.
pub(crate) enum Completion {
    /// A future reached its final state: schedule its callbacks.
    Settled(Py<PyLeaseFuture>),
    /// Run `callback(future)` in `context` (a done-callback added to a finished future).
    Callback(Py<PyAny>, Py<PyLeaseFuture>, Option<Py<PyAny>>),
    /// Settle a plain `asyncio.Future` (skipped if it is already done, e.g. cancelled).
    Resolve(Py<PyAny>, Outcome),
    /// Anything else that must run on the loop thread.
    Call(LoopTask),
}

pub(crate) enum Bell {
    Fd(FdDoorbell),
    /// For loops without `add_reader`: `call_soon_threadsafe(drain)`.
    Threadsafe {
        call_soon_threadsafe: Py<PyAny>,
        drain: OnceLock<Py<PyAny>>,
    },
}

impl Doorbell for Bell {
    fn ring(&self) {
        match self {
            Self::Fd(fd) => fd.ring(),
            Self::Threadsafe {
                call_soon_threadsafe,
                drain,
            } => {
                let Some(drain) = drain.get() else { return };
                // try_attach: never panic during interpreter shutdown.
                let _ = Python::try_attach(|py| {
                    if let Err(err) = call_soon_threadsafe.bind(py).call1((drain,)) {
                        // The loop is closed: nobody is left to deliver to.
                        drop(err);
                    }
                });
            }
        }
    }

    fn clear(&self) {
        if let Self::Fd(fd) = self {
            fd.clear();
        }
    }
}

/// One event loop's inbox.
pub(crate) struct LoopBridge {
    event_loop: Py<PyAny>,
    call_soon: Py<PyAny>,
    loop_thread: ThreadId,
    queue: CompletionQueue<Completion, Bell>,
}

#[pyclass(module = "leasepool._engine", frozen)]
struct DrainCallback {
    bridge: Weak<LoopBridge>,
}

#[pymethods]
impl DrainCallback {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool completion drain", || {
            if let Some(bridge) = self.bridge.upgrade() {
                bridge.drain(py);
            }
        });
    }
}

impl LoopBridge {
    /// Binds to `event_loop` (must be called on its thread) and registers the doorbell.
    pub(crate) fn attach(py: Python<'_>, event_loop: &Bound<'_, PyAny>) -> PyResult<Arc<Self>> {
        let fd_bell = FdDoorbell::new()?;
        let fd = fd_bell.read_fd();
        let bridge = Arc::new(Self {
            event_loop: event_loop.clone().unbind(),
            call_soon: event_loop.getattr("call_soon")?.unbind(),
            loop_thread: std::thread::current().id(),
            queue: CompletionQueue::new(Bell::Fd(fd_bell)),
        });
        let drain = Py::new(
            py,
            DrainCallback {
                bridge: Arc::downgrade(&bridge),
            },
        )?;
        match event_loop.call_method1("add_reader", (fd, &drain)) {
            Ok(_) => Ok(bridge),
            Err(err) if err.is_instance_of::<PyNotImplementedError>(py) => {
                let fallback = Arc::new(Self {
                    event_loop: event_loop.clone().unbind(),
                    call_soon: event_loop.getattr("call_soon")?.unbind(),
                    loop_thread: std::thread::current().id(),
                    queue: CompletionQueue::new(Bell::Threadsafe {
                        call_soon_threadsafe: event_loop.getattr("call_soon_threadsafe")?.unbind(),
                        drain: OnceLock::new(),
                    }),
                });
                let drain = Py::new(
                    py,
                    DrainCallback {
                        bridge: Arc::downgrade(&fallback),
                    },
                )?;
                if let Bell::Threadsafe { drain: slot, .. } = fallback.queue.bell() {
                    let _ = slot.set(drain.into_any());
                }
                Ok(fallback)
            }
            Err(err) => Err(err),
        }
    }

    /// Settles a plain `asyncio.Future`: now on the loop thread, else via the queue.
    pub(crate) fn resolve(&self, py: Python<'_>, future: Py<PyAny>, outcome: Outcome) {
        if self.on_loop_thread() {
            resolve_asyncio(py, future.bind(py), outcome);
        } else {
            self.push(Completion::Resolve(future, outcome));
        }
    }

    /// Unregisters the doorbell from the loop (on the loop thread, at stop), after
    /// delivering whatever is still queued.
    pub(crate) fn detach(&self, py: Python<'_>) {
        while !self.queue.is_empty() {
            self.drain(py);
        }
        if let Bell::Fd(fd) = self.queue.bell() {
            let loop_ = self.event_loop.bind(py);
            let closed = loop_
                .call_method0("is_closed")
                .and_then(|v| v.is_truthy())
                .unwrap_or(true);
            if !closed {
                let _ = loop_.call_method1("remove_reader", (fd.read_fd(),));
            }
        }
    }

    pub(crate) fn event_loop(&self) -> &Py<PyAny> {
        &self.event_loop
    }

    /// `loop.call_soon` (bound method, cached).
    pub(crate) fn call_soon(&self) -> &Py<PyAny> {
        &self.call_soon
    }

    /// Whether the calling thread is the loop's thread.
    pub(crate) fn on_loop_thread(&self) -> bool {
        std::thread::current().id() == self.loop_thread
    }

    /// Queues `item` and rings the doorbell if needed.
    pub(crate) fn push(&self, item: Completion) {
        self.queue.push(item);
    }

    /// Queues `item`; returns whether the caller must [`ring`](Self::ring) later.
    pub(crate) fn push_deferred(&self, item: Completion) -> bool {
        self.queue.push_deferred(item)
    }

    pub(crate) fn ring(&self) {
        self.queue.ring();
    }

    /// Runs `f` on the loop thread: now if we are on it, else via the queue.
    pub(crate) fn run_on_loop(&self, py: Python<'_>, f: LoopTask) {
        if self.on_loop_thread() {
            f(py);
        } else {
            self.push(Completion::Call(f));
        }
    }

    fn drain(&self, py: Python<'_>) {
        for item in self.queue.drain(DRAIN_BATCH) {
            match item {
                Completion::Settled(future) => future.get().run_callbacks(py, &future),
                Completion::Callback(callback, future, context) => {
                    future
                        .get()
                        .run_callback(py, &future, &callback, context.as_ref());
                }
                Completion::Resolve(future, outcome) => {
                    resolve_asyncio(py, future.bind(py), outcome)
                }
                Completion::Call(f) => f(py),
            }
        }
    }
}

fn resolve_asyncio(py: Python<'_>, future: &Bound<'_, PyAny>, outcome: Outcome) {
    let done = future
        .call_method0(pyo3::intern!(py, "done"))
        .and_then(|v| v.is_truthy())
        .unwrap_or(true);
    if done {
        return;
    }
    let result = match outcome {
        Outcome::Value(v) => future.call_method1(pyo3::intern!(py, "set_result"), (v,)),
        Outcome::Error(e) => future.call_method1(
            pyo3::intern!(py, "set_exception"),
            (crate::job::exception_value(py, &e),),
        ),
        Outcome::Cancelled(_) => future.call_method0(pyo3::intern!(py, "cancel")),
    };
    if let Err(err) = result {
        err.write_unraisable(py, Some(future));
    }
}
