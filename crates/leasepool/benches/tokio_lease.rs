//! `leasepool::tokio::LeaseManager` side by side with what a tokio user already has:
//! `tokio::sync::Semaphore` (owned permits) and `deadpool::unmanaged::Pool`.
//!
//! Two shapes, each on a current-thread and a 2-worker multi-thread runtime:
//! * **uncontended**: one task acquires a free lease (permit, object) and drops it;
//! * **contended**: 200 tasks share 2 leases, each acquiring, yielding once inside
//!   (so the others queue) and releasing.
//!
//! Run with `cargo bench -p leasepool --features tokio --bench tokio_lease`;
//! `python benchmarks/tokio_ratios.py` turns criterion's medians into the ratios
//! recorded in `docs/benchmarks.md`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use leasepool::tokio::LeaseManager;
use leasepool::PoolLimits;
use tokio::runtime::{Builder, Runtime};
use tokio::sync::Semaphore;

/// The pools (permits, objects) every implementation offers.
const POOLS: usize = 2;
/// Tasks contending for them in the contended shape.
const TASKS: u64 = 200;

fn runtime(flavor: &str) -> Runtime {
    match flavor {
        "current_thread" => Builder::new_current_thread().enable_all().build(),
        _ => Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build(),
    }
    .expect("a tokio runtime")
}

fn manager() -> LeaseManager<u64> {
    let limits = PoolLimits::builder(POOLS).build().expect("valid limits");
    LeaseManager::new(limits, Duration::from_secs(300), |seq| seq)
}

fn semaphore() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(POOLS))
}

fn deadpool() -> deadpool::unmanaged::Pool<u64> {
    deadpool::unmanaged::Pool::from((1..=POOLS as u64).collect::<Vec<_>>())
}

/// One acquire + release, per implementation.
#[derive(Clone)]
enum Subject {
    Lease(LeaseManager<u64>),
    Semaphore(Arc<Semaphore>),
    Deadpool(deadpool::unmanaged::Pool<u64>),
}

impl Subject {
    fn all() -> [(&'static str, Subject); 3] {
        [
            ("leasepool", Subject::Lease(manager())),
            ("semaphore", Subject::Semaphore(semaphore())),
            ("deadpool", Subject::Deadpool(deadpool())),
        ]
    }

    /// Acquires, runs `inside` while holding, releases.
    async fn round(&self, yield_inside: bool) {
        match self {
            Subject::Lease(manager) => {
                let lease = manager.acquire().await.expect("a lease");
                if yield_inside {
                    tokio::task::yield_now().await;
                }
                drop(black_box(lease));
            }
            Subject::Semaphore(semaphore) => {
                let permit = semaphore.clone().acquire_owned().await.expect("a permit");
                if yield_inside {
                    tokio::task::yield_now().await;
                }
                drop(black_box(permit));
            }
            Subject::Deadpool(pool) => {
                let object = pool.get().await.expect("an object");
                if yield_inside {
                    tokio::task::yield_now().await;
                }
                drop(black_box(object));
            }
        }
    }
}

/// `iters` rounds by one task (spawned, so a multi-thread runtime runs it on a worker).
fn uncontended(runtime: &Runtime, subject: &Subject, iters: u64) -> Duration {
    let subject = subject.clone();
    runtime.block_on(async move {
        tokio::spawn(async move {
            let start = Instant::now();
            for _ in 0..iters {
                subject.round(false).await;
            }
            start.elapsed()
        })
        .await
        .expect("the bench task")
    })
}

/// About `iters` rounds spread over [`TASKS`] tasks; the time is scaled to `iters`.
fn contended(runtime: &Runtime, subject: &Subject, iters: u64) -> Duration {
    let per_task = iters.div_ceil(TASKS).max(1);
    let subject = subject.clone();
    let elapsed = runtime.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let subject = subject.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        subject.round(true).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a contending task");
        }
        start.elapsed()
    });
    elapsed.mul_f64(iters as f64 / (per_task * TASKS) as f64)
}

fn bench(c: &mut Criterion) {
    for flavor in ["current_thread", "multi_thread"] {
        let rt = runtime(flavor);
        let mut group = c.benchmark_group(format!("uncontended/{flavor}"));
        for (name, subject) in Subject::all() {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| uncontended(&rt, &subject, iters));
            });
        }
        group.finish();
        let mut group = c.benchmark_group(format!("contended/{flavor}"));
        for (name, subject) in Subject::all() {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| contended(&rt, &subject, iters));
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
