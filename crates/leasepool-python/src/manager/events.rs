//! Performing what an engine operation decided, after its lock is released: log
//! records, settled waiters, started calls, pools shut down or revoked.

use super::*;

impl ManagerCore {
    /// Performs the effects of an engine operation (after the lock was dropped).
    pub(super) fn perform(
        self: &Arc<Self>,
        py: Python<'_>,
        fx: Fx,
        bridge: Option<&Arc<LoopBridge>>,
    ) {
        let Effects {
            granted,
            slots_granted,
            refused,
            dropped,
            retired,
            revoked,
            events,
        } = fx;
        self.log_events(py, events);
        for (waiter, grant) in granted {
            let (owner, deliver): (Owner, Deliver) = match waiter {
                Queued::Acquire(QueuedAcquire { future, owner }) => {
                    (owner, Deliver::Future(future))
                }
                Queued::Taker(owner, taker) => (owner, Deliver::Taker(taker)),
                // The engine grants pools to pool waiters only.
                Queued::Call(_) => continue,
            };
            let lease = match bridge {
                Some(bridge) => self.make_lease(py, grant, owner, bridge),
                None => Err(lease_error(py, &LeaseError::NotStarted)),
            };
            deliver.lease(py, lease);
        }
        for (waiter, grant) in slots_granted {
            match waiter {
                Queued::Call(call) => self.start_call(py, call.job, grant),
                // The engine grants slots to slot waiters only; give it back.
                Queued::Acquire(_) | Queued::Taker(..) => self.end_slot(py, grant.key, false),
            }
        }
        for waiter in refused {
            waiter.refuse(py, lease_error(py, &LeaseError::NotStarted));
        }
        drop(dropped);
        for pool in retired {
            pool.shutdown(py, None);
        }
        for pool in revoked {
            pool.revoke(py);
        }
        self.poll_drain(py);
    }

    pub(super) fn log_events(&self, py: Python<'_>, events: Vec<Event<Owner>>) {
        if events.is_empty() {
            return;
        }
        let info = self.logger.enabled(py, INFO);
        // Asked only when a slot record comes up: the lease path pays for one check.
        let mut debug: Option<bool> = None;
        for event in events {
            let enabled = match &event {
                Event::SlotLeased { .. } | Event::SlotEnded { .. } => {
                    *debug.get_or_insert_with(|| info || self.logger.enabled(py, DEBUG))
                }
                Event::Revoked { .. } | Event::Overdue { .. } => true,
                _ => info,
            };
            if enabled {
                self.log_event(py, event);
            }
        }
    }

    /// 0.1.3's record of one engine event (slot records are ours, at DEBUG).
    fn log_event(&self, py: Python<'_>, event: Event<Owner>) {
        let backend = &self.cfg.backend_name;
        match event {
            Event::Created { seq } => self.logger.log(
                py,
                INFO,
                "Created executor backend=%s seq=%s workers=%s",
                (backend, seq, self.cfg.workers_per_pool),
                None,
            ),
            Event::Leased {
                id,
                meta,
                lease_seconds,
                grace_seconds,
            } => self.logger.log(
                py,
                INFO,
                "Leased executor backend=%s lease_id=%s owner=%s seconds=%s grace=%s",
                (
                    backend,
                    id.hex().as_str(),
                    meta.clone_ref(py),
                    lease_seconds,
                    grace_seconds,
                ),
                None,
            ),
            Event::Draining { id, meta, pending } => self.logger.log(
                py,
                INFO,
                "Released executor lease_id=%s owner=%s pending=%s draining=True",
                (id.hex().as_str(), meta.clone_ref(py), pending),
                None,
            ),
            Event::Released { id, meta, kept } => self.logger.log(
                py,
                INFO,
                "Finalized released executor lease_id=%s owner=%s kept=%s",
                (id.hex().as_str(), meta.clone_ref(py), kept),
                None,
            ),
            event => self.log_slot_or_revocation(py, event),
        }
    }

    fn log_slot_or_revocation(&self, py: Python<'_>, event: Event<Owner>) {
        match event {
            Event::SlotLeased { id, meta, seq } => self.logger.log(
                py,
                DEBUG,
                "Leased executor slot backend=%s lease_id=%s owner=%s seq=%s",
                (
                    &self.cfg.backend_name,
                    id.hex().as_str(),
                    meta.clone_ref(py),
                    seq,
                ),
                None,
            ),
            Event::SlotEnded { id, meta } => self.logger.log(
                py,
                DEBUG,
                "Finished executor slot lease_id=%s owner=%s",
                (id.hex().as_str(), meta.clone_ref(py)),
                None,
            ),
            Event::Revoked {
                id,
                meta,
                lease_seconds,
                grace_seconds,
            } => self.logger.log(
                py,
                WARNING,
                "Revoking expired executor lease_id=%s owner=%s lease_seconds=%s grace=%s",
                (
                    id.hex().as_str(),
                    meta.clone_ref(py),
                    lease_seconds,
                    grace_seconds,
                ),
                None,
            ),
            overdue @ Event::Overdue { .. } => self.log_overdue(py, overdue),
            Event::Resized { from, to, reason } => self.logger.log(
                py,
                INFO,
                "Autoscale target changed from=%s to=%s reason=%s",
                (from, to, reason.as_str()),
                None,
            ),
            // Logged where it happens (with the pool's error): see `retire_broken`.
            _ => {}
        }
    }

    /// The leak report: a lease held past its soft expiry.
    fn log_overdue(&self, py: Python<'_>, event: Event<Owner>) {
        if let Event::Overdue {
            id,
            meta,
            age,
            lease_seconds,
            until_revoked,
            slot,
        } = event
        {
            self.logger.log(
                py,
                WARNING,
                "Executor lease held past its soft expiry lease_id=%s owner=%s kind=%s \
                 age=%.3f lease_seconds=%s revoked_in=%.3f acquired_at=%s",
                (
                    id.hex().as_str(),
                    meta.clone_ref(py),
                    if slot { "call" } else { "pool" },
                    age,
                    lease_seconds,
                    until_revoked,
                    meta.site(py)
                        .unwrap_or_else(|| String::from("? (track_acquire_site=False)")),
                ),
                None,
            );
        }
    }
}

/// Where a granted lease goes.
enum Deliver {
    Future(Py<PyLeaseFuture>),
    Taker(Arc<dyn LeaseTaker>),
}

impl Deliver {
    fn lease(self, py: Python<'_>, lease: PyResult<Py<PyExecutorLease>>) {
        match (self, lease) {
            (Self::Future(future), lease) => {
                let outcome = match lease {
                    Ok(lease) => Outcome::Value(lease.into_any()),
                    Err(err) => Outcome::Error(err),
                };
                PyLeaseFuture::settle_claimed(&future, py, outcome);
            }
            (Self::Taker(taker), Ok(lease)) => taker.leased(py, lease.into_bound(py)),
            (Self::Taker(taker), Err(err)) => taker.refused(py, err),
        }
    }
}
