//! What the manager asks of a process or interpreter pool (`ExecutorPool`): take
//! calls, shut down (letting running calls finish) or revoke (failing them).

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
        let refused = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Open {
                st.queue.push_back(Item {
                    job,
                    claimed: false,
                });
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
        let refused = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Open {
                st.queue.extend(jobs.into_iter().map(|job| Item {
                    job,
                    claimed: false,
                }));
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
        let (items, futures, generation, drained) = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Revoked {
                return;
            }
            st.mode = Mode::Revoked;
            let mut items: Vec<(Item, bool)> = st.queue.drain(..).map(|i| (i, false)).collect();
            let mut futures = Vec::new();
            for chunk in st.chunks.values_mut() {
                items.extend(chunk.items.drain(..).map(|i| (i, true)));
                futures.extend(chunk.future.as_ref().map(|f| f.clone_ref(py)));
            }
            (
                items,
                futures,
                st.generation.clone(),
                self.take_drained(&mut st),
            )
        };
        let mut rings = Rings::default();
        for (item, dispatched) in items {
            let message = match (dispatched, self.kind()) {
                (true, Kind::Process) => {
                    "Executor lease expired and was revoked; the worker processes running \
                     its calls were terminated"
                }
                (true, Kind::Interpreter) => {
                    "Executor lease expired and was revoked while this call was running"
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
            if self.kind() == Kind::Process {
                // The executor sees its workers die, fails what it still holds and
                // shuts itself down.
                Self::terminate_processes(py, &generation.executor(py));
            }
        }
        self.finish_drain(py, drained);
    }

    fn take_reapable(&self) -> Reapable {
        std::mem::take(&mut lock(&self.state).reapable)
    }
}
