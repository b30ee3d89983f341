//! `WorkGrinder`: many small submissions batched onto leased executors.
//!
//! Batch formation is the engine's [`Batcher`]; this module connects it to asyncio.
//! No Python task exists per item or per grinder: a submission is a [`Job`] pushed
//! into the batcher under a short lock; a batch leases one executor through the
//! manager (FIFO with every other caller) and is handed to its pool in one queue
//! operation; each job settles its own submitter's future; the last job of a batch
//! releases the lease. Several batches can be in flight at once, up to the manager's
//! capacity. A single loop timer (`call_later`) covers `max_wait_seconds`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use leasepool::expiry::monotonic;
use leasepool::grinder::{BatchPolicy, Batcher, Due, Offer};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::bridge::LoopBridge;
use crate::coerce;
use crate::coroutine::{PyEngineCoroutine, Step};
use crate::future::{Outcome, PyLeaseFuture};
use crate::job::{Job, JobObserver, StartGate, Target};
use crate::lease::PyExecutorLease;
use crate::logging::{Logger, DEBUG, ERROR, INFO};
use crate::manager::{ManagerCore, PyLeasedExecutorManager};
use crate::py_cache::{concurrent_future, exception_class, get_logger, get_running_loop};

mod batch;
mod python;

use batch::*;
pub(crate) use python::PyWorkGrinder;

/// A submission.
struct Item {
    job: Job,
    /// The `work_id` of its log records; finds it again if its submitter cancels.
    id: u64,
    owner: Py<PyAny>,
}

/// Tells an `enqueue()` caller parked for lack of space that its item was accepted:
/// settle the first with the second (the item's `asyncio.Future`).
type Ack = Option<(Py<PyLeaseFuture>, Py<PyAny>)>;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Started,
    Stopping,
}

struct State {
    batcher: Batcher<Item>,
    phase: Phase,
    ever_started: bool,
    bridge: Option<Arc<LoopBridge>>,
    timer_armed: bool,
    in_flight: usize,
    /// Batches in flight, so `stop(cancel_pending=True)` can reach their calls.
    batches: HashMap<u64, BatchTrack>,
    stop_waiters: Vec<Py<PyLeaseFuture>>,
    /// One entry per parked item, in the batcher's parking order.
    parked_acks: std::collections::VecDeque<Ack>,
}

/// What `stop(cancel_pending=True)` needs of a batch in flight.
struct BatchTrack {
    /// The batch's `acquire()` while it waits for a lease.
    acquire: Option<Py<PyLeaseFuture>>,
    /// Its items: each gate withdraws the call unless a worker started it, and then
    /// its taker is told it was cancelled.
    targets: GatedTargets,
    size: usize,
    /// `stop(cancel_pending=True)` cancelled it: logged "Cancelled batch", never
    /// "Finished batch" (as in 0.1.3).
    cancelled: bool,
}

/// Each item's start gate and taker.
type GatedTargets = Vec<(Arc<StartGate>, Target)>;

struct Settings {
    max_wait_seconds: f64,
    batch_size_threshold: usize,
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
    batch_seq: AtomicU64,
    work_seq: AtomicU64,
}

static GRINDERS: Mutex<Vec<std::sync::Weak<GrinderCore>>> = Mutex::new(Vec::new());

/// In a forked child: every grinder drops its parent-side loop registration and is
/// left stopped (its pending items belong to the parent).
pub(crate) fn forget_loops_after_fork() {
    let cores: Vec<Arc<GrinderCore>> = match GRINDERS.try_lock() {
        Ok(guard) => guard.iter().filter_map(std::sync::Weak::upgrade).collect(),
        Err(_) => return,
    };
    for core in cores {
        if let Ok(mut state) = core.state.try_lock() {
            std::mem::forget(state.bridge.take());
            std::mem::forget(state.batcher.take_pending());
            std::mem::forget(state.batcher.take_parked());
            std::mem::forget(std::mem::take(&mut state.stop_waiters));
            state.phase = Phase::Idle;
            state.timer_armed = false;
            state.in_flight = 0;
            std::mem::forget(std::mem::take(&mut state.batches));
        }
    }
}

use crate::sync::lock;

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

    /// Refusal for a submission in the current phase, if any.
    fn refusal(state: &State) -> Option<PyErr> {
        match state.phase {
            Phase::Started => None,
            Phase::Stopping => Some(runtime_error("WorkGrinder is stopping")),
            Phase::Idle => Some(runtime_error("WorkGrinder is not started")),
        }
    }

    fn queue_full_error(&self, py: Python<'_>) -> PyErr {
        let message = format!(
            "WorkGrinder queue is full; max_pending={} reached",
            self.settings.max_pending.unwrap_or(0)
        );
        crate::errors::new_exception(exception_class(py, "LeaseUnavailableError"), message)
    }

    fn next_work_id(&self) -> u64 {
        self.work_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn log_queued(&self, py: Python<'_>, id: u64, owner: &Py<PyAny>, pending: usize) {
        if self.logger.enabled(py, DEBUG) {
            self.logger.log(
                py,
                DEBUG,
                "Queued work work_id=%s owner=%s pending=%s",
                (format!("{id:032x}"), owner.clone_ref(py), pending),
                None,
            );
        }
    }

    /// The submitter of item `id` cancelled: if it is still pending it leaves the
    /// queue now (as in 0.1.3), and its space goes to a parked submitter.
    fn withdraw(self: &Arc<Self>, py: Python<'_>, id: u64) {
        let (item, admitted, acks, pending) = {
            let mut state = lock(&self.state);
            let Some((item, admitted)) = state.batcher.withdraw(monotonic(), |item| item.id == id)
            else {
                return;
            };
            let acks: Vec<Ack> = (0..admitted.len())
                .filter_map(|_| state.parked_acks.pop_front())
                .collect();
            (item, admitted, acks, state.batcher.pending_len())
        };
        self.space.notify_all();
        if self.logger.enabled(py, DEBUG) {
            self.logger.log(
                py,
                DEBUG,
                "Removed cancelled pending work work_id=%s owner=%s pending=%s",
                (format!("{id:032x}"), item.owner.clone_ref(py), pending),
                None,
            );
        }
        // Settles the item's future as cancelled if it was not already (a
        // `concurrent.futures.Future` cancelled from another thread is).
        item.job.cancel(py);
        for ack in acks {
            Self::acknowledge(py, ack);
        }
        for offer in admitted {
            self.follow(py, offer);
        }
    }

    /// Acts on what the batcher asked for (outside the state lock).
    fn follow(self: &Arc<Self>, py: Python<'_>, offer: Offer<Item>) {
        match offer {
            Offer::Queued | Offer::Full(_) => {}
            Offer::ArmTimer(deadline) => self.arm_timer(py, deadline),
            Offer::Dispatch(batch) => self.dispatch_on_loop(py, batch),
        }
    }

    fn arm_timer(self: &Arc<Self>, py: Python<'_>, deadline: f64) {
        let Some(bridge) = self.bridge() else { return };
        let core = self.clone();
        bridge.run_on_loop(
            py,
            Box::new(move |py| {
                {
                    let mut state = lock(&core.state);
                    if state.timer_armed {
                        return;
                    }
                    state.timer_armed = true;
                }
                let Some(bridge) = core.bridge() else { return };
                let delay = (deadline - monotonic()).max(0.0);
                let flush = Py::new(py, FlushTimer { core: core.clone() });
                let armed = flush.and_then(|f| {
                    bridge
                        .event_loop()
                        .bind(py)
                        .call_method1("call_later", (delay, f))
                });
                if let Err(err) = armed {
                    lock(&core.state).timer_armed = false;
                    crate::errors::report_unraisable(py, err, None);
                }
            }),
        );
    }

    fn on_timer(self: &Arc<Self>, py: Python<'_>) {
        let due = {
            let mut state = lock(&self.state);
            state.timer_armed = false;
            state.batcher.due(monotonic())
        };
        match due {
            Due::Idle => {}
            Due::WaitUntil(deadline) => self.arm_timer(py, deadline),
            Due::Dispatch(batch) => self.dispatch(py, batch),
        }
    }

    fn dispatch_on_loop(self: &Arc<Self>, py: Python<'_>, batch: Vec<Item>) {
        match self.bridge() {
            Some(bridge) if !bridge.on_loop_thread() => {
                let core = self.clone();
                bridge.run_on_loop(py, Box::new(move |py| core.dispatch(py, batch)));
            }
            _ => self.dispatch(py, batch),
        }
    }

    /// Leases an executor for `batch` (loop thread).
    fn dispatch(self: &Arc<Self>, py: Python<'_>, batch: Vec<Item>) {
        let total = batch.len();
        let live: Vec<Job> = batch
            .into_iter()
            .filter_map(|item| (!item.job.is_cancelled(py)).then_some(item.job))
            .map(|job| job.gated(Arc::new(StartGate::default())))
            .collect();
        let skipped = total - live.len();
        if skipped > 0 {
            self.items_finished(py, skipped);
        }
        if live.is_empty() {
            return;
        }
        let batch_id = self.batch_seq.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&self.state).in_flight += 1;
        let size = live.len();
        self.logger.log(
            py,
            INFO,
            "Processing batch batch_id=%s size=%s lease_seconds=%s",
            (batch_id, size, self.settings.lease_seconds),
            None,
        );
        let owner = pyo3::types::PyString::new(
            py,
            &format!("{}-batch-{batch_id}", self.settings.owner_prefix),
        )
        .into_any()
        .unbind();
        let acquired =
            self.manager
                .acquire(py, Some(self.settings.lease_seconds), owner, true, None);
        let start = BatchStart {
            core: self.clone(),
            batch_id,
            jobs: Mutex::new(Some(live)),
        };
        match acquired {
            Ok(awaitable) => {
                if let Ok(future) = awaitable.bind(py).cast::<PyLeaseFuture>() {
                    let targets = lock(&start.jobs)
                        .as_ref()
                        .map(|jobs| {
                            jobs.iter()
                                .filter_map(|job| {
                                    Some((job.gate()?.clone(), job.target.clone_ref(py)))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    lock(&self.state).batches.insert(
                        batch_id,
                        BatchTrack {
                            acquire: Some(future.clone().unbind()),
                            targets,
                            size,
                            cancelled: false,
                        },
                    );
                    let callback = Py::new(py, start);
                    if let Err(err) =
                        callback.and_then(|cb| future.call_method1("add_done_callback", (cb,)))
                    {
                        crate::errors::report_unraisable(py, err, None);
                    }
                } else {
                    // The manager is not started: its awaitable raises on first resume.
                    let err = awaitable
                        .bind(py)
                        .call_method1("send", (py.None(),))
                        .err()
                        .unwrap_or_else(|| {
                            runtime_error("WorkGrinder could not lease an executor")
                        });
                    start.fail(py, &err);
                }
            }
            Err(err) => start.fail(py, &err),
        }
    }

    /// `count` accepted items finished (ran, failed or were skipped as cancelled).
    fn items_finished(self: &Arc<Self>, py: Python<'_>, count: usize) {
        if self.settings.max_pending.is_none() {
            return;
        }
        let (admitted, acks) = {
            let mut state = lock(&self.state);
            let admitted = state.batcher.finished(count, monotonic());
            let acks: Vec<Ack> = (0..admitted.len())
                .filter_map(|_| state.parked_acks.pop_front())
                .collect();
            (admitted, acks)
        };
        self.space.notify_all();
        for ack in acks {
            Self::acknowledge(py, ack);
        }
        for offer in admitted {
            self.follow(py, offer);
        }
    }

    /// Tells a parked `enqueue()` caller its item was accepted. If that caller gave up
    /// (cancelled its await) meanwhile, the item's own future is cancelled so the call
    /// never runs.
    fn acknowledge(py: Python<'_>, ack: Ack) {
        if let Some((future, value)) = ack {
            let result = value.clone_ref(py);
            if !PyLeaseFuture::settle(&future, py, Outcome::Value(value)) {
                let bridge = future.get().bridge().clone();
                bridge.resolve(py, result, Outcome::Cancelled(None));
            }
        }
    }

    fn batch_finished(self: &Arc<Self>, py: Python<'_>, batch_id: u64) {
        let (waiters, track) = {
            let mut state = lock(&self.state);
            state.in_flight -= 1;
            let track = state.batches.remove(&batch_id);
            let waiters = if state.phase == Phase::Stopping
                && state.in_flight == 0
                && state.batcher.pending_len() == 0
            {
                std::mem::take(&mut state.stop_waiters)
            } else {
                Vec::new()
            };
            (waiters, track)
        };
        drop(track); // Python references: dropped outside the lock
        for waiter in waiters {
            PyLeaseFuture::settle(&waiter, py, Outcome::Value(py.None()));
        }
    }

    /// `stop(cancel_pending=True)`: every batch still waiting for a lease gives up its
    /// `acquire()` (its items are cancelled when that settles), and every item of a
    /// leased batch that has not started is cancelled (a worker skips it). Running
    /// items finish; `stop()` waits for them only.
    fn cancel_in_flight(&self, py: Python<'_>) {
        let mut tracks: Vec<(u64, usize, Option<Py<PyLeaseFuture>>, GatedTargets)> = {
            let mut state = lock(&self.state);
            state
                .batches
                .iter_mut()
                .filter(|(_, track)| !track.cancelled)
                .map(|(id, track)| {
                    track.cancelled = true;
                    let targets = std::mem::take(&mut track.targets);
                    (*id, track.size, track.acquire.take(), targets)
                })
                .collect()
        };
        tracks.sort_unstable_by_key(|(id, ..)| *id);
        for (batch_id, size, acquire, targets) in tracks {
            self.logger.log(
                py,
                INFO,
                "Cancelled batch batch_id=%s size=%s",
                (batch_id, size),
                None,
            );
            match acquire {
                // Still waiting: cancelling the acquire also leaves the manager's queue
                // (or hands back a lease granted in the same instant).
                Some(acquire) if PyLeaseFuture::abort(&acquire, py, Outcome::Cancelled(None)) => {}
                // Leased already (perhaps its start is still queued on the loop): its
                // items are cancelled before any worker takes them.
                _ => {
                    for (gate, target) in &targets {
                        if gate.withdraw() {
                            target.cancel(py);
                        }
                    }
                }
            }
        }
    }

    /// Accepts `item`, or (when `park` is given and the grinder waits for space)
    /// parks it with its acknowledgement. Returns whether it was parked; hands the item
    /// back with the error to raise if it was refused.
    fn submit_item(
        self: &Arc<Self>,
        py: Python<'_>,
        item: Item,
        park: Option<Ack>,
    ) -> Result<bool, (Item, PyErr)> {
        let id = item.id;
        let owner = item.owner.clone_ref(py);
        let (offer, pending, parked) = {
            let mut state = lock(&self.state);
            if let Some(err) = Self::refusal(&state) {
                return Err((item, err));
            }
            let offer = state.batcher.offer(item, monotonic());
            // As in 0.1.1, the record counts the new item (before any dispatch).
            let pending = match &offer {
                Offer::Dispatch(batch) => batch.len(),
                _ => state.batcher.pending_len(),
            };
            match (offer, park) {
                (Offer::Full(item), Some(ack)) if self.settings.wait => {
                    state.batcher.park(item);
                    state.parked_acks.push_back(ack);
                    (Offer::Queued, state.batcher.pending_len(), true)
                }
                (offer, _) => (offer, pending, false),
            }
        };
        if let Offer::Full(item) = offer {
            return Err((item, self.queue_full_error(py)));
        }
        self.log_queued(py, id, &owner, pending);
        self.follow(py, offer);
        Ok(parked)
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (phase, pending, oldest) = {
            let state = lock(&self.state);
            (
                state.phase,
                state.batcher.pending_len(),
                state.batcher.oldest_arrival(),
            )
        };
        let out = PyDict::new(py);
        out.set_item("started", phase != Phase::Idle)?;
        out.set_item("stopping", phase == Phase::Stopping)?;
        out.set_item("pending", pending)?;
        out.set_item("batch_size_threshold", self.settings.batch_size_threshold)?;
        out.set_item("max_wait_seconds", self.settings.max_wait_seconds)?;
        out.set_item("lease_seconds", self.settings.lease_seconds)?;
        out.set_item(
            "oldest_wait_seconds",
            oldest.map_or(0.0, |at| (monotonic() - at).max(0.0)),
        )?;
        Ok(out)
    }

    fn start_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        if let Some(bridge) = self.bridge() {
            if !bridge.foreign_loop_running(py) {
                return Ok(());
            }
            return Err(runtime_error(
                "WorkGrinder is already started on a different event loop",
            ));
        }
        let event_loop = get_running_loop(py)?.call0()?;
        let bridge = LoopBridge::attach(py, &event_loop)?;
        {
            let mut state = lock(&self.state);
            state.bridge = Some(bridge);
            state.phase = Phase::Started;
            state.ever_started = true;
        }
        self.logger.log(
            py,
            INFO,
            "WorkGrinder started max_wait_seconds=%s batch_size_threshold=%s lease_seconds=%s",
            (
                self.settings.max_wait_seconds,
                self.settings.batch_size_threshold,
                self.settings.lease_seconds,
            ),
            None,
        );
        Ok(())
    }

    fn stop_now(self: &Arc<Self>, py: Python<'_>, cancel_pending: bool) -> PyResult<Step> {
        if let Some(bridge) = self.bridge() {
            require_owner_loop(py, &bridge)?;
        }
        let (pending, parked, bridge) = {
            let mut state = lock(&self.state);
            if state.phase == Phase::Idle {
                return Ok(Step::Done(py.None()));
            }
            state.phase = Phase::Stopping;
            let acks: Vec<Ack> = state.parked_acks.drain(..).collect();
            (
                state.batcher.take_pending(),
                state
                    .batcher
                    .take_parked()
                    .into_iter()
                    .zip(acks)
                    .collect::<Vec<_>>(),
                state.bridge.clone(),
            )
        };
        self.space.notify_all();
        let Some(bridge) = bridge else {
            return Ok(Step::Done(py.None()));
        };
        if cancel_pending {
            let count = pending.len();
            for item in pending {
                item.job.cancel(py);
            }
            for (item, ack) in parked {
                if let Some((accepted, _)) = ack {
                    PyLeaseFuture::settle(&accepted, py, Outcome::Cancelled(None));
                }
                item.job.cancel(py);
            }
            self.items_finished(py, count);
            self.cancel_in_flight(py);
        } else {
            // Drain: everything accepted or parked still runs.
            let mut batch = pending;
            for (item, ack) in parked {
                Self::acknowledge(py, ack);
                batch.push(item);
            }
            if !batch.is_empty() {
                self.dispatch(py, batch);
            }
        }
        let stopped = PyLeaseFuture::pending(py, bridge.clone(), None)?;
        {
            let mut state = lock(&self.state);
            if state.in_flight == 0 {
                drop(state);
                PyLeaseFuture::settle(&stopped, py, Outcome::Value(py.None()));
            } else {
                state.stop_waiters.push(stopped.clone_ref(py));
            }
        }
        let core = self.clone();
        Ok(Step::Await(
            stopped,
            Some(Box::new(move |py| {
                let bridge = {
                    let mut state = lock(&core.state);
                    state.phase = Phase::Idle;
                    // A timer still pending belongs to this (possibly closing) loop;
                    // a restart arms its own.
                    state.timer_armed = false;
                    state.bridge.take()
                };
                if let Some(bridge) = bridge {
                    bridge.detach(py)?;
                }
                core.logger.log(py, INFO, "WorkGrinder stopped", (), None);
                Ok(Step::Done(py.None()))
            })),
        ))
    }
}
