//! Pools that follow the load, two ways.
//!
//! 1. **A load signal** the service knows best (requests in flight, queue depth):
//!    `set_load(units)` asks for `ceil(units / units_per_pool)` pools (between
//!    `min_pools` and `max_pools`); the checker grows to it, and pools above it
//!    retire once released and idle.
//! 2. **The built-in autoscaler**, which needs no signal: demand (leases held plus
//!    callers waiting) above the target raises it at once; windows whose peak stayed
//!    below it step it down.
//!
//! It checks what it prints and exits non-zero otherwise (CI runs it:
//! `cargo run -p leasepool --features tokio --example load_resize`).

// An example reports what it did on stdout.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use leasepool::autoscale::AutoScalePolicy;
use leasepool::tokio::LeaseManager;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    by_load_signal().await?;
    by_autoscaler().await?;
    Ok(())
}

async fn by_load_signal() -> Result<(), Box<dyn std::error::Error>> {
    let manager = LeaseManager::builder(8)
        .min_pools(1)
        .units_per_pool(10)
        .build(|seq| format!("pool-{seq}"))?;
    let show = |when: &str| {
        let g = manager.gauges();
        println!(
            "load signal, {when:<22} desired {} total {} leased {}",
            g.pools_desired, g.pools_total, g.pools_leased
        );
        g
    };
    assert_eq!(show("at start").pools_total, 1, "min_pools");

    // 35 requests in flight at 10 per pool: 4 pools, made ahead of the leases.
    manager.set_load(35);
    manager.check();
    assert_eq!(show("load 35").pools_total, 4);
    let leases: Vec<_> = hold(&manager, 4).await?;
    assert_eq!(show("4 leased").pools_leased, 4);

    // The load falls: leased pools are never taken away; released ones above the
    // target retire (at once here, `idle_pool_timeout` is zero).
    manager.set_load(5);
    manager.check();
    assert_eq!(show("load 5, still leased").pools_total, 4);
    drop(leases);
    manager.check();
    assert_eq!(show("load 5, released").pools_total, 1);
    Ok(())
}

async fn by_autoscaler() -> Result<(), Box<dyn std::error::Error>> {
    let window = Duration::from_millis(50);
    let manager = LeaseManager::builder(8)
        .min_pools(1)
        .autoscale(AutoScalePolicy::new(window, Duration::from_millis(10), 2)?)
        .build(|seq| seq)?;
    let target = || manager.autoscale().expect("autoscaling is on").target;

    // A burst of 6 concurrent leases: the target follows the demand at once.
    let burst = hold(&manager, 6).await?;
    println!("autoscale, burst of 6:    target {}", target());
    assert_eq!(target(), 6);
    drop(burst);

    // Quiet windows (one lease at a time) step it down, a quarter at most per step.
    let mut steps = vec![target()];
    for _ in 0..200 {
        let lease = manager.acquire().await?;
        tokio::time::sleep(window / 2).await;
        drop(lease);
        manager.check();
        if target() != *steps.last().unwrap_or(&0) {
            steps.push(target());
        }
        if target() == 1 {
            break;
        }
    }
    println!("autoscale, quiet windows: target steps {steps:?}");
    assert_eq!(target(), 1, "back to the one pool in use");
    assert!(steps.windows(2).all(|w| w[1] < w[0]), "only down");
    Ok(())
}

/// `n` leases held at once.
async fn hold<P: Clone + Send + 'static>(
    manager: &LeaseManager<P>,
    n: usize,
) -> Result<Vec<leasepool::tokio::Lease<P>>, leasepool::LeaseError> {
    let mut leases = Vec::with_capacity(n);
    for _ in 0..n {
        leases.push(manager.acquire().await?);
    }
    Ok(leases)
}
