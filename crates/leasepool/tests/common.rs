//! Shared fixtures: a manager whose pools are numbers and whose waiters are flags.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use leasepool::{ClaimFlag, Effects, Manager, PoolLimits, Waiter};

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
