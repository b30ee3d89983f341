//! The process backend at interpreter exit and after `fork()`: its part of the
//! `lifecycle` hooks.

use super::*;

/// Executors drained during interpreter exit, kept alive (never dropped) so that the
/// stdlib's own exit hook wakes and joins their management threads. Dropping one
/// there instead makes its management thread close its wakeup pipe while
/// `concurrent.futures.process._python_exit` writes to it without the executor's
/// lock (`OSError: [Errno 9] Bad file descriptor`, "Exception ignored" at exit).
pub(super) static KEPT_FOR_EXIT: Mutex<Vec<Arc<Generation>>> = Mutex::new(Vec::new());

impl crate::lifecycle::ProcessScoped for ProcessPool {
    /// A forked child owns none of the parent's executors: they are not its to shut
    /// down.
    fn forget_after_fork(&self) -> bool {
        false
    }

    /// Stop dispatching and cancel what has not started.
    fn shut_down_at_exit(&self, py: Python<'_>) {
        self.shutdown(py, None);
    }
}
