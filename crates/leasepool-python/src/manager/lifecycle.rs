//! `start()`, `stop()` and the periodic check.

use super::*;

impl ManagerCore {
    /// The periodic check (runs on the loop thread when the clock rings).
    pub(super) fn tick(self: &Arc<Self>, py: Python<'_>) {
        let Some(bridge) = self.bridge() else { return };
        let target = self.target(py);
        let now = monotonic();
        let mut fx = Fx::default();
        let next = {
            let mut engine = lock(&self.engine);
            engine.check(now, target, &mut fx);
            [
                engine.next_hard_expiry(),
                engine.next_overdue(),
                engine.next_idle_retirement(target),
                engine.next_autoscale_tick(),
            ]
            .into_iter()
            .flatten()
            .fold(now + self.cfg.check_interval, f64::min)
        };
        self.perform(py, fx, Some(&bridge));
        let next = self.drain_tick(py, now).map_or(next, |at| next.min(at));
        self.with_clock(|clock| clock.reset(next));
    }

    /// `start()`: starts now, then (dask backend) waits for the cluster connection;
    /// if it cannot be made, stops again and raises why.
    pub(super) fn start_step(self: &Arc<Self>, py: Python<'_>) -> PyResult<Step> {
        let was_running = self.bridge().is_some();
        self.start_now(py)?;
        let (false, Some(process), Some(bridge)) = (was_running, &self.process, self.bridge())
        else {
            return Ok(Step::Done(py.None()));
        };
        let poke = Py::new(py, PokeClock(Arc::downgrade(self)))?.into_any();
        let Some(opened) = process.connect(py, &bridge, poke)? else {
            return Ok(Step::Done(py.None()));
        };
        let core = self.clone();
        let outcome = opened.clone_ref(py);
        Ok(Step::Await(
            opened,
            Some(Box::new(move |py| {
                let error = outcome.bind(py).call_method0("result")?;
                if error.is_none() {
                    return Ok(Step::Done(py.None()));
                }
                let error = PyErr::from_value(error);
                // Undo only this run: a stop() and a new start() may have come since.
                match core.bridge() {
                    Some(current) if Arc::ptr_eq(&current, &bridge) => {
                        core.stop_now(py)?.then_raise(error)
                    }
                    _ => Err(error),
                }
            })),
        ))
    }

    pub(super) fn start_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<()> {
        if let Some(bridge) = self.bridge() {
            return require_owner_loop(py, &bridge, "start");
        }
        if let Some(process) = &self.process {
            process.start(py)?;
        }
        // Thread pools: the thread backend's, and the thread half of `backend="auto"`.
        if self.process.is_none() || self.routing.is_some() {
            self.settings(py)?;
        }
        let event_loop = get_running_loop(py)?.call0()?;
        let bridge = LoopBridge::attach(py, &event_loop)?;
        let target = self.target(py);
        let mut fx = Fx::default();
        lock(&self.engine).start(target, &mut fx);
        let weak_core: Weak<Self> = Arc::downgrade(self);
        let weak_bridge = Arc::downgrade(&bridge);
        let clock = CheckerClock::start(
            format!("{}-checker", self.cfg.name_prefix),
            // The autoscaler's first window starts at the first check: at once.
            monotonic()
                + if self.cfg.autoscaled {
                    0.0
                } else {
                    self.cfg.check_interval
                },
            move || {
                let (Some(bridge), core) = (weak_bridge.upgrade(), weak_core.clone()) else {
                    return;
                };
                bridge.push(Completion::Call(Box::new(move |py| {
                    if let Some(core) = core.upgrade() {
                        core.tick(py);
                    }
                })));
            },
        )?;
        {
            let mut running = match self.running.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            *running = Some(Running {
                bridge: bridge.clone(),
                clock,
            });
        }
        self.perform(py, fx, Some(&bridge));
        if self.logger.enabled(py, INFO) {
            let (total, available, leased) = self.counts();
            let target = self.effective_target(py);
            self.logger.log(
                py,
                INFO,
                "LeasedExecutorManager started backend=%s total=%s available=%s leased=%s target=%s",
                (&self.cfg.backend_name, total, available, leased, target),
                None,
            );
        }
        Ok(())
    }

    pub(super) fn stop_now(self: &Arc<Self>, py: Python<'_>) -> PyResult<Step> {
        if let Some(bridge) = self.bridge() {
            // Refused before anything changes: the manager stays running and stoppable.
            require_owner_loop(py, &bridge, "stop")?;
        }
        let running = {
            let mut guard = match self.running.write() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            guard.take()
        };
        let Some(Running { bridge, clock }) = running else {
            self.logger
                .log(py, INFO, "LeasedExecutorManager stopped", (), None);
            return Ok(Step::Done(py.None()));
        };
        drop(clock);
        let mut fx = Fx::default();
        lock(&self.engine).stop(monotonic(), &mut fx);
        let retired = std::mem::take(&mut fx.retired);
        self.perform(py, fx, Some(&bridge));
        self.drain_stopped(py);
        let stopped = PyLeaseFuture::pending(py, bridge.clone(), None)?;
        let to_settle = stopped.clone_ref(py);
        let barrier = DrainBarrier::new(
            retired.len(),
            Box::new(move |py| {
                PyLeaseFuture::settle(&to_settle, py, Outcome::Value(py.None()));
            }),
        );
        for pool in &retired {
            pool.shutdown(py, Some(barrier.clone()));
        }
        barrier.arrive(py);
        let core = self.clone();
        Ok(Step::Await(
            stopped,
            Some(Box::new(move |py| {
                let mut reapable = Reapable::default();
                for pool in &retired {
                    reapable.extend(pool.take_reapable());
                }
                let reaped = PyLeaseFuture::pending(py, bridge.clone(), None)?;
                reap_in_background(py, reapable, &reaped)?;
                Ok(Step::Await(
                    reaped,
                    Some(Box::new(move |py| core.close_backend(py, bridge))),
                ))
            })),
        ))
    }

    /// The end of `stop()` once every pool was reaped: stop log forwarding, close the
    /// Dask connection (waiting for it), detach from the loop.
    fn close_backend(self: &Arc<Self>, py: Python<'_>, bridge: Arc<LoopBridge>) -> PyResult<Step> {
        // A start() that overtook this stop() owns the backend now (its log listener,
        // its Dask client): leave them be.
        let restarted = self.bridge().is_some();
        if let (false, Some(process)) = (restarted, &self.process) {
            process.stop(py);
            if let Some(closed) = process.disconnect(py, &bridge)? {
                let core = self.clone();
                return Ok(Step::Await(
                    closed,
                    Some(Box::new(move |py| core.detach(py, &bridge))),
                ));
            }
        }
        self.detach(py, &bridge)
    }

    fn detach(&self, py: Python<'_>, bridge: &LoopBridge) -> PyResult<Step> {
        bridge.detach(py)?;
        self.logger
            .log(py, INFO, "LeasedExecutorManager stopped", (), None);
        Ok(Step::Done(py.None()))
    }
}

/// Wakes a manager's checker clock (as `notify_scale_changed()` does): the dask
/// backend calls it when a worker joined or left the cluster.
#[pyclass(module = "leasepool._engine", frozen)]
struct PokeClock(Weak<ManagerCore>);

#[pymethods]
impl PokeClock {
    fn __call__(&self) {
        if let Some(core) = self.0.upgrade() {
            core.with_clock(CheckerClock::poke);
        }
    }
}
