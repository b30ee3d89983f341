//! One place for every synchronisation primitive the engine uses.
//!
//! Under `cfg(loom)` these are loom's model-checked doubles, so the concurrency
//! tests in `tests/loom_*.rs` explore every interleaving of the same code that
//! ships. Nothing else in the crate may import from `std::sync` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning.
///
/// Engine critical sections never run user code, so a panic while one is held is an
/// engine bug that has already been reported; the protected state is still
/// consistent at every await-free point, and refusing service forever would turn one
/// bug into a dead process.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
