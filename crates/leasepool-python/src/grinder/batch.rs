//! A grinder batch on its way: the lease it waits for (`BatchStart`), the count of
//! its calls still running (`BatchProgress`), and the flush timer.

use super::*;

/// Counts a batch's jobs down; the last one releases the lease.
pub(super) struct BatchProgress {
    pub(super) core: Arc<GrinderCore>,
    pub(super) lease: Py<PyExecutorLease>,
    pub(super) batch_id: u64,
    pub(super) size: usize,
    pub(super) remaining: AtomicUsize,
}

impl JobObserver for BatchProgress {
    fn job_done(&self, py: Python<'_>) {
        self.core.items_finished(py, 1);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let cancelled = lock(&self.core.state)
                .batches
                .get(&self.batch_id)
                .is_some_and(|track| track.cancelled);
            if !cancelled {
                self.core.logger.log(
                    py,
                    INFO,
                    "Finished batch batch_id=%s size=%s",
                    (self.batch_id, self.size),
                    None,
                );
            }
            self.lease.get().release_now(py);
            self.core.batch_finished(py, self.batch_id);
        }
    }
}

/// Done-callback of a batch's acquire: submits the batch to the leased pool.
#[pyclass(module = "leasepool._engine", frozen)]
pub(super) struct BatchStart {
    pub(super) core: Arc<GrinderCore>,
    pub(super) batch_id: u64,
    pub(super) jobs: Mutex<Option<Vec<Job>>>,
}

impl BatchStart {
    pub(super) fn fail(&self, py: Python<'_>, err: &PyErr) {
        let jobs = lock(&self.jobs).take().unwrap_or_default();
        self.core.logger.log(
            py,
            ERROR,
            "Batch failed batch_id=%s size=%s",
            (self.batch_id, jobs.len()),
            Some(err),
        );
        let count = jobs.len();
        for job in jobs {
            job.fail(py, err.clone_ref(py));
        }
        self.core.items_finished(py, count);
        self.core.batch_finished(py, self.batch_id);
    }

    /// `stop(cancel_pending=True)` withdrew the batch's acquire: its items never run.
    pub(super) fn cancel(&self, py: Python<'_>) {
        let jobs = lock(&self.jobs).take().unwrap_or_default();
        let count = jobs.len();
        for job in jobs {
            job.cancel(py);
        }
        self.core.items_finished(py, count);
        self.core.batch_finished(py, self.batch_id);
    }
}

#[pymethods]
impl BatchStart {
    pub(super) fn __call__(&self, py: Python<'_>, future: &Bound<'_, PyAny>) {
        crate::errors::contain_panics(py, "leasepool WorkGrinder batch start", || {
            self.start(py, future);
        });
    }
}

impl BatchStart {
    pub(super) fn start(&self, py: Python<'_>, future: &Bound<'_, PyAny>) {
        if future
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false)
        {
            return self.cancel(py);
        }
        // Leased: from now on its items are cancelled one by one.
        let acquire = lock(&self.core.state)
            .batches
            .get_mut(&self.batch_id)
            .and_then(|track| track.acquire.take());
        drop(acquire); // outside the lock
        let lease = match future.call_method0("result") {
            Ok(lease) => lease,
            Err(err) => return self.fail(py, &err),
        };
        let Ok(lease) = lease.cast_into::<PyExecutorLease>() else {
            return self.fail(py, &runtime_error("acquire() returned no lease"));
        };
        let jobs = lock(&self.jobs).take().unwrap_or_default();
        let progress = Arc::new(BatchProgress {
            core: self.core.clone(),
            lease: lease.clone().unbind(),
            batch_id: self.batch_id,
            size: jobs.len(),
            remaining: AtomicUsize::new(jobs.len()),
        });
        let observer: Arc<dyn JobObserver> = progress;
        let jobs: Vec<Job> = jobs
            .into_iter()
            .map(|job| job.observed_by(observer.clone()))
            .collect();
        if let Err((jobs, err)) = lease.get().submit_jobs(py, jobs) {
            for job in jobs {
                job.fail(py, err.clone_ref(py));
            }
        }
    }
}

#[pyclass(module = "leasepool._engine", frozen)]
pub(super) struct FlushTimer {
    pub(super) core: Arc<GrinderCore>,
}

#[pymethods]
impl FlushTimer {
    pub(super) fn __call__(&self, py: Python<'_>) {
        crate::errors::contain_panics(py, "leasepool WorkGrinder timer", || {
            self.core.on_timer(py);
        });
    }
}
