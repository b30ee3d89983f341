//! `WorkGrinder.metrics()`: the engine's [`GrinderMetricsSnapshot`] as a
//! `leasepool.metrics.GrinderMetrics` (durations in seconds).

use leasepool::metrics::{GrinderMetricsSnapshot, HistogramSnapshot};
use pyo3::types::{PyDict, PyTuple};

use super::*;
use crate::py_cache::{grinder_metrics_cls, histogram_snapshot_cls};

const NS_PER_SECOND: f64 = 1e9;

impl GrinderCore {
    /// A snapshot, read under the grinder's lock (so consistent), built outside it.
    pub(super) fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let snap: GrinderMetricsSnapshot = lock(&self.state).engine.metrics();
        let counts = snap.counts;
        let out = PyDict::new(py);
        out.set_item("name", &self.settings.owner_prefix)?;
        out.set_item("pending", snap.pending)?;
        out.set_item("batches_in_flight", snap.batches_in_flight)?;
        out.set_item("items_submitted", counts.items_submitted)?;
        out.set_item("items_finished", counts.items_finished)?;
        out.set_item("items_failed", counts.items_failed)?;
        out.set_item("items_cancelled", counts.items_cancelled)?;
        out.set_item("batches_dispatched", counts.batches_dispatched)?;
        out.set_item("batches_completed", counts.batches_completed)?;
        out.set_item("batch_size", histogram(py, &snap.batch_size, 1.0)?)?;
        out.set_item(
            "batch_latency",
            histogram(py, &snap.batch_latency, NS_PER_SECOND)?,
        )?;
        grinder_metrics_cls(py)?.call((), Some(&out))
    }
}

/// A `leasepool.metrics.HistogramSnapshot`: bounds and sum divided by `per_unit`
/// (nanoseconds → seconds), counts as they are.
fn histogram<'py>(
    py: Python<'py>,
    snap: &HistogramSnapshot,
    per_unit: f64,
) -> PyResult<Bound<'py, PyAny>> {
    #[allow(clippy::cast_precision_loss)] // bounds and sums are far below 2^53 in practice
    let scale = |value: u64| value as f64 / per_unit;
    let kwargs = PyDict::new(py);
    kwargs.set_item(
        "bounds",
        PyTuple::new(py, snap.bounds.iter().map(|&b| scale(b)))?,
    )?;
    kwargs.set_item("counts", PyTuple::new(py, &snap.counts)?)?;
    kwargs.set_item("sum", scale(snap.sum))?;
    histogram_snapshot_cls(py)?.call((), Some(&kwargs))
}
