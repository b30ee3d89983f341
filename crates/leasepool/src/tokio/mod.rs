//! An async front end for tokio: [`LeaseManager`].
//!
//! The same engine as the Python package — FIFO hand-off, lease expiry with a grace
//! period, adaptive pool counts — for Rust services whose "pools" are anything
//! cloneable: a client connection pool, a `rayon::ThreadPool`, a GPU queue handle.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), leasepool::LeaseError> {
//! use leasepool::tokio::LeaseManager;
//! use leasepool::PoolLimits;
//!
//! use std::time::Duration;
//!
//! let limits = PoolLimits::builder(2).build().expect("valid limits");
//! let manager = LeaseManager::new(limits, Duration::from_secs(300), |seq| format!("pool-{seq}"));
//! let lease = manager.acquire().await?;          // waits (FIFO) when all pools are leased
//! assert_eq!(lease.pool(), "pool-1");
//! drop(lease);                                   // returned to the manager
//! # Ok(())
//! # }
//! ```
//!
//! # Admission control and graceful drain
//!
//! [`LeaseManager::with_admission`] takes an [`AdmissionPolicy`] (bounded waiting,
//! per-owner limits, fair share, reserved pools; see [`crate::admission`]); requests
//! name their [`Tenant`](crate::Tenant) with [`acquire_as`](LeaseManager::acquire_as) or
//! [`try_acquire_as`](LeaseManager::try_acquire_as). A shed request's error carries
//! [`LeaseError::retry_after`] (e.g. for an HTTP 503's `Retry-After`).
//! [`LeaseManager::drain`] is the graceful shutdown: it grants nothing more, fails
//! the waiters with [`LeaseError::Draining`], waits for the leases held (up to a
//! deadline on tokio's clock), revokes what is left and stops.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use leasepool::tokio::LeaseManager;
//! use leasepool::{AdmissionPolicy, LeaseError, PoolLimits, Tenant};
//!
//! use std::time::Duration;
//!
//! let limits = PoolLimits::builder(3).build()?;
//! let policy = AdmissionPolicy::default()
//!     .max_waiters(Some(100)) // the 101st waiter is shed at once
//!     .fair_share(true)       // a flooding owner cannot starve the others
//!     .reserve(1);            // class 0 (health checks) always finds a pool
//! let manager = LeaseManager::with_admission(limits, Duration::from_secs(30), policy, |seq| seq)?;
//!
//! let request = Tenant { owner: Some(7), priority: 1, ..Tenant::default() };
//! let lease = manager.acquire_as(request, None).await?;
//! let health = Tenant { class: Some(0), ..Tenant::default() };
//! match manager.try_acquire_as(health) {
//!     Ok(probe) => drop(probe),
//!     Err(refused) => println!("retry after {:?}", refused.retry_after()),
//! }
//!
//! // Shutdown: leases held get up to 10 s to come back. When the last one does
//! // (here at once), the drain ends, not 10 s later.
//! let (report, ()) = tokio::join!(manager.drain(Duration::from_secs(10)), async move {
//!     drop(lease);
//! });
//! assert!(!report.timed_out);
//! assert_eq!(manager.try_acquire().err(), Some(LeaseError::NotStarted));
//! # Ok(())
//! # }
//! ```
//!
//! # Metrics
//!
//! Opt in with [`LeaseManager::with_metrics`] (a builder step after
//! [`new`](LeaseManager::new) or [`with_admission`](LeaseManager::with_admission)) and
//! read [`LeaseManager::metrics`]: leases granted, released, revoked at their hard
//! expiry, ended by a stop, overdue; refusals by reason and acquire timeouts; pools
//! created and retired; acquire-wait and lease-hold histograms; and, for the owners
//! named with [`name_owner`](LeaseManager::name_owner), a per-owner breakdown
//! (bounded: owners past the first `owners` named share one entry).
//! [`LeaseManager::gauges`] reads the state now (pools available, leased, total,
//! desired; waiters) with or without metrics. A wait bounded with
//! [`acquire_timeout`](LeaseManager::acquire_timeout) is counted as a timeout; a
//! `tokio::time::timeout` around `acquire()` is a cancellation, which is not.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use leasepool::tokio::{AcquireError, LeaseManager};
//! use leasepool::{PoolLimits, Tenant};
//!
//! use std::time::Duration;
//!
//! let limits = PoolLimits::builder(1).build()?;
//! let manager = LeaseManager::new(limits, Duration::from_secs(30), |seq| seq).with_metrics(64);
//! manager.name_owner(7, "checkout"); // the label of Tenant { owner: Some(7), .. }
//!
//! let checkout = Tenant { owner: Some(7), ..Tenant::default() };
//! let lease = manager.acquire_as(checkout, None).await?;
//! // The only pool is leased: a bounded wait times out, and is counted.
//! let waited = manager.acquire_timeout(Duration::from_millis(250)).await;
//! assert!(matches!(waited, Err(AcquireError::TimedOut { .. })));
//! drop(lease);
//!
//! let metrics = manager.metrics().expect("metrics are on");
//! assert_eq!(metrics.counts.leases_granted, 1);
//! assert_eq!(metrics.counts.leases_released, 1);
//! assert_eq!(metrics.counts.acquire_timeouts, 1);
//! let owners = metrics.owners.expect("64 owners are broken down");
//! assert_eq!((&*owners.named[0].0, owners.named[0].1.granted), ("checkout", 1));
//! assert_eq!(owners.anonymous.rejected, 1, "the anonymous request timed out");
//! let gauges = manager.gauges();
//! assert_eq!((gauges.pools_available, gauges.pools_leased, gauges.waiters), (1, 0, 0));
//! # Ok(())
//! # }
//! ```
//!
//! # Cancel safety
//!
//! [`LeaseManager::acquire`] (and [`acquire_as`](LeaseManager::acquire_as), in every
//! admission mode, and [`acquire_timeout`](LeaseManager::acquire_timeout)) is
//! cancel-safe: dropping the future while it waits removes the waiter; dropping it
//! after the engine already handed it a pool (but before it was polled again)
//! returns that pool, which goes to the next waiter. So
//! `tokio::time::timeout(d, manager.acquire())` never leaks a pool. Dropping a
//! [`drain`](LeaseManager::drain) future leaves the drain in progress; it still ends
//! when the last lease is released (see there).
//!
//! # Clocks
//!
//! Lease times and expiry (and the metrics' durations) are measured on the engine's
//! monotonic clock (wall time, [`crate::expiry::monotonic`]), read under the engine
//! lock so no lease is stamped before its grant (the kernel's cheaper coarse clock
//! lags by more than its resolution and would let leases end early:
//! docs/performance.md); a drain's deadline and
//! an [`acquire_timeout`](LeaseManager::acquire_timeout) on tokio's
//! ([`tokio::time::Instant`]), so tests with a paused clock control them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio::sync::Notify;

use crate::admission::AdmissionPolicy;
use crate::error::ConfigError;
use crate::expiry::monotonic;
use crate::graceful::DrainReport;
use crate::lease::LeaseKey;
use crate::manager::{Effects, Grant, Manager};
use crate::sizing::PoolLimits;
use crate::LeaseError;

mod acquire;
mod autoscale;
mod builder;
mod drain;
mod lease;
mod metrics;
mod timeout;

use acquire::QueuedAcquire;
pub use builder::{Builder, DEFAULT_LEASE_TIME};
pub use lease::Lease;
pub use metrics::Gauges;
pub use timeout::AcquireError;

/// What a queued `acquire()` receives: its grant, or why it was refused.
type GrantResult<P> = Result<Grant<P>, LeaseError>;

type Engine<P> = Manager<P, (), QueuedAcquire<P>>;
type Fx<P> = Effects<P, (), QueuedAcquire<P>>;

/// The engine and, under the same lock, the effects buffer of the hot paths.
///
/// An uncontended grant or release produces no effect; building and dropping an
/// empty [`Effects`] each time (seven vectors) was a tenth of its cost. The buffer
/// stays here and is taken out only when something was pushed (see
/// [`Locked::take_effects`]). Everything else reaches the engine through `Deref`.
struct Locked<P> {
    engine: Engine<P>,
    effects: Fx<P>,
}

impl<P> std::ops::Deref for Locked<P> {
    type Target = Engine<P>;

    fn deref(&self) -> &Engine<P> {
        &self.engine
    }
}

impl<P> std::ops::DerefMut for Locked<P> {
    fn deref_mut(&mut self) -> &mut Engine<P> {
        &mut self.engine
    }
}

impl<P> Locked<P> {
    /// The effects to perform after unlocking, if any were pushed.
    fn take_effects(&mut self) -> Option<Fx<P>> {
        (!self.effects.is_empty()).then(|| std::mem::take(&mut self.effects))
    }
}

struct Shared<P> {
    engine: Mutex<Locked<P>>,
    default_lease_seconds: f64,
    /// The load signal for adaptive sizing (see [`LeaseManager::set_load`]).
    load: AtomicU64,
    /// The report of the drain that ended (set once, under the engine lock, by
    /// whoever ended it; see `drain.rs`).
    drained: OnceLock<DrainReport>,
    /// Rung (`notify_waiters`) right after `drained` is set.
    drain_done: Notify,
    /// The earliest deadline of the drain in progress on tokio's clock, for
    /// [`LeaseManager::check`] (only touched under the engine lock).
    drain_until: Mutex<Option<tokio::time::Instant>>,
    /// Rung when a drain begins, so [`LeaseManager::run_checker`] wakes for its
    /// deadline.
    drain_begun: Notify,
}

/// Fails the refused waiters with `error` (rather than the `NotStarted` that
/// dropping them gives).
fn fail_refused<P>(fx: &mut Fx<P>, error: &LeaseError) {
    for mut waiter in fx.refused.drain(..) {
        if let Some(tx) = waiter.grant_tx.take() {
            // Gone already: nothing was granted, nothing to give back.
            let _ = tx.send(Err(error.clone()));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl<P: Clone + Send + 'static> Shared<P> {
    /// The load signal's target, raised to the autoscaler's if it runs.
    fn target(&self, engine: &Engine<P>) -> usize {
        let by_load = engine.limits().desired(self.load.load(Ordering::Relaxed));
        engine
            .autoscale()
            .map_or(by_load, |view| by_load.max(view.target))
    }

    /// Performs effects outside the lock: grants travel to their waiters; a grant
    /// whose waiter is gone is released, which may grant the next waiter in turn.
    fn perform(&self, mut fx: Fx<P>) {
        if fx.is_empty() {
            // The uncontended grant and release: nothing to hand over or drop.
            return;
        }
        loop {
            let mut orphaned = Vec::new();
            for (mut waiter, grant) in fx.granted.drain(..) {
                if let Some(tx) = waiter.grant_tx.take() {
                    if let Err(Ok(grant)) = tx.send(Ok(grant)) {
                        orphaned.push(grant.key);
                    }
                }
            }
            // Refused/dropped waiters and retired pools are dropped here, unlocked.
            drop(fx);
            if orphaned.is_empty() {
                return;
            }
            fx = Effects::default();
            let ended = {
                let mut engine = lock(&self.engine);
                let target = self.target(&engine);
                for key in orphaned {
                    engine.release(key, monotonic(), target, &mut fx);
                }
                self.settle_drain(&mut engine, &mut fx)
            };
            if ended {
                self.drain_done.notify_waiters();
            }
        }
    }

    fn release(&self, key: LeaseKey) {
        let (fx, ended) = {
            let mut locked = lock(&self.engine);
            let target = self.target(&locked);
            let Locked { engine, effects } = &mut *locked;
            engine.release(key, monotonic(), target, effects);
            let ended = self.settle_drain(engine, effects);
            (locked.take_effects(), ended)
        };
        if let Some(fx) = fx {
            self.perform(fx);
        }
        if ended {
            self.drain_done.notify_waiters();
        }
    }
}

/// A bounded set of pools handed out as leases. Cheap to clone (shared state).
pub struct LeaseManager<P> {
    shared: Arc<Shared<P>>,
}

impl<P> Clone for LeaseManager<P> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Clone + Send + 'static> std::fmt::Debug for LeaseManager<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let engine = lock(&self.shared.engine);
        f.debug_struct("LeaseManager")
            .field("running", &engine.is_running())
            .field("available", &engine.available_count())
            .field("leased", &engine.leased_count())
            .field("waiters", &engine.waiter_count())
            .field(
                "lease_time",
                &Duration::from_secs_f64(self.shared.default_lease_seconds),
            )
            .finish_non_exhaustive()
    }
}

impl LeaseManager<()> {
    /// A [`Builder`] for a manager of at most `max_pools` pools: lease time, grace,
    /// admission, metrics and autoscaling in one place, checked by
    /// [`Builder::build`].
    pub fn builder(max_pools: usize) -> Builder {
        Builder::new(max_pools)
    }
}

impl<P: Clone + Send + 'static> LeaseManager<P> {
    /// A started manager that creates pools with `factory(seq)` (seq = 1, 2, ...).
    /// Leases last `default_lease` plus the limits' `lease_grace` before they are
    /// revoked.
    ///
    /// Unchecked: a zero `default_lease` makes every acquire without its own lease
    /// time fail with [`LeaseError::InvalidLeaseSeconds`]. [`builder`](LeaseManager::builder)
    /// checks everything at `build`.
    pub fn new(
        limits: PoolLimits,
        default_lease: std::time::Duration,
        factory: impl FnMut(u64) -> P + Send + 'static,
    ) -> Self {
        Self::started(
            Manager::new(limits, Box::new(factory)),
            limits,
            default_lease,
        )
    }

    /// [`new`](Self::new) with an admission policy: bounded waiting, owner limits,
    /// fair share, reserved pools (see [`crate::admission`]); request with
    /// [`acquire_as`](Self::acquire_as).
    ///
    /// # Errors
    /// What [`AdmissionPolicy::validate`] finds wrong with `policy`.
    pub fn with_admission(
        limits: PoolLimits,
        default_lease: std::time::Duration,
        policy: AdmissionPolicy,
        factory: impl FnMut(u64) -> P + Send + 'static,
    ) -> Result<Self, ConfigError> {
        let engine = Manager::with_admission(limits, policy, Box::new(factory))?;
        Ok(Self::started(engine, limits, default_lease))
    }

    fn started(
        mut engine: Engine<P>,
        limits: PoolLimits,
        default_lease: std::time::Duration,
    ) -> Self {
        let default_lease_seconds = default_lease.as_secs_f64();
        // Nothing here logs the engine's events, runs calls through a lease or reads
        // liveness without the lock: without events and lease cells a grant and a
        // release allocate nothing and touch no reference count but the manager's.
        engine.record_events(false);
        engine.lease_cells(false);
        let mut fx = Effects::default();
        engine.start(limits.desired(0), &mut fx);
        Self {
            shared: Arc::new(Shared {
                engine: Mutex::new(Locked {
                    engine,
                    effects: Effects::default(),
                }),
                default_lease_seconds,
                load: AtomicU64::new(0),
                drained: OnceLock::new(),
                drain_done: Notify::new(),
                drain_until: Mutex::new(None),
                drain_begun: Notify::new(),
            }),
        }
    }

    /// Sets the load signal; the target pool count becomes
    /// `min(max_pools, max(min_pools, ceil(load / units_per_pool)))` at the next
    /// [`check`](Self::check) (and for every release).
    pub fn set_load(&self, units: u64) {
        self.shared.load.store(units, Ordering::Relaxed);
    }

    /// The periodic check: revokes leases past their hard expiry, counts the ones
    /// past their soft expiry as overdue (once each, with metrics on), grows to the
    /// target, retires idle pools above it, serves waiters; ends a
    /// [`drain`](Self::drain) whose deadline has passed (even if nobody awaits it any
    /// more). Returns how long until the next lease hard-expires, if any lease is
    /// held.
    pub fn check(&self) -> Option<Duration> {
        let next = self.check_deadlines().0?;
        Some(Duration::try_from_secs_f64((next - monotonic()).max(0.0)).unwrap_or(Duration::MAX))
    }

    /// [`check`](Self::check), returning when the next lease hard-expires and, with
    /// metrics on, when the next lease not yet reported overdue passes its soft expiry
    /// (so [`run_checker`](Self::run_checker) counts it in `leases_overdue` before its
    /// hard expiry revokes it).
    fn check_deadlines(&self) -> (Option<f64>, Option<f64>) {
        let mut fx = Effects::default();
        let (next, overdue, ended) = {
            let mut engine = lock(&self.shared.engine);
            let target = self.shared.target(&engine);
            engine.check(monotonic(), target, &mut fx);
            // A revocation may have ended the last lease of a drain, or its deadline
            // may have passed.
            let ended = self.shared.settle_drain(&mut engine, &mut fx)
                || self.shared.enforce_drain_deadline(&mut engine, &mut fx);
            let overdue = engine
                .metrics_mut()
                .is_some()
                .then(|| engine.next_overdue())
                .flatten();
            // The autoscaler's window end is one more soft deadline to wake at.
            let soft = match (overdue, engine.next_autoscale_tick()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            (engine.next_hard_expiry(), soft, ended)
        };
        self.shared.perform(fx);
        if ended {
            self.shared.drain_done.notify_waiters();
        }
        (next, overdue)
    }

    /// Runs [`check`](Self::check) forever: at each lease's hard expiry, at a
    /// drain's deadline, at least every `interval`, and with
    /// [`metrics`](Self::with_metrics) at each lease's soft expiry (to count it
    /// overdue). Spawn it
    /// (`tokio::spawn(manager.clone().run_checker(..))`); drop or abort it to stop.
    ///
    /// # Cancel safety
    /// Cancel-safe: each wake-up runs one whole [`check`](Self::check) (synchronous,
    /// under the manager's lock); dropping the future between them loses nothing, and
    /// a new checker picks up where it left off.
    ///
    /// # Examples
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// use leasepool::tokio::LeaseManager;
    ///
    /// let manager = LeaseManager::builder(1)
    ///     .lease_time(Duration::from_millis(20))
    ///     .lease_grace(Duration::ZERO)
    ///     .build(|seq| seq)
    ///     .unwrap();
    /// let checker = tokio::spawn(manager.clone().run_checker(Duration::from_secs(60)));
    /// let overrun = manager.acquire().await.unwrap();
    /// // Woken at the lease's hard expiry, not after the 60 s interval.
    /// let revoked = tokio::time::timeout(Duration::from_secs(5), async {
    ///     while overrun.is_live() {
    ///         tokio::time::sleep(Duration::from_millis(5)).await;
    ///     }
    /// });
    /// revoked.await.expect("revoked at its hard expiry");
    /// checker.abort();
    /// # }
    /// ```
    pub async fn run_checker(self, interval: Duration) {
        loop {
            let mut drain_begun = std::pin::pin!(self.shared.drain_begun.notified());
            // Registered before the check: a drain begun after it still wakes us.
            drain_begun.as_mut().enable();
            let (hard, overdue) = self.check_deadlines();
            let next = match (hard, overdue) {
                (Some(hard), Some(overdue)) => Some(hard.min(overdue)),
                (hard, overdue) => hard.or(overdue),
            };
            let wait = next.map_or(interval, |at| {
                Duration::from_secs_f64((at - monotonic()).max(0.0)).min(interval)
            });
            let wake = tokio::time::Instant::now().checked_add(wait);
            let wake = match (wake, self.shared.drain_deadline()) {
                (Some(wake), Some(drain)) => Some(wake.min(drain)),
                (wake, drain) => wake.or(drain),
            };
            match wake {
                Some(wake) => {
                    let _ = tokio::time::timeout_at(wake, drain_begun).await;
                }
                None => drain_begun.await,
            }
        }
    }

    /// Stops: every lease is revoked, every waiter gets [`LeaseError::NotStarted`].
    /// During a [`drain`](Self::drain) it ends the drain at once (the report counts
    /// the leases revoked here; `timed_out` stays `false`).
    pub fn stop(&self) {
        let mut fx = Effects::default();
        let ended = {
            let mut engine = lock(&self.shared.engine);
            engine.stop(monotonic(), &mut fx);
            self.shared.end_drain(&mut engine)
        };
        self.shared.perform(fx);
        if ended {
            self.shared.drain_done.notify_waiters();
        }
    }

    /// The manager's limits.
    #[must_use]
    pub fn limits(&self) -> PoolLimits {
        lock(&self.shared.engine).limits()
    }

    /// `(available, leased, total)` pool counts.
    #[must_use]
    pub fn counts(&self) -> (usize, usize, usize) {
        let engine = lock(&self.shared.engine);
        (
            engine.available_count(),
            engine.leased_count(),
            engine.total_count(),
        )
    }

    /// Callers waiting for a pool.
    #[must_use]
    pub fn waiting(&self) -> usize {
        lock(&self.shared.engine).waiter_count()
    }
}
