//! tokio front end: graceful drain. Waiters fail with `Draining` at once, nothing is
//! granted after, the drain ends when the last lease comes back (woken by the
//! release) or at its deadline on tokio's (paused) clock, revoking what is left;
//! concurrent, repeated and dropped drains are well defined.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use leasepool::tokio::LeaseManager;
use leasepool::{DrainReport, LeaseError, PoolLimits};
use tokio::time::Instant;

const DEADLINE: Duration = Duration::from_secs(30);

fn manager(max: usize) -> LeaseManager<u64> {
    let limits = PoolLimits::builder(max)
        .lease_grace(Duration::from_secs(5))
        .build()
        .unwrap();
    LeaseManager::new(limits, Duration::from_secs(600), |seq| seq)
}

/// Polls once without a real waker: says whether the future is done yet.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

fn report(waiters_failed: u64, leases_revoked: u64, timed_out: bool) -> DrainReport {
    DrainReport {
        waiters_failed,
        leases_revoked,
        timed_out,
        ..DrainReport::default()
    }
}

#[tokio::test(start_paused = true)]
async fn quiet_drain_ends_when_the_last_lease_comes_back() {
    let m = manager(2);
    let a = m.acquire().await.unwrap();
    let b = m.acquire().await.unwrap();
    let start = Instant::now();
    let mut drain = pin!(m.drain(DEADLINE));
    assert!(poll_once(drain.as_mut()).is_pending(), "two leases held");
    assert!(m.is_draining());
    assert!(a.is_live() && b.is_live(), "leases held keep working");
    drop(a);
    assert!(
        poll_once(drain.as_mut()).is_pending(),
        "one lease still held"
    );
    drop(b);
    assert_eq!(drain.await, report(0, 0, false));
    assert!(
        start.elapsed() < DEADLINE,
        "woken by the release, not the deadline"
    );
    assert!(!m.is_draining());
    assert_eq!(m.counts(), (0, 0, 0), "stopped: every pool retired");
}

#[tokio::test(start_paused = true)]
async fn drain_with_nothing_leased_ends_at_once() {
    let m = manager(2);
    let start = Instant::now();
    assert_eq!(m.drain(DEADLINE).await, report(0, 0, false));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(m.counts(), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn deadline_revokes_the_leases_still_held() {
    let m = manager(2);
    let held = m.acquire().await.unwrap();
    let returned = m.acquire().await.unwrap();
    let start = Instant::now();
    let mut drain = pin!(m.drain(DEADLINE));
    assert!(poll_once(drain.as_mut()).is_pending());
    drop(returned);
    // The paused clock jumps to the deadline once nothing else can run.
    assert_eq!(drain.await, report(0, 1, true));
    assert_eq!(start.elapsed(), DEADLINE);
    assert!(!held.is_live(), "revoked at the deadline");
    assert_eq!(m.counts(), (0, 0, 0));
    drop(held); // releasing a revoked lease later is harmless
    assert_eq!(m.counts(), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn waiters_fail_with_draining_and_so_does_every_request_during_the_drain() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let mut first = Box::pin(m.acquire());
    let mut second = Box::pin(m.acquire_for(Duration::from_secs(5)));
    assert!(poll_once(first.as_mut()).is_pending());
    assert!(poll_once(second.as_mut()).is_pending());
    assert_eq!(m.waiting(), 2);
    let mut drain = pin!(m.drain(DEADLINE));
    assert!(poll_once(drain.as_mut()).is_pending());
    assert_eq!(m.waiting(), 0);
    assert!(matches!(first.await, Err(LeaseError::Draining)));
    assert!(matches!(second.await, Err(LeaseError::Draining)));
    assert!(matches!(m.try_acquire(), Err(LeaseError::Draining)));
    assert!(matches!(m.acquire().await, Err(LeaseError::Draining)));
    drop(held);
    assert_eq!(drain.await, report(2, 0, false));
}

#[tokio::test(start_paused = true)]
async fn acquire_after_the_drain_fails_like_after_stop() {
    let m = manager(1);
    m.drain(DEADLINE).await;
    assert!(matches!(m.try_acquire(), Err(LeaseError::NotStarted)));
    assert!(matches!(m.acquire().await, Err(LeaseError::NotStarted)));
    assert_eq!(m.waiting(), 0);
}

#[tokio::test(start_paused = true)]
async fn concurrent_drains_end_by_the_earlier_deadline_with_one_report() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let start = Instant::now();
    let (late, early) = tokio::join!(m.drain(DEADLINE), m.drain(Duration::from_secs(5)));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert_eq!(late, report(0, 1, true));
    assert_eq!(early, late, "both callers get the same report");
    assert!(!held.is_live());
    assert_eq!(m.drain(DEADLINE).await, late, "a later drain repeats it");
}

#[tokio::test(start_paused = true)]
async fn drain_of_a_stopped_manager_reports_nothing() {
    let m = manager(1);
    m.stop();
    assert_eq!(m.drain(DEADLINE).await, DrainReport::default());
}

#[tokio::test(start_paused = true)]
async fn a_dropped_drain_still_ends_when_the_last_lease_comes_back() {
    let m = manager(2);
    let held = m.acquire().await.unwrap();
    {
        let mut drain = pin!(m.drain(DEADLINE));
        assert!(poll_once(drain.as_mut()).is_pending());
    }
    assert!(
        m.is_draining(),
        "dropping the future does not undo the drain"
    );
    assert!(matches!(m.try_acquire(), Err(LeaseError::Draining)));
    assert!(held.is_live());
    drop(held);
    assert!(!m.is_draining(), "the release ended it");
    assert_eq!(m.counts(), (0, 0, 0), "no pool left behind");
    let start = Instant::now();
    assert_eq!(m.drain(DEADLINE).await, report(0, 0, false));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn stop_during_a_drain_ends_it_and_counts_the_revoked_leases() {
    let m = manager(2);
    let held = m.acquire().await.unwrap();
    let mut drain = pin!(m.drain(DEADLINE));
    assert!(poll_once(drain.as_mut()).is_pending());
    m.stop();
    let start = Instant::now();
    assert_eq!(drain.await, report(0, 1, false));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert!(!held.is_live());
}

#[tokio::test(start_paused = true)]
async fn a_grant_nobody_receives_any_more_ends_the_drain() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let mut waiter = Box::pin(m.acquire());
    assert!(poll_once(waiter.as_mut()).is_pending());
    drop(held); // handed to `waiter`: sent, not yet received
    assert_eq!(m.counts(), (0, 1, 1));
    let mut drain = pin!(m.drain(DEADLINE));
    assert!(
        poll_once(drain.as_mut()).is_pending(),
        "the grant is a lease"
    );
    drop(waiter); // gives the grant back: the last lease
    let start = Instant::now();
    assert_eq!(drain.await, report(0, 0, false));
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(m.counts(), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_on_a_multi_thread_runtime() {
    let m = manager(2);
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = Vec::new();
    for _ in 0..8 {
        let m = m.clone();
        let started_tx = started_tx.clone();
        workers.push(tokio::spawn(async move {
            let mut served = 0_u32;
            loop {
                match m.acquire().await {
                    Ok(lease) => {
                        served += 1;
                        let _ = started_tx.send(());
                        tokio::task::yield_now().await;
                        drop(lease);
                    }
                    Err(LeaseError::Draining | LeaseError::NotStarted) => return served,
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    // The drain begins while the workers hold and cycle leases.
    started.recv().await.unwrap();
    let report = tokio::time::timeout(Duration::from_secs(30), m.drain(DEADLINE))
        .await
        .expect("the drain ends when the workers let go");
    assert!(!report.timed_out, "{report:?}");
    assert_eq!(report.leases_revoked, 0);
    let mut served = 0;
    for worker in workers {
        served += worker
            .await
            .expect("the worker ended with Draining or NotStarted");
    }
    assert!(served >= 1);
    assert_eq!(m.counts(), (0, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn check_enforces_the_deadline_of_a_dropped_drain() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    {
        let mut drain = pin!(m.drain(DEADLINE));
        assert!(poll_once(drain.as_mut()).is_pending());
    }
    tokio::time::advance(DEADLINE - Duration::from_secs(1)).await;
    m.check();
    assert!(m.is_draining() && held.is_live(), "not due yet");
    tokio::time::advance(Duration::from_secs(1)).await;
    m.check();
    assert!(!m.is_draining());
    assert!(!held.is_live(), "revoked at the deadline");
    assert_eq!(m.drain(DEADLINE).await, report(0, 1, true));
}

#[tokio::test(start_paused = true)]
async fn a_running_checker_wakes_for_the_deadline_of_a_dropped_drain() {
    let m = manager(1);
    let checker = tokio::spawn(m.clone().run_checker(Duration::from_secs(3600)));
    let held = m.acquire().await.unwrap();
    // The checker runs (it is ready) before the paused clock moves: it now sleeps
    // for its hour and must be woken by the drain.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start = Instant::now();
    {
        let mut drain = pin!(m.drain(DEADLINE));
        assert!(poll_once(drain.as_mut()).is_pending());
    }
    // Time passes (the paused clock runs the checker's timer first).
    tokio::time::sleep(DEADLINE + Duration::from_secs(1)).await;
    assert!(!held.is_live(), "revoked by the checker, not an hour later");
    assert_eq!(m.drain(DEADLINE).await, report(0, 1, true));
    assert!(start.elapsed() < Duration::from_secs(3600));
    checker.abort();
}

#[tokio::test(start_paused = true)]
async fn a_joining_drain_keeps_the_earlier_deadline_of_a_dropped_one() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let start = Instant::now();
    {
        let mut early = pin!(m.drain(Duration::from_secs(5)));
        assert!(poll_once(early.as_mut()).is_pending());
    }
    assert_eq!(m.drain(DEADLINE).await, report(0, 1, true));
    assert_eq!(start.elapsed(), Duration::from_secs(5));
    assert!(!held.is_live());
}
