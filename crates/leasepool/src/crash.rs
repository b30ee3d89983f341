//! Judging a crashed process pool: which worker broke it, whether the pool can ever
//! run a call again, and what became of each call the crash caught.
//!
//! Pure decisions over what the front end observed (exit statuses of the dead
//! workers, and each chunk's progress record: the worker that took it and the index
//! of the call it was running), so they are unit-tested here rather than inferred from
//! the process backend's plumbing. The front end turns verdicts into exceptions and
//! re-queues the calls that never started: **a call runs at most once**.

/// A worker process id, as the progress records and exit statuses report it.
pub type Pid = i64;

/// The exit status `multiprocessing` reports for a worker stopped by `SIGTERM` (the
/// executor's own clean-up stops the survivors of a crash that way).
pub const SIGTERM_EXIT: i64 = -15;

/// How many executors in a row may die before completing any call before the pool is
/// declared unusable (a worker that dies at import, an initializer that kills it).
pub const MAX_BARREN_GENERATIONS: u32 = 3;

/// A dead worker and its exit status (negative: killed by that signal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadWorker {
    /// Its process id.
    pub pid: Pid,
    /// Its exit status.
    pub code: i64,
}

/// The worker that broke the pool. By the time the front end looks, every worker is
/// dead (the survivors stopped by the executor's clean-up), so the culprit is ranked,
/// not read off: one that was running a call, then one whose status is not
/// `SIGTERM`'s, then one with an abnormal status; the first dead worker otherwise.
#[must_use]
pub fn culprit(dead: &[DeadWorker], was_running: impl Fn(Pid) -> bool) -> Option<DeadWorker> {
    dead.iter()
        .copied()
        .max_by_key(|w| (was_running(w.pid), w.code != SIGTERM_EXIT, w.code != 0))
        .or_else(|| dead.first().copied())
}

/// Why a crashed pool can never run a call again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// The initializer failed: the stdlib's worker exits with status 0 when its
    /// initializer raises; that is the cause only if no worker had started a call.
    InitializerFailed,
    /// Executors keep dying before completing any call
    /// ([`MAX_BARREN_GENERATIONS`] in a row, this one included).
    Barren,
}

/// Whether the crash leaves the pool unusable. `any_call_started`: a worker of this
/// executor had started a call; `completed_any`: this executor completed a call;
/// `barren_before`: executors in a row that died before completing any call.
#[must_use]
pub fn unusable(
    dead: &[DeadWorker],
    any_call_started: bool,
    completed_any: bool,
    barren_before: u32,
) -> Option<Unusable> {
    if !any_call_started && dead.iter().any(|w| w.code == 0) {
        Some(Unusable::InitializerFailed)
    } else if !completed_any && barren_before + 1 >= MAX_BARREN_GENERATIONS {
        Some(Unusable::Barren)
    } else {
        None
    }
}

/// What became of one call of a chunk the crash caught.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallVerdict {
    /// It was running in the culprit `pid` and died with it.
    DiedRunning {
        /// The culprit.
        pid: Pid,
    },
    /// It had completed in the culprit `pid`, but its result was lost with the process
    /// (results travel back with the whole chunk).
    ResultLost {
        /// The culprit.
        pid: Pid,
    },
    /// It had started in `pid`, a worker the clean-up terminated: its outcome is lost.
    Terminated {
        /// The terminated worker.
        pid: Pid,
    },
    /// It never started, but the pool is unusable: it fails with the pool's reason.
    PoolUnusable,
    /// Whether it started is unknown (a worker could not be stopped): it is not run
    /// again.
    Unknown,
    /// It never started: it runs on the next executor.
    Requeue,
}

/// The crash as the verdicts need it.
#[derive(Debug, Clone, Copy)]
pub struct CrashFacts {
    /// The culprit's pid, if one was found.
    pub culprit: Option<Pid>,
    /// The pool can never run a call again.
    pub unusable: bool,
    /// Some worker could not be stopped, so progress records may still change.
    pub unsettled: bool,
}

/// Verdicts for the `calls` calls of one chunk, in order. `progress`: the worker that
/// took the chunk and the index of the call it was running (or had last started), if a
/// worker started the chunk at all. Calls at or before that index started; the rest
/// never did.
#[must_use]
pub fn classify_chunk(
    calls: usize,
    progress: Option<(Pid, usize)>,
    crash: CrashFacts,
) -> Vec<CallVerdict> {
    (0..calls)
        .map(|index| match progress {
            Some((pid, running)) if index <= running => {
                if crash.culprit != Some(pid) {
                    CallVerdict::Terminated { pid }
                } else if index == running {
                    CallVerdict::DiedRunning { pid }
                } else {
                    CallVerdict::ResultLost { pid }
                }
            }
            _ if crash.unusable => CallVerdict::PoolUnusable,
            _ if crash.unsettled => CallVerdict::Unknown,
            _ => CallVerdict::Requeue,
        })
        .collect()
}

impl CallVerdict {
    /// Whether the call's worker died under it (it started and its outcome is lost
    /// with the process): the verdicts a retry may follow. Not [`Self::Unknown`] (a
    /// worker that could not be stopped may still be running it) and not
    /// [`Self::PoolUnusable`].
    #[must_use]
    pub fn worker_died(self) -> bool {
        matches!(
            self,
            Self::DiedRunning { .. } | Self::ResultLost { .. } | Self::Terminated { .. }
        )
    }
}

/// Calls of a chunk that raised, as the worker recorded them: bit `i` for call `i`
/// (calls past the 63rd cannot be recorded and count as having raised).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RaisedCalls(pub u64);

impl RaisedCalls {
    /// The most calls of a chunk the record can tell apart.
    pub const RECORDED: usize = 63;

    /// Whether call `index` raised, or may have.
    #[must_use]
    pub fn may_have_raised(self, index: usize) -> bool {
        index >= Self::RECORDED || self.0 & (1 << index) != 0
    }
}

/// Whether a call whose worker died runs again: only an opted-in (idempotent) call,
/// only after a verdict that says its worker died under it, never a call that had
/// raised (its exception, lost with the worker, was its outcome), and only while it
/// has attempts left. `attempts` counts the runs so far (1 after the first); `retries`
/// is how many runs may follow the first.
#[must_use]
pub fn retry(verdict: CallVerdict, attempts: u32, retries: u32, raised: bool) -> bool {
    verdict.worker_died() && !raised && attempts <= retries
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const KILLED: i64 = -9;

    #[test]
    fn retries_only_dead_workers_calls_and_only_while_attempts_are_left() {
        let died = CallVerdict::DiedRunning { pid: 1 };
        assert!(!retry(died, 1, 0, false), "at most once by default");
        assert!(retry(died, 1, 2, false) && retry(died, 2, 2, false));
        assert!(
            !retry(died, 3, 2, false),
            "the third run was the last of 1 + 2"
        );
        assert!(retry(CallVerdict::ResultLost { pid: 1 }, 1, 1, false));
        assert!(retry(CallVerdict::Terminated { pid: 2 }, 1, 1, false));
        assert!(
            !retry(CallVerdict::ResultLost { pid: 1 }, 1, 1, true),
            "a call that raised had its outcome"
        );
        for never in [
            CallVerdict::Unknown,
            CallVerdict::PoolUnusable,
            CallVerdict::Requeue,
        ] {
            assert!(!retry(never, 1, 5, false), "{never:?}");
        }
    }

    #[test]
    fn raised_calls_past_the_record_count_as_raised() {
        let raised = RaisedCalls(0b101);
        assert!(raised.may_have_raised(0) && raised.may_have_raised(2));
        assert!(!raised.may_have_raised(1) && !raised.may_have_raised(62));
        assert!(RaisedCalls(0).may_have_raised(63));
    }

    fn dead(list: &[(Pid, i64)]) -> Vec<DeadWorker> {
        list.iter()
            .map(|&(pid, code)| DeadWorker { pid, code })
            .collect()
    }

    #[test]
    fn the_culprit_is_the_one_running_a_call_then_not_sigterms_victim() {
        let workers = dead(&[(10, SIGTERM_EXIT), (11, KILLED), (12, SIGTERM_EXIT)]);
        assert_eq!(culprit(&workers, |_| false).map(|w| w.pid), Some(11));
        assert_eq!(culprit(&workers, |pid| pid == 12).map(|w| w.pid), Some(12));
        let clean = dead(&[(20, SIGTERM_EXIT), (21, 3)]);
        assert_eq!(culprit(&clean, |_| false).map(|w| w.pid), Some(21));
        assert_eq!(culprit(&[], |_| true), None);
    }

    #[test]
    fn a_pool_is_unusable_after_a_failed_initializer_or_barren_executors() {
        let exited_zero = dead(&[(1, 0), (2, SIGTERM_EXIT)]);
        assert_eq!(
            unusable(&exited_zero, false, false, 0),
            Some(Unusable::InitializerFailed)
        );
        assert_eq!(
            unusable(&exited_zero, true, false, 0),
            None,
            "a call had started"
        );
        let killed = dead(&[(1, KILLED)]);
        assert_eq!(unusable(&killed, true, false, 1), None);
        assert_eq!(
            unusable(&killed, true, false, MAX_BARREN_GENERATIONS - 1),
            Some(Unusable::Barren)
        );
        assert_eq!(
            unusable(&killed, true, true, MAX_BARREN_GENERATIONS - 1),
            None,
            "this executor completed a call"
        );
    }

    #[test]
    fn calls_started_in_the_culprit_died_or_lost_their_result_the_rest_run_again() {
        let facts = CrashFacts {
            culprit: Some(7),
            unusable: false,
            unsettled: false,
        };
        assert_eq!(
            classify_chunk(4, Some((7, 1)), facts),
            vec![
                CallVerdict::ResultLost { pid: 7 },
                CallVerdict::DiedRunning { pid: 7 },
                CallVerdict::Requeue,
                CallVerdict::Requeue,
            ]
        );
        assert_eq!(
            classify_chunk(2, Some((8, 0)), facts),
            vec![CallVerdict::Terminated { pid: 8 }, CallVerdict::Requeue],
            "a survivor the clean-up terminated"
        );
        assert_eq!(
            classify_chunk(2, None, facts),
            vec![CallVerdict::Requeue; 2]
        );
    }

    #[test]
    fn unstarted_calls_fail_when_the_pool_is_unusable_or_progress_is_unknown() {
        let mut facts = CrashFacts {
            culprit: None,
            unusable: true,
            unsettled: true,
        };
        assert_eq!(
            classify_chunk(1, None, facts),
            vec![CallVerdict::PoolUnusable]
        );
        facts.unusable = false;
        assert_eq!(classify_chunk(1, None, facts), vec![CallVerdict::Unknown]);
    }
}
