//! What the process's own lifecycle does to the engine: one registry of live objects
//! (managers, grinders, thread and process pools), one `os.register_at_fork` hook and
//! one `threading._register_atexit` hook, both registered when the module loads.
//!
//! After `fork()` only the forking thread exists in the child: every object forgets
//! the parent's threads, loops and queued Python objects *without touching them* (no
//! join, no drop that could run Python code or take a lock a vanished thread held).
//! At interpreter exit, before the interpreter joins non-daemon threads, every pool
//! stops taking work so its workers can finish and be joined.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::sync::lock;

/// An object whose threads or event-loop registrations belong to one process.
pub(crate) trait ProcessScoped: Send + Sync {
    /// In a forked child: forget the parent's threads and loops; never join, drop
    /// Python objects or block. Returns whether the object is still this process's
    /// to track (a manager or grinder can be started again in the child; a pool
    /// belongs to the parent for good).
    fn forget_after_fork(&self) -> bool;

    /// At interpreter exit: stop taking work (running calls finish).
    fn shut_down_at_exit(&self, _py: Python<'_>) {}
}

static LIVE: Mutex<Vec<Weak<dyn ProcessScoped>>> = Mutex::new(Vec::new());

/// Interpreter exit began (the exit hook ran): no executor is created any more.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Whether interpreter exit began.
pub(crate) fn exiting() -> bool {
    EXITING.load(Ordering::Acquire)
}

/// Executors being created on a background thread (their worker processes starting).
/// The exit hook waits for them: an executor whose manager thread starts after the
/// stdlib's own exit hook has listed the threads to join is never woken, and
/// `multiprocessing`'s exit handler then joins its idle workers forever.
///
/// Worker processes are forked *during* a creation and inherit both this count and
/// the exit hook, so the count is tied to the process that keeps it: a forked child
/// never waits for (or locks anything of) its parent's creations.
static CREATIONS_IN_FLIGHT: Mutex<usize> = Mutex::new(0);
static CREATIONS_OWNER: AtomicU32 = AtomicU32::new(0);
static CREATIONS_DONE: Condvar = Condvar::new();
/// How long the exit hook waits for creations in flight.
const EXIT_CREATION_WAIT: Duration = Duration::from_secs(10);

/// An executor creation began (see [`creation_finished`]).
pub(crate) fn creation_started() {
    let mut in_flight = lock(&CREATIONS_IN_FLIGHT);
    CREATIONS_OWNER.store(std::process::id(), Ordering::Release);
    *in_flight += 1;
}

/// An executor creation ended, made or not.
pub(crate) fn creation_finished() {
    let mut in_flight = lock(&CREATIONS_IN_FLIGHT);
    *in_flight = in_flight.saturating_sub(1);
    CREATIONS_DONE.notify_all();
}

/// Waits (bounded) until no creation of this process is in flight.
fn wait_for_creations() {
    if CREATIONS_OWNER.load(Ordering::Acquire) != std::process::id() {
        return; // nothing created here, or an inherited count (a forked child)
    }
    let in_flight = lock(&CREATIONS_IN_FLIGHT);
    let waited = CREATIONS_DONE.wait_timeout_while(in_flight, EXIT_CREATION_WAIT, |n| *n > 0);
    drop(waited);
}

/// Set in a forked child whose registry lock was held, at the fork, by a thread that
/// does not exist in the child: that lock is never released, so this process leaves
/// the registry alone (it tracks nothing; its exit hook does nothing).
static REGISTRY_LOST_IN_FORK: AtomicBool = AtomicBool::new(false);

/// Tracks `object` until it is dropped.
pub(crate) fn track<T: ProcessScoped + 'static>(object: &Arc<T>) {
    if REGISTRY_LOST_IN_FORK.load(Ordering::Acquire) {
        return;
    }
    let weak: Weak<dyn ProcessScoped> = Arc::downgrade(object) as Weak<dyn ProcessScoped>;
    let mut live = lock(&LIVE);
    live.retain(|weak| weak.strong_count() > 0);
    live.push(weak);
}

/// `os.register_at_fork(after_in_child=...)`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    // A lock held by a thread that did not survive the fork is never released.
    let mut live = match LIVE.try_lock() {
        Ok(live) => live,
        Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            REGISTRY_LOST_IN_FORK.store(true, Ordering::Release);
            return;
        }
    };
    // Only the forking thread exists and it holds the GIL: no reference upgraded
    // here can be the last one, so nothing is dropped.
    live.retain(|weak| {
        weak.upgrade()
            .is_some_and(|object| object.forget_after_fork())
    });
}

/// `threading._register_atexit`: runs before the interpreter joins non-daemon
/// threads, and — registered after `concurrent.futures.process` was imported —
/// before that module's own exit hook, which then joins the process workers.
#[pyfunction]
pub(crate) fn _shut_down_at_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    if REGISTRY_LOST_IN_FORK.load(Ordering::Acquire) {
        return; // nothing of the registry is this process's (see above)
    }
    // Let every executor being created right now finish, so the stdlib's exit hook
    // (which runs after this one) finds and joins it.
    py.detach(wait_for_creations);
    let objects: Vec<Arc<dyn ProcessScoped>> = std::mem::take(&mut *lock(&LIVE))
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for object in objects {
        object.shut_down_at_exit(py);
    }
}

/// Registers both hooks (at module load).
pub(crate) fn install(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_function(wrap_pyfunction!(_after_fork_in_child, module)?)?;
    module.add_function(wrap_pyfunction!(_shut_down_at_exit, module)?)?;
    // Import first so that ProcessPoolExecutor's exit hook is registered before ours,
    // and therefore runs after it (the hooks run last-registered first).
    py.import("concurrent.futures.process")?;
    py.import("threading")?
        .call_method1("_register_atexit", (module.getattr("_shut_down_at_exit")?,))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("after_in_child", module.getattr("_after_fork_in_child")?)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
