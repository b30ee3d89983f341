//! tokio front end: the autoscaler raises the target with demand and `run_checker`
//! closes its windows (tokio's clock is paused; the engine's moves by the skew).
#![cfg(feature = "tokio")]

use std::time::Duration;

use leasepool::autoscale::AutoScalePolicy;
use leasepool::expiry::set_clock_skew_for_tests;
use leasepool::tokio::LeaseManager;
use leasepool::PoolLimits;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn target_follows_demand_and_steps_down_in_windows() {
    set_clock_skew_for_tests(0.0);
    let limits = PoolLimits::builder(8).build().unwrap();
    let policy =
        AutoScalePolicy::new(Duration::from_secs(1), Duration::from_millis(10), 1).unwrap();
    let manager =
        LeaseManager::new(limits, Duration::from_secs(60), |seq| seq).with_autoscale(policy);
    let leases: Vec<_> = acquire_n(&manager, 4).await;
    assert_eq!(manager.autoscale().unwrap().target, 4);
    assert_eq!(manager.gauges().pools_desired, 4);
    drop(leases);
    // Windows pass on the engine's clock; each check closes one.
    let mut skew = 0.0;
    for _ in 0..10 {
        skew += 1.0;
        set_clock_skew_for_tests(skew);
        manager.check();
    }
    assert_eq!(manager.autoscale().unwrap().target, 1);
    assert_eq!(manager.gauges().pools_total, 1);
    set_clock_skew_for_tests(0.0);
}

async fn acquire_n(manager: &LeaseManager<u64>, n: usize) -> Vec<leasepool::tokio::Lease<u64>> {
    let mut leases = Vec::new();
    for _ in 0..n {
        leases.push(manager.acquire().await.unwrap());
    }
    leases
}
