//! The process backend at interpreter exit and after `fork()` (its part of the
//! `lifecycle` hooks), and the bookkeeping of worker spawns in flight.

use super::*;

/// Interpreter exit began (our exit hook ran): no executor is created any more.
pub(super) static EXITING: AtomicBool = AtomicBool::new(false);
/// Spawner threads started and not finished. The exit hook waits for them: an
/// executor whose manager thread starts after the stdlib's own exit hook has listed
/// the threads to join is never woken, and `multiprocessing`'s exit handler then
/// joins its idle workers forever.
///
/// Worker processes are forked *during* a spawn and inherit both this count and the
/// exit hook, so the count is tied to the process that keeps it: a forked child
/// never waits for (or locks anything of) its parent's spawns.
pub(super) static SPAWNS_IN_FLIGHT: Mutex<usize> = Mutex::new(0);
pub(super) static SPAWN_COUNT_OWNER: AtomicU32 = AtomicU32::new(0);
pub(super) static SPAWNS_DONE: std::sync::Condvar = std::sync::Condvar::new();
/// How long the exit hook waits for spawns in flight.
pub(super) const EXIT_SPAWN_WAIT: Duration = Duration::from_secs(10);

pub(super) fn spawn_started() {
    let mut in_flight = lock(&SPAWNS_IN_FLIGHT);
    SPAWN_COUNT_OWNER.store(std::process::id(), Ordering::Release);
    *in_flight += 1;
}

pub(super) fn spawn_finished() {
    let mut in_flight = lock(&SPAWNS_IN_FLIGHT);
    *in_flight = in_flight.saturating_sub(1);
    SPAWNS_DONE.notify_all();
}

/// Waits (bounded) until no spawn of this process is in flight.
pub(super) fn wait_for_spawns() {
    if SPAWN_COUNT_OWNER.load(Ordering::Acquire) != std::process::id() {
        return; // nothing spawned here, or an inherited count (a forked child)
    }
    let in_flight = lock(&SPAWNS_IN_FLIGHT);
    let waited = SPAWNS_DONE.wait_timeout_while(in_flight, EXIT_SPAWN_WAIT, |n| *n > 0);
    drop(waited);
}
/// Executors drained during interpreter exit, kept alive (never dropped) so that the
/// stdlib's own exit hook wakes and joins their management threads. Dropping one
/// there instead makes its management thread close its wakeup pipe while
/// `concurrent.futures.process._python_exit` writes to it without the executor's
/// lock (`OSError: [Errno 9] Bad file descriptor`, "Exception ignored" at exit).
pub(super) static KEPT_FOR_EXIT: Mutex<Vec<Arc<Generation>>> = Mutex::new(Vec::new());

/// Interpreter exit began (the exit hook runs before `ProcessPoolExecutor`'s own,
/// which then joins the workers): no executor is created any more, and every
/// executor being created right now is let finish so that hook finds and joins it.
pub(crate) fn begin_exit(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    py.detach(wait_for_spawns);
}

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
