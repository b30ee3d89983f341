//! What the manager asks of a process or interpreter pool (`ExecutorPool`): take
//! calls, shut down (letting running calls finish) or revoke (failing them).

use leasepool::DrainReport;

use super::*;

impl ExecutorPool for ProcessPool {
    fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    fn broken_error(&self, py: Python<'_>) -> PyErr {
        let message = lock(&self.state).broken_message.clone();
        make_error(self.broken_cls(py), message)
    }

    fn submit(&self, py: Python<'_>, job: Job) -> Result<(), (Job, PyErr)> {
        let epoch = match self.backend.admit(py, 1) {
            Ok(epoch) => epoch,
            Err(err) => return Err((job, err)),
        };
        let refused = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Open {
                st.queue
                    .push_back(Item::queued(job, self.backend.metrics.get(), epoch));
                None
            } else {
                Some((job, st.mode, st.broken_message.clone()))
            }
        };
        if let Some((job, mode, message)) = refused {
            return Err((job, self.closed_error(py, mode, &message)));
        }
        self.kick(py);
        Ok(())
    }

    fn submit_many(&self, py: Python<'_>, jobs: Vec<Job>) -> Result<(), (Vec<Job>, PyErr)> {
        let epoch = match self.backend.admit(py, jobs.len()) {
            Ok(epoch) => epoch,
            Err(err) => return Err((jobs, err)),
        };
        let refused = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Open {
                let metrics = self.backend.metrics.get();
                st.queue.extend(
                    jobs.into_iter()
                        .map(|job| Item::queued(job, metrics, epoch)),
                );
                None
            } else {
                Some((jobs, st.mode, st.broken_message.clone()))
            }
        };
        if let Some((jobs, mode, message)) = refused {
            return Err((jobs, self.closed_error(py, mode, &message)));
        }
        self.kick(py);
        Ok(())
    }

    fn shutdown(&self, py: Python<'_>, barrier: Option<Arc<DrainBarrier>>) {
        let (cancelled, drained) = {
            let mut st = lock(&self.state);
            if barrier.is_some() {
                st.barrier = barrier;
            }
            if st.mode == Mode::Open {
                st.mode = Mode::Draining;
            }
            let cancelled: Vec<Item> = st.queue.drain(..).collect();
            let drained = self.take_drained(&mut st).or_else(|| {
                // Already drained before (e.g. shut down twice): the barrier is due now.
                if st.drained {
                    Some(st.barrier.take())
                } else {
                    None
                }
            });
            (cancelled, drained)
        };
        self.halt_workers(py);
        let mut rings = Rings::default();
        for item in cancelled {
            item.cancel(py, &mut rings);
        }
        rings.ring(py);
        self.finish_drain(py, drained);
    }

    fn revoke(&self, py: Python<'_>) {
        self.stop_calls(py, Stopped::Expired);
    }

    fn tally(&self) -> DrainReport {
        DrainReport {
            finished: self.finished.load(Ordering::Relaxed),
            ..DrainReport::default()
        }
    }

    fn abort(&self, py: Python<'_>) -> DrainReport {
        self.stop_calls(py, Stopped::Drained)
    }

    fn cancel_hook(&self) -> Option<Box<dyn crate::aio::FutureHook>> {
        self.abandon_hook()
    }

    fn take_reapable(&self) -> Reapable {
        let mut st = lock(&self.state);
        let reapable = std::mem::take(&mut st.reapable);
        // An abandoned interpreter pool's threads still run calls: joining them
        // would hold `stop()` for as long as those calls last.
        if st.abandoned {
            return Reapable::default();
        }
        reapable
    }
}

/// Why [`ProcessPool::stop_calls`] stops every call of a pool.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    /// The lease passed its hard expiry: every call fails with `LeaseExpiredError`.
    Expired,
    /// A graceful drain's deadline passed: queued calls are cancelled, running ones
    /// fail with `LeasePoolDrainingError`.
    Drained,
}

impl ProcessPool {
    /// Fails (or cancels) every queued and dispatched call, cancels the chunks the
    /// executor has not started and terminates the worker processes (process backend;
    /// an interpreter's calls cannot be stopped, so a drained interpreter pool is
    /// abandoned: its shutdown does not wait for them). Returns what it counted.
    pub(super) fn stop_calls(&self, py: Python<'_>, why: Stopped) -> DrainReport {
        let (items, futures, generation, drained) = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Revoked {
                return DrainReport::default();
            }
            st.mode = Mode::Revoked;
            st.abandoned = why == Stopped::Drained && self.kind() == Kind::Interpreter;
            let mut items: Vec<(Item, bool)> = st.queue.drain(..).map(|i| (i, false)).collect();
            let mut futures = Vec::new();
            for chunk in st.chunks.values_mut() {
                items.extend(chunk.items.drain(..).map(|i| (i, true)));
                futures.extend(chunk.future.as_ref().map(|f| f.clone_ref(py)));
            }
            let drained = if st.abandoned {
                st.drained = true;
                Some(st.barrier.take())
            } else {
                self.take_drained(&mut st)
            };
            (items, futures, st.generation.clone(), drained)
        };
        let mut rings = Rings::default();
        let mut counted = DrainReport::default();
        for (item, dispatched) in items {
            if why == Stopped::Drained {
                self.drain_item(py, item, dispatched, &mut counted, &mut rings);
                continue;
            }
            let message = match (dispatched, self.kind()) {
                (true, Kind::Process) => {
                    "Executor lease expired and was revoked; the worker processes running \
                     its calls were terminated"
                }
                (true, Kind::Interpreter) => {
                    "Executor lease expired and was revoked while this call was running"
                }
                (true, Kind::Dask) => {
                    "Executor lease expired and was revoked; the Dask tasks running its \
                     calls were cancelled"
                }
                (false, _) => "Executor lease expired and was revoked before this call started",
            };
            item.fail(py, lease_expired(py, message), &mut rings);
        }
        rings.ring(py);
        // Chunks the executor has not started never will; their callbacks find
        // nothing left to deliver.
        for future in futures {
            crate::errors::best_effort(py, future.bind(py).call_method0("cancel"));
        }
        if let Some(generation) = generation {
            if self.kind().owns_processes() {
                // The executor sees its workers die, fails what it still holds and
                // shuts itself down.
                Self::terminate_processes(py, &generation.executor(py));
            }
        }
        self.finish_drain(py, drained);
        counted
    }

    /// One call stopped by a drain's deadline: cancelled if it was still queued here,
    /// failed with `LeasePoolDrainingError` if an executor had it (counted as killed).
    /// A call whose caller had already given up is settled but not counted.
    fn drain_item(
        &self,
        py: Python<'_>,
        item: Item,
        dispatched: bool,
        counted: &mut DrainReport,
        rings: &mut Rings,
    ) {
        if item.job.is_cancelled(py) {
            item.cancel(py, rings);
            return;
        }
        if !dispatched {
            counted.cancelled += 1;
            item.cancel(py, rings);
            return;
        }
        counted.killed += 1;
        let message = match self.kind() {
            Kind::Process => {
                "The manager's drain deadline passed; the worker process running this call \
                 was terminated"
            }
            Kind::Interpreter => {
                "The manager's drain deadline passed while this call was running; it was \
                 abandoned (a sub-interpreter cannot be stopped)"
            }
            Kind::Dask => {
                "The manager's drain deadline passed; the Dask task running this call was \
                 cancelled"
            }
        };
        let err = make_error(exception_class(py, "LeasePoolDrainingError"), message);
        item.fail(py, err, rings);
    }
}
