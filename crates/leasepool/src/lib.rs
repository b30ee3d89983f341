//! # leasepool
//!
//! The engine behind the `leasepool` Python package, usable on its own: a bounded set
//! of executor pools handed out as short-lived *leases*, with strictly FIFO waiting by
//! direct hand-off, lease expiry with a grace period, adaptive pool counts, and the
//! threading building blocks (job queues, completion queues, a checker clock) that a
//! front end wires to its runtime.
//!
//! The state machine ([`manager::Manager`]) is runtime-agnostic: it is driven with
//! explicit timestamps and returns [`manager::Effects`] for the caller to perform
//! outside its lock.
//!
//! With the `tokio` feature, [`tokio::LeaseManager`] is an async front end of its own.

#![warn(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admission;
pub mod autoscale;
pub mod breaker;
pub mod bytesize;
pub mod chunking;
pub mod claim;
pub mod completion;
pub mod crash;
pub mod drain;
pub mod error;
#[cfg(not(loom))]
pub mod expiry;
pub mod graceful;
pub mod grinder;
pub mod lease;
pub mod manager;
pub mod metrics;
pub mod routing;
pub mod settings;
pub mod sizing;
pub mod slots;
mod sync;
#[cfg(all(feature = "tokio", not(loom)))]
#[cfg_attr(docsrs, doc(cfg(feature = "tokio")))]
pub mod tokio;
pub mod waiters;
pub mod worker_pool;

pub use admission::{AdmissionPolicy, Tenant};
pub use claim::{Claim, ClaimFlag};
pub use drain::{Begin, CallTracker};
pub use error::{ConfigError, LeaseError};
pub use graceful::{DrainReport, RunningCalls};
pub use lease::{LeaseId, LeaseKey, LeaseTiming};
pub use manager::{Acquired, Effects, Event, Grant, Manager, SlotAcquired, Waiter};
pub use sizing::{PoolLimits, PoolLimitsBuilder};
pub use slots::SlotGrant;
