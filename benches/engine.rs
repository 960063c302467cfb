//! Engine micro-benchmarks: the pure call state machine over a whole click-to-call, Standard
//! Webhooks signing of a callback, and building a seed 000 callback body. Results and the machine
//! they ran on are recorded in BENCHMARKS.md.

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dialplane::signing::{RecordingUrlSigner, standard_webhook_signature};
use dialplane::store::calls;
use dialplane_actors::fsm::{self, CallState, CarrierUpdate, Event, Leg, LegStatus, Lifecycle, Outcome, Policy};
use dialplane_actors::{CallRecord, CallType};

/// The events of a completed click-to-call with a transcript, as the sandbox produces them.
fn completed_call_events() -> Vec<Event> {
    let t0 = Utc::now();
    let at = |s: i64| t0 + Duration::seconds(s);
    let carrier = |sequence, leg, status, s, recording: bool| {
        Event::Carrier(CarrierUpdate {
            sequence,
            leg,
            status,
            at: at(s),
            duration_s: recording.then_some(53),
            answer_duration_s: recording.then_some(48),
            recording_url: recording.then(|| "http://127.0.0.1/sandbox/v1/recordings/SB1.wav".to_string()),
        })
    };
    vec![
        Event::DialStarted { at: at(0) },
        Event::Placed { provider_call_id: "SB1".into(), at: at(0) },
        carrier(1, Leg::Agent, LegStatus::Ringing, 1, false),
        carrier(2, Leg::Agent, LegStatus::Answered, 5, false),
        carrier(3, Leg::Customer, LegStatus::Ringing, 7, false),
        carrier(4, Leg::Customer, LegStatus::Answered, 10, false),
        Event::Tick { at: at(30) },
        carrier(5, Leg::Customer, LegStatus::Completed, 58, true),
        Event::RecordingStored { at: at(59) },
        Event::TranscriptReady { at: at(61) },
    ]
}

fn record() -> CallRecord {
    CallRecord {
        id: "call_ab12cd34ef56gh78".into(),
        workspace_id: "ws_1".into(),
        user_id: "usr_1".into(),
        call_type: CallType::ClickToCall,
        customer_number: "919999999999".into(),
        agent_number: "918888888888".into(),
        did: Some("919484956750".into()),
        carrier: "sandbox".into(),
        transcript_enabled: true,
        transcript_language: Some("hi".into()),
        agent_config: serde_json::json!({}),
    }
}

fn state_machine(c: &mut Criterion) {
    let events = completed_call_events();
    let policy = Policy::default();
    let start = CallState::new(CallType::ClickToCall, true, Utc::now());
    let mut group = c.benchmark_group("fsm");
    group.throughput(Throughput::Elements(1));
    group.bench_function("completed_click_to_call", |b| {
        b.iter(|| {
            let mut state = start.clone();
            for event in &events {
                state = fsm::apply(&state, black_box(event.clone()), &policy).expect("event applies").next;
            }
            assert!(state.is_finished());
            state
        })
    });
    group.finish();
}

fn callbacks(c: &mut Criterion) {
    let signer = RecordingUrlSigner::new(b"recording-key".to_vec(), "http://127.0.0.1:8080");
    let mut state = CallState::new(CallType::ClickToCall, true, Utc::now());
    for event in completed_call_events().into_iter().take(8) {
        state = fsm::apply(&state, event, &Policy::default()).unwrap().next;
    }
    let row = calls::new_row(&record(), Some("https://example.com/hook".into()), &state);
    let ended = Lifecycle::Ended { outcome: Outcome::Completed, reason: None };
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let mut group = c.benchmark_group("callback");
    group.throughput(Throughput::Elements(1));
    group.bench_function("build_call_completed_body", |b| {
        b.iter(|| {
            dialplane::call_view::callback_body(black_box(&ended), &row, None, &signer, Utc::now()).unwrap().to_string()
        })
    });
    let body = dialplane::call_view::callback_body(&ended, &row, None, &signer, Utc::now()).unwrap().to_string();
    group.bench_function("standard_webhooks_sign", |b| {
        b.iter(|| {
            standard_webhook_signature(
                secret,
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                black_box(body.as_bytes()),
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, state_machine, callbacks);
criterion_main!(benches);
