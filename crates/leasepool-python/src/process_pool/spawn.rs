//! Creating a pool's next executor on a spawner thread of its own, and what
//! happens when none can be made.

use super::*;

impl ProcessPool {
    /// Creates the next executor and starts its worker processes on a `threading`
    /// thread of its own (`_background.run`), then dispatches from there. Starting
    /// processes takes milliseconds each (`workers_per_pool` of them, more with
    /// spawn/forkserver), and the caller is usually the event loop.
    pub(super) fn spawn_generation(self: &Arc<Self>, py: Python<'_>) {
        if !self.kind().owns_processes() && self.kind() != Kind::Interpreter {
            // A Dask executor is a handle on the manager's client: nothing to start.
            return self.spawn_now(py);
        }
        if crate::lifecycle::exiting() {
            self.spawn_failed(
                py,
                PyRuntimeError::new_err(
                    "leasepool: cannot start worker processes during interpreter shutdown",
                ),
            );
            return;
        }
        crate::lifecycle::creation_started();
        let task = Py::new(
            py,
            SpawnGeneration {
                pool: Mutex::new(Some(self.clone())),
            },
        );
        let started = task.and_then(|task| {
            background_run(py)?
                .call1(("leasepool-spawn", task))?
                .is_truthy()
        });
        match started {
            Ok(true) => {}
            Ok(false) => {
                crate::lifecycle::creation_finished();
                self.spawn_failed(
                    py,
                    PyRuntimeError::new_err(
                        "leasepool: cannot start worker processes during interpreter shutdown",
                    ),
                );
            }
            Err(err) => {
                crate::lifecycle::creation_finished();
                self.spawn_failed(py, err);
            }
        }
    }

    /// The spawner's work: a new executor with every worker process started.
    fn spawn_now(self: &Arc<Self>, py: Python<'_>) {
        let created = self.create_generation(py).and_then(|generation| {
            if self.kind().owns_processes() {
                let executor = generation.executor(py);
                // A worker that leaves gracefully is always replaced (see
                // `leasepool._process_backend.keep_workers_replaced`).
                crate::py_cache::keep_workers_replaced(py)?.call1((&executor,))?;
                // Now, on this thread, instead of at the first `submit()` (see
                // `leasepool._process_backend.launch_processes`).
                launch_processes(py)?.call1((executor,))?;
            }
            Ok(())
        });
        match created {
            Ok(()) => {
                lock(&self.state).spawning = false;
                self.kick(py);
            }
            Err(err) => {
                self.spawn_failed(py, err);
            }
        }
    }

    /// No executor could be made: what waits for one fails with the error.
    pub(super) fn spawn_failed(&self, py: Python<'_>, err: PyErr) -> usize {
        let queued: Vec<Item> = {
            let mut st = lock(&self.state);
            st.spawning = false;
            st.queue.drain(..).collect()
        };
        let failed = queued.len();
        let mut rings = Rings::default();
        for item in queued {
            item.fail(py, err.clone_ref(py), &mut rings);
        }
        let drained = self.take_drained(&mut lock(&self.state));
        rings.ring(py);
        self.finish_drain(py, drained);
        failed
    }

    /// Dispatches what fits and rings the loops that got outcomes meanwhile.
    pub(super) fn kick(&self, py: Python<'_>) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let mut rings = Rings::default();
        this.pump(py, &mut rings);
        rings.ring(py);
    }
}

/// The spawner thread's target (see [`ProcessPool::spawn_generation`]). Like
/// `SettleCrash`, it lets go of the pool before its thread ends.
#[pyclass(module = "leasepool._engine", frozen)]
struct SpawnGeneration {
    pool: Mutex<Option<Arc<ProcessPool>>>,
}

#[pymethods]
impl SpawnGeneration {
    fn __call__(&self, py: Python<'_>) {
        if let Some(pool) = lock(&self.pool).take() {
            crate::errors::contain_panics(py, "leasepool process spawner", || {
                pool.spawn_now(py);
            });
            drop(pool);
        }
        crate::lifecycle::creation_finished();
    }
}
