use super::*;

type Fx = Effects<u32, &'static str>;

fn grinder(threshold: usize, max_outstanding: Option<usize>) -> Grinder<u32, &'static str> {
    let mut g = Grinder::new(BatchPolicy {
        batch_size_threshold: threshold,
        max_wait_seconds: 1.0,
        max_outstanding,
    });
    assert!(g.start());
    g
}

fn submit(g: &mut Grinder<u32, &'static str>, item: u32, now: f64) -> Fx {
    let mut fx = Fx::default();
    g.submit(item, None, now, &mut fx).expect("accepted");
    fx
}

#[test]
fn refuses_by_phase_and_hands_the_item_back() {
    let mut g: Grinder<u32, &str> = Grinder::new(BatchPolicy {
        batch_size_threshold: 2,
        max_wait_seconds: 1.0,
        max_outstanding: None,
    });
    let mut fx = Fx::default();
    assert_eq!(
        g.submit(7, Some("a"), 0.0, &mut fx).unwrap_err(),
        (7, Some("a"), Refusal::NotStarted)
    );
    assert!(g.start());
    assert!(!g.start(), "already started");
    let _ = g.stop(false, 0.0, &mut fx);
    assert_eq!(
        g.submit(8, None, 0.0, &mut fx).unwrap_err(),
        (8, None, Refusal::Stopping)
    );
    assert!(!g.start(), "a stopping grinder does not restart");
    g.stopped();
    assert!(g.start(), "restartable once stopped");
}

#[test]
fn one_timer_for_many_items_and_rearmed_for_what_is_left() {
    let mut g = grinder(10, None);
    assert_eq!(submit(&mut g, 1, 0.0).arm_timer, Some(1.0));
    assert!(
        submit(&mut g, 2, 0.5).is_empty(),
        "the armed timer covers it"
    );
    let mut fx = Fx::default();
    g.timer_fired(0.9, &mut fx);
    assert_eq!(fx.arm_timer, Some(1.0), "fired early: armed again");
    let mut fx = Fx::default();
    g.timer_fired(1.0, &mut fx);
    assert_eq!(
        fx.dispatch,
        vec![Batch {
            id: 1,
            items: vec![1, 2]
        }]
    );
    assert_eq!(fx.arm_timer, None);
    assert_eq!(submit(&mut g, 3, 2.0).arm_timer, Some(3.0));
}

#[test]
fn a_timer_the_front_end_could_not_arm_is_asked_for_again() {
    let mut g = grinder(10, None);
    assert_eq!(submit(&mut g, 1, 0.0).arm_timer, Some(1.0));
    g.timer_not_armed();
    let mut fx = Fx::default();
    assert_eq!(g.withdraw(0.1, |&i| i == 1, &mut fx), Some(1));
    assert_eq!(submit(&mut g, 2, 0.2).arm_timer, Some(1.2));
}

#[test]
fn threshold_forms_numbered_batches() {
    let mut g = grinder(2, None);
    let _ = submit(&mut g, 1, 0.0);
    let fx = submit(&mut g, 2, 0.0);
    assert_eq!(
        fx.dispatch,
        vec![Batch {
            id: 1,
            items: vec![1, 2]
        }]
    );
    let _ = submit(&mut g, 3, 0.0);
    let fx = submit(&mut g, 4, 0.0);
    assert_eq!(fx.dispatch[0].id, 2);
    assert_eq!(g.batches_in_flight(), 2);
}

#[test]
fn parked_submitters_are_acknowledged_in_order_as_space_frees() {
    let mut g = grinder(10, Some(1));
    let _ = submit(&mut g, 1, 0.0);
    let mut fx = Fx::default();
    let parked = g.submit(2, Some("second"), 0.0, &mut fx).expect("parked");
    assert!(parked.parked);
    let _ = g.submit(3, Some("third"), 0.0, &mut fx).expect("parked");
    assert_eq!(
        g.submit(4, None, 0.0, &mut fx).unwrap_err(),
        (4, None, Refusal::Full)
    );
    assert!(fx.accepted.is_empty());
    let mut fx = Fx::default();
    g.items_finished(1, 0.5, &mut fx);
    assert_eq!(fx.accepted, vec!["second"]);
    let mut fx = Fx::default();
    assert_eq!(g.withdraw(0.6, |&i| i == 2, &mut fx), Some(2));
    assert_eq!(fx.accepted, vec!["third"]);
}

#[test]
fn an_ack_given_with_room_to_spare_is_returned_at_once() {
    let mut g = grinder(10, Some(5));
    let mut fx = Fx::default();
    let submitted = g.submit(1, Some("now"), 0.0, &mut fx).expect("accepted");
    assert!(!submitted.parked);
    assert_eq!(fx.accepted, vec!["now"]);
}

#[test]
fn cancelled_items_of_a_batch_free_their_space_and_an_empty_batch_ends() {
    let mut g = grinder(2, Some(2));
    let _ = submit(&mut g, 1, 0.0);
    let fx = submit(&mut g, 2, 0.0);
    let id = fx.dispatch[0].id;
    let mut fx = Fx::default();
    g.submit(3, Some("parked"), 0.0, &mut fx).expect("parked");
    let mut fx = Fx::default();
    assert_eq!(g.start_batch(id, 2, 0, 0.1, &mut fx), BatchStart::Empty);
    assert_eq!(fx.accepted, vec!["parked"]);
    assert_eq!(g.batches_in_flight(), 0);
    assert_eq!(g.outstanding(), 1);
}

#[test]
fn draining_stop_sends_everything_in_one_last_batch_and_waits_for_it() {
    let mut g = grinder(10, Some(1));
    let _ = submit(&mut g, 1, 0.0);
    let mut fx = Fx::default();
    g.submit(2, Some("parked"), 0.0, &mut fx).expect("parked");
    let mut fx = Fx::default();
    assert!(matches!(g.stop(false, 0.2, &mut fx), Stopping::Drain));
    assert_eq!(
        fx.dispatch,
        vec![Batch {
            id: 1,
            items: vec![1, 2]
        }]
    );
    assert_eq!(fx.accepted, vec!["parked"]);
    assert!(!fx.stopped, "its last batch is in flight");
    let mut fx = Fx::default();
    assert_eq!(g.start_batch(1, 2, 2, 0.3, &mut fx), BatchStart::Run);
    assert!(!g.finish_batch(1, BatchOutcomes::default(), 1.0, &mut fx));
    assert!(fx.stopped);
    assert_eq!(g.phase(), Phase::Stopping);
    g.stopped();
    assert_eq!(g.phase(), Phase::Idle);
}

#[test]
fn cancelling_stop_hands_back_pending_parked_and_batches_in_flight() {
    let mut g = grinder(2, Some(3));
    let _ = submit(&mut g, 1, 0.0);
    let _ = submit(&mut g, 2, 0.0); // batch 1, in flight
    let _ = submit(&mut g, 3, 0.0); // pending
    let mut fx = Fx::default();
    g.submit(4, Some("parked"), 0.0, &mut fx).expect("parked");
    let mut fx = Fx::default();
    let Stopping::Cancel {
        pending,
        parked,
        batches,
    } = g.stop(true, 0.1, &mut fx)
    else {
        panic!("cancelling stop");
    };
    assert_eq!(
        (pending, parked, batches),
        (vec![3], vec![(4, "parked")], vec![(1, 2)])
    );
    assert!(
        fx.accepted.is_empty(),
        "a cancelled parked item is never accepted"
    );
    assert!(!fx.stopped);
    assert!(g.is_cancelled(1));
    let mut fx = Fx::default();
    assert!(
        g.finish_batch(1, BatchOutcomes::default(), 1.0, &mut fx),
        "reported as cancelled"
    );
    assert!(fx.stopped);
}

#[test]
fn a_batch_formed_before_stop_but_not_started_is_cancelled_when_it_starts() {
    let mut g = grinder(1, None);
    let fx = submit(&mut g, 1, 0.0);
    let id = fx.dispatch[0].id;
    let mut fx = Fx::default();
    let _ = g.stop(true, 0.0, &mut fx);
    assert!(!fx.stopped, "stop waits for the batch on its way");
    let mut fx = Fx::default();
    assert_eq!(g.start_batch(id, 1, 1, 0.0, &mut fx), BatchStart::Cancelled);
    assert!(g.finish_batch(id, BatchOutcomes::default(), 1.0, &mut fx));
    assert!(fx.stopped);
}

#[test]
fn stopping_an_idle_grinder_does_nothing() {
    let mut g: Grinder<u32, &str> = Grinder::new(BatchPolicy {
        batch_size_threshold: 1,
        max_wait_seconds: 1.0,
        max_outstanding: None,
    });
    let mut fx = Fx::default();
    assert!(matches!(g.stop(true, 0.0, &mut fx), Stopping::NotRunning));
    assert!(fx.is_empty());
}

#[test]
fn stop_with_nothing_in_flight_completes_at_once() {
    let mut g = grinder(5, None);
    let mut fx = Fx::default();
    assert!(matches!(g.stop(false, 0.0, &mut fx), Stopping::Drain));
    assert!(fx.stopped);
}

#[test]
fn fork_leaves_an_idle_grinder_and_hands_back_the_parents_items() {
    let mut g = grinder(10, Some(1));
    let _ = submit(&mut g, 1, 0.0);
    let mut fx = Fx::default();
    g.submit(2, Some("p"), 0.0, &mut fx).expect("parked");
    let (pending, parked) = g.forget_after_fork();
    assert_eq!((pending, parked), (vec![1], vec![(2, "p")]));
    assert_eq!(g.phase(), Phase::Idle);
    assert_eq!(g.batches_in_flight(), 0);
}

mod drain {
    use super::super::{BatchOutcomes, BatchPolicy, Effects, Grinder, GrinderDrainBegun, Refusal};

    type G = Grinder<u32, &'static str>;
    type Fx = Effects<u32, &'static str>;

    fn grinder() -> G {
        let mut g = G::new(BatchPolicy {
            batch_size_threshold: 10,
            max_wait_seconds: 60.0,
            max_outstanding: None,
        });
        assert!(g.start());
        g
    }

    #[test]
    fn an_idle_grinder_has_nothing_to_drain() {
        let mut g = G::new(BatchPolicy {
            batch_size_threshold: 1,
            max_wait_seconds: 1.0,
            max_outstanding: None,
        });
        let mut fx = Fx::default();
        assert_eq!(
            g.begin_drain(0.0, 5.0, &mut fx),
            GrinderDrainBegun::NotRunning
        );
        assert_eq!(g.end_drain(), None);
    }

    #[test]
    fn pending_items_leave_in_a_last_batch_and_quiet_ends_the_drain() {
        let mut g = grinder();
        let mut fx = Fx::default();
        g.submit(1, None, 0.0, &mut fx).unwrap();
        g.submit(2, None, 0.0, &mut fx).unwrap();
        let mut fx = Fx::default();
        assert_eq!(g.begin_drain(1.0, 5.0, &mut fx), GrinderDrainBegun::Started);
        assert_eq!(fx.dispatch.len(), 1);
        assert_eq!(fx.dispatch[0].items, vec![1, 2]);
        assert!(!fx.stopped);
        let id = fx.dispatch[0].id;
        let err = g.submit(3, None, 1.0, &mut Fx::default()).unwrap_err();
        assert_eq!(err.2, Refusal::Stopping, "nothing new is accepted");
        let mut fx = Fx::default();
        assert!(!g.finish_batch(id, BatchOutcomes::default(), 1.0, &mut fx));
        assert!(fx.stopped, "no batch left: the drain is complete");
        assert_eq!(g.end_drain(), Some(false), "before its deadline");
        assert_eq!(g.drain_due(10.0), None);
    }

    #[test]
    fn the_deadline_cancels_the_batches_in_flight_once() {
        let mut g = grinder();
        let mut fx = Fx::default();
        g.submit(1, None, 0.0, &mut fx).unwrap();
        let mut fx = Fx::default();
        g.begin_drain(0.0, 5.0, &mut fx);
        let id = fx.dispatch[0].id;
        assert_eq!(
            g.begin_drain(0.0, 3.0, &mut Fx::default()),
            GrinderDrainBegun::Joined { deadline: 3.0 }
        );
        assert_eq!(g.drain_deadline(), Some(3.0));
        assert_eq!(g.drain_due(2.9), None);
        assert_eq!(g.drain_due(3.0), Some(vec![(id, 1)]));
        assert_eq!(g.drain_due(4.0), None);
        assert!(g.is_cancelled(id));
        let mut fx = Fx::default();
        assert!(
            g.finish_batch(id, BatchOutcomes::default(), 1.0, &mut fx),
            "it ends as a cancelled batch"
        );
        assert!(fx.stopped);
        assert_eq!(g.end_drain(), Some(true));
    }
}
