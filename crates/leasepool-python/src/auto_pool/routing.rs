//! The manager-wide routing of `backend="auto"`: which callable runs where, learnt
//! from what its calls cost (the engine's [`Router`] decides; this only measures,
//! names callables and logs).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use leasepool::routing::{Hint, Route, RouteChange, RouteView, Router, RoutingPolicy};
use pyo3::ffi;
use pyo3::prelude::*;

use crate::job::{CallCosts, Job};
use crate::logging::{Logger, DEBUG, INFO, WARNING};
use crate::py_cache::{functools_partial, method_type, worker_dumps};
use crate::sync::lock;

/// The attribute `leasepool.offload.cpu_bound`/`io_bound` set on a callable.
const HINT_ATTRIBUTE: &str = "__leasepool_route__";

/// The routing table of one manager and what it needs to learn.
pub(crate) struct Routing {
    router: Mutex<Router>,
    /// Calls running on the thread workers of this manager's pools (they share a GIL).
    on_threads: AtomicUsize,
    logger: Logger,
}

impl Routing {
    pub(crate) fn new(logger: Logger) -> Arc<Self> {
        Arc::new(Self {
            router: Mutex::new(Router::new(RoutingPolicy::default())),
            on_threads: AtomicUsize::new(0),
            logger,
        })
    }

    /// Where `job`'s call goes; the job is told to report its cost here.
    pub(crate) fn route(self: &Arc<Self>, py: Python<'_>, job: &mut Job) -> Route {
        let func = job.parts().0.bind(py).clone();
        let (key, target) = callable_key(py, &func);
        // Python (the name, the hint) is read only at first sight, and never under the
        // router's lock: user code there could release the GIL or route a call itself.
        let known = lock(&self.router).knows(key);
        let first_sight = (!known).then(|| (describe(&target), hint_of(&target)));
        let route = match first_sight {
            Some((name, hint)) => lock(&self.router).route(key, hint, || name),
            None => lock(&self.router).route(key, None, String::new),
        };
        let costs: Arc<dyn CallCosts> = self.clone();
        job.costed_by(key, costs);
        route
    }

    /// A call of `key` (`func`) could not be pickled (`err`): if the callable itself
    /// cannot be, it stays on threads for good (logged once at WARNING); if only this
    /// call's arguments cannot be, only this call runs on a thread.
    pub(crate) fn unpicklable(
        &self,
        py: Python<'_>,
        key: u64,
        func: &Bound<'_, PyAny>,
        err: &PyErr,
    ) {
        let callable_pickles = worker_dumps(py)
            .and_then(|dumps| dumps.call1((func,)))
            .is_ok();
        if callable_pickles {
            self.logger.log(
                py,
                DEBUG,
                "Arguments cannot be pickled; the call runs on a thread callable=%s",
                (describe(func),),
                Some(err),
            );
            return;
        }
        let change = lock(&self.router).unpicklable(key);
        if let Some(change) = change {
            self.logger.log(
                py,
                WARNING,
                "Callable cannot be pickled; its calls stay on threads callable=%s",
                (&*change.name,),
                Some(err),
            );
        }
    }

    /// Every callable remembered, most recently routed first.
    pub(crate) fn views(&self) -> Vec<RouteView> {
        lock(&self.router).views()
    }

    /// `(calls offloaded to processes, route changes)` so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        let router = lock(&self.router);
        (router.offloaded(), router.changes())
    }

    fn log_change(&self, py: Python<'_>, change: Option<RouteChange>) {
        if let Some(change) = change {
            self.logger.log(
                py,
                INFO,
                "Routing callable=%s to=%s reason=%s",
                (&*change.name, change.to.as_str(), change.reason.as_str()),
                None,
            );
        }
    }
}

impl CallCosts for Routing {
    fn thread_call_started(&self) -> usize {
        self.on_threads.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn thread_call_ended(&self, py: Python<'_>, key: u64, cpu: f64, wall: f64, sharing: usize) {
        let at_end = self.on_threads.fetch_sub(1, Ordering::Relaxed);
        // The calls that shared the GIL with this one: the mean of the counts at its
        // start and end (both include itself).
        let sharing = (sharing + at_end).div_ceil(2);
        let change = lock(&self.router).record_thread(key, cpu, wall, sharing);
        self.log_change(py, change);
    }

    fn process_call_ended(&self, py: Python<'_>, key: u64, cpu: f64, wall: f64) {
        let change = lock(&self.router).record_process(key, cpu, wall);
        self.log_change(py, change);
    }
}

/// Identifies a callable for routing, and the object that carries its name and hint:
/// a function by its code object (a lambda made anew in a loop is one callable), a
/// bound method by its function, a `functools.partial` by what it wraps, anything
/// else by its identity.
pub(crate) fn callable_key<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
) -> (u64, Bound<'py, PyAny>) {
    let mut target = func.clone();
    for _ in 0..8 {
        // SAFETY: `target` is a live object; PyFunction_Check only reads its type, and
        // PyFunction_GetCode returns a borrowed reference to the function's code.
        if unsafe { ffi::PyFunction_Check(target.as_ptr()) } != 0 {
            let code = unsafe { ffi::PyFunction_GetCode(target.as_ptr()) };
            return (code as u64, target);
        }
        let inner = if method_type(py).is_ok_and(|t| target.get_type().is(t)) {
            target.getattr("__func__").ok()
        } else if functools_partial(py).is_ok_and(|t| target.is_instance(t).unwrap_or(false)) {
            target.getattr("func").ok()
        } else {
            None
        };
        match inner {
            Some(inner) => target = inner,
            None => break,
        }
    }
    (target.as_ptr() as u64, target)
}

/// The hint `leasepool.offload.cpu_bound`/`io_bound` left on `target`, if any.
fn hint_of(target: &Bound<'_, PyAny>) -> Option<Hint> {
    let hint = target.getattr_opt(HINT_ATTRIBUTE).ok()??;
    match hint.extract::<String>().ok()?.as_str() {
        "cpu" => Some(Hint::Cpu),
        "io" => Some(Hint::Io),
        _ => None,
    }
}

/// `module.qualname` of a callable (its `repr` if it has no name).
fn describe(func: &Bound<'_, PyAny>) -> String {
    let name = func
        .getattr("__qualname__")
        .or_else(|_| func.getattr("__name__"))
        .and_then(|n| n.str().map(|s| s.to_string()));
    let Ok(name) = name else {
        return func
            .repr()
            .map_or_else(|_| "?".to_owned(), |r| r.to_string());
    };
    match func
        .getattr("__module__")
        .and_then(|m| m.extract::<String>())
    {
        Ok(module) => format!("{module}.{name}"),
        Err(_) => name,
    }
}
