//! Python objects the engine looks up once per interpreter.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;

/// `module.attr`, imported on first use and cached for the interpreter's life.
macro_rules! cached_attr {
    ($fn_name:ident, $module:literal, $attr:literal) => {
        pub(crate) fn $fn_name(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
            static CELL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            CELL.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import($module)?.getattr($attr)?.unbind())
            })
            .map(|obj| obj.bind(py))
        }
    };
}

cached_attr!(cancelled_error, "asyncio", "CancelledError");
cached_attr!(invalid_state_error, "asyncio", "InvalidStateError");
cached_attr!(get_running_loop, "asyncio", "get_running_loop");
// The running loop or None (never raises): for ownership checks.
cached_attr!(current_running_loop, "asyncio", "_get_running_loop");
cached_attr!(concurrent_future, "concurrent.futures", "Future");
cached_attr!(
    concurrent_cancelled_error,
    "concurrent.futures",
    "CancelledError"
);
cached_attr!(
    broken_thread_pool,
    "concurrent.futures.thread",
    "BrokenThreadPool"
);
cached_attr!(threading_thread, "threading", "Thread");
cached_attr!(method_type, "types", "MethodType");
cached_attr!(functools_partial, "functools", "partial");
cached_attr!(leased_executor_cls, "leasepool._executor", "LeasedExecutor");
cached_attr!(normalize_backend, "leasepool.backends", "normalize_backend");
// Cold-path configuration and stdlib glue, in typed Python.
cached_attr!(
    process_logging_config,
    "leasepool._config",
    "process_logging_config"
);
cached_attr!(
    thread_pool_settings,
    "leasepool._config",
    "thread_pool_settings"
);
cached_attr!(
    split_worker_options,
    "leasepool._worker_options",
    "split_worker_options"
);
cached_attr!(
    context_payload,
    "leasepool._worker_options",
    "context_payload"
);
cached_attr!(retry_budget, "leasepool.resilience", "retry_budget");
cached_attr!(
    resolve_executor_settings,
    "leasepool._process_backend",
    "resolve_executor_settings"
);
cached_attr!(
    executor_processes,
    "leasepool._process_backend",
    "executor_processes"
);
cached_attr!(
    executor_threads,
    "leasepool._process_backend",
    "executor_threads"
);
cached_attr!(
    wait_for_teardown,
    "leasepool._process_backend",
    "wait_for_teardown"
);
cached_attr!(
    stop_broken_processes,
    "leasepool._process_backend",
    "stop_broken_processes"
);
cached_attr!(describe_exit, "leasepool._process_backend", "describe_exit");
cached_attr!(
    launch_processes,
    "leasepool._process_backend",
    "launch_processes"
);
cached_attr!(
    coerce_log_level,
    "leasepool._process_logging",
    "coerce_log_level"
);
cached_attr!(get_logger, "logging", "getLogger");

// Process and interpreter backends.
cached_attr!(worker_dumps, "leasepool._process_worker", "dumps");
cached_attr!(worker_run_chunk, "leasepool._process_worker", "run_chunk");
cached_attr!(submit_task, "leasepool._process_backend", "submit_task");
cached_attr!(
    keep_workers_replaced,
    "leasepool._process_backend",
    "keep_workers_replaced"
);
cached_attr!(worker_initialize, "leasepool._process_worker", "initialize");
cached_attr!(pickle_loads, "pickle", "loads");
cached_attr!(dask_dumps_call, "leasepool._dask", "dumps_call");
cached_attr!(dask_pickle_dumps, "distributed.protocol.pickle", "dumps");
cached_attr!(
    check_dask_arguments,
    "leasepool._dask",
    "check_dask_arguments"
);
cached_attr!(
    broken_process_pool,
    "concurrent.futures.process",
    "BrokenProcessPool"
);
cached_attr!(raw_array, "multiprocessing.sharedctypes", "RawArray");
cached_attr!(background_release, "leasepool._background", "release");
cached_attr!(background_run, "leasepool._background", "run");
cached_attr!(background_kill_after, "leasepool._background", "kill_after");
cached_attr!(background_reap, "leasepool._background", "reap");
cached_attr!(
    start_forwarding,
    "leasepool._process_logging",
    "start_forwarding"
);

/// The exception classes of `leasepool.exceptions` (plain Python classes, so users
/// can subclass and catch them exactly as before).
pub(crate) fn exception_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    Ok(py
        .import("leasepool.exceptions")?
        .getattr(name)?
        .cast_into::<PyType>()?)
}
// `leasepool.metrics`' dataclasses (metrics(), leases()).
cached_attr!(grinder_metrics_cls, "leasepool.metrics", "GrinderMetrics");
cached_attr!(manager_metrics_cls, "leasepool.metrics", "ManagerMetrics");
cached_attr!(owner_metrics_cls, "leasepool.metrics", "OwnerMetrics");
cached_attr!(
    histogram_snapshot_cls,
    "leasepool.metrics",
    "HistogramSnapshot"
);
cached_attr!(lease_info_cls, "leasepool.metrics", "LeaseInfo");
