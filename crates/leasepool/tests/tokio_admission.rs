//! tokio front end under an admission policy: bounded waiting sheds with a finite
//! `retry_after`, fair share serves a quiet owner despite a flood, reserved pools
//! serve their class while others wait, priorities order the queue, owner limits
//! hold an owner back, and dropping a queued `acquire_as` never loses a pool.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use leasepool::tokio::{Lease, LeaseManager};
use leasepool::{AdmissionPolicy, LeaseError, PoolLimits, Tenant};

type Pending = Pin<Box<dyn Future<Output = Result<Lease<u64>, LeaseError>>>>;

fn manager(max: usize, policy: AdmissionPolicy) -> LeaseManager<u64> {
    let limits = PoolLimits::builder(max)
        .lease_grace(Duration::from_secs(5))
        .build()
        .unwrap();
    LeaseManager::with_admission(limits, Duration::from_secs(60), policy, |seq| seq).unwrap()
}

fn owner(key: u64) -> Tenant {
    Tenant {
        owner: Some(key),
        ..Tenant::default()
    }
}

fn priority(priority: i32) -> Tenant {
    Tenant {
        priority,
        ..Tenant::default()
    }
}

fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// An `acquire_as` that had to queue (polled once, still pending).
fn queued(m: &LeaseManager<u64>, tenant: Tenant) -> Pending {
    let m = m.clone();
    let mut fut: Pending = Box::pin(async move { m.acquire_as(tenant, None).await });
    assert!(
        poll_once(fut.as_mut()).is_pending(),
        "{tenant:?} must queue"
    );
    fut
}

/// The lease a queued request holds now, if it was served.
fn served(fut: &mut Pending) -> Option<Lease<u64>> {
    match poll_once(fut.as_mut()) {
        Poll::Ready(result) => Some(result.expect("granted")),
        Poll::Pending => None,
    }
}

fn assert_retry_after(error: &LeaseError) {
    let retry_after = error.retry_after().expect("a shedding error");
    assert!(
        retry_after > Duration::ZERO,
        "{error:?}: retry_after {retry_after:?}"
    );
}

#[tokio::test]
async fn a_full_queue_sheds_with_a_finite_retry_after() {
    let m = manager(1, AdmissionPolicy::default().max_waiters(Some(2)));
    let held = m.acquire_as(owner(1), None).await.unwrap();
    let mut a = queued(&m, owner(2));
    let _b = queued(&m, owner(3));
    let shed = m.acquire_as(owner(4), None).await.expect_err("shed");
    assert!(
        matches!(shed, LeaseError::QueueFull { max_waiters: 2, .. }),
        "{shed:?}"
    );
    assert_retry_after(&shed);
    assert_eq!(m.waiting(), 2, "the shed caller did not queue");
    let refused = m.try_acquire_as(owner(4)).expect_err("nothing free");
    assert!(
        matches!(refused, LeaseError::Unavailable { .. }),
        "{refused:?}"
    );
    assert_retry_after(&refused);
    // One waiter served: there is room in the queue again.
    drop(held);
    let _lease = served(&mut a).expect("a is next");
    let _c = queued(&m, owner(4));
    assert_eq!(m.waiting(), 2);
}

#[tokio::test]
async fn fair_share_serves_the_quiet_owner_despite_a_flood() {
    let m = manager(2, AdmissionPolicy::default().fair_share(true));
    let noisy = owner(1);
    let first = m.acquire_as(noisy, None).await.unwrap();
    let second = m.acquire_as(noisy, None).await.unwrap();
    let mut flood: Vec<Pending> = (0..200).map(|_| queued(&m, noisy)).collect();
    let mut quiet = queued(&m, owner(2));
    drop(first);
    let quiet_lease = served(&mut quiet).expect("the quiet owner holds nothing: it is next");
    assert!(flood.iter_mut().all(|waiter| served(waiter).is_none()));
    drop(second);
    let _next = served(&mut flood[0]).expect("then the flood, oldest first");
    assert!(flood[1..].iter_mut().all(|waiter| served(waiter).is_none()));
    drop(quiet_lease);
    let _after = served(&mut flood[1]).expect("FIFO within an owner");
}

#[tokio::test]
async fn without_fair_share_the_flood_goes_first() {
    let m = manager(1, AdmissionPolicy::default());
    let held = m.acquire_as(owner(1), None).await.unwrap();
    let mut flood: Vec<Pending> = (0..3).map(|_| queued(&m, owner(1))).collect();
    let mut quiet = queued(&m, owner(2));
    drop(held);
    assert!(served(&mut flood[0]).is_some(), "strict FIFO");
    assert!(served(&mut quiet).is_none());
}

#[tokio::test]
async fn a_reserved_class_is_served_while_unreserved_callers_wait() {
    let m = manager(3, AdmissionPolicy::default().reserve(1));
    let health = Tenant {
        class: Some(0),
        ..Tenant::default()
    };
    let a = m.acquire().await.unwrap();
    let _b = m.acquire().await.unwrap();
    let mut unreserved = queued(&m, Tenant::default());
    assert!(
        matches!(m.try_acquire(), Err(LeaseError::Unavailable { .. })),
        "the unreserved pools are in use"
    );
    let probe = m.try_acquire_as(health).expect("the reserved pool");
    assert_eq!(m.counts(), (0, 3, 3));
    assert!(served(&mut unreserved).is_none(), "still waiting");
    assert_eq!(m.waiting(), 1);
    drop(probe);
    assert!(
        served(&mut unreserved).is_none(),
        "a freed reserved pool stays reserved"
    );
    drop(a);
    assert!(served(&mut unreserved).is_some());
}

#[tokio::test]
async fn higher_priority_is_served_first_fifo_within_a_priority() {
    let m = manager(1, AdmissionPolicy::default());
    let mut holder = m.acquire().await.unwrap();
    let mut low = queued(&m, priority(0));
    let mut mid_1 = queued(&m, priority(1));
    let mut high = queued(&m, priority(5));
    let mut mid_2 = queued(&m, priority(1));
    let mut order = Vec::new();
    for _ in 0..4 {
        drop(holder);
        let mut next = None;
        for (name, waiter) in [
            ("low", &mut low),
            ("mid_1", &mut mid_1),
            ("high", &mut high),
            ("mid_2", &mut mid_2),
        ] {
            if order.contains(&name) {
                continue;
            }
            if let Some(lease) = served(waiter) {
                assert!(next.is_none(), "one pool, one grant");
                next = Some((name, lease));
            }
        }
        let (name, lease) = next.expect("the freed pool was handed on");
        order.push(name);
        holder = lease;
    }
    assert_eq!(order, ["high", "mid_1", "mid_2", "low"]);
}

#[tokio::test]
async fn an_owner_at_its_limit_waits_while_others_are_served() {
    let m = manager(3, AdmissionPolicy::default().owner_limit(Some(1)));
    let a1 = m.acquire_as(owner(1), None).await.unwrap();
    let mut a2 = queued(&m, owner(1));
    let _b = m
        .acquire_as(owner(2), None)
        .await
        .expect("another owner is served past the waiting one");
    assert_eq!(m.counts().1, 2, "one pool stays free for now");
    drop(a1);
    assert!(served(&mut a2).is_some());
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_waiter_in_fair_mode_loses_no_pool() {
    let m = manager(1, AdmissionPolicy::default().fair_share(true));
    let held = m.acquire_as(owner(1), None).await.unwrap();
    let mut noisy = queued(&m, owner(1));
    let timed_out =
        tokio::time::timeout(Duration::from_secs(1), m.acquire_as(owner(2), None)).await;
    assert!(timed_out.is_err());
    assert_eq!(m.waiting(), 1, "the timed-out waiter left the queue");
    drop(held);
    let lease = served(&mut noisy).expect("the pool went to the remaining waiter");
    drop(lease);
    assert_eq!(m.counts(), (1, 0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_waiter_dropped_by_select_after_its_grant_hands_the_pool_on() {
    let m = manager(1, AdmissionPolicy::default().fair_share(true));
    let held = m.acquire_as(owner(1), None).await.unwrap();
    let mut quiet = queued(&m, owner(2));
    let mut noisy = queued(&m, owner(1));
    drop(held); // granted to `quiet` (sent, not yet received)
    assert_eq!(m.counts(), (0, 1, 1));
    tokio::select! {
        biased;
        () = std::future::ready(()) => drop(quiet),
        _ = &mut quiet => unreachable!("the other branch is ready first"),
    }
    let lease = served(&mut noisy).expect("the dropped grant went to the next waiter");
    assert_eq!(*lease.pool(), 1);
    drop(lease);
    assert_eq!(m.counts(), (1, 0, 1));
}

/// Many owners, random timeouts and hold times on the paused clock: whatever is
/// cancelled when, every pool comes back.
#[tokio::test(start_paused = true)]
async fn random_cancellations_in_fair_mode_never_lose_a_pool() {
    let policy = AdmissionPolicy::default()
        .fair_share(true)
        .owner_limit(Some(2))
        .max_waiters(Some(40));
    let m = manager(3, policy);
    let mut tasks = Vec::new();
    for task in 0..48_u64 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = task.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = move |bound: u64| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % bound
            };
            let tenant = Tenant {
                owner: Some(next(5)),
                priority: i32::try_from(next(3)).unwrap(),
                ..Tenant::default()
            };
            let (mut granted, mut cancelled) = (0_u32, 0_u32);
            for _ in 0..20 {
                let patience = Duration::from_millis(1 + next(30));
                let acquired = if task % 2 == 0 {
                    tokio::time::timeout(patience, m.acquire_as(tenant, None))
                        .await
                        .ok()
                } else {
                    // Unbiased: when the grant and the timer are ready in the same
                    // turn, either branch may win (and drop a claimed grant).
                    tokio::select! {
                        acquired = m.acquire_as(tenant, None) => Some(acquired),
                        () = tokio::time::sleep(patience) => None,
                    }
                };
                match acquired {
                    Some(Ok(lease)) => {
                        granted += 1;
                        tokio::time::sleep(Duration::from_millis(next(20))).await;
                        drop(lease);
                    }
                    Some(Err(error)) => assert_retry_after(&error),
                    None => cancelled += 1,
                }
            }
            (granted, cancelled)
        }));
    }
    let (mut granted, mut cancelled) = (0, 0);
    for task in tasks {
        let (g, c) = task.await.unwrap();
        granted += g;
        cancelled += c;
    }
    assert!(granted > 0 && cancelled > 0, "{granted} / {cancelled}");
    assert_eq!(m.waiting(), 0);
    let (available, leased, total) = m.counts();
    assert_eq!((available, leased), (total, 0), "every pool came back");
    let all: Vec<_> = (0..3)
        .map(|_| m.try_acquire().expect("all three pools can be leased"))
        .collect();
    assert_eq!(all.len(), 3);
}
