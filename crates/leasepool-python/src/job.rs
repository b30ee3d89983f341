//! A queued call: the callable, its arguments, the caller's context, and where the
//! outcome goes.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use leasepool::routing::CallCost;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::aio::{Completion, LoopBridge};
use crate::aio::{Outcome, PyLeaseFuture};
use crate::errors::exception_value;
use crate::py_cache::concurrent_cancelled_error;

/// Where a job's outcome is delivered.
pub(crate) enum Target {
    /// An engine [`PyLeaseFuture`] (`lease.run`, `grinder.submit`).
    Future(Py<PyLeaseFuture>),
    /// A `concurrent.futures.Future` (`lease.executor.submit`, `submit_from_thread`).
    Concurrent(Py<PyAny>),
    /// A plain `asyncio.Future` (`grinder.enqueue`), settled on its loop's thread.
    Asyncio(Py<PyAny>, Arc<LoopBridge>),
}

impl Target {
    /// Another handle on the same taker (to cancel the call later, wherever the job is).
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Self::Future(fut) => Self::Future(fut.clone_ref(py)),
            Self::Concurrent(fut) => Self::Concurrent(fut.clone_ref(py)),
            Self::Asyncio(fut, bridge) => Self::Asyncio(fut.clone_ref(py), bridge.clone()),
        }
    }

    /// Whether the taker's future is done (settled or cancelled).
    pub(crate) fn is_settled(&self, py: Python<'_>) -> bool {
        match self {
            Self::Future(fut) => !fut.get().is_pending(),
            Self::Concurrent(fut) | Self::Asyncio(fut, _) => fut
                .bind(py)
                .call_method0(pyo3::intern!(py, "done"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(true),
        }
    }

    /// Cancels the taker's future unless the call already started (a worker claims
    /// the future before running the call, so a cancelled one is skipped).
    pub(crate) fn cancel(&self, py: Python<'_>) {
        match self {
            Self::Future(fut) => {
                PyLeaseFuture::settle(fut, py, Outcome::Cancelled(None));
            }
            Self::Concurrent(fut) => {
                crate::errors::best_effort(py, fut.bind(py).call_method0("cancel"));
            }
            Self::Asyncio(fut, bridge) => {
                bridge.resolve(py, fut.clone_ref(py), Outcome::Cancelled(None));
            }
        }
    }
}

/// How a job was finished with (what its [`JobObserver`] is told).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobEnd {
    /// The call returned; its value was delivered.
    Returned,
    /// The call raised, or was lost after a worker claimed it (its process died);
    /// the error was delivered.
    Raised,
    /// Claimed by a worker but never run (the pool shut down first): a
    /// `CancelledError` was delivered.
    Cancelled,
    /// Dropped unrun: cancelled or withdrawn before a worker took it, or refused (a
    /// pool that could not take it); nothing was delivered by the job itself.
    Dropped,
}

impl JobEnd {
    /// An outcome reached the taker through the job (a graceful drain's `finished`).
    pub(crate) fn delivered(self) -> bool {
        !matches!(self, Self::Dropped)
    }
}

/// Told when a job is finished with (run, failed or cancelled): the WorkGrinder
/// counts a batch's jobs down with it.
pub(crate) trait JobObserver: Send + Sync {
    fn job_done(&self, py: Python<'_>, end: JobEnd);
}

/// Decides once, by compare-and-swap, between "a worker starts this call" and "it
/// was withdrawn before it started" (`WorkGrinder.stop(cancel_pending=True)`), so a
/// call is never both run and reported cancelled.
#[derive(Default)]
pub(crate) struct StartGate(AtomicU8);

impl StartGate {
    const OPEN: u8 = 0;
    const STARTED: u8 = 1;
    const WITHDRAWN: u8 = 2;

    /// A worker is about to run the call: `false` if it was withdrawn.
    fn start(&self) -> bool {
        matches!(
            self.0.compare_exchange(
                Self::OPEN,
                Self::STARTED,
                Ordering::AcqRel,
                Ordering::Acquire
            ),
            Ok(_) | Err(Self::STARTED)
        )
    }

    /// Withdraws the call unless a worker started it: `true` if withdrawn now.
    pub(crate) fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(
                Self::OPEN,
                Self::WITHDRAWN,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// What a job counts against until it is finished with: a lease's calls in flight
/// (`lease.run`, `executor.submit`, a grinder batch) or a call slot of its own
/// (`manager.run`). Told once, when the job is delivered or dropped, before its
/// taker hears of the outcome.
pub(crate) trait CallCounter: Send + Sync {
    fn call_ended(&self, py: Python<'_>);
}

/// Told what a call cost where it ran (`backend="auto"`: the routing table learns
/// from it). `key` identifies the callable.
pub(crate) trait CallCosts: Send + Sync {
    /// A call of `key` ended on a thread worker, having cost `cost`.
    fn thread_call_ended(&self, py: Python<'_>, key: u64, cost: CallCost);
    /// A call of `key` ended on a worker process, having cost `cost`.
    fn process_call_ended(&self, py: Python<'_>, key: u64, cost: CallCost);
}

/// One call to run on a worker.
pub(crate) struct Job {
    func: Py<PyAny>,
    args: Py<PyTuple>,
    kwargs: Option<Py<PyDict>>,
    context: Py<PyAny>,
    pub(crate) target: Target,
    observer: Option<Arc<dyn JobObserver>>,
    gate: Option<Arc<StartGate>>,
    link: Option<Arc<dyn CallCounter>>,
    /// When it was handed to a pool, if the manager keeps metrics.
    queued_at: Option<Instant>,
    /// The callable's routing key and who learns what the call cost (`backend="auto"`).
    costs: Option<(u64, Arc<dyn CallCosts>)>,
}

impl Drop for Job {
    fn drop(&mut self) {
        let link = self.link.take();
        let observer = self.observer.take();
        if link.is_none() && observer.is_none() {
            return;
        }
        let _ = crate::attach::attach_known_thread(|py| {
            // The lease first: a WorkGrinder's observer releases the batch's lease
            // after its last job, which then finds nothing in flight (no drain).
            if let Some(link) = link {
                link.call_ended(py);
            }
            if let Some(observer) = observer {
                observer.job_done(py, JobEnd::Dropped);
            }
        });
    }
}

impl Job {
    /// Captures a call, copying the caller's `contextvars` context (as
    /// `asyncio.to_thread` does) so the call sees the caller's context variables.
    pub(crate) fn capture(
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        kwargs: Option<Py<PyDict>>,
        target: Target,
    ) -> PyResult<Self> {
        // SAFETY: attached to the interpreter; returns a new reference or NULL with
        // an exception set.
        let context = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyContext_CopyCurrent())? };
        Ok(Self {
            func,
            args,
            kwargs,
            context: context.unbind(),
            target,
            observer: None,
            gate: None,
            link: None,
            queued_at: None,
            costs: None,
        })
    }

    /// Reports what this call costs to `costs`, for callable `key`.
    pub(crate) fn costed_by(&mut self, key: u64, costs: Arc<dyn CallCosts>) {
        self.costs = Some((key, costs));
    }

    /// Who learns what this call costs, and the callable's key.
    pub(crate) fn costs(&self) -> Option<&(u64, Arc<dyn CallCosts>)> {
        self.costs.as_ref()
    }

    /// Attaches an observer told when this job is finished with.
    pub(crate) fn observed_by(mut self, observer: Arc<dyn JobObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Counts this job against `counter` (a lease's calls in flight, a call slot)
    /// until it is finished with.
    pub(crate) fn counted_by(mut self, counter: Arc<dyn CallCounter>) -> Self {
        self.link = Some(counter);
        self
    }

    /// Notes when the job was handed to a pool (its queue time starts).
    pub(crate) fn queued_at(&mut self, at: Instant) {
        self.queued_at = Some(at);
    }

    /// Nanoseconds from [`queued_at`](Self::queued_at) to `now` (0 if never noted).
    pub(crate) fn queued_ns(&self, now: Instant) -> u64 {
        self.queued_at
            .map_or(0, |at| duration_ns(now.saturating_duration_since(at)))
    }

    /// Lets `gate` withdraw this call until a worker starts it.
    pub(crate) fn gated(mut self, gate: Arc<StartGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The loop bridge the outcome goes to, if the taker lives on an event loop.
    pub(crate) fn bridge(&self) -> Option<Arc<LoopBridge>> {
        match &self.target {
            Target::Future(fut) => Some(fut.get().bridge().clone()),
            Target::Asyncio(_, bridge) => Some(bridge.clone()),
            Target::Concurrent(_) => None,
        }
    }

    pub(crate) fn gate(&self) -> Option<&Arc<StartGate>> {
        self.gate.as_ref()
    }

    /// The callable and its arguments (for backends that ship calls elsewhere).
    pub(crate) fn parts(&self) -> (&Py<PyAny>, &Py<PyTuple>, Option<&Py<PyDict>>) {
        (&self.func, &self.args, self.kwargs.as_ref())
    }

    /// The `contextvars.Context` copied from the caller at submission.
    pub(crate) fn context<'py>(&self, py: Python<'py>) -> &Bound<'py, PyAny> {
        self.context.bind(py)
    }

    /// Whether the taker cancelled (without claiming the job like `is_wanted`).
    pub(crate) fn is_cancelled(&self, py: Python<'_>) -> bool {
        match &self.target {
            Target::Future(fut) => !fut.get().is_pending(),
            Target::Concurrent(fut) | Target::Asyncio(fut, _) => fut
                .bind(py)
                .call_method0(pyo3::intern!(py, "cancelled"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(false),
        }
    }

    /// Whether the caller gave up on a `LeaseFuture` target (cancelled it, or its
    /// timeout did); `false` for other targets. Reads no Python object.
    pub(crate) fn gave_up(&self) -> bool {
        matches!(&self.target, Target::Future(fut) if !fut.get().is_pending())
    }

    /// Whether the outcome still has a taker (a cancelled future's call never runs).
    /// Called by whoever starts the call (a worker; the process backend's dispatcher).
    pub(crate) fn is_wanted(&self, py: Python<'_>) -> bool {
        if self.gate.as_ref().is_some_and(|gate| !gate.start()) {
            return false;
        }
        match &self.target {
            Target::Future(fut) => fut.get().is_pending(),
            Target::Concurrent(fut) => fut
                .bind(py)
                .call_method0(pyo3::intern!(py, "set_running_or_notify_cancel"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(false),
            Target::Asyncio(fut, _) => !fut
                .bind(py)
                .call_method0(pyo3::intern!(py, "done"))
                .and_then(|v| v.is_truthy())
                .unwrap_or(true),
        }
    }

    /// Delivers the call's outcome to its taker. Returns the bridge whose doorbell the
    /// caller must ring (deferred so a worker can ring after releasing the GIL).
    pub(crate) fn deliver(
        self,
        py: Python<'_>,
        outcome: PyResult<Py<PyAny>>,
    ) -> Option<Arc<LoopBridge>> {
        let end = if outcome.is_ok() {
            JobEnd::Returned
        } else {
            JobEnd::Raised
        };
        self.deliver_as(py, outcome, end)
    }

    fn deliver_as(
        mut self,
        py: Python<'_>,
        outcome: PyResult<Py<PyAny>>,
        end: JobEnd,
    ) -> Option<Arc<LoopBridge>> {
        // The capacity goes back before the taker hears of the outcome: a caller that
        // awaited the call and runs the next one at once finds its slot free again
        // (and a lease released right after its last call has nothing left to drain).
        if let Some(link) = self.link.take() {
            link.call_ended(py);
        }
        // Likewise a WorkGrinder batch: its last call releases the batch's lease (and
        // logs "Finished batch") before its submitter resumes.
        if let Some(observer) = self.observer.take() {
            observer.job_done(py, end);
        }
        match &self.target {
            Target::Future(fut) => {
                if !fut.get().try_claim() {
                    return None;
                }
                let outcome = match outcome {
                    Ok(value) => Outcome::Value(value),
                    Err(err) => Outcome::Error(err),
                };
                PyLeaseFuture::settle_claimed_deferred(fut, py, outcome)
                    .then(|| fut.get().bridge().clone())
            }
            Target::Concurrent(fut) => {
                let fut = fut.bind(py);
                let delivered = match outcome {
                    Ok(value) => fut.call_method1("set_result", (value,)),
                    Err(err) => fut.call_method1("set_exception", (exception_value(py, &err),)),
                };
                if let Err(err) = delivered {
                    crate::errors::report_unraisable(py, err, Some(fut));
                }
                None
            }
            Target::Asyncio(fut, bridge) => {
                let outcome = match outcome {
                    Ok(value) => Outcome::Value(value),
                    Err(err) => Outcome::Error(err),
                };
                let item = Completion::Resolve(fut.clone_ref(py), outcome);
                bridge.push_deferred(item).then(|| bridge.clone())
            }
        }
    }

    /// Calls the function inside the captured context.
    pub(crate) fn invoke(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let ctx = self.context.as_ptr();
        // SAFETY: `ctx` is a live Context object owned by this job; each job has its
        // own copy, so it is never entered by two threads at once.
        if unsafe { ffi::PyContext_Enter(ctx) } != 0 {
            return Err(PyErr::fetch(py));
        }
        let result = self
            .func
            .bind(py)
            .call(self.args.bind(py), self.kwargs.as_ref().map(|k| k.bind(py)));
        // SAFETY: balanced with the successful enter above, on the same thread.
        if unsafe { ffi::PyContext_Exit(ctx) } != 0 {
            crate::errors::report_unraisable(py, PyErr::fetch(py), None);
        }
        result.map(Bound::unbind)
    }

    /// Settles the target as cancelled (pool shut down before the call started).
    pub(crate) fn cancel(self, py: Python<'_>) {
        self.target.cancel(py);
    }

    /// Like [`cancel`](Self::cancel) for a job already marked started (`is_wanted`
    /// claimed it): a `concurrent.futures.Future` is RUNNING then and refuses
    /// `cancel()`, so it gets a `CancelledError` as its exception. Returns the bridge
    /// to ring, as [`deliver`](Self::deliver) does.
    pub(crate) fn cancel_claimed(self, py: Python<'_>) -> Option<Arc<LoopBridge>> {
        if !matches!(self.target, Target::Concurrent(_)) {
            self.cancel(py);
            return None;
        }
        let err = crate::errors::new_exception(
            concurrent_cancelled_error(py),
            "the pool shut down before this call started",
        );
        self.deliver_as(py, Err(err), JobEnd::Cancelled)
    }

    /// Settles the target with `err` (the pool could not run it).
    pub(crate) fn fail(self, py: Python<'_>, err: PyErr) {
        match &self.target {
            Target::Future(fut) => {
                PyLeaseFuture::settle(fut, py, Outcome::Error(err));
            }
            Target::Asyncio(fut, bridge) => {
                bridge.resolve(py, fut.clone_ref(py), Outcome::Error(err));
            }
            Target::Concurrent(fut) => {
                let fut = fut.bind(py);
                if fut
                    .call_method0("set_running_or_notify_cancel")
                    .and_then(|v| v.is_truthy())
                    .unwrap_or(false)
                {
                    crate::errors::best_effort(
                        py,
                        fut.call_method1("set_exception", (exception_value(py, &err),)),
                    );
                }
            }
        }
    }
}

/// A duration as whole nanoseconds for the metrics (saturating past ~584 years).
pub(crate) fn duration_ns(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
