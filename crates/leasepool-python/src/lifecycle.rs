//! What the process's own lifecycle does to the engine: one registry of live objects
//! (managers, grinders, thread and process pools), one `os.register_at_fork` hook and
//! one `threading._register_atexit` hook, both registered when the module loads.
//!
//! After `fork()` only the forking thread exists in the child: every object forgets
//! the parent's threads, loops and queued Python objects *without touching them* (no
//! join, no drop that could run Python code or take a lock a vanished thread held).
//! At interpreter exit, before the interpreter joins non-daemon threads, every pool
//! stops taking work so its workers can finish and be joined.

use std::sync::{Arc, Mutex, Weak};

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

/// Tracks `object` until it is dropped.
pub(crate) fn track<T: ProcessScoped + 'static>(object: &Arc<T>) {
    let weak: Weak<dyn ProcessScoped> = Arc::downgrade(object) as Weak<dyn ProcessScoped>;
    let mut live = lock(&LIVE);
    live.retain(|weak| weak.strong_count() > 0);
    live.push(weak);
}

/// `os.register_at_fork(after_in_child=...)`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    // A lock held by a thread that did not survive the fork is never released.
    let Ok(mut live) = LIVE.try_lock() else {
        return;
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
    crate::process_pool::begin_exit(py);
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
