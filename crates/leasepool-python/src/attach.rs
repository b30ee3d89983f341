//! Attaching to the interpreter from code that may run on any thread.
//!
//! Rule: no thread created outside `threading` attaches to the interpreter. Giving a
//! new thread a thread state takes CPython's internal `HEAD_LOCK` before the GIL, so
//! a `fork()` on another thread (a `ProcessPoolExecutor` starting a worker) can
//! copy the lock held and leave the child stuck forever in `PyOS_AfterFork_Child`
//! (CPython gh-112275, present in 3.11). Threads that `threading` created (the event
//! loop, worker threads, executor management threads) already have a thread state,
//! so attaching them again takes no such lock.

use pyo3::prelude::*;

/// Runs `f` attached to the interpreter, but only on a thread the interpreter already
/// knows; `None` on any other thread (e.g. the checker clock) or once the interpreter
/// is finalizing.
#[cfg(unix)]
pub(crate) fn attach_known_thread<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    // SAFETY: reads the calling thread's own thread-state slot; needs no GIL.
    let known = unsafe { !pyo3::ffi::PyGILState_GetThisThreadState().is_null() };
    if !known {
        return None;
    }
    Python::try_attach(f)
}

/// Without `fork()` there is no such race: any thread may attach (e.g. the checker
/// clock ringing a Windows proactor loop, which has no `add_reader`).
#[cfg(not(unix))]
pub(crate) fn attach_known_thread<R>(f: impl FnOnce(Python<'_>) -> R) -> Option<R> {
    Python::try_attach(f)
}
