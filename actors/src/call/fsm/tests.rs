//! Table tests over every (state, event) pair and property tests of the call state machine's
//! invariants: one terminal event, nothing leaves `ended`, callbacks in any order or repeated
//! never move a call backwards.

use super::*;
use chrono::TimeZone;
use proptest::prelude::*;

fn t(seconds: i64) -> Timestamp {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

fn update(sequence: u64, leg: Leg, status: LegStatus, at: i64) -> Event {
    Event::Carrier(CarrierUpdate {
        sequence,
        leg,
        status,
        at: t(at),
        duration_s: None,
        answer_duration_s: None,
        recording_url: None,
    })
}

fn run(state: CallState, events: impl IntoIterator<Item = Event>) -> (CallState, Vec<Effect>) {
    let policy = Policy::default();
    let mut state = state;
    let mut all = Vec::new();
    for event in events {
        if let Ok(transition) = apply(&state, event, &policy) {
            all.extend(transition.effects);
            state = transition.next;
        }
    }
    (state, all)
}

/// The successful click-to-call trace, in the carrier's order.
fn completed_trace() -> Vec<Event> {
    let mut last = update(6, Leg::Customer, LegStatus::Completed, 60);
    if let Event::Carrier(u) = &mut last {
        u.duration_s = Some(55);
        u.answer_duration_s = Some(48);
        u.recording_url = Some("http://carrier/rec.wav".into());
    }
    vec![
        update(1, Leg::Agent, LegStatus::Ringing, 1),
        update(2, Leg::Agent, LegStatus::Answered, 3),
        update(3, Leg::Customer, LegStatus::Ringing, 4),
        update(4, Leg::Customer, LegStatus::Answered, 12),
        last,
        update(7, Leg::Agent, LegStatus::Completed, 61),
    ]
}

fn new_call(transcript: bool) -> CallState {
    CallState::new(CallType::ClickToCall, transcript, t(0))
}

/// A call is stored already dialing, so its row and its first transition are one write: that is
/// only right while starting to dial publishes nothing (the insert writes no outbox rows) and the
/// state is the one `DialStarted` leads to.
#[test]
fn a_created_call_is_dialing_with_its_first_effects_and_publishes_nothing() {
    for transcript in [false, true] {
        let created = create(CallType::ClickToCall, transcript, t(0), &Policy::default());
        let dialed = apply(&new_call(transcript), Event::DialStarted { at: t(0) }, &Policy::default()).unwrap();
        assert_eq!(created.next.status, CallStatus::Dialing);
        assert_eq!(created.next, dialed.next);
        assert_eq!(created.effects, vec![Effect::CountLive, Effect::PlaceCall]);
        assert_eq!(created.published().count(), 0);
    }
}

/// Named states reachable from a new call, for the state × event table.
fn named_states() -> Vec<(&'static str, CallState)> {
    let queued = new_call(true);
    let (dialing, _) = run(queued.clone(), [Event::DialStarted { at: t(0) }]);
    let (ringing, _) = run(dialing.clone(), [update(1, Leg::Agent, LegStatus::Ringing, 1)]);
    let (in_progress, _) = run(ringing.clone(), completed_trace().into_iter().take(4));
    let (ended, _) = run(in_progress.clone(), completed_trace().into_iter().skip(4));
    let (finished, _) =
        run(ended.clone(), [Event::RecordingStored { at: t(70) }, Event::TranscriptReady { at: t(80) }]);
    vec![
        ("queued", queued),
        ("dialing", dialing),
        ("ringing", ringing),
        ("in_progress", in_progress),
        ("ended", ended),
        ("finished", finished),
    ]
}

fn named_events() -> Vec<(&'static str, Event)> {
    vec![
        ("dial_started", Event::DialStarted { at: t(100) }),
        ("placed", Event::Placed { provider_call_id: "SB1".into(), at: t(100) }),
        ("place_failed", Event::PlaceFailed { reason: "carrier_rejected".into(), at: t(100) }),
        ("agent_ringing", update(1, Leg::Agent, LegStatus::Ringing, 100)),
        ("agent_busy", update(2, Leg::Agent, LegStatus::Busy, 100)),
        ("customer_answered", update(4, Leg::Customer, LegStatus::Answered, 100)),
        ("customer_completed", update(5, Leg::Customer, LegStatus::Completed, 100)),
        ("recording_available", Event::RecordingAvailable { url: "http://r".into(), at: t(100) }),
        ("recording_stored", Event::RecordingStored { at: t(100) }),
        ("recording_failed", Event::RecordingFailed { reason: "404".into(), at: t(100) }),
        ("transcript_ready", Event::TranscriptReady { at: t(100) }),
        ("transcript_failed", Event::TranscriptFailed { error: "401".into(), at: t(100) }),
        ("transferred", Event::Transferred { to: "+1415*****00".into(), at: t(100) }),
        ("tick", Event::Tick { at: t(100) }),
        ("engine_failed", Event::EngineFailed { reason: "engine_error".into(), at: t(100) }),
        ("resumed", Event::Resumed { at: t(100) }),
        ("status_not_found", Event::CarrierStatus { answer: StatusAnswer::NotFound, at: t(100) }),
        ("status_unknown", Event::CarrierStatus { answer: StatusAnswer::Unknown, at: t(100) }),
        ("status_completed", Event::CarrierStatus { answer: found_completed(100), at: t(100) }),
    ]
}

/// The carrier's answer about a call it saw complete.
fn found_completed(at: i64) -> StatusAnswer {
    let Event::Carrier(update) = update(5, Leg::Customer, LegStatus::Completed, at) else { unreachable!() };
    StatusAnswer::Found { provider_call_id: Some("SB1".into()), updates: vec![update] }
}

/// Expected (status after, outcome after) or `None` for "rejected", per state × event.
fn expected(state: &str, event: &str) -> Option<(&'static str, Option<Outcome>)> {
    use Outcome::*;
    let ended_completed = Some(("ended", Some(Completed)));
    match (state, event) {
        ("queued", "dial_started") => Some(("dialing", None)),
        (_, "dial_started") => None,
        // The carrier's answer may arrive after its first callbacks: the id is taken whenever unknown.
        (_, "placed") => Some((state_status(state), state_outcome(state))),
        ("queued" | "dialing", "place_failed") => Some(("ended", Some(Failed))),
        (_, "place_failed") => None,
        ("queued" | "dialing", "agent_ringing") => Some(("ringing", None)),
        ("ringing" | "in_progress", "agent_ringing") => None,
        ("queued" | "dialing" | "ringing", "agent_busy") => Some(("ended", Some(Busy))),
        ("in_progress", "agent_busy") => Some(("in_progress", None)),
        ("queued" | "dialing" | "ringing", "customer_answered") => Some(("in_progress", None)),
        ("in_progress", "customer_answered") => None,
        ("queued" | "dialing" | "ringing" | "in_progress", "customer_completed") => ended_completed,
        ("ended" | "finished", "agent_ringing" | "agent_busy" | "customer_answered" | "customer_completed") => None,
        ("queued" | "dialing" | "ringing" | "in_progress", "recording_available") => Some((state_status(state), None)),
        // The ended state already knows its recording URL from the final callback.
        ("ended" | "finished", "recording_available") => None,
        ("queued" | "dialing" | "ringing" | "in_progress" | "ended", "recording_stored" | "recording_failed") => {
            Some((state_status(state), state_outcome(state)))
        }
        ("finished", "recording_stored" | "recording_failed") => None,
        ("ended", "transcript_ready" | "transcript_failed") => ended_completed,
        (_, "transcript_ready" | "transcript_failed") => None,
        // Only a customer on the line can be transferred; the call carries on.
        ("in_progress", "transferred") => Some(("in_progress", None)),
        (_, "transferred") => None,
        (_, "tick") => Some((state_status(state), state_outcome(state))),
        ("ended" | "finished", "engine_failed") => ended_completed,
        (_, "engine_failed") => Some(("ended", Some(Failed))),
        // Resuming never changes where a call is; it only restarts work.
        (_, "resumed") => Some((state_status(state), state_outcome(state))),
        ("queued" | "dialing" | "ringing" | "in_progress", "status_not_found") => Some(("ended", Some(Failed))),
        ("queued" | "dialing" | "ringing" | "in_progress", "status_unknown") => Some((state_status(state), None)),
        ("queued" | "dialing" | "ringing" | "in_progress", "status_completed") => ended_completed,
        ("ended" | "finished", "status_not_found" | "status_unknown" | "status_completed") => None,
        _ => unreachable!("no expectation for {state} × {event}"),
    }
}

fn state_status(state: &str) -> &'static str {
    match state {
        "queued" => "queued",
        "dialing" => "dialing",
        "ringing" => "ringing",
        "in_progress" => "in_progress",
        _ => "ended",
    }
}

fn state_outcome(state: &str) -> Option<Outcome> {
    matches!(state, "ended" | "finished").then_some(Outcome::Completed)
}

fn status_name(status: CallStatus) -> &'static str {
    match status {
        CallStatus::Queued => "queued",
        CallStatus::Dialing => "dialing",
        CallStatus::Ringing => "ringing",
        CallStatus::InProgress => "in_progress",
        CallStatus::Ended => "ended",
    }
}

#[test]
fn every_state_event_pair_matches_the_table() {
    let policy = Policy::default();
    for (state_name, state) in named_states() {
        for (event_name, event) in named_events() {
            let result = apply(&state, event, &policy);
            let want = expected(state_name, event_name);
            match (result, want) {
                (Ok(transition), Some((status, outcome))) => {
                    assert_eq!(status_name(transition.next.status), status, "{state_name} × {event_name}");
                    assert_eq!(transition.next.outcome, outcome, "{state_name} × {event_name}");
                }
                (Err(_), None) => {}
                (got, want) => panic!("{state_name} × {event_name}: got {got:?}, want {want:?}"),
            }
        }
    }
}

#[test]
fn a_transfer_publishes_call_transferred_once_the_customer_answered() {
    let (in_progress, _) = run(new_call(false), completed_trace().into_iter().take(4));
    let transfer = Event::Transferred { to: "+1415*****00".into(), at: t(20) };
    let transition = apply(&in_progress, transfer.clone(), &Policy::default()).unwrap();
    assert_eq!(transition.effects, vec![Effect::Publish(Lifecycle::Transferred { to: "+1415*****00".into() })]);
    assert_eq!(transition.next.status, CallStatus::InProgress);
    let (ringing, _) = run(new_call(false), completed_trace().into_iter().take(1));
    assert!(apply(&ringing, transfer, &Policy::default()).is_err());
}

#[test]
fn completed_call_publishes_milestones_then_transcribes_after_recording() {
    let (state, effects) = run(new_call(true), [Event::DialStarted { at: t(0) }].into_iter().chain(completed_trace()));
    assert_eq!(state.outcome, Some(Outcome::Completed));
    assert_eq!(state.duration_s, Some(55));
    assert_eq!(state.answer_duration_s, Some(48));
    assert_eq!(state.transcript, TranscriptStatus::Processing);
    let published: Vec<_> =
        effects.iter().filter_map(|e| if let Effect::Publish(l) = e { Some(l.clone()) } else { None }).collect();
    assert_eq!(
        published,
        vec![Lifecycle::Ringing, Lifecycle::Answered, Lifecycle::Ended { outcome: Outcome::Completed, reason: None }]
    );
    assert!(effects.contains(&Effect::FetchRecording { url: "http://carrier/rec.wav".into() }));
    assert!(!effects.contains(&Effect::Transcribe));
    let (state, effects) = run(state, [Event::RecordingStored { at: t(62) }]);
    assert_eq!(effects, vec![Effect::Publish(Lifecycle::RecordingReady), Effect::Transcribe]);
    let (state, effects) = run(state, [Event::TranscriptReady { at: t(70) }]);
    assert_eq!(effects, vec![Effect::Publish(Lifecycle::TranscriptReady), Effect::Finish]);
    assert!(state.is_finished());
}

#[test]
fn transcript_disabled_is_published_at_the_end_and_finishes_after_the_recording() {
    let (state, effects) = run(new_call(false), [Event::DialStarted { at: t(0) }].into_iter().chain(completed_trace()));
    assert!(effects.contains(&Effect::Publish(Lifecycle::TranscriptDisabled)));
    assert!(!effects.contains(&Effect::Finish));
    let (_, effects) = run(state, [Event::RecordingStored { at: t(62) }]);
    assert!(effects.contains(&Effect::Finish));
}

#[test]
fn busy_customer_fails_the_call_and_its_transcript() {
    let (state, effects) = run(
        new_call(true),
        [
            Event::DialStarted { at: t(0) },
            update(1, Leg::Agent, LegStatus::Ringing, 1),
            update(2, Leg::Agent, LegStatus::Answered, 2),
            update(3, Leg::Customer, LegStatus::Ringing, 3),
            update(4, Leg::Customer, LegStatus::Busy, 4),
        ],
    );
    assert_eq!(state.outcome, Some(Outcome::Busy));
    assert_eq!(state.reason.as_deref(), Some("customer_busy"));
    assert_eq!(state.recording, RecordingStatus::None);
    assert_eq!(state.transcript, TranscriptStatus::Failed);
    assert!(effects.contains(&Effect::Finish));
    assert!(effects.contains(&Effect::UncountLive));
}

#[test]
fn agent_that_does_not_answer_ends_the_call_before_the_customer_rings() {
    let (state, _) = run(
        new_call(false),
        [
            Event::DialStarted { at: t(0) },
            update(1, Leg::Agent, LegStatus::Ringing, 1),
            update(2, Leg::Agent, LegStatus::NoAnswer, 30),
        ],
    );
    assert_eq!(state.outcome, Some(Outcome::NoAnswer));
    assert_eq!(state.reason.as_deref(), Some("agent_no_answer"));
}

#[test]
fn agent_call_ignores_the_agent_leg() {
    let state = CallState::new(CallType::AgentTelephony, false, t(0));
    let (state, _) = run(
        state,
        [
            Event::DialStarted { at: t(0) },
            update(1, Leg::Agent, LegStatus::Busy, 1),
            update(2, Leg::Customer, LegStatus::Answered, 2),
        ],
    );
    assert_eq!(state.status, CallStatus::InProgress);
}

#[test]
fn watchdog_asks_the_carrier_then_ends_a_silent_call_with_carrier_timeout() {
    let policy = Policy::default();
    let (state, _) =
        run(new_call(false), [Event::DialStarted { at: t(0) }, update(1, Leg::Agent, LegStatus::Ringing, 1)]);
    let quiet = apply(&state, Event::Tick { at: t(60) }, &policy).unwrap();
    assert_eq!(quiet.next, state);
    assert!(quiet.effects.is_empty());

    let late = t(1) + policy.ring_timeout + Duration::seconds(1);
    let asked = apply(&state, Event::Tick { at: late }, &policy).unwrap();
    assert_eq!(asked.effects, vec![Effect::FetchStatus], "the carrier is asked first");
    assert_eq!(asked.next.status, CallStatus::Ringing);
    let again = apply(&asked.next, Event::Tick { at: late + Duration::seconds(1) }, &policy).unwrap();
    assert!(again.effects.is_empty(), "asked once");

    // The carrier cannot say: the call ends failed, carrier_timeout.
    let unknown =
        apply(&asked.next, Event::CarrierStatus { answer: StatusAnswer::Unknown, at: late }, &policy).unwrap();
    assert_eq!(unknown.next.outcome, Some(Outcome::Failed));
    assert_eq!(unknown.next.reason.as_deref(), Some("carrier_timeout"));
    // The carrier never answers: the same, once the check itself times out.
    let never = late + policy.status_check_timeout + Duration::seconds(1);
    let silent = apply(&asked.next, Event::Tick { at: never }, &policy).unwrap();
    assert_eq!(silent.next.reason.as_deref(), Some("carrier_timeout"));
    // The carrier knows how it ended: that is how it ends.
    let found = apply(&asked.next, Event::CarrierStatus { answer: found_completed(90), at: late }, &policy).unwrap();
    assert_eq!(found.next.outcome, Some(Outcome::Completed));
}

#[test]
fn a_call_the_carrier_never_received_ends_not_placed() {
    let (dialing, _) = run(new_call(true), [Event::DialStarted { at: t(0) }]);
    let (state, effects) = run(dialing.clone(), [Event::Resumed { at: t(5) }]);
    assert_eq!(effects, vec![Effect::FetchStatus], "a resumed live call is checked with the carrier");
    let (state, effects) = run(state, [Event::CarrierStatus { answer: StatusAnswer::NotFound, at: t(6) }]);
    assert_eq!(state.outcome, Some(Outcome::Failed));
    assert_eq!(state.reason.as_deref(), Some("not_placed"));
    assert!(!effects.contains(&Effect::PlaceCall), "never dialed twice");
    // Still unknown: the call waits, it is neither re-dialed nor failed.
    let (state, effects) = run(dialing, [Event::CarrierStatus { answer: StatusAnswer::Unknown, at: t(6) }]);
    assert_eq!(state.status, CallStatus::Dialing);
    assert!(effects.is_empty());
}

#[test]
fn resumed_post_call_stages_run_again() {
    let (ended, _) = run(new_call(true), [Event::DialStarted { at: t(0) }].into_iter().chain(completed_trace()));
    let (_, effects) = run(ended.clone(), [Event::Resumed { at: t(70) }]);
    assert_eq!(effects, vec![Effect::FetchRecording { url: "http://carrier/rec.wav".into() }]);
    let (stored, _) = run(ended, [Event::RecordingStored { at: t(62) }]);
    let (_, effects) = run(stored, [Event::Resumed { at: t(70) }]);
    assert_eq!(effects, vec![Effect::Transcribe]);
}

#[test]
fn watchdog_gives_up_on_a_recording_that_never_comes() {
    let policy = Policy::default();
    let mut trace = completed_trace();
    if let Some(Event::Carrier(u)) = trace.get_mut(4) {
        u.recording_url = None;
    }
    let (state, _) = run(new_call(true), [Event::DialStarted { at: t(0) }].into_iter().chain(trace));
    let late = t(61) + policy.recording_timeout + Duration::seconds(1);
    let transition = apply(&state, Event::Tick { at: late }, &policy).unwrap();
    assert_eq!(transition.next.recording, RecordingStatus::None);
    assert_eq!(transition.next.transcript, TranscriptStatus::Failed);
    assert!(transition.effects.contains(&Effect::Finish));
}

fn arb_leg_status() -> impl Strategy<Value = LegStatus> {
    prop_oneof![
        Just(LegStatus::Ringing),
        Just(LegStatus::Answered),
        Just(LegStatus::Completed),
        Just(LegStatus::Busy),
        Just(LegStatus::NoAnswer),
        Just(LegStatus::Failed),
        Just(LegStatus::Canceled),
    ]
}

fn arb_event() -> impl Strategy<Value = Event> {
    let carrier = (1u64..20, any::<bool>(), arb_leg_status(), 0i64..500)
        .prop_map(|(seq, agent, status, at)| update(seq, if agent { Leg::Agent } else { Leg::Customer }, status, at));
    prop_oneof![
        6 => carrier,
        1 => (0i64..500).prop_map(|at| Event::DialStarted { at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::PlaceFailed { reason: "x".into(), at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::RecordingAvailable { url: "u".into(), at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::RecordingStored { at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::RecordingFailed { reason: "x".into(), at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::TranscriptReady { at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::TranscriptFailed { error: "x".into(), at: t(at) }),
        1 => (0i64..100_000).prop_map(|at| Event::Tick { at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::EngineFailed { reason: "x".into(), at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::Resumed { at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::CarrierStatus { answer: StatusAnswer::NotFound, at: t(at) }),
        1 => (0i64..100_000).prop_map(|at| Event::CarrierStatus { answer: StatusAnswer::Unknown, at: t(at) }),
        1 => (0i64..500).prop_map(|at| Event::CarrierStatus { answer: found_completed(at), at: t(at) }),
    ]
}

proptest! {
    /// The watchdog visits a call only from its `next_deadline` on, so no tick before it may
    /// change anything; a tick just after it does, while the call is live.
    #[test]
    fn a_tick_before_the_next_deadline_changes_nothing(
        events in prop::collection::vec(arb_event(), 0..40),
        transcript in any::<bool>(),
        early_ms in 0i64..100_000_000,
    ) {
        let policy = Policy::default();
        let (state, _) = run(new_call(transcript), events);
        match next_deadline(&state, &policy) {
            Some(deadline) => {
                let at = deadline - chrono::Duration::milliseconds(early_ms);
                let transition = apply(&state, Event::Tick { at }, &policy).expect("a tick always applies");
                prop_assert!(transition.next == state && transition.effects.is_empty(), "a tick {early_ms} ms early changed the call");
                // While a status check is pending, its own timeout is what moves the call next.
                if state.carrier_check_since.is_none() {
                    let late = apply(&state, Event::Tick { at: deadline + chrono::Duration::milliseconds(1) }, &policy).unwrap();
                    prop_assert!(late.next != state || !late.effects.is_empty(), "the deadline passed and nothing happened");
                }
            }
            None => {
                for at in [t(0), t(1_000_000), t(100_000_000)] {
                    let transition = apply(&state, Event::Tick { at }, &policy).expect("a tick always applies");
                    prop_assert!(transition.next == state && transition.effects.is_empty(), "a call without a deadline changed on a tick");
                }
            }
        }
    }

    #[test]
    fn any_event_sequence_keeps_the_invariants(events in prop::collection::vec(arb_event(), 0..40), transcript in any::<bool>()) {
        let policy = Policy::default();
        let mut state = new_call(transcript);
        let mut ended_events = 0;
        let mut transcript_events = 0;
        let mut finishes = 0;
        let mut live = 0i32;
        for event in events {
            let before = state.clone();
            let Ok(transition) = apply(&state, event, &policy) else { continue };
            let after = &transition.next;
            prop_assert!(after.status >= before.status, "status moved backwards");
            if before.is_ended() {
                prop_assert_eq!(after.outcome, before.outcome);
            }
            prop_assert!(after.agent_leg.status.rank() >= before.agent_leg.status.rank());
            prop_assert!(after.customer_leg.status.rank() >= before.customer_leg.status.rank());
            for effect in &transition.effects {
                match effect {
                    Effect::Publish(Lifecycle::Ended { .. }) => ended_events += 1,
                    Effect::Publish(Lifecycle::TranscriptReady | Lifecycle::TranscriptFailed { .. } | Lifecycle::TranscriptDisabled) => transcript_events += 1,
                    Effect::Finish => finishes += 1,
                    Effect::CountLive => live += 1,
                    Effect::UncountLive => live -= 1,
                    _ => {}
                }
            }
            state = transition.next;
        }
        prop_assert!(ended_events <= 1);
        prop_assert_eq!(ended_events == 1, state.is_ended());
        prop_assert!(transcript_events <= 1);
        prop_assert!(finishes <= 1);
        prop_assert_eq!(finishes == 1, state.is_finished());
        prop_assert!(live <= 1, "counted live twice");
    }

    #[test]
    fn reordered_and_repeated_callbacks_end_where_the_carrier_ended(
        order in Just((0..6usize).collect::<Vec<_>>()).prop_shuffle(),
        repeats in prop::collection::vec(0..6usize, 0..6),
        script in 0..3usize,
    ) {
        let trace = match script {
            0 => completed_trace(),
            1 => vec![
                update(1, Leg::Agent, LegStatus::Ringing, 1),
                update(2, Leg::Agent, LegStatus::Answered, 2),
                update(3, Leg::Customer, LegStatus::Ringing, 3),
                update(4, Leg::Customer, LegStatus::Busy, 4),
                update(5, Leg::Agent, LegStatus::Completed, 5),
                update(5, Leg::Agent, LegStatus::Completed, 5),
            ],
            _ => vec![
                update(1, Leg::Agent, LegStatus::Ringing, 1),
                update(2, Leg::Agent, LegStatus::NoAnswer, 30),
                update(1, Leg::Agent, LegStatus::Ringing, 1),
                update(2, Leg::Agent, LegStatus::NoAnswer, 30),
                update(1, Leg::Agent, LegStatus::Ringing, 1),
                update(2, Leg::Agent, LegStatus::NoAnswer, 30),
            ],
        };
        let start = [Event::DialStarted { at: t(0) }];
        let (in_order, _) = run(new_call(false), start.clone().into_iter().chain(trace.clone()));
        let shuffled = order.iter().chain(repeats.iter()).map(|&i| trace[i].clone());
        let (reordered, effects) = run(new_call(false), start.into_iter().chain(shuffled));
        prop_assert_eq!(reordered.outcome, in_order.outcome);
        prop_assert_eq!(reordered.status, CallStatus::Ended);
        let ends = effects.iter().filter(|e| matches!(e, Effect::Publish(Lifecycle::Ended { .. }))).count();
        prop_assert_eq!(ends, 1);
    }
}
