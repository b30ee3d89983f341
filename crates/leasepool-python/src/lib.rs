//! `leasepool._engine`: the PyO3 binding of the leasepool engine.
//!
//! One module per concern, layered (a module uses only those listed before it; no
//! cycles, checked by `tests/test_architecture.py`):
//!
//! 1. [`sync`], [`attach`] (which threads may attach), [`py_cache`] (cached stdlib
//!    objects), [`errors`], [`logging`], [`coerce`] (argument checks),
//!    [`lifecycle`] (the fork and exit hooks and their registry);
//! 2. [`aio`]: the awaitable, the start/stop coroutine and the worker → event-loop
//!    bridge;
//! 3. [`job`]: a queued call and whom it settles;
//! 4. [`pool`] (what a leased executor must do), [`thread_pool`] (native worker
//!    threads), [`process_pool`] (process and interpreter backends);
//! 5. [`manager`]: LeasedExecutorManager with its leases (ExecutorLease) and call
//!    slots (`manager.run`);
//! 6. [`grinder`]: WorkGrinder, a client of the manager.

mod aio;
mod attach;
mod auto_pool;
mod coerce;
mod errors;
mod grinder;
mod job;
mod lifecycle;
mod logging;
mod manager;
mod pool;
mod process_pool;
mod py_cache;
mod snapshot;
mod sync;
mod thread_pool;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<manager::PyLeasedExecutorManager>()?;
    m.add_class::<manager::PyExecutorLease>()?;
    m.add_class::<manager::PyDrainReport>()?;
    m.add_class::<aio::PyLeaseFuture>()?;
    aio::install_am_send(py);
    m.add_class::<aio::PyEngineCoroutine>()?;
    m.add_class::<grinder::PyWorkGrinder>()?;
    m.add_function(wrap_pyfunction!(coerce::parse_memory_size, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_set_clock_skew_for_tests, m)?)?;

    // asyncio.create_task()/TaskGroup accept what collections.abc.Coroutine accepts.
    let coroutine_abc = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine_abc.call_method1("register", (py.get_type::<aio::PyLeaseFuture>(),))?;
    coroutine_abc.call_method1("register", (py.get_type::<aio::PyEngineCoroutine>(),))?;

    // Fork and interpreter exit (see `lifecycle`).
    lifecycle::install(m)
}
