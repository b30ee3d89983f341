//! Shared fixtures: a manager whose pools are numbers and whose waiters are flags.
#![allow(dead_code, unreachable_pub)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use leasepool::{Effects, Manager, PoolLimits, Waiter};

pub const PENDING: u8 = 0;
pub const CLAIMED: u8 = 1;
pub const CANCELLED: u8 = 2;

/// A waiter that can be claimed once or cancelled once.
#[derive(Clone, Debug)]
pub struct Flag(pub Arc<AtomicU8>, pub &'static str);

impl Flag {
    pub fn new(name: &'static str) -> Self {
        Self(Arc::new(AtomicU8::new(PENDING)), name)
    }

    pub fn cancel(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

impl Waiter for Flag {
    fn try_claim(&self) -> bool {
        self.0
            .compare_exchange(PENDING, CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

pub type TestManager = Manager<u64, &'static str, Flag>;
pub type Fx = Effects<u64, &'static str, Flag>;

pub fn manager(max: i64, min: i64) -> TestManager {
    Manager::new(
        PoolLimits::new(max, min, 10, 1).unwrap(),
        15.0,
        Box::new(|seq| seq),
    )
}

pub fn started(max: i64, min: i64) -> TestManager {
    let mut m = manager(max, min);
    let mut fx = Fx::default();
    m.start(usize::try_from(min).unwrap(), &mut fx);
    m
}
