//! Everything that talks to the event loop: the awaitable every engine operation
//! returns ([`PyLeaseFuture`]), the multi-step coroutine of `start()`/`stop()`
//! ([`PyEngineCoroutine`]), and the bridge through which any thread settles them on
//! their loop ([`LoopBridge`]). The future and the bridge need each other (the
//! bridge settles futures; a future schedules its callbacks through the bridge),
//! which is why they are one module; nothing here knows about leases or pools.

mod bridge;
mod coroutine;
mod future;

pub(crate) use bridge::*;
pub(crate) use coroutine::*;
pub(crate) use future::*;
