//! The process backend at interpreter exit and after `fork()`: the registry of live
//! pools, the atexit and fork hooks, and the bookkeeping of worker spawns in flight.

use super::*;

pub(super) static LIVE_POOLS: Mutex<Vec<Weak<ProcessPool>>> = Mutex::new(Vec::new());
pub(super) static HOOKS_REGISTERED: AtomicBool = AtomicBool::new(false);
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

/// `threading` exit hook (runs before `ProcessPoolExecutor`'s own, which then joins
/// the workers): stop dispatching and cancel what has not started.
#[pyfunction]
pub(crate) fn _shutdown_process_pools(py: Python<'_>) {
    EXITING.store(true, Ordering::Release);
    // Runs before the stdlib's exit hook (registered earlier): let every executor
    // being created right now finish, so that hook finds and joins it.
    py.detach(wait_for_spawns);
    let pools: Vec<Arc<ProcessPool>> = std::mem::take(&mut *lock(&LIVE_POOLS))
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for pool in pools {
        pool.shutdown(py, None);
    }
}

/// `os.register_at_fork(after_in_child=...)`: a forked child owns none of the
/// parent's executors; forget them without touching them.
#[pyfunction]
pub(crate) fn _forget_process_pools_after_fork() {
    if let Ok(mut pools) = LIVE_POOLS.try_lock() {
        std::mem::forget(std::mem::take(&mut *pools));
    }
}

pub(super) fn register_hooks(py: Python<'_>) {
    if HOOKS_REGISTERED.swap(true, Ordering::AcqRel) {
        return;
    }
    let registered = (|| -> PyResult<()> {
        // Import first so that ProcessPoolExecutor's exit hook is registered before
        // ours, and therefore runs after it.
        py.import("concurrent.futures.process")?;
        let exit_hook = wrap_pyfunction!(_shutdown_process_pools, py)?;
        py.import("threading")?
            .call_method1("_register_atexit", (exit_hook,))?;
        let fork_hook = wrap_pyfunction!(_forget_process_pools_after_fork, py)?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("after_in_child", fork_hook)?;
        py.import("os")?
            .call_method("register_at_fork", (), Some(&kwargs))?;
        Ok(())
    })();
    if registered.is_err() {
        // Interpreter shutdown already began: nothing left to hook into.
        HOOKS_REGISTERED.store(false, Ordering::Release);
    }
}
