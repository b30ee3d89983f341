//! The engine's metric snapshots into `leasepool.metrics`' dataclasses: the piece the
//! manager's and the grinder's `metrics()` share.

use leasepool::metrics::HistogramSnapshot;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::py_cache::histogram_snapshot_cls;

/// Engine nanoseconds per second of the Python snapshots.
pub(crate) const NS_PER_SECOND: f64 = 1e9;

/// A `leasepool.metrics.HistogramSnapshot`: bounds and sum divided by `per_unit`
/// (`NS_PER_SECOND` for durations, 1 for counts; a division, so the bounds print as
/// `0.001`, not `0.0010000000000000002`), counts as they are.
pub(crate) fn histogram<'py>(
    py: Python<'py>,
    snapshot: &HistogramSnapshot,
    per_unit: f64,
) -> PyResult<Bound<'py, PyAny>> {
    #[allow(clippy::cast_precision_loss)] // bounds and sums are far below 2^53 in practice
    let scale = |value: u64| value as f64 / per_unit;
    let bounds: Vec<f64> = snapshot.bounds.iter().map(|&bound| scale(bound)).collect();
    histogram_snapshot_cls(py)?.call1((
        PyTuple::new(py, bounds)?,
        PyTuple::new(py, &snapshot.counts)?,
        scale(snapshot.sum),
    ))
}
