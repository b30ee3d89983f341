//! Observability: the constructor's `metrics`, `metrics_owners` and
//! `track_acquire_site`; what a lease carries besides its owner (the acquire site);
//! `manager.metrics()` and `manager.leases()`, which translate the engine's snapshots
//! into `leasepool.metrics`' dataclasses. Every number is the engine's.

use std::ops::Deref;

use leasepool::admission::OwnerKey;
use leasepool::metrics::{CallMetrics, LeaseMetricsSnapshot, OwnerShare};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyString};

use super::*;
use crate::py_cache::{lease_info_cls, manager_metrics_cls, owner_metrics_cls};
use crate::snapshot::{histogram, NS_PER_SECOND};

/// What the manager observes, from its constructor arguments.
pub(super) struct Observe {
    /// Count and time lease events and calls (`metrics=True`, the default).
    pub(super) metrics: bool,
    /// Owners broken down by name (`metrics_owners`, default 0: none).
    pub(super) owners: usize,
    /// Record where each lease was acquired (`track_acquire_site`).
    pub(super) track_site: bool,
}

impl Observe {
    pub(super) fn check(
        metrics: Option<&Bound<'_, PyAny>>,
        metrics_owners: Option<&Bound<'_, PyAny>>,
        track_acquire_site: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let flag = |name: &str, value: Option<&Bound<'_, PyAny>>, default: bool| match value {
            None => Ok(default),
            Some(value) => value
                .cast::<PyBool>()
                .map(|value| value.is_true())
                .map_err(|_| PyTypeError::new_err(format!("{name} must be a bool"))),
        };
        let metrics = flag("metrics", metrics, true)?;
        let track_site = flag("track_acquire_site", track_acquire_site, false)?;
        let owners =
            super::admission::optional_whole("metrics_owners", metrics_owners, 0)?.unwrap_or(0);
        if owners > 0 && !metrics {
            return Err(PyValueError::new_err("metrics_owners needs metrics=True"));
        }
        Ok(Self {
            metrics,
            owners,
            track_site,
        })
    }
}

impl Observe {
    /// Turns the engine's lease metrics on (if asked) and returns the call metrics
    /// the pools' workers record into (the process backend's are handed over here).
    pub(super) fn start_counting(
        &self,
        engine: &mut Engine,
        process: Option<&ProcessBackend>,
    ) -> Option<Arc<CallMetrics>> {
        if !self.metrics {
            return None;
        }
        engine.enable_metrics(self.owners);
        let calls = Arc::new(CallMetrics::default());
        if let Some(process) = process {
            process.count_calls(calls.clone());
        }
        Some(calls)
    }
}

/// Where a lease was acquired: the first caller frame outside leasepool and the
/// asyncio/anyio machinery that forwards to it.
pub(crate) struct AcquireSite {
    file: Py<PyString>,
    line: i32,
}

impl AcquireSite {
    /// `"file:line"`.
    pub(crate) fn describe(&self, py: Python<'_>) -> String {
        format!("{}:{}", self.file.bind(py), self.line)
    }

    /// The acquire site of the Python code calling into the binding now.
    pub(super) fn capture(py: Python<'_>) -> Option<Self> {
        // SAFETY: attached; a borrowed reference to the current frame, or NULL.
        let current = unsafe { ffi::PyEval_GetFrame() };
        if current.is_null() {
            return None;
        }
        // SAFETY: `current` is a live frame object; we take our own reference.
        let mut frame: Bound<'_, PyAny> = unsafe { Bound::from_borrowed_ptr(py, current.cast()) };
        loop {
            let raw = frame.as_ptr().cast::<ffi::PyFrameObject>();
            // SAFETY: `raw` is a live frame; PyFrame_GetCode returns a new reference.
            let code: Bound<'_, PyAny> =
                unsafe { Bound::from_owned_ptr(py, ffi::PyFrame_GetCode(raw).cast()) };
            let file = code.getattr(pyo3::intern!(py, "co_filename")).ok()?;
            let file = file.cast_into::<PyString>().ok()?;
            if !is_forwarding(py, &file) {
                // SAFETY: `raw` is a live frame.
                let line = unsafe { ffi::PyFrame_GetLineNumber(raw) };
                return Some(Self {
                    file: file.unbind(),
                    line,
                });
            }
            // SAFETY: `raw` is a live frame; a new reference to its caller, or NULL.
            let back = unsafe { ffi::PyFrame_GetBack(raw) };
            // SAFETY: a new reference or NULL (the outermost frame).
            frame = unsafe { Bound::from_owned_ptr_or_opt(py, back.cast())? };
        }
    }
}

/// Whether `file` belongs to code that only forwards a caller's request (leasepool
/// itself, asyncio's `run_in_executor`/`to_thread`, anyio's `to_thread`).
fn is_forwarding(py: Python<'_>, file: &Bound<'_, PyString>) -> bool {
    const PACKAGES: [&str; 3] = ["leasepool", "asyncio", "anyio"];
    // Each directory once its package is imported (anyio may come after the first
    // acquire); until then a dict lookup per request with a site to find.
    static DIRS: [OnceLock<String>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let Ok(file) = file.to_str() else {
        return false;
    };
    PACKAGES.iter().zip(&DIRS).any(|(name, dir)| {
        let dir = match dir.get() {
            Some(dir) => dir,
            None => match package_dir(py, name) {
                Some(found) => dir.get_or_init(|| found),
                None => return false,
            },
        };
        file.starts_with(dir.as_str())
    })
}

/// The directory of an imported package, with a trailing separator.
fn package_dir(py: Python<'_>, name: &str) -> Option<String> {
    // `sys.modules` looked up as a dict: a package not imported yet costs one lookup,
    // not an exception per request.
    static MODULES: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    let modules = MODULES
        .get_or_try_init(py, || {
            py.import("sys")?
                .getattr("modules")?
                .cast_into::<PyDict>()
                .map(Bound::unbind)
                .map_err(PyErr::from)
        })
        .ok()?
        .bind(py);
    let module = modules.get_item(name).ok().flatten()?;
    let file: String = module.getattr("__file__").ok()?.extract().ok()?;
    let dir = std::path::Path::new(&file).parent()?;
    Some(format!("{}{}", dir.display(), std::path::MAIN_SEPARATOR))
}

/// What a lease carries for the front end: its owner (what 0.1.3's log records and
/// `stats()` show; the engine's `meta`) and, if tracked, where it was acquired.
/// Derefs to the owner object, which is what nearly every user wants.
pub(crate) struct LeaseTag {
    pub(crate) owner: Py<PyAny>,
    pub(crate) site: Option<AcquireSite>,
}

impl Deref for LeaseTag {
    type Target = Py<PyAny>;

    fn deref(&self) -> &Py<PyAny> {
        &self.owner
    }
}

impl LeaseTag {
    pub(crate) fn new(owner: Py<PyAny>, site: Option<AcquireSite>) -> Owner {
        Arc::new(Self { owner, site })
    }

    /// `"file:line"` of the acquire, if tracked.
    pub(crate) fn site(&self, py: Python<'_>) -> Option<String> {
        self.site.as_ref().map(|site| site.describe(py))
    }
}

/// A request's owner for the per-owner metrics: its key and label (`str(owner)`).
pub(super) type OwnerLabel = Option<(OwnerKey, String)>;

impl ManagerCore {
    /// Names the request's owner in the engine's per-owner metrics (under the engine
    /// lock the caller holds; the label was made before it, outside the lock).
    pub(super) fn name_owner(engine: &mut Engine, label: OwnerLabel) {
        if let (Some((key, label)), Some(metrics)) = (label, engine.metrics_mut()) {
            metrics.name_owner(key, || label);
        }
    }

    /// `manager.metrics()`: safe from any thread (a scrape thread), as it runs no
    /// user code: the desired size is the one last computed, not a fresh
    /// `size_provider()` call.
    pub(super) fn metrics_snapshot(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut desired = self.last_target.load(Ordering::Relaxed);
        let mut resizes = 0;
        let (lease, gauges) = {
            let engine = lock(&self.engine);
            if let Some(view) = engine.autoscale() {
                // Raised at a grant, before any front-end path read the target again.
                desired = desired.max(view.target);
                resizes = view.resizes;
            }
            let gauges = [
                engine.total_count(),
                engine.available_count(),
                engine.leased_count(),
                engine.live_lease_count(),
                engine.waiter_count(),
            ];
            (engine.metrics(), gauges)
        };
        let calls = self.calls.as_ref().map(|calls| calls.snapshot());
        let kwargs = PyDict::new(py);
        kwargs.set_item("name", &self.cfg.name_prefix)?;
        kwargs.set_item("backend", &self.cfg.backend_name)?;
        for (name, value) in [
            "pools_total",
            "pools_available",
            "pools_leased",
            "leases_live",
            "waiters",
        ]
        .into_iter()
        .zip(gauges)
        {
            kwargs.set_item(name, value)?;
        }
        kwargs.set_item("pools_desired", desired)?;
        kwargs.set_item("autoscale_resizes", resizes)?;
        let (offloaded, route_changes) = self.routing.as_ref().map_or((0, 0), |r| r.counts());
        kwargs.set_item("calls_offloaded", offloaded)?;
        kwargs.set_item("route_changes", route_changes)?;
        let (opened, refused) = self.process.as_ref().map_or((0, 0), |p| p.breaker_counts());
        kwargs.set_item("crash_breaker_opens", opened)?;
        kwargs.set_item("rejected_crash_loop", refused)?;
        lease_kwargs(py, &kwargs, lease)?;
        let calls = calls.unwrap_or_else(|| CallMetrics::default().snapshot());
        for (name, value) in [
            ("calls_started", calls.started),
            ("calls_finished", calls.finished),
            ("calls_failed", calls.failed),
            ("calls_cancelled", calls.cancelled),
            ("worker_crashes", calls.crashes),
            ("workers_recycled", calls.recycled),
            ("calls_retried", calls.retried),
        ] {
            kwargs.set_item(name, value)?;
        }
        kwargs.set_item("call_queue", histogram(py, &calls.queue, NS_PER_SECOND)?)?;
        kwargs.set_item("call_run", histogram(py, &calls.run, NS_PER_SECOND)?)?;
        Ok(manager_metrics_cls(py)?.call((), Some(&kwargs))?.unbind())
    }

    /// `manager.leases()`.
    pub(super) fn lease_infos<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let now = monotonic();
        let views: Vec<_> = lock(&self.engine)
            .lease_views()
            .into_iter()
            .map(|view| {
                (
                    view.id,
                    view.meta.clone(),
                    view.timing,
                    [view.slot, view.draining, view.overdue],
                    view.calls_in_flight,
                )
            })
            .collect();
        let list = PyList::empty(py);
        for (id, tag, timing, [slot, draining, overdue], calls) in views {
            let kwargs = PyDict::new(py);
            kwargs.set_item("lease_id", id.hex().as_str())?;
            kwargs.set_item("owner", tag.owner.clone_ref(py))?;
            kwargs.set_item("kind", if slot { "call" } else { "pool" })?;
            kwargs.set_item("age_seconds", (now - timing.leased_at).max(0.0))?;
            kwargs.set_item("seconds_until_soft_expiry", timing.soft_expires_at() - now)?;
            kwargs.set_item("seconds_until_hard_expiry", timing.hard_expires_at() - now)?;
            kwargs.set_item("overdue", overdue)?;
            kwargs.set_item("draining", draining)?;
            kwargs.set_item("calls_in_flight", calls)?;
            kwargs.set_item("acquire_site", tag.site(py))?;
            list.append(lease_info_cls(py)?.call((), Some(&kwargs))?)?;
        }
        Ok(list)
    }
}

/// The lease half of `ManagerMetrics`' arguments (zeros with metrics off).
fn lease_kwargs(
    py: Python<'_>,
    kwargs: &Bound<'_, PyDict>,
    lease: Option<LeaseMetricsSnapshot>,
) -> PyResult<()> {
    let lease = lease.unwrap_or_else(|| leasepool::metrics::LeaseMetrics::new(0).snapshot(0));
    let c = lease.counts;
    for (name, value) in [
        ("pools_created", c.pools_created),
        ("pools_retired", lease.pools_retired),
        ("leases_granted", c.leases_granted),
        ("leases_released", c.leases_released),
        ("leases_overdue", c.leases_overdue),
        ("leases_revoked", c.leases_revoked),
        ("leases_stopped", c.leases_stopped),
        ("acquire_timeouts", c.acquire_timeouts),
        ("rejected_unavailable", c.rejected_unavailable),
        ("rejected_queue_full", c.rejected_queue_full),
        ("rejected_draining", c.rejected_draining),
    ] {
        kwargs.set_item(name, value)?;
    }
    kwargs.set_item(
        "acquire_wait",
        histogram(py, &lease.acquire_wait, NS_PER_SECOND)?,
    )?;
    kwargs.set_item(
        "lease_hold",
        histogram(py, &lease.lease_hold, NS_PER_SECOND)?,
    )?;
    let owners = PyDict::new(py);
    if let Some(table) = lease.owners {
        for (label, share) in &table.named {
            owners.set_item(&**label, owner_metrics(py, share)?)?;
        }
        for (label, share) in [
            ("__anonymous__", table.anonymous),
            ("__other__", table.others),
        ] {
            if share != OwnerShare::default() {
                owners.set_item(label, owner_metrics(py, &share)?)?;
            }
        }
    }
    let owners = py
        .import("types")?
        .getattr("MappingProxyType")?
        .call1((owners,))?;
    kwargs.set_item("owners", owners)
}

fn owner_metrics<'py>(py: Python<'py>, share: &OwnerShare) -> PyResult<Bound<'py, PyAny>> {
    #[allow(clippy::cast_precision_loss)] // nanosecond totals as float seconds
    let seconds = |ns: u64| ns as f64 / NS_PER_SECOND;
    owner_metrics_cls(py)?.call1((
        share.granted,
        share.rejected,
        share.held,
        seconds(share.wait_ns),
        seconds(share.hold_ns),
    ))
}
