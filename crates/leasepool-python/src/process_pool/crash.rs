//! Crash handling of the process backend: collecting what a broken executor left
//! (its dead workers' exit statuses, each chunk's progress record), asking the engine
//! for the verdicts (`leasepool::crash`), and failing or re-queueing the calls.

use super::*;

impl ProcessPool {
    /// A chunk failed because its executor broke (a worker died).
    ///
    /// This runs in the executor's done-callback, and on CPython 3.11 that is inside
    /// `terminate_broken`'s loop over its pending work items, which set `_broken`
    /// without the executor's lock: anything here that lets go of the GIL (blocking,
    /// starting a thread, even ringing a doorbell after detaching) lets a concurrent
    /// `submit()` that already passed the `_broken` check add to that dict mid-loop,
    /// and the management thread dies ("dictionary changed size during iteration"),
    /// stranding every call it held. So the casualty is only recorded here; the first
    /// one retires the executor (no dispatch uses it again) and asks the event loop to
    /// start a settler thread (`settle_crash`). Nothing is delivered yet.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn record_casualty(
        self: &Arc<Self>,
        py: Python<'_>,
        generation: Arc<Generation>,
        seq: u64,
        slot: usize,
        items: Vec<Item>,
        err: PyErr,
        rings: &mut Rings,
    ) {
        let bridge = items.iter().find_map(|item| item.job.bridge());
        let late = {
            // Checked and pushed under the lock the settler takes the list under: a
            // chunk failed between `submit()` and `add_done_callback()` arrives here on
            // the dispatching thread, possibly while the settler runs.
            let mut casualties = lock(&generation.casualties);
            if generation.settled.load(Ordering::Acquire) {
                Some(items)
            } else {
                casualties.push(Casualty {
                    seq,
                    slot,
                    items,
                    err,
                });
                None
            }
        };
        if let Some(items) = late {
            return self.fail_late_casualty(py, slot, items, rings);
        }
        if generation.settling.swap(true, Ordering::AcqRel) {
            return;
        }
        self.start_settler(py, generation, bridge);
    }

    /// A chunk that failed after the settler took the list: whether its calls
    /// started is unknown, so none is run again.
    fn fail_late_casualty(
        self: &Arc<Self>,
        py: Python<'_>,
        slot: usize,
        items: Vec<Item>,
        rings: &mut Rings,
    ) {
        let message = "the process pool broke; whether this call started is unknown, \
                       so it is not run again";
        for item in items {
            let err = make_error(broken_process_pool(py), message);
            let _ = err.value(py).setattr("attempts", item.attempts);
            item.fail(py, err, rings);
        }
        self.settle_chunk(py, slot, Vec::new(), rings);
        self.pump(py, rings);
    }

    /// Retires the broken executor and has the event loop start the settler thread.
    fn start_settler(
        self: &Arc<Self>,
        py: Python<'_>,
        generation: Arc<Generation>,
        bridge: Option<Arc<LoopBridge>>,
    ) {
        // Both stay alive in the task: dropping the last reference to an executor
        // starts a thread (see `Generation::drop`), which must not happen here.
        let retired = self.retire_generation(&generation);
        let pool = self.clone();
        let start: LoopTask = Box::new(move |py| {
            let task = Py::new(py, SettleCrash::new(pool, generation));
            let started = task.and_then(|task| {
                background_run(py)?
                    .call1(("leasepool-crash", task))?
                    .is_truthy()
            });
            if let Err(err) = started {
                crate::errors::report_unraisable(py, err, None);
            }
            drop(retired);
        });
        match bridge {
            // The loop starts the thread: it may block for a moment, this may not.
            Some(bridge) => bridge.push(Completion::Call(start)),
            // Only `lease.executor.submit()` callers (no loop to ask): start it here.
            None => start(py),
        }
    }

    /// The settler thread: waits until the broken executor has failed all its work
    /// and stopped its processes (its management thread ends after joining them; the
    /// processes are killed if that takes longer than a grace), so the progress array
    /// is final, then fails the calls that started and re-queues those that did not.
    pub(super) fn settle_crash(self: &Arc<Self>, py: Python<'_>, generation: &Arc<Generation>) {
        let waited = wait_for_teardown(py)
            .and_then(|wait| wait.call1((generation.executor(py), SURVIVOR_REAP_SECONDS)));
        if let Err(err) = waited {
            crate::errors::report_unraisable(py, err, None);
        }
        let casualties = {
            let mut casualties = lock(&generation.casualties);
            generation.settled.store(true, Ordering::Release);
            std::mem::take(&mut *casualties)
        };
        let crash = generation
            .crash
            .get_or_init(py, || self.inspect_crash(py, generation, &casualties));
        if let Some(metrics) = self.backend.metrics.get() {
            metrics.crashed();
        }
        // A worker that died on its own, not one a revoked lease terminated.
        if !crash.dead.is_empty() && lock(&self.state).mode != Mode::Revoked {
            self.backend.crash_observed(py);
        }
        if let Some(message) = &crash.fatal {
            self.break_for_good(py, message.clone());
        }
        let mut rings = Rings::default();
        for casualty in casualties {
            let Casualty {
                seq,
                slot,
                items,
                err,
            } = casualty;
            let mut requeue = Vec::new();
            self.crashed(py, crash, slot, seq, &err, items, &mut requeue, &mut rings);
            self.settle_chunk(py, slot, requeue, &mut rings);
        }
        self.requeue_stranded(py, generation, &mut rings);
        self.pump(py, &mut rings);
        rings.ring(py);
    }

    /// A `submit()` that passed the executor's broken check just before it broke can
    /// add its work item after `terminate_broken` cleared them: that future never
    /// completes. Its manager thread is gone now, so no worker ever got it: run it on
    /// the next executor.
    fn requeue_stranded(
        self: &Arc<Self>,
        py: Python<'_>,
        generation: &Generation,
        rings: &mut Rings,
    ) {
        let candidates: Vec<(u64, Py<PyAny>)> = lock(&self.state)
            .chunks
            .iter()
            .filter(|(_, chunk)| chunk.generation.id == generation.id)
            .filter_map(|(seq, chunk)| Some((*seq, chunk.future.as_ref()?.clone_ref(py))))
            .collect();
        // Checked outside the lock (no Python under it), removed under it.
        let never_done: Vec<u64> = candidates
            .into_iter()
            .filter(|(_, future)| {
                !future
                    .bind(py)
                    .call_method0("done")
                    .and_then(|done| done.is_truthy())
                    .unwrap_or(true)
            })
            .map(|(seq, _)| seq)
            .collect();
        let stranded: Vec<Chunk> = {
            let mut st = lock(&self.state);
            never_done
                .iter()
                .filter_map(|seq| st.chunks.remove(seq))
                .collect()
        };
        for chunk in stranded {
            let Chunk { slot, items, .. } = chunk;
            self.settle_chunk(py, slot, items, rings);
        }
    }

    /// Handles one chunk of an executor that broke (a worker process died).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn crashed(
        &self,
        py: Python<'_>,
        crash: &Crash,
        slot: usize,
        seq: u64,
        err: &PyErr,
        items: Vec<Item>,
        requeue: &mut Vec<Item>,
        rings: &mut Rings,
    ) {
        let facts = CrashFacts {
            culprit: crash.dead.first().map(|(pid, _)| *pid),
            unusable: crash.fatal.is_some(),
            unsettled: crash.unsettled,
        };
        let verdicts = classify_chunk(items.len(), self.progress_of(py, slot, seq), facts);
        let make = |message: String| {
            let err_new = make_error(broken_process_pool(py), message);
            let _ = err_new.value(py).setattr("__cause__", err.value(py));
            err_new
        };
        let raised = self.raised_in(py, slot, seq);
        let breaker_open = self.backend.breaker_is_open();
        for (index, (mut item, verdict)) in items.into_iter().zip(verdicts).enumerate() {
            let budget = if verdict.worker_died() {
                item.retry_budget(py)
            } else {
                0
            };
            let held_back = (budget > 0 && verdict.worker_died() && item.attempts <= budget)
                .then(|| hold_back(crash, breaker_open, raised.may_have_raised(index)))
                .flatten();
            if held_back.is_none() && retry(verdict, item.attempts, budget, false) {
                item.attempts += 1;
                if let Some(metrics) = &item.metrics {
                    metrics.retried();
                }
                requeue.push(item);
                continue;
            }
            let Some(message) = crash_message(py, crash, verdict, &item) else {
                requeue.push(item);
                continue;
            };
            let (attempt, of) = (item.attempts, budget + 1);
            let message = match (held_back, budget) {
                (_, 0) => message,
                (Some(why), _) => {
                    format!("{message} (attempt {attempt} of {of}; not run again: {why})")
                }
                (None, _) => format!("{message} (attempt {attempt} of {of})"),
            };
            let err = make(message);
            let _ = err.value(py).setattr("attempts", item.attempts);
            item.fail(py, err, rings);
        }
    }

    /// The calls of chunk `seq` that raised, as its worker recorded them.
    fn raised_in(&self, py: Python<'_>, slot: usize, seq: u64) -> RaisedCalls {
        let Some(progress) = self.progress.get(py).map(|p| p.bind(py)) else {
            return RaisedCalls(u64::MAX);
        };
        let read = |i: usize| {
            progress
                .get_item(PROGRESS_CELLS * slot + i)
                .and_then(|v| v.extract::<i64>())
        };
        match (read(0), read(3)) {
            // The bits of a signed cell (bit 63 is never set).
            (Ok(started), Ok(mask)) if u64::try_from(started).ok() == Some(seq) => {
                RaisedCalls(u64::from_ne_bytes(mask.to_ne_bytes()))
            }
            _ => RaisedCalls(u64::MAX),
        }
    }

    /// `(pid, index of the running call)` of chunk `seq` if a worker started it.
    pub(super) fn progress_of(
        &self,
        py: Python<'_>,
        slot: usize,
        seq: u64,
    ) -> Option<(i64, usize)> {
        let progress = self.progress.get(py)?.bind(py);
        let read = |i: usize| {
            progress
                .get_item(PROGRESS_CELLS * slot + i)
                .and_then(|v| v.extract::<i64>())
        };
        let started = read(0).ok()?;
        if u64::try_from(started).ok()? != seq {
            return None;
        }
        Some((read(1).ok()?, usize::try_from(read(2).ok()?).ok()?))
    }

    /// Works out which processes died and why, and whether the pool is unusable.
    pub(super) fn inspect_crash(
        &self,
        py: Python<'_>,
        generation: &Generation,
        casualties: &[Casualty],
    ) -> Crash {
        let running = self.running_by_pid(py, generation, casualties);
        let (dead, all_reaped) = stop_processes(py, &generation.executor(py));
        let dead: Vec<DeadWorker> = dead
            .into_iter()
            .map(|(pid, code)| DeadWorker { pid, code })
            .collect();
        // Every process is dead by now (the survivors stopped by the executor's
        // clean-up): the engine ranks which one broke the pool.
        let primary = culprit(&dead, |pid| running.contains_key(&pid));
        let cause = match primary {
            Some(DeadWorker { pid, code }) => {
                let how = exit_description(py, code);
                match running.get(&pid) {
                    Some(name) => {
                        format!("worker process {pid} died with {how} while running {name}")
                    }
                    None => format!("worker process {pid} died with {how}"),
                }
            }
            None => "a worker process died unexpectedly".to_owned(),
        };
        // With a crash breaker, workers that keep dying before completing anything are
        // its business (it refuses calls, then tries again); without one, such a pool
        // is declared unusable after a few executors.
        let completed_any = generation.completed.load(Ordering::Acquire);
        let barren_before = if self.backend.has_breaker() {
            0
        } else {
            // Retiring this executor (before the settler ran) already counted it.
            let barren = lock(&self.state).barren;
            if completed_any {
                barren
            } else {
                barren.saturating_sub(1)
            }
        };
        let fatal = match unusable(&dead, !running.is_empty(), completed_any, barren_before) {
            Some(Unusable::InitializerFailed) => Some(format!(
                "A process initializer failed ({cause} before running any call); \
                 the process pool is not usable anymore"
            )),
            Some(Unusable::Barren) => Some(format!(
                "Worker processes keep dying before completing any call ({cause}); \
                 the process pool is not usable anymore"
            )),
            None => None,
        };
        Crash {
            cause,
            // Only the culprit died of the crash; the others were stopped by the
            // executor's clean-up and their calls say so.
            dead: primary
                .iter()
                .map(|w| (w.pid, exit_description(py, w.code)))
                .collect(),
            fatal,
            unsettled: !all_reaped,
        }
    }

    /// What each in-flight chunk of this executor was running, by pid (from the
    /// progress array).
    fn running_by_pid(
        &self,
        py: Python<'_>,
        generation: &Generation,
        casualties: &[Casualty],
    ) -> HashMap<i64, String> {
        let mut running = HashMap::new();
        let mut note = |slot: usize, seq: u64, name_of: &dyn Fn(usize) -> Option<String>| {
            let started = self.progress_of(py, slot, seq);
            if let Some(name) = started.and_then(|(pid, index)| Some((pid, name_of(index)?))) {
                running.insert(name.0, name.1);
            }
        };
        for casualty in casualties {
            note(casualty.slot, casualty.seq, &|i| {
                casualty.items.get(i).map(|item| item.function_name(py))
            });
        }
        // Chunks of this executor that have not failed yet (their callbacks run later).
        let others: Vec<(usize, u64, Vec<Py<PyAny>>)> = {
            let st = lock(&self.state);
            st.chunks
                .iter()
                .filter(|(_, chunk)| chunk.generation.id == generation.id)
                .map(|(seq, chunk)| {
                    let funcs = chunk.items.iter().map(|i| i.job.parts().0.clone_ref(py));
                    (chunk.slot, *seq, funcs.collect())
                })
                .collect()
        };
        for (slot, seq, funcs) in &others {
            note(*slot, *seq, &|i| {
                funcs.get(i).map(|f| describe_callable(f.bind(py)))
            });
        }
        running
    }

    /// Forgets a broken executor (it already shuts itself down) so the next dispatch
    /// creates a fresh one. Returns it, to be dropped outside the lock.
    pub(super) fn retire_generation(
        &self,
        generation: &Arc<Generation>,
    ) -> Option<Arc<Generation>> {
        let mut st = lock(&self.state);
        let current = st
            .generation
            .as_ref()
            .is_some_and(|g| g.id == generation.id);
        if !current {
            return None;
        }
        if !generation.completed.load(Ordering::Acquire) {
            st.barren += 1;
        }
        st.generation.take()
    }

    /// The pool can never work again: fail what is queued, refuse new work.
    pub(super) fn break_for_good(&self, py: Python<'_>, message: String) {
        let queued: Vec<Item> = {
            let mut st = lock(&self.state);
            if st.mode == Mode::Broken || st.mode == Mode::Revoked {
                return;
            }
            st.mode = Mode::Broken;
            st.broken_message = message.clone();
            self.broken.store(true, Ordering::Release);
            st.queue.drain(..).collect()
        };
        let mut rings = Rings::default();
        for item in queued {
            item.fail(
                py,
                make_error(self.broken_cls(py), message.clone()),
                &mut rings,
            );
        }
        rings.ring(py);
    }
}

/// Why an idempotent call whose worker died, with attempts left, is not run again:
/// the pool is unusable, the crash breaker is open, or the call had raised (its
/// exception was its outcome).
fn hold_back(crash: &Crash, breaker_open: bool, raised: bool) -> Option<String> {
    if let Some(fatal) = &crash.fatal {
        Some(fatal.clone())
    } else if breaker_open {
        Some("the crash breaker is open".to_owned())
    } else if raised {
        Some("it had raised an exception, its outcome".to_owned())
    } else {
        None
    }
}

/// Why a call the crash caught failed, or `None` if it never started (re-queued).
fn crash_message(
    py: Python<'_>,
    crash: &Crash,
    verdict: CallVerdict,
    item: &Item,
) -> Option<String> {
    Some(match verdict {
        CallVerdict::DiedRunning { pid } => {
            let how = crash.dead.first().map_or("", |(_, how)| how.as_str());
            format!(
                "worker process {pid} died with {how} while running {}",
                item.function_name(py)
            )
        }
        CallVerdict::ResultLost { .. } => format!(
            "{}; this call had completed in that process but its result was lost with it",
            crash.cause
        ),
        CallVerdict::Terminated { pid } => format!(
            "the process pool broke ({}); this call had started in worker \
             process {pid}, which was terminated, and its outcome was lost",
            crash.cause
        ),
        CallVerdict::PoolUnusable => crash.fatal.clone().unwrap_or_default(),
        CallVerdict::Unknown => format!(
            "the process pool broke ({}); whether this call started is unknown \
             (a worker process could not be stopped), so it is not run again",
            crash.cause
        ),
        CallVerdict::Requeue => return None,
    })
}

/// `exit code 3` / `signal 9 (SIGKILL)`.
fn exit_description(py: Python<'_>, code: i64) -> String {
    describe_exit(py)
        .and_then(|describe| describe.call1((code,))?.extract())
        .unwrap_or_else(|_| format!("exit status {code}"))
}

/// Stops every process of a broken executor before anyone reads its progress (see
/// `leasepool._process_backend.stop_broken_processes`): the processes that had died
/// on their own, `(pid, exitcode)`, and whether every survivor was reaped.
fn stop_processes(py: Python<'_>, executor: &Bound<'_, PyAny>) -> (Vec<(i64, i64)>, bool) {
    let stopped = stop_broken_processes(py)
        .and_then(|stop| stop.call1((executor, SURVIVOR_REAP_SECONDS))?.extract());
    stopped.unwrap_or_else(|err| {
        crate::errors::report_unraisable(py, err, None);
        (Vec::new(), false)
    })
}

/// The settler thread's target (see [`ProcessPool::record_casualty`]).
///
/// It gives up the pool and the executor when its call ends, while its thread is still
/// attached: the target itself is deallocated as the `threading` thread ends, which
/// can be during interpreter finalization, when a daemon thread that tries to take
/// the GIL is unwound by force (and dropping a `Generation` needs the GIL).
#[pyclass(module = "leasepool._engine", frozen)]
pub(super) struct SettleCrash {
    work: Mutex<Option<(Arc<ProcessPool>, Arc<Generation>)>>,
}

impl SettleCrash {
    pub(super) fn new(pool: Arc<ProcessPool>, generation: Arc<Generation>) -> Self {
        Self {
            work: Mutex::new(Some((pool, generation))),
        }
    }
}

#[pymethods]
impl SettleCrash {
    fn __call__(&self, py: Python<'_>) {
        let Some((pool, generation)) = lock(&self.work).take() else {
            return;
        };
        crate::errors::contain_panics(py, "leasepool process crash settler", || {
            pool.settle_crash(py, &generation);
        });
        drop(generation);
        drop(pool);
    }
}
