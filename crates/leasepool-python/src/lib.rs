//! `leasepool._engine`: the PyO3 binding of the leasepool engine.
//!
//! One module per concern: [`manager`] (LeasedExecutorManager), [`run`] (its one-call
//! path), [`lease`] (ExecutorLease), [`future`] (the awaitable), [`coroutine`]
//! (start/stop), [`bridge`] (worker → event-loop wake-ups), [`pool`] (what a leased
//! executor must do), [`thread_pool`] (native worker threads), [`process_pool`]
//! (process and interpreter backends), [`job`] (a queued call), [`grinder`]
//! (WorkGrinder), [`attach`] (which threads may attach), [`coerce`] (argument
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
    m.add_function(wrap_pyfunction!(thread_pool::_shutdown_all_pools, m)?)?;
    m.add_function(wrap_pyfunction!(manager::_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_panic_for_tests, m)?)?;
    m.add_function(wrap_pyfunction!(errors::_set_clock_skew_for_tests, m)?)?;

    // asyncio.create_task()/TaskGroup accept what collections.abc.Coroutine accepts.
    let coroutine_abc = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine_abc.call_method1("register", (py.get_type::<future::PyLeaseFuture>(),))?;
    coroutine_abc.call_method1("register", (py.get_type::<coroutine::PyEngineCoroutine>(),))?;

    // Like ThreadPoolExecutor: at interpreter exit, stop taking work before the
    // interpreter joins the (non-daemon) worker threads.
    py.import("threading")?
        .call_method1("_register_atexit", (m.getattr("_shutdown_all_pools")?,))?;

    // Threads do not survive fork(): the child disowns the parent's engine threads.
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("after_in_child", m.getattr("_after_fork_in_child")?)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
