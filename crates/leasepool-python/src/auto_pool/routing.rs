//! The manager-wide routing of `backend="auto"`: which callable runs where, learnt
//! from what its calls cost (the engine's [`Router`] decides; this only measures,
//! names callables and logs).

use std::sync::{Arc, Mutex};

use leasepool::routing::{CallCost, Hint, Route, RouteChange, RouteView, Router, RoutingPolicy};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::job::{CallCosts, Job};
use crate::logging::{Logger, DEBUG, INFO, WARNING};
use crate::py_cache::{functools_partial, method_type, worker_dumps};
use crate::sync::lock;

/// The attribute `leasepool.offload.cpu_bound`/`io_bound` set on a callable.
const HINT_ATTRIBUTE: &str = "__leasepool_route__";

/// The routing table of one manager and what it needs to learn.
pub(crate) struct Routing {
    /// Locked only while attached to the interpreter and never across Python code, so
    /// no thread can hold it when the process forks (fork happens under the GIL).
    router: Mutex<Router>,
    logger: Logger,
}

impl Routing {
    pub(crate) fn new(logger: Logger) -> Arc<Self> {
        Arc::new(Self {
            router: Mutex::new(Router::new(RoutingPolicy::default())),
            logger,
        })
    }

    /// Where `job`'s call goes; the job is told to report its cost here.
    pub(crate) fn route(self: &Arc<Self>, py: Python<'_>, job: &mut Job) -> Route {
        let func = job.parts().0.bind(py).clone();
        let (key, target) = callable_key(py, &func);
        // Python (the name, the hint) is read only at first sight, and never under the
        // router's lock: user code there could release the GIL or route a call itself.
        // A hint may sit on the callable given (a hinted partial) or on what it wraps.
        let known = lock(&self.router).route_known(key);
        let route = known.unwrap_or_else(|| {
            let (name, hint) = (
                describe(&target),
                hint_of(&func).or_else(|| hint_of(&target)),
            );
            lock(&self.router).route(key, hint, || name)
        });
        let costs: Arc<dyn CallCosts> = self.clone();
        job.costed_by(key, costs);
        route
    }

    /// A call of `func` could not be pickled (`err`): if what it runs (the function
    /// under a bound method or a partial: what the route belongs to) cannot be pickled,
    /// the callable stays on threads for good (logged once at WARNING); if only this
    /// call's arguments (or the object a method is bound to) cannot be, only this call
    /// runs on a thread.
    pub(crate) fn unpicklable(
        &self,
        py: Python<'_>,
        key: u64,
        func: &Bound<'_, PyAny>,
        err: &PyErr,
    ) {
        let (_, target) = callable_key(py, func);
        let target_pickles = worker_dumps(py)
            .and_then(|dumps| dumps.call1((&target,)))
            .is_ok();
        if target_pickles {
            self.logger.log(
                py,
                DEBUG,
                "Arguments cannot be pickled; the call runs on a thread callable=%s",
                (describe(&target),),
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
    fn thread_call_ended(&self, py: Python<'_>, key: u64, cost: CallCost) {
        let change = lock(&self.router).record_thread(key, cost);
        self.log_change(py, change);
    }

    fn process_call_ended(&self, py: Python<'_>, key: u64, cost: CallCost) {
        let change = lock(&self.router).record_process(key, cost);
        self.log_change(py, change);
    }
}

/// Identifies a callable for routing, and the object that carries its name and hint:
/// a function by its code object (a lambda made anew in a loop is one callable), a
/// bound method or a `functools.partial` by what it wraps, an instance by its class's
/// `__call__`, anything else (a builtin) by its qualified name. Never by an object's
/// address alone: an address is reused as soon as the object dies, and a new object
/// would inherit a dead one's route.
pub(crate) fn callable_key<'py>(
    py: Python<'py>,
    func: &Bound<'py, PyAny>,
) -> (u64, Bound<'py, PyAny>) {
    let mut target = func.clone();
    for _ in 0..8 {
        if let Some(code) = function_code(&target) {
            return (code, target);
        }
        let inner = if method_type(py).is_ok_and(|t| target.get_type().is(t)) {
            target.getattr("__func__").ok()
        } else if functools_partial(py).is_ok_and(|t| target.is_instance(t).unwrap_or(false)) {
            target.getattr("func").ok()
        } else if target.getattr_opt("__qualname__").ok().flatten().is_none() {
            // An instance: its class's `__call__` (a Python function, or a builtin).
            target.get_type().getattr("__call__").ok()
        } else {
            None
        };
        match inner {
            Some(inner) => target = inner,
            None => break,
        }
    }
    (name_key(&describe(&target)), target)
}

/// The code object's address of a Python function (the code lives as long as the
/// function's module or closure factory does, and is shared by its closures).
fn function_code(target: &Bound<'_, PyAny>) -> Option<u64> {
    // SAFETY: `target` is a live object; PyFunction_Check only reads its type, and
    // PyFunction_GetCode returns a borrowed reference to the function's code.
    unsafe {
        (ffi::PyFunction_Check(target.as_ptr()) != 0)
            .then(|| ffi::PyFunction_GetCode(target.as_ptr()) as u64)
    }
}

/// A key from a callable's qualified name (for builtins and other callables without
/// code of their own). The low bit is set so it never equals a code object's address.
fn name_key(name: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    hasher.finish() | 1
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

/// `module.qualname` of a callable; its class's for an object without a name (never
/// its `repr`, which may be huge or run user code). At most [`MAX_NAME`] characters.
fn describe(func: &Bound<'_, PyAny>) -> String {
    let named = |object: &Bound<'_, PyAny>| -> Option<String> {
        let name = object.getattr_opt("__qualname__").ok().flatten()?;
        let name = name.cast::<PyString>().ok()?.to_str().ok()?.to_owned();
        let module = object
            .getattr_opt("__module__")
            .ok()
            .flatten()
            .and_then(|m| m.cast::<PyString>().ok()?.to_str().ok().map(str::to_owned));
        Some(module.map_or_else(|| name.clone(), |module| format!("{module}.{name}")))
    };
    let mut name = named(func)
        .or_else(|| named(func.get_type().as_any()).map(|class| format!("{class} instance")))
        .unwrap_or_else(|| "?".to_owned());
    if name.len() > MAX_NAME {
        let cut = (0..=MAX_NAME)
            .rev()
            .find(|&i| name.is_char_boundary(i))
            .unwrap_or(0);
        name.truncate(cut);
    }
    name
}

/// The longest callable name the routing table keeps.
const MAX_NAME: usize = 200;
