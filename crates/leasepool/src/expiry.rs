//! The checker clock: a thread that sleeps until the next deadline and then rings.
//!
//! The manager's periodic check must run when the earliest lease hard-expires, every
//! `check_interval`, and right after `notify_scale_changed()`. The clock holds one
//! deadline; the front end lowers it as leases are granted ([`CheckerClock::arm_before`]
//! is a single atomic load when the deadline is already earlier, which is the common
//! case), pokes it for immediate checks, and sets the next deadline after each check.
//! When the deadline passes the clock calls `on_due` once and then waits for a new
//! deadline: it never polls, and an idle manager costs no CPU.

use std::thread::JoinHandle;
use std::time::Duration;

use crate::sync::{lock, Arc, AtomicU64, Condvar, Mutex, Ordering};

#[derive(Debug)]
struct ClockState {
    deadline: f64,
    poked: bool,
    shutdown: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<ClockState>,
    wake: Condvar,
    /// `deadline` as f64 bits, readable without the lock for the fast path.
    deadline_bits: AtomicU64,
}

/// A running checker clock; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct CheckerClock {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Seconds added to [`monotonic`] (an `f64` bit pattern; `0.0` is all zero bits).
static TEST_SKEW: AtomicU64 = AtomicU64::new(0);

/// Moves this process's engine clock `seconds` ahead of the OS clock: the seam that
/// lets tests drive time-based behaviour (expiry, idle retirement) without sleeping.
/// Only for tests; every deadline the engine computed before keeps its old value.
#[doc(hidden)]
pub fn set_clock_skew_for_tests(seconds: f64) {
    TEST_SKEW.store(seconds.to_bits(), Ordering::Relaxed);
}

/// Monotonic seconds on the same clock as Python's `time.monotonic()` (plus the
/// test skew, normally zero).
#[must_use]
pub fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec and CLOCK_MONOTONIC always exists on
    // the platforms we build for.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    #[allow(clippy::cast_precision_loss)]
    let secs = ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9;
    secs + f64::from_bits(TEST_SKEW.load(Ordering::Relaxed))
}

impl CheckerClock {
    /// Starts the clock thread (named `thread_name`) with its first `deadline`.
    ///
    /// # Errors
    /// The OS refused to start a thread.
    pub fn start(
        thread_name: String,
        deadline: f64,
        on_due: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(ClockState {
                deadline,
                poked: false,
                shutdown: false,
            }),
            wake: Condvar::new(),
            deadline_bits: AtomicU64::new(deadline.to_bits()),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name(thread_name)
            .spawn(move || run(&worker, &on_due))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Makes sure the clock rings no later than `deadline`.
    pub fn arm_before(&self, deadline: f64) {
        // Relaxed is enough: a stale (later) value only sends us to the locked path,
        // and the locked path re-checks under the mutex.
        if f64::from_bits(self.shared.deadline_bits.load(Ordering::Relaxed)) <= deadline {
            return;
        }
        let mut state = lock(&self.shared.state);
        if deadline < state.deadline {
            state.deadline = deadline;
            self.shared
                .deadline_bits
                .store(deadline.to_bits(), Ordering::Relaxed);
            self.shared.wake.notify_one();
        }
    }

    /// Replaces the deadline (after a check decided when the next one is due).
    pub fn reset(&self, deadline: f64) {
        let mut state = lock(&self.shared.state);
        state.deadline = deadline;
        self.shared
            .deadline_bits
            .store(deadline.to_bits(), Ordering::Relaxed);
        self.shared.wake.notify_one();
    }

    /// Rings as soon as possible.
    pub fn poke(&self) {
        lock(&self.shared.state).poked = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for CheckerClock {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            // The clock thread never runs foreign code, so joining cannot deadlock.
            let _ = thread.join();
        }
    }
}

fn run(shared: &Shared, on_due: &dyn Fn()) {
    let mut state = lock(&shared.state);
    loop {
        if state.shutdown {
            return;
        }
        let now = monotonic();
        if state.poked || now >= state.deadline {
            state.poked = false;
            state.deadline = f64::INFINITY;
            shared
                .deadline_bits
                .store(f64::INFINITY.to_bits(), Ordering::Relaxed);
            drop(state);
            on_due();
            state = lock(&shared.state);
            continue;
        }
        state = if state.deadline.is_finite() {
            let wait = Duration::from_secs_f64((state.deadline - now).min(86_400.0));
            match shared.wake.wait_timeout(state, wait) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            }
        } else {
            match shared.wake.wait(state) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            }
        };
    }
}
