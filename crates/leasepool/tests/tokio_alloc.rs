//! The uncontended acquire + release of the tokio front end allocates nothing: a
//! counting allocator watches this thread while a current-thread runtime runs a
//! thousand round trips (after one to warm up). One test in this binary, so no
//! other test's allocations are counted.
#![cfg(feature = "tokio")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use leasepool::tokio::LeaseManager;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is a
// thread-local `Cell` with a const initialiser (no allocation, no reentrancy).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn an_uncontended_round_trip_allocates_nothing() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    // Two pools kept (min_pools): with one, the second would be created for each
    // pair of leases and retired (shut down) at each release, by design.
    let manager = LeaseManager::builder(2)
        .min_pools(2)
        .lease_time(Duration::from_secs(30))
        .build(|seq| seq)
        .expect("valid");
    runtime.block_on(async {
        // Warm up: the first grant may size the engine's tables.
        drop(manager.acquire().await.expect("a lease"));
        drop(manager.try_acquire().expect("a lease"));
        let before = allocations();
        for _ in 0..1_000 {
            let lease = manager.acquire().await.expect("a lease");
            let other = manager.try_acquire().expect("the second pool");
            drop(lease);
            drop(other);
        }
        assert_eq!(
            allocations() - before,
            0,
            "allocations in 1,000 round trips"
        );
    });
}
