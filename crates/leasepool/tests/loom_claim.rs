//! Loom model of the shipped claim flag: however two settlers interleave, exactly one
//! wins, and the loser, if it then sees `Done`, sees the winner's outcome.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

use leasepool::ClaimFlag;

#[test]
fn exactly_one_settler_wins_and_done_publishes_its_outcome() {
    loom::model(|| {
        let flag = Arc::new(ClaimFlag::new());
        // The outcome is written Relaxed: only the flag's Release/Acquire orders it.
        let outcome = Arc::new(AtomicUsize::new(0));
        let settle = |who: usize| {
            let (flag, outcome) = (flag.clone(), outcome.clone());
            move || {
                if flag.try_claim() {
                    outcome.store(who, Ordering::Relaxed);
                    flag.finish();
                    return true;
                }
                if flag.is_done() {
                    assert_ne!(
                        outcome.load(Ordering::Relaxed),
                        0,
                        "Done before the outcome"
                    );
                }
                false
            }
        };
        let other = thread::spawn(settle(1));
        let mine = settle(2)();
        let theirs = other.join().unwrap();
        assert!(mine ^ theirs, "exactly one settler wins");
        assert!(flag.is_done());
    });
}
