//! The shared cells of a lease (its liveness flag and its [`CallTracker`]), recycled.
//!
//! Every grant hands the front end two `Arc`s. When the front end has dropped its
//! copies by the time the lease ends (the tokio front end does: a `Lease` gives its
//! grant up before releasing), the manager holds the only references and keeps the
//! cells for the next grant, so a grant/release cycle allocates nothing. A front end
//! that keeps its copies longer (the Python lease object) just gets fresh cells.

use crate::drain::CallTracker;
use crate::sync::{Arc, AtomicBool, Ordering};

/// Cells kept at most: enough for a burst of releases, bounded whatever the load.
const SPARE_LIMIT: usize = 64;

/// One lease's shared cells.
pub(super) type Cells = (Arc<AtomicBool>, std::sync::Arc<CallTracker>);

/// Spare cells, ready for the next grant.
#[derive(Default)]
pub(super) struct CellStore {
    spare: Vec<Cells>,
}

impl CellStore {
    /// Cells for a new lease: live, nothing in flight.
    pub(super) fn fresh(&mut self) -> Cells {
        self.spare.pop().unwrap_or_else(|| {
            (
                Arc::new(AtomicBool::new(true)),
                std::sync::Arc::new(CallTracker::new()),
            )
        })
    }

    /// Takes back the cells of a lease that ended, if nobody else holds them.
    /// `Arc::get_mut` succeeds only for the last reference and synchronises with
    /// the drops of the others, so no holder can still see the renewed state.
    pub(super) fn recycle(&mut self, (mut live, mut calls): Cells) {
        if self.spare.len() >= SPARE_LIMIT {
            return;
        }
        let (Some(flag), Some(tracker)) =
            (Arc::get_mut(&mut live), std::sync::Arc::get_mut(&mut calls))
        else {
            return;
        };
        flag.store(true, Ordering::Relaxed);
        tracker.renew();
        self.spare.push((live, calls));
    }
}
