//! tokio front end: `acquire()` is cancel-safe, whenever the future is dropped.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use leasepool::tokio::LeaseManager;
use leasepool::PoolLimits;

fn manager(max: usize) -> LeaseManager<u64> {
    LeaseManager::new(limits(max, 5.0), Duration::from_secs(60), |seq| seq)
}

#[tokio::test]
async fn timed_out_waiter_leaves_the_queue() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let timed_out = tokio::time::timeout(Duration::from_millis(20), m.acquire()).await;
    assert!(timed_out.is_err());
    assert_eq!(m.waiting(), 0);
    drop(held);
    assert_eq!(m.counts(), (1, 0, 1));
    assert!(m.try_acquire().is_ok());
}

#[tokio::test]
async fn future_dropped_after_the_grant_hands_the_pool_on() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    {
        let mut first = pin!(m.acquire());
        assert!(first.as_mut().poll(&mut cx).is_pending(), "queued");
        // The release hands the pool to `first` (claimed, sent, not yet received)...
        drop(held);
        assert_eq!(m.counts(), (0, 1, 1));
        // ... and dropping `first` without polling it again must give it back.
    }
    assert_eq!(m.counts(), (1, 0, 1), "the pool came back");
    let lease = m.try_acquire().expect("the pool is free again");
    assert!(lease.is_live());
}

#[tokio::test]
async fn dropped_grant_goes_straight_to_the_next_waiter() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    let mut first = Box::pin(m.acquire());
    assert!(first.as_mut().poll(&mut cx).is_pending());
    let mut second = Box::pin(m.acquire());
    assert!(second.as_mut().poll(&mut cx).is_pending());
    drop(held);
    drop(first);
    match second.as_mut().poll(&mut cx) {
        Poll::Ready(Ok(lease)) => assert_eq!(*lease.pool(), 1),
        other => panic!(
            "second waiter should hold the pool, got {:?}",
            other.is_ready()
        ),
    }
}

fn limits(max: usize, grace_seconds: f64) -> PoolLimits {
    PoolLimits::builder(max)
        .lease_grace(Duration::from_secs_f64(grace_seconds))
        .build()
        .unwrap()
}
