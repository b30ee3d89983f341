//! The manager's side of `manager.run(fn, *args)`: taking a call slot, queueing, the
//! wait timeout (see `crate::manager` for the waiter, slot link and timer objects).

use super::*;

impl ManagerCore {
    /// Submits a call that was just granted a slot.
    pub(super) fn start_call(self: &Arc<Self>, py: Python<'_>, job: Job, grant: SlotGrant<Pool>) {
        self.with_clock(|clock| clock.arm_before(grant.timing.soft_expires_at()));
        let job = job.counted_by(Arc::new(SlotLink {
            core: Arc::downgrade(self),
            key: grant.key,
            pool: grant.pool.clone(),
        }));
        if let Err((job, err)) = grant.pool.submit(py, job) {
            // Dropping the failed job gives the slot back.
            job.fail(py, err);
        }
    }

    /// `manager.run(func, *args)`: one call on one worker slot (see `run.rs`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        self: &Arc<Self>,
        py: Python<'_>,
        func: Py<PyAny>,
        args: Py<PyTuple>,
        request: Request,
        wait: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let bridge = match self.serving_bridge(py, "run") {
            Ok(bridge) => bridge,
            Err(refusal) => return refusal,
        };
        let timeout = match timeout {
            Some(t) if wait && !t.is_none() => Some((t.extract::<f64>()?, t.str()?.to_string())),
            _ => None,
        };
        // As `acquire(timeout<=0)`: take capacity now or fail with the timeout error.
        let expired_timeout = timeout
            .as_ref()
            .filter(|(seconds, _)| *seconds <= 0.0)
            .map(|(_, text)| timeout_message(text));
        let may_queue = wait && expired_timeout.is_none();
        // Queued callers get a hook that withdraws them from the queue on cancel.
        let waiting = may_queue.then(|| WaitingCall::new(self));
        let hook = waiting
            .clone()
            .map(|w| Box::new(WaitingCallHook(w)) as Box<dyn FutureHook>);
        let future = PyLeaseFuture::pending(py, bridge.clone(), hook)?;
        let job = Job::capture(py, func, args, None, Target::Future(future.clone_ref(py)))?;
        let call = QueuedCall {
            job,
            future: future.clone_ref(py),
        };
        let lease_seconds = request
            .lease_seconds
            .unwrap_or(self.cfg.default_lease_seconds);
        let owner = LeaseTag::new(request.owner, request.site);
        let slot_request = (lease_seconds, owner, request.tenant, request.label);
        match self.take_slot(py, &bridge, call, slot_request, may_queue) {
            Ok(None) => {}
            Ok(Some(ticket)) => {
                if let Some(waiting) = &waiting {
                    let _ = waiting.ticket.set(ticket);
                    if let Some((seconds, text)) = timeout {
                        let limit = (seconds, text.as_str(), lease_seconds);
                        self.arm_run_timeout(py, &bridge, waiting, &future, limit)?;
                    }
                }
            }
            Err(err) => {
                let err = match (err, expired_timeout) {
                    (LeaseError::Unavailable { .. }, Some(message)) => {
                        self.timeout_error(py, message, true, lease_seconds)
                    }
                    (err, _) => lease_error(py, &err),
                };
                PyLeaseFuture::settle(&future, py, Outcome::Error(err));
            }
        }
        Ok(future.into_any())
    }

    /// Takes a call slot for `call` and starts it (`Ok(None)`), or queues it when
    /// `may_queue` (`Ok(Some(ticket))`).
    pub(super) fn take_slot(
        self: &Arc<Self>,
        py: Python<'_>,
        bridge: &Arc<LoopBridge>,
        call: QueuedCall,
        (lease_seconds, owner, tenant, label): (
            f64,
            Owner,
            leasepool::Tenant,
            super::observe::OwnerLabel,
        ),
        may_queue: bool,
    ) -> Result<Option<Ticket>, LeaseError> {
        // The call travels in the waiter when it may queue, else it stays here.
        let (waiter, kept) = if may_queue {
            (Some(Queued::Call(call)), None)
        } else {
            (None, Some(call))
        };
        let mut fx = Fx::default();
        let acquired = {
            let mut engine = lock(&self.engine);
            Self::name_owner(&mut engine, label);
            engine.acquire_slot_as(monotonic(), lease_seconds, tenant, owner, waiter, &mut fx)
        };
        self.perform(py, fx, Some(bridge));
        match acquired {
            Ok(SlotAcquired::Granted(grant, returned)) => {
                let call = match returned {
                    Some(Queued::Call(call)) => Some(call),
                    _ => kept,
                };
                match call {
                    Some(call) => self.start_call(py, call.job, grant),
                    // Cannot happen: the call is either in the waiter or kept.
                    None => self.end_slot(py, grant.key, false),
                }
                Ok(None)
            }
            Ok(SlotAcquired::Queued(ticket)) => Ok(Some(ticket)),
            // The unused call (in the waiter or kept) is dropped here, unlocked.
            Err((err, _waiter)) => Err(err),
        }
    }

    pub(super) fn arm_run_timeout(
        &self,
        py: Python<'_>,
        bridge: &LoopBridge,
        waiting: &Arc<WaitingCall>,
        future: &Py<PyLeaseFuture>,
        (seconds, text, lease_seconds): (f64, &str, f64),
    ) -> PyResult<()> {
        let fire = Py::new(
            py,
            RunTimeout {
                waiting: waiting.clone(),
                future: future.clone_ref(py),
                message: timeout_message(text),
                lease_seconds,
            },
        )?;
        // `call_later` with a delay <= 0 still runs on the next iteration, as
        // `acquire(timeout=0)` on a busy manager fails at once.
        let handle = bridge
            .event_loop()
            .bind(py)
            .call_method1("call_later", (seconds.max(0.0), fire))?;
        *lock(&waiting.timer) = Some(handle.unbind());
        if !future.get().is_pending() {
            // Granted (or cancelled) before the timer was stored: nobody else will
            // cancel it.
            if let Some(timer) = lock(&waiting.timer).take() {
                crate::errors::best_effort(py, timer.bind(py).call_method0("cancel"));
            }
        }
        Ok(())
    }
}
