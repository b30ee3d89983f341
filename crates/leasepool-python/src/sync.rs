//! The binding's one lock helper.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, ignoring poisoning. Every pymethod and worker loop turns a panic into
/// a Python `RuntimeError`, and every critical section here leaves its data consistent
/// at each step, so a panic in one call must not turn every later call on the same
/// object into a second panic.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
