//! Process workers that run for months, the manager-wide part: the crash breaker
//! (decided by the engine's `leasepool::breaker`), the retry budget of idempotent
//! calls, and the context variables copied into workers. Memory recycling is the
//! worker's own decision (`_process_worker`); its reports arrive in `dispatch.rs`.

use std::time::Duration;

use leasepool::breaker::{BreakerPolicy, BreakerState, BreakerTransition, CrashBreaker, Refused};
use leasepool::expiry::monotonic;

use super::*;
use crate::logging::{Logger, INFO, WARNING};
use crate::py_cache::{context_payload, retry_budget};

/// What `leasepool._worker_options.split_worker_options` took out of the executor
/// arguments, for the backend to keep.
#[derive(Default)]
pub(crate) struct Resilience {
    breaker: Option<Mutex<CrashBreaker>>,
    /// The "limit below what a worker needs" WARNING was logged (once per manager).
    warned_tight_memory: AtomicBool,
    /// `((module, attribute, var), ...)`: the context variables copied into workers.
    context: Option<Py<PyTuple>>,
}

impl Resilience {
    /// From `split_worker_options`'s breaker tuple and context specs.
    pub(crate) fn new(
        breaker: Option<(u32, f64, f64)>,
        context: Option<Bound<'_, PyTuple>>,
    ) -> PyResult<Self> {
        let seconds = |name: &str, value: f64| {
            Duration::try_from_secs_f64(value).map_err(|_| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "{name} must be a finite number of seconds > 0 that fits a duration, \
                     got {value}"
                ))
            })
        };
        let breaker = breaker
            .map(|(crashes, window, cooldown)| {
                BreakerPolicy::new(
                    crashes,
                    seconds("window_seconds", window)?,
                    seconds("cooldown_seconds", cooldown)?,
                )
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))
            })
            .transpose()?
            .map(|policy| Mutex::new(CrashBreaker::new(policy)));
        let context = context.filter(|specs| !specs.is_empty()).map(Bound::unbind);
        Ok(Self {
            breaker,
            warned_tight_memory: AtomicBool::new(false),
            context,
        })
    }
}

/// The engine clock as a `Duration` (the breaker's time base; the tests' clock seam
/// moves it).
fn now() -> Duration {
    Duration::from_secs_f64(monotonic().max(0.0))
}

/// `WorkerCrashLoopError`, with `retry_after`.
fn crash_loop_error(py: Python<'_>, refused: Refused, max_crashes: u32) -> PyErr {
    let retry_after = refused.retry_after.as_secs_f64();
    let message = format!(
        "Worker processes keep crashing ({} crashes, breaker threshold {max_crashes}); \
         calls fail fast for {retry_after:.1} more seconds. The call did not start.",
        refused.crashes
    );
    let err = make_error(exception_class(py, "WorkerCrashLoopError"), message);
    let _ = err.value(py).setattr("retry_after", retry_after);
    err
}

impl ProcessBackend {
    fn log(&self, py: Python<'_>, level: i32, msg: &str, args: Vec<Py<PyAny>>) {
        let logger = Logger::new(py, self.logger.clone_ref(py));
        if let Ok(args) = PyTuple::new(py, args) {
            logger.log(py, level, msg, args, None);
        }
    }

    fn announce(&self, py: Python<'_>, change: Option<BreakerTransition>) {
        let Some(change) = change else { return };
        let text =
            |s: String| -> Py<PyAny> { pyo3::types::PyString::new(py, &s).into_any().unbind() };
        match change {
            BreakerTransition::Opened { crashes, cooldown } => self.log(
                py,
                WARNING,
                "Crash breaker opened crashes=%s cooldown_seconds=%s: worker processes keep \
                 dying; calls fail fast until the cool-down ends",
                vec![
                    text(crashes.to_string()),
                    text(format!("{:.1}", cooldown.as_secs_f64())),
                ],
            ),
            BreakerTransition::HalfOpened => self.log(
                py,
                INFO,
                "Crash breaker half-open: cool-down over, letting calls through on trial",
                Vec::new(),
            ),
            BreakerTransition::Closed => self.log(
                py,
                INFO,
                "Crash breaker closed: a call completed after the cool-down",
                Vec::new(),
            ),
        }
    }

    /// `true` the first time only: whether to warn that `max_worker_memory` is below
    /// what a fresh worker needs.
    pub(super) fn warned_tight_memory(&self) -> bool {
        self.resilience
            .warned_tight_memory
            .swap(true, Ordering::Relaxed)
    }

    /// Whether a crash breaker watches this backend's workers.
    pub(super) fn has_breaker(&self) -> bool {
        self.resilience.breaker.is_some()
    }

    /// Whether `calls` new calls may go to worker processes (`WorkerCrashLoopError` if
    /// the breaker is open; each counts as refused), and the breaker epoch they are
    /// admitted in (0 without a breaker).
    pub(crate) fn admit(&self, py: Python<'_>, calls: usize) -> PyResult<u64> {
        let Some(breaker) = &self.resilience.breaker else {
            return Ok(0);
        };
        let (admitted, change, max) = {
            let mut breaker = lock(breaker);
            let calls = u64::try_from(calls).unwrap_or(u64::MAX);
            let (admitted, change) = breaker.admit(now(), calls);
            (admitted, change, breaker.policy().max_crashes())
        };
        self.announce(py, change);
        admitted.map_err(|refused| crash_loop_error(py, refused, max))
    }

    /// The error for calls that must not start a worker now, if the breaker is open.
    pub(super) fn refusal(&self, py: Python<'_>) -> Option<PyErr> {
        let breaker = self.resilience.breaker.as_ref()?;
        let (snapshot, max) = {
            let breaker = lock(breaker);
            (breaker.snapshot(now()), breaker.policy().max_crashes())
        };
        matches!(snapshot.state, BreakerState::Open { .. }).then(|| {
            let refused = Refused {
                retry_after: snapshot.retry_after,
                crashes: snapshot.recent_crashes,
            };
            crash_loop_error(py, refused, max)
        })
    }

    /// A worker process died under a call (not one retired, revoked or stopped).
    pub(super) fn crash_observed(&self, py: Python<'_>) {
        if let Some(breaker) = &self.resilience.breaker {
            let change = lock(breaker).record_crash(now());
            self.announce(py, change);
        }
    }

    /// Calls completed, the latest admitted in `epoch`: a half-open breaker closes if
    /// that was since it half-opened.
    pub(super) fn success_observed(&self, py: Python<'_>, epoch: u64) {
        if let Some(breaker) = &self.resilience.breaker {
            let change = lock(breaker).record_success(epoch);
            self.announce(py, change);
        }
    }

    /// Whether the breaker refuses calls now.
    pub(super) fn breaker_is_open(&self) -> bool {
        self.resilience
            .breaker
            .as_ref()
            .is_some_and(|breaker| lock(breaker).is_open(now()))
    }

    /// `calls` queued calls failed with the breaker's refusal instead of starting a
    /// worker.
    pub(super) fn count_refused(&self, calls: usize) {
        if let Some(breaker) = &self.resilience.breaker {
            lock(breaker).count_refused(u64::try_from(calls).unwrap_or(u64::MAX));
        }
    }

    /// `stop()`: what the breaker learnt no longer applies.
    pub(crate) fn reset_breaker(&self) {
        if let Some(breaker) = &self.resilience.breaker {
            lock(breaker).reset();
        }
    }

    /// `stats()["crash_breaker"]`, if there is a breaker.
    pub(crate) fn breaker_stats<'py>(
        &self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(breaker) = &self.resilience.breaker else {
            return Ok(None);
        };
        let (snap, policy) = {
            let breaker = lock(breaker);
            (breaker.snapshot(now()), *breaker.policy())
        };
        let stats = PyDict::new(py);
        stats.set_item("state", snap.state.name())?;
        stats.set_item("recent_crashes", snap.recent_crashes)?;
        stats.set_item("retry_after", snap.retry_after.as_secs_f64())?;
        stats.set_item("opened", snap.opened)?;
        stats.set_item("refused", snap.refused)?;
        stats.set_item("max_crashes", policy.max_crashes())?;
        stats.set_item("window_seconds", policy.window().as_secs_f64())?;
        stats.set_item("cooldown_seconds", policy.cooldown().as_secs_f64())?;
        Ok(Some(stats))
    }

    /// `(opened, refused)` for `metrics()`.
    pub(crate) fn breaker_counts(&self) -> (u64, u64) {
        self.resilience.breaker.as_ref().map_or((0, 0), |breaker| {
            let snap = lock(breaker).snapshot(now());
            (snap.opened, snap.refused)
        })
    }

    /// With `context_vars`: the call's context variables set in the context it was
    /// submitted from, pickled for its worker (an empty tuple if none is set: the
    /// worker still runs the call in a context of its own, so nothing a call sets
    /// reaches the next one). `None` without `context_vars`.
    pub(super) fn context_of(&self, py: Python<'_>, item: &Item) -> PyResult<Option<Py<PyAny>>> {
        let Some(specs) = &self.resilience.context else {
            return Ok(None);
        };
        let payload = context_payload(py)?.call1((item.job.context(py), specs.bind(py)))?;
        Ok(Some(payload.unbind()))
    }
}

impl Item {
    /// How many more runs the call's callable allows when its worker dies
    /// (`leasepool.resilience.idempotent`); read at a crash only.
    pub(super) fn retry_budget(&self, py: Python<'_>) -> u32 {
        retry_budget(py)
            .and_then(|budget| budget.call1((self.job.parts().0.bind(py),))?.extract())
            .unwrap_or(0)
    }
}
