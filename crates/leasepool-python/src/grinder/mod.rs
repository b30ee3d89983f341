//! `WorkGrinder`: many small submissions batched onto leased executors.
//!
//! Every decision — when items leave as a batch, who waits for space, which batches
//! `stop()` cancels or waits for — is the engine's [`Grinder`]; this module holds it
//! under a lock and performs its [`Effects`] on asyncio. No Python task exists per item
//! or per grinder: a submission is a [`Job`]; a batch leases one executor straight
//! from the manager (`ManagerCore::lease_for`, FIFO with every other caller, no
//! awaitable in between) and is handed to its pool in one queue operation; each job
//! settles its own submitter's future; the last job of a batch releases the lease.
//! A single loop timer (`call_later`) covers `max_wait_seconds`.
//!
//! Files: this one (the core and performing effects), `submit.rs` (accepting,
//! withdrawing and acknowledging items), `batch.rs` (a batch from lease to last call),
//! `lifecycle.rs` (start, stop, stats, fork), `metrics.rs` (`metrics()`), `python.rs`
//! (the Python class).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use leasepool::expiry::monotonic;
use leasepool::grinder::{Batch, Effects, Grinder};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::aio::LoopBridge;
use crate::aio::{Outcome, PyLeaseFuture};
use crate::job::Job;
use crate::logging::Logger;
use crate::manager::ManagerCore;
use crate::sync::lock;

mod batch;
mod drain;
mod lifecycle;
mod metrics;
mod python;
mod submit;

use batch::BatchTrack;
pub(crate) use python::PyWorkGrinder;

/// A submission.
struct Item {
    job: Job,
    /// The `work_id` of its log records; finds it again if its submitter cancels.
    id: u64,
    owner: Py<PyAny>,
}

/// Tells a parked submitter its item was accepted: `enqueue()` settles the first with
/// the second (the item's `asyncio.Future`); `submit()` parks with nothing to tell.
type Ack = Option<(Py<PyLeaseFuture>, Py<PyAny>)>;

type Fx = Effects<Item, Ack>;

struct State {
    engine: Grinder<Item, Ack>,
    ever_started: bool,
    bridge: Option<Arc<LoopBridge>>,
    /// The Python side of each batch in flight, for `stop(cancel_pending=True)`.
    batches: HashMap<u64, BatchTrack>,
    /// Who awaits the `stop()` in progress.
    stop_waiters: Vec<Py<PyLeaseFuture>>,
    /// A graceful drain in progress (`drain.rs`).
    drain: Option<drain::GrinderDrain>,
}

struct Settings {
    lease_seconds: f64,
    owner_prefix: String,
    max_pending: Option<usize>,
    wait: bool,
    submit_timeout: Option<f64>,
}

pub(crate) struct GrinderCore {
    manager: Arc<ManagerCore>,
    settings: Settings,
    logger: Logger,
    state: Mutex<State>,
    /// Signalled when parked space may have freed (for `submit_from_thread`).
    space: Condvar,
    work_seq: AtomicU64,
    /// Items whose outcome was delivered (a graceful drain's `finished`).
    delivered: AtomicU64,
}

fn runtime_error(message: &str) -> PyErr {
    PyRuntimeError::new_err(message.to_owned())
}

/// The async methods belong to the loop the grinder started on (0.1.3's message).
fn require_owner_loop(py: Python<'_>, bridge: &LoopBridge) -> PyResult<()> {
    if !bridge.foreign_loop_running(py) {
        return Ok(());
    }
    Err(runtime_error(
        "WorkGrinder async methods must be called from its owning event loop; \
         use submit_from_thread() or stats_from_thread() from other threads.",
    ))
}

/// The blocking thread APIs would deadlock on the loop they wait for.
fn reject_owner_loop_thread(py: Python<'_>, bridge: &LoopBridge, method: &str) -> PyResult<()> {
    if bridge.owns_running_loop(py) {
        return Err(runtime_error(&format!(
            "WorkGrinder.{method}() cannot be called from the owning event-loop thread; \
             use the async API instead."
        )));
    }
    Ok(())
}

impl GrinderCore {
    fn bridge(&self) -> Option<Arc<LoopBridge>> {
        lock(&self.state).bridge.clone()
    }

    fn next_work_id(&self) -> u64 {
        self.work_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Runs one engine operation under the lock, then performs its effects.
    fn drive<R>(self: &Arc<Self>, py: Python<'_>, op: impl FnOnce(&mut State, &mut Fx) -> R) -> R {
        let mut fx = Fx::default();
        let result = op(&mut lock(&self.state), &mut fx);
        if self.settings.max_pending.is_some() {
            // Space may have freed: wake `submit_from_thread()` callers blocked on it.
            self.space.notify_all();
        }
        self.perform(py, fx);
        result
    }

    /// Performs what the engine decided (outside the lock).
    fn perform(self: &Arc<Self>, py: Python<'_>, fx: Fx) {
        if fx.is_empty() {
            return;
        }
        let Effects {
            arm_timer,
            dispatch,
            accepted,
            stopped,
        } = fx;
        for ack in accepted {
            submit::acknowledge(py, ack);
        }
        if let Some(deadline) = arm_timer {
            self.arm_timer(py, deadline);
        }
        for batch in dispatch {
            self.dispatch_on_loop(py, batch);
        }
        if stopped {
            let waiters = std::mem::take(&mut lock(&self.state).stop_waiters);
            for waiter in waiters {
                PyLeaseFuture::settle(&waiter, py, Outcome::Value(py.None()));
            }
        }
    }

    /// Batches start on the loop thread (their items' futures live there).
    fn dispatch_on_loop(self: &Arc<Self>, py: Python<'_>, batch: Batch<Item>) {
        match self.bridge() {
            Some(bridge) if !bridge.on_loop_thread() => {
                let core = self.clone();
                bridge.run_on_loop(py, Box::new(move |py| core.dispatch(py, batch)));
            }
            _ => self.dispatch(py, batch),
        }
    }

    /// Arms the flush timer on the loop for `deadline`.
    fn arm_timer(self: &Arc<Self>, py: Python<'_>, deadline: f64) {
        let Some(bridge) = self.bridge() else {
            lock(&self.state).engine.timer_not_armed();
            return;
        };
        let core = self.clone();
        bridge.clone().run_on_loop(
            py,
            Box::new(move |py| {
                let delay = (deadline - monotonic()).max(0.0);
                let armed = Py::new(py, batch::FlushTimer { core: core.clone() }).and_then(|f| {
                    bridge
                        .event_loop()
                        .bind(py)
                        .call_method1(pyo3::intern!(py, "call_later"), (delay, f))
                });
                if let Err(err) = armed {
                    lock(&core.state).engine.timer_not_armed();
                    crate::errors::report_unraisable(py, err, None);
                }
            }),
        );
    }

    fn on_timer(self: &Arc<Self>, py: Python<'_>) {
        self.drive(py, |state, fx| state.engine.timer_fired(monotonic(), fx));
    }
}
