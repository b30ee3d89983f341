//! `acquire()`: granting a lease now or queueing the caller, and the objects that keep
//! a queued acquire consistent with its future (hook, timeout).

use super::*;

impl ManagerCore {
    pub(crate) fn acquire(
        self: &Arc<Self>,
        py: Python<'_>,
        request: Request,
        wait: bool,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let bridge = match self.serving_bridge(py, "acquire") {
            Ok(bridge) => bridge,
            Err(refusal) => return refusal,
        };
        let lease_seconds = request
            .lease_seconds
            .unwrap_or(self.cfg.default_lease_seconds);
        let tenant = request.tenant;
        let owner = LeaseTag::new(request.owner, request.site);
        let mut fx = Fx::default();
        // First without a waiter: a caller served at once allocates no queue entry.
        let first = {
            let mut engine = lock(&self.engine);
            Self::name_owner(&mut engine, request.label);
            let now = monotonic();
            if wait {
                engine
                    .probe_as(now, lease_seconds, tenant, owner.clone(), &mut fx)
                    .map(Acquired::Granted)
            } else {
                engine.acquire_as(now, lease_seconds, tenant, owner.clone(), None, &mut fx)
            }
        };
        let refusal = match first {
            Ok(Acquired::Granted(grant)) => {
                self.perform(py, fx, Some(&bridge));
                let lease = self.make_lease(py, grant, owner, &bridge)?;
                let hook = AcquireHook::boxed(self);
                let granted = Outcome::Value(lease.into_any());
                return Ok(PyLeaseFuture::ready(py, bridge, granted, Some(hook))?.into_any());
            }
            Ok(Acquired::Queued(_)) => unreachable!("no waiter was offered"),
            Err(LeaseError::Unavailable { .. }) if wait => None,
            Err(err) => Some(lease_error(py, &err)),
        };
        let timeout = match (refusal.is_none(), timeout) {
            (true, Some(t)) if !t.is_none() => Some((t.extract::<f64>()?, t.str()?.to_string())),
            _ => None,
        };
        // As 0.1.3: a timeout <= 0 never waits.
        let refusal = refusal.or_else(|| match &timeout {
            Some((seconds, text)) if *seconds <= 0.0 => {
                Some(self.timeout_error(py, timeout_message(text), false, lease_seconds))
            }
            _ => None,
        });
        if let Some(err) = refusal {
            self.perform(py, fx, Some(&bridge));
            return Ok(ready_error(py, bridge, err)?.into_any());
        }
        let request = (lease_seconds, owner, tenant);
        self.queue_acquire(py, fx, &bridge, request, timeout)
    }

    /// Queues an `acquire()` that found every pool leased (or grants it, if one came
    /// free meanwhile), with its timeout armed.
    fn queue_acquire(
        self: &Arc<Self>,
        py: Python<'_>,
        mut fx: Fx,
        bridge: &Arc<LoopBridge>,
        (lease_seconds, owner, tenant): (f64, Owner, leasepool::Tenant),
        timeout: Option<(f64, String)>,
    ) -> PyResult<Py<PyAny>> {
        let hook = Arc::new(AcquireHookInner {
            core: Arc::downgrade(self),
            ticket: OnceLock::new(),
            timer: Mutex::new(None),
        });
        let future = PyLeaseFuture::pending(
            py,
            bridge.clone(),
            Some(Box::new(AcquireHook(hook.clone()))),
        )?;
        let waiter = Queued::Acquire(QueuedAcquire {
            future: future.clone_ref(py),
            owner: owner.clone(),
        });
        let second = lock(&self.engine).acquire_as(
            monotonic(),
            lease_seconds,
            tenant,
            owner.clone(),
            Some(waiter),
            &mut fx,
        );
        let settled = match second {
            Ok(Acquired::Queued(ticket)) => {
                let _ = hook.ticket.set(ticket);
                None
            }
            // A pool came free between our two looks.
            Ok(Acquired::Granted(grant)) => Some(
                self.make_lease(py, grant, owner, bridge)
                    .map_or_else(Outcome::Error, |lease| Outcome::Value(lease.into_any())),
            ),
            Err(err) => Some(Outcome::Error(lease_error(py, &err))),
        };
        if let Some(outcome) = settled {
            PyLeaseFuture::settle(&future, py, outcome);
        }
        self.perform(py, fx, Some(bridge));
        if let Some((seconds, text)) = timeout {
            if future.get().is_pending() {
                let fire = AcquireTimeout {
                    hook: hook.clone(),
                    lease_seconds,
                    future: future.clone_ref(py),
                    message: timeout_message(&text),
                };
                let handle = bridge
                    .event_loop()
                    .bind(py)
                    .call_method1("call_later", (seconds, Py::new(py, fire)?))?;
                *lock(&hook.timer) = Some(handle.unbind());
            }
        }
        Ok(future.into_any())
    }
}

impl ManagerCore {
    /// Leases a whole pool for `taker` (the WorkGrinder's batches), in the same FIFO
    /// queue as `acquire()`, with no awaitable in between: `taker` is told the lease
    /// or the refusal, on whichever thread the grant happens. Returns the queue
    /// ticket when it waits, for withdrawing it.
    pub(crate) fn lease_for(
        self: &Arc<Self>,
        py: Python<'_>,
        lease_seconds: f64,
        owner: Py<PyAny>,
        taker: Arc<dyn LeaseTaker>,
    ) -> Option<Ticket> {
        let bridge = match self.bridge() {
            Some(bridge) => bridge,
            None => {
                taker.refused(py, lease_error(py, &LeaseError::NotStarted));
                return None;
            }
        };
        if let Err(err) = require_owner_loop(py, &bridge, "acquire") {
            taker.refused(py, err);
            return None;
        }
        let owner: Owner = LeaseTag::new(owner, None);
        let waiter = Queued::Taker(owner.clone(), taker.clone());
        let mut fx = Fx::default();
        let acquired = lock(&self.engine).acquire(
            monotonic(),
            lease_seconds,
            owner.clone(),
            Some(waiter),
            &mut fx,
        );
        self.perform(py, fx, Some(&bridge));
        match acquired {
            Ok(Acquired::Queued(ticket)) => Some(ticket),
            Ok(Acquired::Granted(grant)) => {
                let key = grant.key;
                match self.make_lease(py, grant, owner, &bridge) {
                    Ok(lease) if taker.try_claim() => taker.leased(py, lease.into_bound(py)),
                    Ok(_) => self.release_key(py, key),
                    Err(err) => taker.refused(py, err),
                }
                None
            }
            Err(err) => {
                taker.refused(py, lease_error(py, &err));
                None
            }
        }
    }
}

pub(crate) fn acquire_timeout_error(py: Python<'_>, message: String) -> PyErr {
    crate::errors::new_exception(exception_class(py, "LeaseAcquireTimeoutError"), message)
}

pub(super) fn timeout_message(text: &str) -> String {
    format!("Timed out waiting for an executor after {text}s")
}

pub(super) fn ready_error(
    py: Python<'_>,
    bridge: Arc<LoopBridge>,
    err: PyErr,
) -> PyResult<Py<PyLeaseFuture>> {
    PyLeaseFuture::ready(py, bridge, Outcome::Error(err), None)
}

pub(super) struct AcquireHookInner {
    core: Weak<ManagerCore>,
    ticket: OnceLock<Ticket>,
    timer: Mutex<Option<Py<PyAny>>>,
}

/// Keeps a waiter's queue entry, timer and granted lease consistent with its future.
pub(super) struct AcquireHook(Arc<AcquireHookInner>);

impl AcquireHook {
    fn boxed(core: &Arc<ManagerCore>) -> Box<dyn FutureHook> {
        Box::new(Self(Arc::new(AcquireHookInner {
            core: Arc::downgrade(core),
            ticket: OnceLock::new(),
            timer: Mutex::new(None),
        })))
    }
}

impl FutureHook for AcquireHook {
    fn on_cancel(&self, py: Python<'_>) {
        let (Some(core), Some(ticket)) = (self.0.core.upgrade(), self.0.ticket.get()) else {
            return;
        };
        core.withdraw_waiter(py, *ticket);
    }

    fn on_settled(&self, py: Python<'_>) {
        let timer = lock(&self.0.timer).take();
        if let Some(timer) = timer {
            let Some(core) = self.0.core.upgrade() else {
                return;
            };
            let Some(bridge) = core.bridge() else { return };
            bridge.run_on_loop(
                py,
                Box::new(move |py| {
                    crate::errors::best_effort(py, timer.bind(py).call_method0("cancel"));
                }),
            );
        }
    }

    fn on_discard(&self, py: Python<'_>, value: &Py<PyAny>) {
        if let Ok(lease) = value.bind(py).cast::<PyExecutorLease>() {
            lease.get().release_now(py);
        }
    }
}

#[pyclass(module = "leasepool._engine", frozen)]
pub(super) struct AcquireTimeout {
    hook: Arc<AcquireHookInner>,
    lease_seconds: f64,
    future: Py<PyLeaseFuture>,
    message: String,
}

#[pymethods]
impl AcquireTimeout {
    fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool acquire timeout", || {
            let message = self.message.clone();
            let err = match self.hook.core.upgrade() {
                Some(core) => {
                    // The estimate first: it counts this caller among those queued.
                    let err = core.timeout_error(py, message, false, self.lease_seconds);
                    if let Some(ticket) = self.hook.ticket.get() {
                        core.time_out_waiter(py, *ticket);
                    }
                    err
                }
                None => acquire_timeout_error(py, message),
            };
            PyLeaseFuture::abort(&self.future, py, Outcome::Error(err));
        });
    }
}
