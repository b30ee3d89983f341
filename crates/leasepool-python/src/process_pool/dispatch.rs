//! Dispatch of the process backend: packing queued calls into chunks (as the engine's
//! `leasepool::chunking` plans), submitting them to the executor, and delivering
//! each chunk's outcomes (or handing a broken executor's chunks to `crash`).

use super::*;
use leasepool::routing::CallCost;

/// What becomes of a chunk whose task raised.
enum Failed {
    /// Nothing of it started: run it on the next executor.
    Requeue(Vec<Item>),
    /// Its executor broke under it: the crash settler decides.
    Casualty(Vec<Item>, PyErr),
    /// Its calls were failed.
    Settled,
}

impl ProcessPool {
    /// Calls for the next chunk, as the engine's planner
    /// ([`CallDurations::chunk_size`]) decides from the measured call times; one per
    /// task for interpreters and under `max_tasks_per_child`.
    pub(super) fn chunk_size(&self, st: &State) -> usize {
        if self.kind().one_call_per_task()
            || self
                .backend
                .settings
                .get()
                .is_some_and(|s| s.one_call_per_task)
        {
            return 1;
        }
        st.durations
            .chunk_size(st.queue.iter().map(Item::key), st.queue.len(), self.cap)
    }

    /// The executor to submit to, created if there is none (outside the lock; if two
    /// threads race, the loser's unused executor is discarded). Only the spawner
    /// thread creates one (see [`Self::spawn_generation`]).
    pub(super) fn create_generation(&self, py: Python<'_>) -> PyResult<Arc<Generation>> {
        if let Some(generation) = lock(&self.state).generation.clone() {
            return Ok(generation);
        }
        let settings = self.settings()?;
        let kwargs = settings.kwargs.bind(py).copy()?;
        self.kind().configure(py, self, settings, &kwargs)?;
        let executor = settings
            .executor_cls
            .bind(py)
            .call((self.backend.workers,), Some(&kwargs))?;
        let (winner, loser) = {
            let mut st = lock(&self.state);
            if let Some(existing) = st.generation.clone() {
                (existing, Some(executor))
            } else {
                st.next_generation += 1;
                let generation = Arc::new(Generation {
                    id: st.next_generation,
                    executor: Some(executor.unbind()),
                    completed: AtomicBool::new(false),
                    crash: PyOnceLock::new(),
                    casualties: Mutex::new(Vec::new()),
                    settling: AtomicBool::new(false),
                    settled: AtomicBool::new(false),
                });
                st.generation = Some(generation.clone());
                (generation, None)
            }
        };
        if let Some(unused) = loser {
            crate::errors::best_effort(py, unused.call_method1("shutdown", (false,)));
        }
        Ok(winner)
    }

    /// Moves queued calls to the executor, one chunk at a time, while there is room.
    ///
    /// One thread dispatches at a time (the loop, the spawner and the executor's
    /// management thread all pump), so chunks reach `executor.submit` in queue order:
    /// a thread that finds another dispatching leaves its work to it. The dispatcher
    /// gives the role up in the same critical section in which it finds nothing
    /// more to take, so work queued meanwhile is never stranded.
    pub(super) fn pump(self: &Arc<Self>, py: Python<'_>, rings: &mut Rings) {
        {
            let mut st = lock(&self.state);
            if std::mem::replace(&mut st.dispatching, true) {
                return;
            }
        }
        let _role = DispatchRole(self);
        loop {
            let (items, slot, seq) = {
                let mut st = lock(&self.state);
                if !matches!(st.mode, Mode::Open | Mode::Draining)
                    || st.queue.is_empty()
                    || st.in_flight >= self.cap
                {
                    st.dispatching = false;
                    return;
                }
                if st.spawning {
                    // The spawner published its executor but may still be starting the
                    // processes: a submit now would start them itself (and its
                    // management thread), and the spawner's launch would then fail.
                    // The spawner pumps once it is done.
                    st.dispatching = false;
                    return;
                }
                if st.generation.is_none() {
                    st.dispatching = false;
                    let start = !std::mem::replace(&mut st.spawning, true);
                    drop(st);
                    if start {
                        match self.backend.refusal(py) {
                            // The breaker is open: no new workers; what waits for one
                            // fails fast.
                            Some(err) => {
                                let refused = self.spawn_failed(py, err);
                                self.backend.count_refused(refused);
                            }
                            None => self.spawn_generation(py),
                        }
                    }
                    return;
                }
                let n = self.chunk_size(&st).min(st.queue.len());
                let items: Vec<Item> = st.queue.drain(..n).collect();
                st.in_flight += 1;
                let slot = st.free_slots.pop().unwrap_or(0);
                st.next_chunk += 1;
                (items, slot, st.next_chunk)
            };
            self.dispatch(py, items, slot, seq, rings);
        }
    }

    /// Claims, serialises, registers and submits one chunk.
    pub(super) fn dispatch(
        self: &Arc<Self>,
        py: Python<'_>,
        items: Vec<Item>,
        slot: usize,
        seq: u64,
        rings: &mut Rings,
    ) {
        let (payload, kept) = self.prepare_chunk(py, items, rings);
        if kept.is_empty() {
            self.settle_chunk(py, slot, Vec::new(), rings);
            return;
        }
        let Some(generation) = lock(&self.state).generation.clone() else {
            // Retired by a crash since `pump` looked: back to the queue, whose next
            // pump starts the spawner.
            self.settle_chunk(py, slot, kept, rings);
            return;
        };
        if let Err((kept, mode, message)) = self.register_chunk(&generation, slot, seq, kept) {
            // Revoked or broken while this chunk was being prepared.
            for item in kept {
                item.fail(py, self.closed_error(py, mode, &message), rings);
            }
            self.settle_chunk(py, slot, Vec::new(), rings);
            return;
        }
        let executor = generation.executor(py);
        let hooked = self
            .kind()
            .submit(py, &executor, slot, seq, payload)
            .and_then(|future| {
                let revoked = {
                    let mut st = lock(&self.state);
                    if let Some(chunk) = st.chunks.get_mut(&seq) {
                        chunk.future = Some(future.clone().unbind());
                    }
                    st.mode == Mode::Revoked
                };
                if revoked {
                    // Revoked while this chunk was being submitted: `stop_calls` found
                    // no future to cancel yet (a dask task would run on).
                    crate::errors::best_effort(py, future.call_method0("cancel"));
                }
                let pool = self.clone();
                let callback = Py::new(py, ChunkDone { pool, seq })?;
                future.call_method1("add_done_callback", (callback,))
            });
        if let Err(err) = hooked {
            // Never reached the executor (or cannot report back): settle it here.
            self.finish_chunk(py, seq, Err(err), true, rings);
        }
    }

    /// Claims each call (a cancelled one is dropped) and serialises it; a call that
    /// cannot be serialised fails alone. Returns the payload and the calls kept.
    fn prepare_chunk(
        &self,
        py: Python<'_>,
        items: Vec<Item>,
        rings: &mut Rings,
    ) -> (Vec<Py<PyAny>>, Vec<Item>) {
        let mut payload = Vec::with_capacity(items.len());
        let mut kept = Vec::with_capacity(items.len());
        for mut item in items {
            if let (Some(fallback), false) = (self.fallback.get(), item.is_claimed()) {
                // Serialised before it is claimed, so a call that cannot be is still
                // unstarted when it moves to the fallback. (A call that comes back
                // claimed, re-queued after a chunk's budget, fails below as on the
                // process backend: its taker already saw it start.)
                match self.kind().prepare(py, &self.backend, &item) {
                    Ok(prepared) if item.claim(py) => {
                        payload.push(prepared);
                        kept.push(item);
                    }
                    Ok(_) => {}
                    Err(err) => fallback.reroute(py, item.into_job(), err),
                }
                continue;
            }
            if !item.claim(py) {
                continue;
            }
            match self.kind().prepare(py, &self.backend, &item) {
                Ok(prepared) => {
                    payload.push(prepared);
                    kept.push(item);
                }
                Err(err) => item.fail(py, err, rings),
            }
        }
        (payload, kept)
    }

    /// Records chunk `seq` as in flight on `generation`, unless the pool closed
    /// meanwhile (then its calls come back with the pool's mode and message).
    #[allow(clippy::type_complexity)]
    fn register_chunk(
        &self,
        generation: &Arc<Generation>,
        slot: usize,
        seq: u64,
        items: Vec<Item>,
    ) -> Result<(), (Vec<Item>, Mode, String)> {
        let mut st = lock(&self.state);
        if !matches!(st.mode, Mode::Open | Mode::Draining) {
            return Err((items, st.mode, st.broken_message.clone()));
        }
        let chunk = Chunk {
            generation: generation.clone(),
            slot,
            items,
            future: None,
        };
        st.chunks.insert(seq, chunk);
        Ok(())
    }

    /// A chunk's executor task is done (or could not be submitted): deliver, re-queue
    /// what did not run, and keep the pump going.
    pub(super) fn finish_chunk(
        self: &Arc<Self>,
        py: Python<'_>,
        seq: u64,
        outcome: PyResult<Bound<'_, PyAny>>,
        from_submit: bool,
        rings: &mut Rings,
    ) {
        let Some(chunk) = lock(&self.state).chunks.remove(&seq) else {
            return;
        };
        let Chunk {
            generation,
            slot,
            items,
            future,
        } = chunk;
        drop(future);
        let (requeue, retire) = match outcome {
            Ok(value) => {
                let mut requeue = Vec::new();
                self.chunk_returned(py, &generation, &value, items, &mut requeue, rings);
                (requeue, false)
            }
            Err(err) => match self.chunk_failed(py, from_submit, items, err, rings) {
                Failed::Requeue(items) => (items, true),
                Failed::Casualty(items, err) => {
                    return self.record_casualty(py, generation, seq, slot, items, err, rings)
                }
                Failed::Settled => (Vec::new(), false),
            },
        };
        let old = if retire {
            self.retire_generation(&generation)
        } else {
            None
        };
        drop(old);
        drop(generation);
        self.settle_chunk(py, slot, requeue, rings);
        self.pump(py, rings);
    }

    /// Delivers the outcomes of a task that returned.
    fn chunk_returned(
        &self,
        py: Python<'_>,
        generation: &Generation,
        value: &Bound<'_, PyAny>,
        items: Vec<Item>,
        requeue: &mut Vec<Item>,
        rings: &mut Rings,
    ) {
        match self.kind() {
            Kind::Process | Kind::Dask => {
                self.deliver_chunk(py, generation, value, items, requeue, rings);
            }
            Kind::Interpreter => {
                generation.completed.store(true, Ordering::Release);
                self.count_finished(items.len());
                for mut item in items {
                    item.ended_now(true);
                    rings.add(item.job.deliver(py, Ok(value.clone().unbind())));
                }
            }
        }
    }

    /// What becomes of the calls of a task that raised `err`.
    fn chunk_failed(
        &self,
        py: Python<'_>,
        from_submit: bool,
        mut items: Vec<Item>,
        err: PyErr,
        rings: &mut Rings,
    ) -> Failed {
        let broken = self
            .broken_cls(py)
            .is_ok_and(|cls| err.value(py).is_instance(cls).unwrap_or(false));
        match (broken, self.kind()) {
            // Broke before this chunk reached it (a worker died while idle): nothing
            // here started.
            (true, Kind::Process) if from_submit => Failed::Requeue(items),
            // Decided later, off this thread (see `record_casualty`).
            (true, Kind::Process) => Failed::Casualty(items, err),
            // InterpreterPoolExecutor: an initializer failed; broken for good. (A
            // Dask executor never raises it.)
            (true, Kind::Interpreter | Kind::Dask) => {
                self.break_for_good(py, err.value(py).to_string());
                Self::fail_all(py, items, &err, rings);
                Failed::Settled
            }
            (false, kind) => {
                if kind == Kind::Interpreter {
                    // The call itself raised: it ran to completion.
                    self.count_finished(items.len());
                    items.iter_mut().for_each(|item| item.ended_now(false));
                }
                Self::fail_all(py, items, &err, rings);
                Failed::Settled
            }
        }
    }

    fn fail_all(py: Python<'_>, items: Vec<Item>, err: &PyErr, rings: &mut Rings) {
        for item in items {
            item.fail(py, err.clone_ref(py), rings);
        }
    }

    /// Process backend: unpickle and deliver each outcome of a finished chunk.
    pub(super) fn deliver_chunk(
        &self,
        py: Python<'_>,
        generation: &Generation,
        value: &Bound<'_, PyAny>,
        items: Vec<Item>,
        requeue: &mut Vec<Item>,
        rings: &mut Rings,
    ) {
        let outcomes = match value.cast::<PyList>() {
            Ok(parsed) => parsed,
            Err(err) => {
                let err = PyErr::from(err);
                for item in items {
                    item.fail(py, err.clone_ref(py), rings);
                }
                return;
            }
        };
        self.chunk_completed(py, generation, value, &items);
        let ran = outcomes.len();
        let loads = match pickle_loads(py) {
            Ok(loads) => loads.clone(),
            Err(err) => {
                for item in items {
                    item.fail(py, err.clone_ref(py), rings);
                }
                return;
            }
        };
        let mut measured = Vec::with_capacity(ran);
        self.count_finished(items.len().min(ran));
        for (index, mut item) in items.into_iter().enumerate() {
            if index >= ran {
                requeue.push(item);
                continue;
            }
            let result = (|| -> PyResult<Py<PyAny>> {
                let (ok, data, seconds, cpu, stalled): (bool, Bound<'_, PyAny>, f64, f64, f64) =
                    outcomes.get_item(index)?.extract()?;
                measured.push((item.key(), seconds));
                if let Some((key, costs)) = item.job.costs() {
                    let cost = CallCost {
                        cpu,
                        wall: seconds,
                        stalled,
                    };
                    costs.process_call_ended(py, *key, cost);
                }
                item.ended(leasepool::metrics::seconds_to_ns(seconds), ok);
                let value = loads.call1((data,))?;
                if ok {
                    Ok(value.unbind())
                } else {
                    Err(PyErr::from_value(value))
                }
            })();
            rings.add(item.job.deliver(py, result));
        }
        let mut st = lock(&self.state);
        st.barren = 0;
        for (key, seconds) in measured {
            st.durations.record(key, seconds);
        }
    }

    /// A chunk came back: its executor works, and its worker survived it.
    fn chunk_completed(
        &self,
        py: Python<'_>,
        generation: &Generation,
        value: &Bound<'_, PyAny>,
        items: &[Item],
    ) {
        generation.completed.store(true, Ordering::Release);
        if !value.is_exact_instance_of::<PyList>() {
            self.worker_retired(py, value);
        }
        // The latest admission among its calls (see `leasepool::breaker`).
        let epoch = items.iter().map(|item| item.breaker_epoch).max();
        self.backend.success_observed(py, epoch.unwrap_or(0));
    }

    /// The worker that ran this chunk passed `max_worker_memory` and left after
    /// sending it (a `_process_worker.RetiredChunk`); the executor replaces it.
    fn worker_retired(&self, py: Python<'_>, chunk: &Bound<'_, PyAny>) {
        if let Some(metrics) = self.backend.metrics.get() {
            metrics.recycled();
        }
        let field = |name: &str| chunk.getattr(name).and_then(|v| v.extract::<i64>());
        let (pid, rss) = (field("pid").unwrap_or(0), field("rss").unwrap_or(0));
        let logger = crate::logging::Logger::new(py, self.backend.logger.clone_ref(py));
        #[allow(clippy::cast_precision_loss)]
        let mib = format!("{:.1}", rss as f64 / f64::from(1u32 << 20));
        if field("calls").unwrap_or(0) == 1 && !self.backend.warned_tight_memory() {
            logger.log(
                py,
                crate::logging::WARNING,
                "Worker process recycled after its first call (rss_mib=%s): \
                 max_worker_memory is below what a worker needs, so every call pays for \
                 a new worker process; raise it",
                (mib.clone(),),
                None,
            );
        }
        logger.log(
            py,
            crate::logging::INFO,
            "Worker process recycled pid=%s rss_mib=%s: past max_worker_memory, it left \
             after its call and is replaced",
            (pid, mib),
            None,
        );
    }

    fn count_finished(&self, calls: usize) {
        self.finished
            .fetch_add(u64::try_from(calls).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// A chunk left flight: free its slot, put `requeue` back at the front (or fail or
    /// cancel it if the pool no longer runs work), and finish a drain if that was the
    /// last one.
    pub(super) fn settle_chunk(
        &self,
        py: Python<'_>,
        slot: usize,
        requeue: Vec<Item>,
        rings: &mut Rings,
    ) {
        let (refused, mode, message, drained) = {
            let mut st = lock(&self.state);
            st.in_flight -= 1;
            st.free_slots.push(slot);
            let refused = match st.mode {
                Mode::Open => {
                    for item in requeue.into_iter().rev() {
                        st.queue.push_front(item);
                    }
                    Vec::new()
                }
                // Handed to the executor but never started: cancelled like the rest
                // of the queue at shutdown.
                Mode::Draining => requeue,
                Mode::Revoked | Mode::Broken => requeue,
            };
            (
                refused,
                st.mode,
                st.broken_message.clone(),
                self.take_drained(&mut st),
            )
        };
        for item in refused {
            if mode == Mode::Draining {
                item.cancel(py, rings);
            } else {
                item.fail(py, self.closed_error(py, mode, &message), rings);
            }
        }
        self.finish_drain(py, drained);
    }
}

/// Done-callback of a chunk's executor future.
#[pyclass(module = "leasepool._engine", frozen)]
pub(super) struct ChunkDone {
    pool: Arc<ProcessPool>,
    seq: u64,
}

#[pymethods]
impl ChunkDone {
    fn __call__(&self, py: Python<'_>, future: &Bound<'_, PyAny>) {
        let mut rings = Rings::default();
        let finished = guard_panics(|| {
            let outcome = future.call_method1("result", (0,));
            self.pool
                .finish_chunk(py, self.seq, outcome, false, &mut rings);
            Ok(())
        });
        if let Err(err) = finished {
            crate::errors::report_unraisable(py, err, Some(future));
        }
        rings.ring(py);
    }
}

/// Gives the dispatcher role back if a dispatch unwinds (a panic), so the pool is not
/// left without one; the normal exits of `pump` give it back under the lock.
pub(super) struct DispatchRole<'a>(&'a ProcessPool);

impl Drop for DispatchRole<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(&self.0.state).dispatching = false;
        }
    }
}
