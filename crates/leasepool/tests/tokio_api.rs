//! tokio front end: what a Rust user touches — the builder and its checks, typed
//! errors with `Duration`s, lease accessors, `Debug`.
#![cfg(feature = "tokio")]

use std::time::Duration;

use leasepool::tokio::{AcquireError, LeaseManager, DEFAULT_LEASE_TIME};
use leasepool::{AdmissionPolicy, ConfigError, LeaseError};

#[test]
fn the_builder_rejects_what_cannot_work_with_typed_errors() {
    let zero_lease = LeaseManager::builder(2)
        .lease_time(Duration::ZERO)
        .build(|seq| seq);
    assert_eq!(
        zero_lease.err(),
        Some(ConfigError::NotPositiveSeconds("lease_time"))
    );
    let no_pools = LeaseManager::builder(0).build(|seq| seq);
    assert_eq!(no_pools.err(), Some(ConfigError::NotPositive("max_pools")));
    let inverted = LeaseManager::builder(2).min_pools(3).build(|seq| seq);
    assert_eq!(inverted.err(), Some(ConfigError::MinAboveMax));
    let all_reserved = LeaseManager::builder(2)
        .admission(AdmissionPolicy::default().reserve(2))
        .build(|seq| seq);
    assert_eq!(all_reserved.err(), Some(ConfigError::ReservedTooMany));
}

#[tokio::test(flavor = "current_thread")]
async fn the_builder_applies_every_option() -> Result<(), Box<dyn std::error::Error>> {
    let manager = LeaseManager::builder(3)
        .min_pools(2)
        .lease_time(Duration::from_secs(7))
        .lease_grace(Duration::from_secs(2))
        .metrics(4)
        .autoscale(leasepool::autoscale::AutoScalePolicy::default())
        .admission(AdmissionPolicy::default().max_waiters(Some(0)))
        .build(|seq| seq * 10)?;
    assert_eq!(manager.counts(), (2, 0, 2), "min_pools made up front");
    let lease = manager.acquire().await?;
    assert_eq!(*lease.pool(), 10);
    assert_eq!(lease.lease_time(), Duration::from_secs(7));
    let timing = lease.timing();
    assert_eq!(timing.grace_seconds, 2.0);
    let remaining = lease.remaining();
    // At most lease time + grace (the stamp is exact with metrics on); not expired.
    assert!(remaining > Duration::ZERO && remaining <= Duration::from_secs(9));
    assert!(manager.metrics().is_some() && manager.autoscale().is_some());
    // max_waiters = 0: with every pool leased the next caller is shed at once.
    let _second = manager.acquire().await?;
    let _third = manager.acquire().await?;
    let shed = manager.acquire().await.expect_err("no room to wait");
    assert!(matches!(shed, LeaseError::QueueFull { max_waiters: 0, .. }));
    assert!(shed
        .retry_after()
        .is_some_and(|after| after > Duration::ZERO));
    drop(lease);
    Ok(())
}

#[tokio::test(flavor = "current_thread")]
async fn durations_in_and_out() {
    let manager = LeaseManager::builder(1).build(|seq| seq).unwrap();
    assert_eq!(
        manager.acquire_for(Duration::ZERO).await.err(),
        Some(LeaseError::InvalidLeaseSeconds)
    );
    let lease = manager.acquire().await.unwrap();
    assert_eq!(lease.lease_time(), DEFAULT_LEASE_TIME);
    // At most lease time plus grace (some time passed since the grant).
    let full = DEFAULT_LEASE_TIME + manager.limits().lease_grace();
    let until_expiry = manager.check().expect("a lease is held");
    assert!(until_expiry <= full, "{until_expiry:?}");
    assert!(until_expiry > Duration::ZERO, "{until_expiry:?}");
    let waited = manager.acquire_timeout(Duration::ZERO).await;
    let Err(AcquireError::TimedOut { retry_after }) = waited else {
        panic!("the only pool is leased: {waited:?}");
    };
    assert!(retry_after > Duration::ZERO);
    drop(lease);
    assert_eq!(manager.check(), None, "nothing held, nothing expires");
}

#[tokio::test(flavor = "current_thread")]
async fn ids_debug_and_liveness() {
    let manager = LeaseManager::builder(2)
        .build(|seq| format!("p{seq}"))
        .unwrap();
    let (a, b) = (
        manager.acquire().await.unwrap(),
        manager.acquire().await.unwrap(),
    );
    let (id_a, id_b) = (a.id().to_string(), b.id().to_string());
    assert_ne!(id_a, id_b);
    for id in [&id_a, &id_b] {
        assert!(
            id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
            "{id}"
        );
    }
    assert_eq!(a.id().hex().as_str(), id_a);
    let shown = format!("{a:?}");
    assert!(shown.contains(&id_a) && shown.contains("\"p1\"") && shown.contains("live: true"));
    let manager_shown = format!("{manager:?}");
    assert!(manager_shown.contains("leased: 2"), "{manager_shown}");
    assert!(a.is_live() && b.is_live());
    manager.stop();
    assert!(!a.is_live() && !b.is_live(), "a stop revokes every lease");
}
