//! tokio front end: waiters are served in arrival order; leases return on drop.
#![cfg(feature = "tokio")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use leasepool::tokio::LeaseManager;
use leasepool::{LeaseError, PoolLimits};

fn manager(max: usize) -> LeaseManager<u64> {
    LeaseManager::new(limits(max, 5.0), Duration::from_secs(60), |seq| seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_are_served_first_come_first_served() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for name in ["a", "b", "c"] {
        let (mine, order) = (m.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let lease = mine.acquire().await.unwrap();
            order.lock().unwrap().push(name);
            drop(lease);
        }));
        // Let this task queue before the next one is spawned.
        while m.waiting() < tasks.len() {
            tokio::task::yield_now().await;
        }
    }
    assert!(
        matches!(
            m.try_acquire().err(),
            Some(LeaseError::Unavailable { max_pools: 1, retry_after }) if retry_after > 0.0
        ),
        "no barging past the queue"
    );
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), ["a", "b", "c"]);
    assert_eq!(m.counts(), (1, 0, 1));
}

#[tokio::test]
async fn stop_fails_waiters_and_revokes_leases() {
    let m = manager(1);
    let held = m.acquire().await.unwrap();
    let waiter = tokio::spawn({
        let m = m.clone();
        async move { m.acquire().await.map(|l| *l.pool()) }
    });
    while m.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    m.stop();
    assert_eq!(waiter.await.unwrap(), Err(LeaseError::NotStarted));
    assert!(!held.is_live());
    assert_eq!(m.counts(), (0, 0, 0));
}

fn limits(max: usize, grace_seconds: f64) -> PoolLimits {
    PoolLimits::builder(max)
        .lease_grace(Duration::from_secs_f64(grace_seconds))
        .build()
        .unwrap()
}
