//! tokio front end: the checker revokes expired leases; the load signal resizes.
#![cfg(feature = "tokio")]

use std::time::Duration;

use leasepool::tokio::LeaseManager;
use leasepool::PoolLimits;

#[tokio::test]
async fn checker_revokes_a_lease_at_its_hard_expiry() {
    let m = LeaseManager::new(limits(1, 0.02), Duration::from_secs(60), |s| s);
    let checker = tokio::spawn(m.clone().run_checker(Duration::from_secs(60)));
    let lease = m.acquire_for(Duration::from_secs_f64(0.02)).await.unwrap();
    assert!(lease.is_live());
    tokio::time::timeout(Duration::from_secs(5), async {
        while m.counts().1 != 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("revoked well before the 60 s check interval");
    assert!(!lease.is_live());
    assert_eq!(m.counts(), (1, 0, 1), "minimum restored with a fresh pool");
    assert_eq!(*m.try_acquire().unwrap().pool(), 2);
    checker.abort();
}

#[tokio::test]
async fn load_signal_grows_and_shrinks_idle_pools() {
    let m = LeaseManager::new(limits(4, 5.0), Duration::from_secs(60), |s| s);
    m.set_load(35);
    m.check();
    assert_eq!(m.counts(), (4, 0, 4));
    let lease = m.try_acquire().unwrap();
    m.set_load(0);
    m.check();
    assert_eq!(m.counts(), (0, 1, 1), "idle pools retired, the lease kept");
    drop(lease);
    assert_eq!(m.counts(), (1, 0, 1));
}

fn limits(max: usize, grace_seconds: f64) -> PoolLimits {
    PoolLimits::builder(max)
        .lease_grace(Duration::from_secs_f64(grace_seconds))
        .build()
        .unwrap()
}

/// Expiry never comes early, whoever judges it (here: another caller's acquire,
/// which scans for expired leases), checked against the engine's clock. (It caught a
/// coarse clock whose lag exceeds its stated resolution: docs/performance.md.)
#[test]
fn a_lease_never_ends_early() {
    use leasepool::expiry::monotonic;
    let lease_time = Duration::from_millis(20);
    for _ in 0..30 {
        let m = LeaseManager::builder(1)
            .lease_time(lease_time)
            .lease_grace(Duration::ZERO)
            .build(|seq| seq)
            .expect("valid");
        let before = monotonic();
        let lease = m.try_acquire().expect("free");
        // Until the true expiry, another caller's acquire (which scans for expired
        // leases) must find the lease live.
        while monotonic() < before + lease_time.as_secs_f64() {
            let _ = m.try_acquire();
            let live = lease.is_live();
            let checked_at = monotonic();
            if checked_at < before + lease_time.as_secs_f64() {
                assert!(live, "revoked {} s early", before + 0.020 - checked_at);
            }
        }
        drop(lease);
    }
}
