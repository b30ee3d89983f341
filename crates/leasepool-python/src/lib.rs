//! `leasepool._engine`: the PyO3 binding of the leasepool engine.
//!
//! One module per concern: [`manager`] (LeasedExecutorManager), [`run`] (its one-call
//! path), [`lease`] (ExecutorLease), [`future`] (the awaitable), [`coroutine`]
//! (start/stop), [`bridge`] (worker → event-loop wake-ups), [`pool`] (what a leased
//! executor must do), [`thread_pool`] (native worker threads), [`process_pool`]
//! (process and interpreter backends), [`job`] (a queued call), [`grinder`]
//! (WorkGrinder), [`lifecycle`] (fork and exit hooks), [`attach`] (which threads may attach), [`coerce`] (argument
//! checks), [`errors`], [`logging`], [`py_cache`] (cached stdlib objects), [`sync`].

mod attach;
mod bridge;
mod coerce;
mod coroutine;
mod errors;
mod future;
mod grinder;
mod job;
mod lease;
mod lifecycle;
mod logging;
mod manager;
mod pool;
mod process_pool;
mod py_cache;
mod run;
mod sync;
mod thread_pool;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _engine(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<manager::PyLeasedExecutorManager>()?;
    m.add_class::<lease::PyExecutorLease>()?;
    m.add_class::<future::PyLeaseFuture>()?;
    future::install_am_send(py);
    m.add_class::<coroutine::PyEngineCoroutine>()?;
    m.add_class::<grinder::PyWorkGrinder>()?;
    m.add_function(wrap_pyfunction!(errors::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_set_clock_skew_for_tests, m)?)?;

    // asyncio.create_task()/TaskGroup accept what collections.abc.Coroutine accepts.
    let coroutine_abc = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine_abc.call_method1("register", (py.get_type::<future::PyLeaseFuture>(),))?;
    coroutine_abc.call_method1("register", (py.get_type::<coroutine::PyEngineCoroutine>(),))?;

    // Fork and interpreter exit (see `lifecycle`).
    lifecycle::install(m)
}
