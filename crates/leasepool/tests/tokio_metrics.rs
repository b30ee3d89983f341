//! tokio front end: metrics (opt-in), owner labels, gauges, and `acquire_timeout`
//! counted as a timeout. tokio's clock is paused; the engine's clock (lease times,
//! waits, expiry) moves by the test skew. Every test holds `engine_clock()`, since
//! the skew is one per process and the tests of this file run in parallel.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use leasepool::expiry::set_clock_skew_for_tests;
use leasepool::metrics::{LeaseMetricsSnapshot, OwnerShare, DURATION_BOUNDS_NS};
use leasepool::tokio::{AcquireError, Gauges, Lease, LeaseManager};
use leasepool::{AdmissionPolicy, LeaseError, PoolLimits, Tenant};
use tokio::sync::{Mutex, MutexGuard};

const SECOND: u64 = 1_000_000_000;

static ENGINE_CLOCK: Mutex<()> = Mutex::const_new(());

/// Exclusive use of the engine's clock, starting without skew.
async fn engine_clock() -> MutexGuard<'static, ()> {
    let guard = ENGINE_CLOCK.lock().await;
    set_clock_skew_for_tests(0.0);
    guard
}

fn limits(max: usize, grace_seconds: f64) -> PoolLimits {
    PoolLimits::builder(max)
        .lease_grace(Duration::from_secs_f64(grace_seconds))
        .build()
        .unwrap()
}

fn metered(max: usize, owners: usize) -> LeaseManager<u64> {
    LeaseManager::new(limits(max, 100.0), Duration::from_secs(60), |seq| seq).with_metrics(owners)
}

fn snap(m: &LeaseManager<u64>) -> LeaseMetricsSnapshot {
    m.metrics().expect("metrics are on")
}

/// The index of the bucket whose upper bound is `bound_ns`.
fn le(bound_ns: u64) -> usize {
    DURATION_BOUNDS_NS
        .iter()
        .position(|&bound| bound == bound_ns)
        .expect("a bucket bound")
}

fn filled(counts: &[u64]) -> Vec<(usize, u64)> {
    counts
        .iter()
        .enumerate()
        .filter(|(_, &n)| n > 0)
        .map(|(i, &n)| (i, n))
        .collect()
}

fn owner(key: u64) -> Tenant {
    Tenant {
        owner: Some(key),
        ..Tenant::default()
    }
}

type Acquiring<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

fn poll<T>(acquiring: &mut Acquiring<'_, T>) -> Poll<T> {
    acquiring
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
}

/// A started acquire, queued behind the pools held.
fn queued<'a, T: 'a>(acquire: impl Future<Output = T> + 'a) -> Acquiring<'a, T> {
    let mut acquiring: Acquiring<'a, T> = Box::pin(acquire);
    assert!(poll(&mut acquiring).is_pending(), "queued");
    acquiring
}

fn served(acquiring: &mut Acquiring<'_, Result<Lease<u64>, LeaseError>>) -> Lease<u64> {
    match poll(acquiring) {
        Poll::Ready(Ok(lease)) => lease,
        Poll::Ready(Err(error)) => panic!("refused: {error}"),
        Poll::Pending => panic!("still waiting"),
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_are_off_unless_asked_for() {
    let _clock = engine_clock().await;
    let m = LeaseManager::new(limits(2, 1.0), Duration::from_secs(60), |seq| seq);
    m.name_owner(1, "nobody counts");
    let _lease = m.acquire().await.unwrap();
    assert!(m.metrics().is_none());
    assert_eq!(
        m.gauges(),
        Gauges {
            pools_available: 0,
            pools_leased: 1,
            pools_total: 1,
            pools_desired: 1,
            waiters: 0,
        },
        "gauges need no opt-in"
    );
}

#[tokio::test(start_paused = true)]
async fn grants_record_their_wait_and_releases_their_hold() {
    let _clock = engine_clock().await;
    let m = metered(1, 0);
    let s = snap(&m);
    assert_eq!(
        (s.counts.pools_created, s.pools_retired),
        (1, 0),
        "made at construction"
    );
    let first = m.acquire().await.unwrap();
    let mut second = queued(m.acquire());
    assert_eq!(m.gauges().waiters, 1);
    set_clock_skew_for_tests(2.0);
    drop(first);
    let second = served(&mut second);
    let s = snap(&m);
    assert_eq!((s.counts.leases_granted, s.counts.leases_released), (2, 1));
    assert_eq!(
        filled(&s.acquire_wait.counts),
        [(0, 1), (le(5 * SECOND / 2), 1)],
        "granted at once, then after 2 s"
    );
    assert_eq!(filled(&s.lease_hold.counts), [(le(5 * SECOND / 2), 1)]);
    drop(second);
    assert_eq!(snap(&m).counts.leases_released, 2);
}

#[tokio::test(start_paused = true)]
async fn an_acquire_that_times_out_is_counted() {
    let _clock = engine_clock().await;
    let m = metered(1, 0);
    let held = m.acquire().await.unwrap();
    let mut behind = queued(m.acquire());
    // tokio's paused clock runs to the deadline: the engine counts a timeout.
    let timed_out = m.acquire_timeout(Duration::from_secs(3)).await;
    match timed_out {
        Err(AcquireError::TimedOut { retry_after }) => assert!(retry_after > Duration::ZERO),
        Err(other) => panic!("expected a timeout, got {other}"),
        Ok(_) => panic!("expected a timeout, got a lease"),
    }
    assert_eq!(m.gauges().waiters, 1, "the timed-out waiter left the queue");
    // A timeout around `acquire()` is a cancellation, not counted as a timeout.
    let cancelled = tokio::time::timeout(Duration::from_secs(3), m.acquire()).await;
    assert!(cancelled.is_err());
    let s = snap(&m);
    assert_eq!(s.counts.acquire_timeouts, 1);
    assert_eq!(s.counts.leases_granted, 1);
    // The pool still goes to the waiter in line.
    drop(held);
    let lease = served(&mut behind);
    drop(lease);
    // A free pool: granted at once, whatever the timeout.
    let lease = m.acquire_timeout(Duration::ZERO).await.expect("free");
    drop(lease);
    m.stop();
    assert_eq!(
        m.acquire_timeout(Duration::from_secs(1)).await.err(),
        Some(AcquireError::Lease(LeaseError::NotStarted))
    );
    let s = snap(&m);
    assert_eq!(s.counts.acquire_timeouts, 1);
    assert_eq!((s.counts.leases_granted, s.counts.leases_released), (3, 3));
}

#[tokio::test(start_paused = true)]
async fn a_grant_before_the_timeout_wins() {
    let _clock = engine_clock().await;
    let m = metered(1, 0);
    let held = m.acquire().await.unwrap();
    let mut bounded = queued(m.acquire_timeout(Duration::from_secs(5)));
    drop(held);
    // Granted (sent) before the deadline; polled only after it: still a lease.
    tokio::time::advance(Duration::from_secs(10)).await;
    match poll(&mut bounded) {
        Poll::Ready(Ok(lease)) => drop(lease),
        other => panic!("the grant must win: {:?}", other.map(|r| r.err())),
    }
    let s = snap(&m);
    assert_eq!((s.counts.acquire_timeouts, s.counts.leases_granted), (0, 2));
    assert_eq!(m.gauges().pools_available, 1);
}

#[tokio::test(start_paused = true)]
async fn release_revocation_and_stop_are_counted_apart() {
    let _clock = engine_clock().await;
    let m = LeaseManager::new(limits(3, 1.0), Duration::from_secs(60), |seq| seq).with_metrics(0);
    let released = m.acquire_for(Duration::from_secs_f64(10.0)).await.unwrap();
    let revoked = m.acquire_for(Duration::from_secs_f64(10.0)).await.unwrap();
    let stopped = m.acquire_for(Duration::from_secs_f64(100.0)).await.unwrap();
    set_clock_skew_for_tests(4.0);
    drop(released);
    set_clock_skew_for_tests(12.0);
    m.check();
    assert!(!revoked.is_live(), "revoked at its hard expiry (11 s)");
    m.stop();
    assert!(!stopped.is_live());
    drop((revoked, stopped));
    let s = snap(&m);
    assert_eq!(
        s.counts.leases_released, 1,
        "the drops after the end count nothing"
    );
    assert_eq!(s.counts.leases_revoked, 1);
    assert_eq!(s.counts.leases_stopped, 1);
    assert_eq!(
        filled(&s.lease_hold.counts),
        [(le(5 * SECOND), 1), (le(25 * SECOND), 2)],
        "held 4 s, then 12 s twice"
    );
    assert_eq!(s.pools_retired, s.counts.pools_created, "all gone at stop");
}

#[tokio::test(start_paused = true)]
async fn a_drain_counts_its_refusals_and_the_leases_its_deadline_stops() {
    let _clock = engine_clock().await;
    let m = metered(1, 0);
    let held = m.acquire().await.unwrap();
    let mut waiting = queued(m.acquire());
    let drain = m.drain(Duration::from_secs(5));
    let mut drain: Acquiring<'_, _> = Box::pin(drain);
    assert!(poll(&mut drain).is_pending(), "the lease is still held");
    assert!(matches!(
        poll(&mut waiting),
        Poll::Ready(Err(LeaseError::Draining))
    ));
    assert_eq!(m.try_acquire().err(), Some(LeaseError::Draining));
    let report = drain.await;
    assert!(report.timed_out);
    assert!(!held.is_live());
    let s = snap(&m);
    assert_eq!(
        s.counts.rejected_draining, 2,
        "the waiter and the late request"
    );
    assert_eq!((s.counts.leases_stopped, s.counts.leases_revoked), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn overdue_is_counted_once_by_check() {
    let _clock = engine_clock().await;
    let m = metered(2, 0);
    let lease = m.acquire_for(Duration::from_secs_f64(10.0)).await.unwrap();
    set_clock_skew_for_tests(20.0);
    m.check();
    m.check();
    assert!(lease.is_live(), "overdue, not revoked: the grace is 100 s");
    let s = snap(&m);
    assert_eq!((s.counts.leases_overdue, s.counts.leases_revoked), (1, 0));
}

#[tokio::test(start_paused = true)]
async fn the_checker_wakes_at_the_soft_expiry_to_count_overdue_leases() {
    let _clock = engine_clock().await;
    let m = metered(1, 0);
    let _lease = m.acquire_for(Duration::from_secs_f64(10.0)).await.unwrap();
    let checker = tokio::spawn(m.clone().run_checker(Duration::from_secs(3600)));
    // Its first check; it then sleeps until the lease's soft expiry, 10 s away
    // (not until the hard expiry, 110 s, or the hour).
    tokio::task::yield_now().await;
    assert_eq!(snap(&m).counts.leases_overdue, 0);
    set_clock_skew_for_tests(20.0);
    tokio::time::advance(Duration::from_secs(11)).await;
    tokio::task::yield_now().await;
    assert_eq!(snap(&m).counts.leases_overdue, 1);
    checker.abort();
}

fn share<'a>(named: &'a [(std::sync::Arc<str>, OwnerShare)], label: &str) -> &'a OwnerShare {
    &named
        .iter()
        .find(|(l, _)| &**l == label)
        .unwrap_or_else(|| panic!("{label} has an entry"))
        .1
}

#[tokio::test(start_paused = true)]
async fn owners_are_named_and_broken_down() {
    let _clock = engine_clock().await;
    let policy = AdmissionPolicy::default().owner_limit(Some(1));
    let m = LeaseManager::with_admission(limits(4, 1.0), Duration::from_secs(60), policy, |s| s)
        .unwrap()
        .with_metrics(1);
    m.name_owner(1, "checkout");
    m.name_owner(1, String::from("renamed? no: named once"));
    m.name_owner(2, "search"); // no room left: summed in `others`
    let checkout = m.acquire_as(owner(1), None).await.unwrap();
    let search = m.acquire_as(owner(2), None).await.unwrap();
    let _anonymous = m.acquire().await.unwrap();
    assert!(
        m.try_acquire_as(owner(1)).is_err(),
        "checkout is at its limit"
    );
    set_clock_skew_for_tests(3.0);
    drop(checkout);
    drop(search);
    let owners = snap(&m).owners.expect("broken down");
    assert_eq!(owners.named.len(), 1);
    let checkout = share(&owners.named, "checkout");
    assert_eq!(
        (checkout.granted, checkout.rejected, checkout.held),
        (1, 1, 0)
    );
    assert!(checkout.hold_ns >= 3 * SECOND);
    assert_eq!((owners.others.granted, owners.others.held), (1, 0));
    assert_eq!((owners.anonymous.granted, owners.anonymous.held), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn gauges_follow_the_load_signal() {
    let _clock = engine_clock().await;
    let m = LeaseManager::new(
        PoolLimits::builder(4).units_per_pool(10).build().unwrap(),
        Duration::from_secs(60),
        |seq| seq,
    )
    .with_metrics(0);
    m.set_load(25);
    let before = m.gauges();
    assert_eq!((before.pools_total, before.pools_desired), (1, 3));
    m.check();
    let lease = m.acquire().await.unwrap();
    assert_eq!(
        m.gauges(),
        Gauges {
            pools_available: 2,
            pools_leased: 1,
            pools_total: 3,
            pools_desired: 3,
            waiters: 0,
        }
    );
    assert_eq!(
        (m.counts(), m.waiting()),
        ((2, 1, 3), 0),
        "the same as the separate queries"
    );
    m.set_load(0);
    m.check();
    drop(lease);
    let s = snap(&m);
    assert_eq!((s.counts.pools_created, s.pools_retired), (3, 2));
}
