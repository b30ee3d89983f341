//! Shared fixtures: a manager whose pools are numbers and whose waiters are flags.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use leasepool::{ClaimFlag, Effects, Manager, PoolLimits, PoolLimitsBuilder, Waiter};

/// A named waiter on the shipped [`ClaimFlag`]: granted once, or cancelled once.
#[derive(Clone, Debug)]
pub struct Flag(pub Arc<ClaimFlag>, pub &'static str);

impl Flag {
    pub fn new(name: &'static str) -> Self {
        Self(Arc::new(ClaimFlag::new()), name)
    }

    /// The caller gives up: it claims its own waiter, so no grant can reach it.
    pub fn cancel(&self) -> bool {
        let won = self.0.try_claim();
        if won {
            self.0.finish();
        }
        won
    }
}

impl Waiter for Flag {
    fn try_claim(&self) -> bool {
        self.0.try_claim()
    }
}

pub type TestManager = Manager<u64, &'static str, Flag>;
pub type Fx = Effects<u64, &'static str, Flag>;

pub fn limits(max: usize, min: usize) -> PoolLimitsBuilder {
    PoolLimits::builder(max).min_pools(min)
}

pub fn manager(max: usize, min: usize) -> TestManager {
    Manager::new(limits(max, min).build().unwrap(), Box::new(|seq| seq))
}

pub fn started(max: usize, min: usize) -> TestManager {
    started_with(limits(max, min))
}

/// A started manager with these limits (target: its minimum).
pub fn started_with(limits: PoolLimitsBuilder) -> TestManager {
    let limits = limits.build().unwrap();
    let mut m = Manager::new(limits, Box::new(|seq| seq));
    let mut fx = Fx::default();
    m.start(limits.min_pools(), &mut fx);
    m
}
