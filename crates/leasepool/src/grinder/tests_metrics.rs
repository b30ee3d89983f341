//! The metrics the state machine records, driven with explicit timestamps.

use super::*;
use crate::metrics::{GrinderCounts, COUNT_BOUNDS, DURATION_BOUNDS_NS};

type G = Grinder<u32, &'static str>;
type Fx = Effects<u32, &'static str>;

fn grinder(threshold: usize, max_outstanding: Option<usize>) -> G {
    let mut g = G::new(BatchPolicy {
        batch_size_threshold: threshold,
        max_wait_seconds: 1.0,
        max_outstanding,
    });
    assert!(g.start());
    g
}

fn submit(g: &mut G, item: u32, now: f64, fx: &mut Fx) {
    g.submit(item, None, now, fx).expect("accepted");
}

fn counts(g: &G) -> GrinderCounts {
    g.metrics().counts
}

/// The bucket `value` lands in.
fn bucket(bounds: &[u64], value: u64) -> usize {
    bounds
        .iter()
        .position(|&b| b >= value)
        .unwrap_or(bounds.len())
}

#[test]
fn threshold_batches_are_counted_sized_and_timed() {
    let mut g = grinder(5, None);
    let mut fx = Fx::default();
    for i in 0..12 {
        submit(&mut g, i, 0.25, &mut fx);
    }
    assert_eq!(fx.dispatch.len(), 2);
    let snap = g.metrics();
    assert_eq!((snap.pending, snap.batches_in_flight), (2, 2));
    assert_eq!(snap.counts.items_submitted, 12);
    assert_eq!(snap.counts.batches_dispatched, 2);
    assert_eq!(snap.batch_size.counts[bucket(COUNT_BOUNDS, 5)], 2, "<= 8");
    assert_eq!(bucket(COUNT_BOUNDS, 5), 3);
    assert_eq!(snap.batch_size.sum, 10);

    let mut fx = Fx::default();
    assert_eq!(g.start_batch(1, 5, 5, 0.5, &mut fx), BatchStart::Run);
    let outcomes = BatchOutcomes {
        finished: 3,
        failed: 1,
        cancelled: 1,
    };
    assert!(!g.finish_batch(1, outcomes, 0.75, &mut fx));
    let snap = g.metrics();
    assert_eq!(snap.counts.items_finished, 3);
    assert_eq!(snap.counts.items_failed, 1);
    assert_eq!(snap.counts.items_cancelled, 1);
    assert_eq!(snap.counts.batches_completed, 1);
    assert_eq!(snap.batches_in_flight, 1);
    // Formed at 0.25, finished at 0.75: 0.5 s, timed from formation (not from
    // `start_batch`).
    assert_eq!(snap.batch_latency.sum, 500_000_000);
    let half_second = bucket(DURATION_BOUNDS_NS, 500_000_000);
    assert_eq!(snap.batch_latency.counts[half_second], 1);
    assert_eq!(snap.batch_latency.count(), snap.counts.batches_completed);
}

#[test]
fn a_timer_flush_and_an_empty_batch_are_timed_from_formation() {
    let mut g = grinder(10, None);
    let mut fx = Fx::default();
    submit(&mut g, 1, 0.0, &mut fx);
    submit(&mut g, 2, 0.1, &mut fx);
    let mut fx = Fx::default();
    g.timer_fired(1.0, &mut fx);
    let id = fx.dispatch[0].id;
    assert_eq!(counts(&g).batches_dispatched, 1);
    // Both items were cancelled on the way to the loop: the batch ends at once.
    let mut fx = Fx::default();
    assert_eq!(g.start_batch(id, 2, 0, 1.5, &mut fx), BatchStart::Empty);
    let snap = g.metrics();
    assert_eq!(snap.counts.items_cancelled, 2);
    assert_eq!(snap.counts.batches_completed, 1);
    assert_eq!(snap.batch_latency.sum, 500_000_000);
    assert_eq!(snap.batches_in_flight, 0);
}

#[test]
fn items_gone_before_the_lease_count_as_cancelled_once() {
    let mut g = grinder(3, None);
    let mut fx = Fx::default();
    for i in 0..3 {
        submit(&mut g, i, 0.0, &mut fx);
    }
    let mut fx = Fx::default();
    assert_eq!(g.start_batch(1, 3, 2, 0.0, &mut fx), BatchStart::Run);
    assert_eq!(counts(&g).items_cancelled, 1);
    let ran = BatchOutcomes {
        finished: 2,
        ..BatchOutcomes::default()
    };
    g.finish_batch(1, ran, 0.1, &mut fx);
    let c = counts(&g);
    assert_eq!((c.items_finished, c.items_cancelled), (2, 1));
}

#[test]
fn withdrawn_items_are_cancelled_and_admitted_parked_items_are_submitted() {
    let mut g = grinder(10, Some(1));
    let mut fx = Fx::default();
    submit(&mut g, 1, 0.0, &mut fx);
    let mut fx = Fx::default();
    assert!(g.submit(2, Some("parked"), 0.0, &mut fx).unwrap().parked);
    assert_eq!(counts(&g).items_submitted, 1, "parked: not accepted yet");
    let mut fx = Fx::default();
    assert_eq!(g.withdraw(0.5, |&i| i == 1, &mut fx), Some(1));
    assert_eq!(fx.accepted, vec!["parked"]);
    let c = counts(&g);
    assert_eq!((c.items_submitted, c.items_cancelled), (2, 1));
    assert_eq!(g.metrics().pending, 1);
}

#[test]
fn cancelling_stop_counts_pending_items_and_not_parked_ones() {
    let mut g = grinder(2, Some(3));
    let mut fx = Fx::default();
    submit(&mut g, 1, 0.0, &mut fx);
    submit(&mut g, 2, 0.0, &mut fx); // batch 1
    submit(&mut g, 3, 0.0, &mut fx); // pending
    g.submit(4, Some("parked"), 0.0, &mut fx).expect("parked");
    let mut fx = Fx::default();
    let Stopping::Cancel { batches, .. } = g.stop(true, 1.0, &mut fx) else {
        panic!("cancelling stop");
    };
    assert_eq!(batches, vec![(1, 2)]);
    let c = counts(&g);
    assert_eq!((c.items_submitted, c.items_cancelled), (3, 1));
    // The front end withdraws the cancelled batch's items and reports its end; a
    // cancelled batch is completed (and timed) like any other.
    let mut fx = Fx::default();
    assert!(g.finish_batch(1, BatchOutcomes::cancelled(2), 2.0, &mut fx));
    assert!(fx.stopped);
    let snap = g.metrics();
    assert_eq!(snap.counts.items_cancelled, 3);
    assert_eq!(snap.counts.batches_completed, 1);
    assert_eq!(snap.batch_latency.sum, 2_000_000_000);
}

#[test]
fn draining_stop_accepts_parked_items_into_its_last_batch() {
    let mut g = grinder(10, Some(1));
    let mut fx = Fx::default();
    submit(&mut g, 1, 0.0, &mut fx);
    g.submit(2, Some("parked"), 0.0, &mut fx).expect("parked");
    let mut fx = Fx::default();
    assert!(matches!(g.stop(false, 0.5, &mut fx), Stopping::Drain));
    let snap = g.metrics();
    assert_eq!(snap.counts.items_submitted, 2);
    assert_eq!(snap.counts.batches_dispatched, 1);
    assert_eq!(snap.batch_size.counts[bucket(COUNT_BOUNDS, 2)], 1);
    assert_eq!((snap.pending, snap.batches_in_flight), (0, 1));
}

#[test]
fn counters_survive_a_restart() {
    let mut g = grinder(1, None);
    let mut fx = Fx::default();
    submit(&mut g, 1, 0.0, &mut fx);
    let finished = BatchOutcomes {
        finished: 1,
        ..BatchOutcomes::default()
    };
    let mut fx = Fx::default();
    g.start_batch(1, 1, 1, 0.0, &mut fx);
    g.finish_batch(1, finished, 0.0, &mut fx);
    let _ = g.stop(false, 0.0, &mut fx);
    g.stopped();
    assert!(g.start());
    submit(&mut g, 2, 1.0, &mut fx);
    let c = counts(&g);
    assert_eq!((c.items_submitted, c.batches_dispatched), (2, 2));
    assert_eq!(c.items_finished, 1);
}

/// Every accepted item is pending, in a batch in flight, or counted once as an
/// outcome, whatever happens in between.
#[test]
fn submitted_items_are_accounted_for_at_every_snapshot() {
    let mut g = grinder(4, Some(6));
    let mut live: std::collections::BTreeMap<u64, u64> = std::collections::BTreeMap::new();
    let check = |g: &G, live: &std::collections::BTreeMap<u64, u64>| {
        let snap = g.metrics();
        let c = snap.counts;
        let in_batches: u64 = live.values().sum();
        assert_eq!(
            c.items_submitted,
            snap.pending + in_batches + c.items_finished + c.items_failed + c.items_cancelled,
            "{snap:?}"
        );
        assert_eq!(
            c.batches_dispatched,
            c.batches_completed + snap.batches_in_flight
        );
        assert_eq!(snap.batch_latency.count(), c.batches_completed);
        assert_eq!(snap.batch_size.count(), c.batches_dispatched);
    };
    let mut now = 0.0;
    for round in 0..40u32 {
        now += 0.01;
        let mut fx = Fx::default();
        let _ = g.submit(round, Some("ack"), now, &mut fx);
        if round % 7 == 3 {
            let _ = g.withdraw(now, |&i| i + 1 == round, &mut fx);
        }
        if round % 5 == 0 {
            g.timer_fired(now + 1.0, &mut fx);
        }
        for batch in std::mem::take(&mut fx.dispatch) {
            let size = batch.items.len();
            let live_items = size - usize::from(size > 1 && round % 3 == 0);
            let start = g.start_batch(batch.id, size, live_items, now, &mut fx);
            if start == BatchStart::Run {
                live.insert(batch.id, live_items as u64);
            }
        }
        check(&g, &live);
        // Finish the oldest batch in flight: one item failed, the rest returned.
        if let Some((id, size)) = live.pop_first() {
            let outcomes = BatchOutcomes {
                finished: size - 1,
                failed: 1,
                cancelled: 0,
            };
            g.items_finished(size as usize, now, &mut fx);
            g.finish_batch(id, outcomes, now + 0.002, &mut fx);
            for batch in std::mem::take(&mut fx.dispatch) {
                let size = batch.items.len();
                if g.start_batch(batch.id, size, size, now, &mut fx) == BatchStart::Run {
                    live.insert(batch.id, size as u64);
                }
            }
        }
        check(&g, &live);
    }
    assert!(counts(&g).batches_completed > 5);
}
