//! The adaptive features' arguments and state: the `autoscale` constructor argument
//! into the engine's [`AutoScalePolicy`], and what `stats()` shows of the autoscaler
//! and of `backend="auto"`'s routing.

use std::time::Duration;

use leasepool::autoscale::{AutoScalePolicy, AutoScaleView};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyList};

use crate::auto_pool::Routing;

use crate::errors::config_error;

/// `None`/`False`: off; `True`: the defaults; a `leasepool.autoscale.AutoScale`: its
/// settings (validated by the dataclass itself); anything else is a `TypeError`.
pub(super) fn policy(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<AutoScalePolicy>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(flag) = value.cast::<PyBool>() {
        return Ok(flag.is_true().then(AutoScalePolicy::default));
    }
    let py = value.py();
    let class = py.import("leasepool.autoscale")?.getattr("AutoScale")?;
    if !value.is_instance(&class)? {
        return Err(PyTypeError::new_err(format!(
            "autoscale must be a leasepool.autoscale.AutoScale, True or None, not {}",
            value.get_type().name()?
        )));
    }
    let window: f64 = value.getattr("window_seconds")?.extract()?;
    let target_wait: f64 = value.getattr("target_wait_seconds")?.extract()?;
    let windows: u32 = value.getattr("scale_down_windows")?.extract()?;
    let seconds =
        |s: f64| Duration::try_from_secs_f64(s).map_err(|e| PyTypeError::new_err(e.to_string()));
    AutoScalePolicy::new(seconds(window)?, seconds(target_wait)?, windows)
        .map(Some)
        .map_err(|e| config_error(&e))
}

/// The controller's state as `stats()["autoscale"]` shows it.
pub(super) fn view_dict<'py>(py: Python<'py>, view: AutoScaleView) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    out.set_item("target", view.target)?;
    out.set_item("window_peak", view.window_peak)?;
    out.set_item("window_waits", view.window_waits)?;
    out.set_item("window_slow_waits", view.window_slow_waits)?;
    out.set_item("surplus_windows", view.surplus_windows)?;
    out.set_item("resizes", view.resizes)?;
    Ok(out)
}

/// `backend="auto"`'s routing table as `stats()["routing"]` shows it: one dict per
/// callable, most recently routed first.
pub(super) fn routing_list<'py>(
    py: Python<'py>,
    routing: &Routing,
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for view in routing.views() {
        let entry = PyDict::new(py);
        entry.set_item("callable", &*view.name)?;
        entry.set_item("route", view.route.as_str())?;
        entry.set_item("reason", view.reason.as_str())?;
        entry.set_item("samples", view.samples)?;
        entry.set_item("last_cpu_share", view.last_share)?;
        entry.set_item("offloaded", view.offloaded)?;
        out.append(entry)?;
    }
    Ok(out)
}
