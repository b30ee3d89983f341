//! The bridge from engine threads to one asyncio event loop.
//!
//! Worker threads (and the checker clock) push [`Completion`]s; the loop drains them.
//! The doorbell is an eventfd registered with `loop.add_reader`, so a burst of
//! results costs the loop one wake-up, and the worker rings it after detaching from
//! the interpreter (see `thread_pool.rs`), so the loop never wakes into a held GIL.
//! Loops without `add_reader` get one coalesced `call_soon_threadsafe` per burst, and
//! so does every loop after `stop()` unregistered the eventfd.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::thread::ThreadId;

use leasepool::completion::{CompletionQueue, Doorbell, FdDoorbell};
use pyo3::exceptions::PyNotImplementedError;
use pyo3::prelude::*;

use crate::aio::{Outcome, PyLeaseFuture};
use crate::py_cache::current_running_loop;

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

/// The loop's doorbell: the eventfd watched with `add_reader` while the bridge is
/// attached; `call_soon_threadsafe(drain)` for loops without `add_reader`, and for
/// every loop once `stop()` unregistered the eventfd (a done-callback added to a
/// future that finished before `stop()` must still run).
pub(crate) struct Bell {
    fd: Option<FdDoorbell>,
    threadsafe: AtomicBool,
    call_soon_threadsafe: Py<PyAny>,
    drain: OnceLock<Py<PyAny>>,
}

impl Doorbell for Bell {
    fn ring(&self) {
        if !self.threadsafe.load(Ordering::Acquire) {
            if let Some(fd) = &self.fd {
                fd.ring();
                return;
            }
        }
        let Some(drain) = self.drain.get() else {
            return;
        };
        // Never panics during interpreter shutdown; see `attach` for which threads may.
        let _ = crate::attach::attach_known_thread(|py| {
            if let Err(err) = self.call_soon_threadsafe.bind(py).call1((drain,)) {
                // The loop is closed: nobody is left to deliver to.
                drop(err);
            }
        });
    }

    fn clear(&self) {
        if let Some(fd) = &self.fd {
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
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let mut escaping = Ok(());
        crate::errors::contain_panics(py, "leasepool completion drain", || {
            if let Some(bridge) = self.bridge.upgrade() {
                escaping = bridge.drain(py);
            }
        });
        escaping
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
            queue: CompletionQueue::new(Bell {
                fd: Some(fd_bell),
                threadsafe: AtomicBool::new(false),
                call_soon_threadsafe: event_loop.getattr("call_soon_threadsafe")?.unbind(),
                drain: OnceLock::new(),
            }),
        });
        let drain = Py::new(
            py,
            DrainCallback {
                bridge: Arc::downgrade(&bridge),
            },
        )?;
        let _ = bridge
            .queue
            .bell()
            .drain
            .set(drain.clone_ref(py).into_any());
        match event_loop.call_method1("add_reader", (fd, &drain)) {
            Ok(_) => {}
            Err(err) if err.is_instance_of::<PyNotImplementedError>(py) => {
                bridge
                    .queue
                    .bell()
                    .threadsafe
                    .store(true, Ordering::Release);
            }
            Err(err) => return Err(err),
        }
        Ok(bridge)
    }

    /// Settles a plain `asyncio.Future`: now on the loop thread, else via the queue.
    pub(crate) fn resolve(&self, py: Python<'_>, future: Py<PyAny>, outcome: Outcome) {
        if self.on_loop_thread() {
            resolve_asyncio(py, future.bind(py), outcome);
        } else {
            self.push(Completion::Resolve(future, outcome));
        }
    }

    /// Unregisters the eventfd from the loop (on the loop thread, at stop), after
    /// delivering whatever is still queued. Anything queued later (a done-callback
    /// added to a future that finished before `stop()`) reaches the loop through
    /// `call_soon_threadsafe`.
    ///
    /// Every outcome is stored before `stop()` returns, but the done-callbacks are
    /// handed to `loop.call_soon`, never run here: `stop()` runs inside a Task's step,
    /// and a callback that wakes another Task (an `await` on a call that just
    /// finished) cannot run there (asyncio refuses to enter a Task while another one
    /// is being executed, and the waiting Task would never resume).
    pub(crate) fn detach(&self, py: Python<'_>) -> PyResult<()> {
        while !self.queue.is_empty() {
            for item in self.queue.drain(DRAIN_BATCH) {
                deliver_scheduling(py, item);
            }
        }
        let bell = self.queue.bell();
        if let Some(fd) = &bell.fd {
            if !bell.threadsafe.swap(true, Ordering::AcqRel) {
                let loop_ = self.event_loop.bind(py);
                let closed = loop_
                    .call_method0("is_closed")
                    .and_then(|v| v.is_truthy())
                    .unwrap_or(true);
                if !closed {
                    loop_.call_method1("remove_reader", (fd.read_fd(),))?;
                }
            }
        }
        // A push that raced the switch rang the eventfd nobody reads any more.
        if !self.queue.is_empty() {
            self.queue.ring();
        }
        Ok(())
    }

    pub(crate) fn event_loop(&self) -> &Py<PyAny> {
        &self.event_loop
    }

    /// `loop.call_soon` (bound method, cached).
    pub(crate) fn call_soon(&self) -> &Py<PyAny> {
        &self.call_soon
    }

    /// Whether the event loop running on the calling thread is this bridge's loop
    /// (the thread check first: it is free, and decides every call from elsewhere).
    pub(crate) fn owns_running_loop(&self, py: Python<'_>) -> bool {
        self.on_loop_thread() && matches!(self.running_loop_is_ours(py), Some(true))
    }

    /// Whether another event loop than this bridge's runs on the calling thread. With
    /// no loop running here the call may still be awaited on ours (e.g.
    /// `loop.run_until_complete(manager.acquire())` or
    /// `run_coroutine_threadsafe(manager.acquire(), loop)`, which 0.1.3's coroutines
    /// allow), so that is not foreign.
    pub(crate) fn foreign_loop_running(&self, py: Python<'_>) -> bool {
        matches!(self.running_loop_is_ours(py), Some(false))
    }

    /// `None` if no loop runs on the calling thread, else whether it is ours.
    fn running_loop_is_ours(&self, py: Python<'_>) -> Option<bool> {
        let running = current_running_loop(py).and_then(|get| get.call0()).ok()?;
        if running.is_none() {
            return None;
        }
        Some(running.is(self.event_loop.bind(py)))
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

    /// Delivers up to [`DRAIN_BATCH`] completions. A `KeyboardInterrupt` or
    /// `SystemExit` from a callback stops the drain and propagates (the loop re-raises
    /// both, as asyncio's `Handle` does); what was not delivered goes back to the
    /// front of the queue for the next drain.
    fn drain(&self, py: Python<'_>) -> PyResult<()> {
        let mut batch = self.queue.drain(DRAIN_BATCH).into_iter();
        while let Some(item) = batch.next() {
            if let Err(escaping) = deliver(py, item) {
                self.queue.requeue_front(batch);
                return Err(escaping);
            }
        }
        Ok(())
    }
}

/// Delivers one completion; `Err` only for an exception that must leave the loop.
fn deliver(py: Python<'_>, item: Completion) -> PyResult<()> {
    match item {
        Completion::Settled(future) => future.get().run_callbacks(py, &future),
        Completion::Callback(callback, future, context) => {
            future
                .get()
                .run_callback(py, &future, &callback, context.as_ref())
        }
        Completion::Resolve(future, outcome) => {
            resolve_asyncio(py, future.bind(py), outcome);
            Ok(())
        }
        Completion::Call(f) => {
            f(py);
            Ok(())
        }
    }
}

/// Delivers one completion from inside a Task's step (see [`LoopBridge::detach`]):
/// outcomes are stored now, callbacks go to `loop.call_soon`.
fn deliver_scheduling(py: Python<'_>, item: Completion) {
    match item {
        Completion::Settled(future) => future.get().schedule_callbacks(py, &future),
        Completion::Callback(callback, future, context) => {
            future.get().call_soon(py, &future, callback, context);
        }
        // Resolving an asyncio future schedules its callbacks itself; engine tasks
        // wake no Task.
        item => {
            if let Err(escaping) = deliver(py, item) {
                crate::errors::report_unraisable(py, escaping, None);
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
            (crate::errors::exception_value(py, &e),),
        ),
        Outcome::Cancelled(_) => future.call_method0(pyo3::intern!(py, "cancel")),
    };
    if let Err(err) = result {
        crate::errors::report_unraisable(py, err, Some(future));
    }
}
