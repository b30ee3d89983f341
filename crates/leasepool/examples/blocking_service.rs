//! A tokio service that calls a blocking client (a vendor SDK, a sync database
//! driver) without letting those calls spread over tokio's blocking pool.
//!
//! Each request leases one of `CLIENTS` clients, runs its blocking call on
//! `spawn_blocking` while it holds the lease, and gives the lease back. When every
//! client is busy a request waits (FIFO) for at most `MAX_WAIT`; past that, or when
//! `MAX_WAITERS` requests already wait, it is shed with a `Retry-After` hint: the
//! 503 of an HTTP service. A checker task revokes leases that overrun.
//!
//! The example checks what it claims: no more than `CLIENTS` blocking calls ever
//! run at once, and every request is either served or shed. It exits non-zero
//! otherwise (CI runs it: `cargo run -p leasepool --features tokio --example
//! blocking_service`).

// An example reports what it did on stdout.
#![allow(clippy::print_stdout)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use leasepool::tokio::{AcquireError, LeaseManager};
use leasepool::{AdmissionPolicy, LeaseError};

/// Clients (and so blocking calls in flight) at most.
const CLIENTS: usize = 4;
/// Requests allowed to wait for a client; the next one is shed at once.
const MAX_WAITERS: usize = 24;
/// How long a request waits for a client before it is shed.
const MAX_WAIT: Duration = Duration::from_millis(250);
/// Requests in the burst.
const REQUESTS: usize = 64;

/// A blocking client: every call holds the calling thread.
struct BlockingClient {
    id: u64,
    /// Calls running on any client now, and the most ever seen.
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl BlockingClient {
    /// A blocking round trip (here: 20 ms of a sleeping thread, standing in for a
    /// synchronous network call).
    fn query(&self, request: usize) -> String {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        self.running.fetch_sub(1, Ordering::SeqCst);
        format!("request {request} answered by client {}", self.id)
    }
}

/// What the service answers.
enum Reply {
    Ok(String),
    /// 503 with a `Retry-After` header.
    Unavailable {
        retry_after: Duration,
    },
}

async fn handle(clients: &LeaseManager<Arc<BlockingClient>>, request: usize) -> Reply {
    let lease = match clients.acquire_timeout(MAX_WAIT).await {
        Ok(lease) => lease,
        Err(shed) => {
            let retry_after = shed.retry_after().unwrap_or(Duration::from_secs(1));
            return match shed {
                AcquireError::TimedOut { .. }
                | AcquireError::Lease(LeaseError::QueueFull { .. }) => {
                    Reply::Unavailable { retry_after }
                }
                other => panic!("request {request}: unexpected refusal: {other}"),
            };
        }
    };
    let client = Arc::clone(lease.pool());
    // The lease is held across the blocking call and dropped after it: the client
    // is never shared by two calls.
    let answer = tokio::task::spawn_blocking(move || client.query(request))
        .await
        .expect("the blocking call does not panic");
    drop(lease);
    Reply::Ok(answer)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let clients = LeaseManager::builder(CLIENTS)
        .lease_time(Duration::from_secs(5))
        .lease_grace(Duration::from_secs(1))
        .admission(AdmissionPolicy::default().max_waiters(Some(MAX_WAITERS)))
        .metrics(0)
        .build(move |id| {
            Arc::new(BlockingClient {
                id,
                running: r.clone(),
                peak: p.clone(),
            })
        })?;
    let checker = tokio::spawn(clients.clone().run_checker(Duration::from_secs(1)));

    let requests: Vec<_> = (0..REQUESTS)
        .map(|request| {
            let clients = clients.clone();
            tokio::spawn(async move { handle(&clients, request).await })
        })
        .collect();
    let (mut served, mut shed) = (0, 0);
    for request in requests {
        match request.await? {
            Reply::Ok(answer) => {
                served += 1;
                if served <= 3 {
                    println!("200 {answer}");
                }
            }
            Reply::Unavailable { retry_after } => {
                shed += 1;
                if shed <= 3 {
                    println!("503 Retry-After: {}s", retry_after.as_secs().max(1));
                }
            }
        }
    }
    checker.abort();

    let counts = clients.metrics().expect("metrics are on").counts;
    println!(
        "{REQUESTS} requests: {served} served, {shed} shed; at most {} blocking calls at once \
         on {CLIENTS} clients; {} leases granted, {} refused for a full queue, {} timed out",
        peak.load(Ordering::SeqCst),
        counts.leases_granted,
        counts.rejected_queue_full,
        counts.acquire_timeouts,
    );
    assert_eq!(served + shed, REQUESTS, "every request is answered");
    assert!(served >= CLIENTS, "the first requests find free clients");
    assert!(
        peak.load(Ordering::SeqCst) <= CLIENTS,
        "never more calls than clients"
    );
    assert_eq!(counts.leases_granted, served as u64);
    assert_eq!(running.load(Ordering::SeqCst), 0);
    Ok(())
}
