//! `WorkGrinder.metrics()`: the engine's [`GrinderMetricsSnapshot`] as a
//! `leasepool.metrics.GrinderMetrics` (durations in seconds).

use leasepool::metrics::GrinderMetricsSnapshot;
use pyo3::types::PyDict;

use super::*;
use crate::py_cache::grinder_metrics_cls;
use crate::snapshot::{histogram, NS_PER_SECOND};

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
