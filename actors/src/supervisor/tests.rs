//! Supervision under failure: a call actor that panics fails only its own call, which still gets
//! exactly one terminal event; the supervisor and the other calls carry on.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;

use super::*;
use crate::CallType;
use crate::call::fsm::{CallStatus, CarrierUpdate, Leg, LegStatus, Outcome, Policy, StatusAnswer, TranscriptStatus};
use crate::ports::*;

/// Places every call; serves `recording` as every call's recording, or refuses without one.
#[derive(Default)]
struct FakeCarrier {
    recording: Option<&'static [u8]>,
}

#[async_trait]
impl Carrier for FakeCarrier {
    fn name(&self) -> &'static str {
        "fake"
    }
    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError> {
        Ok(PlacedCall { provider_call_id: format!("P-{}", call.id) })
    }
    async fn fetch_recording(&self, _call: &CallRecord, _url: &str) -> Result<Recording, CarrierError> {
        match self.recording {
            Some(bytes) => Ok(Recording { content_type: "audio/wav".into(), bytes: bytes.to_vec() }),
            None => Err(CarrierError::Rejected("no recordings here".into())),
        }
    }
    async fn fetch_status(&self, _call: &CallRecord, _id: Option<&str>) -> Result<StatusAnswer, CarrierError> {
        Ok(StatusAnswer::Unknown)
    }
}

/// A call as the fake store keeps it: its record, last state and every event it published.
type StoredCall = (CallRecord, CallState, Vec<Lifecycle>);

/// Keeps the last state and every published event per call; panics on one call's first ringing.
#[derive(Default)]
struct FakeStore {
    calls: Mutex<HashMap<String, StoredCall>>,
    /// Every commit, in order: the call id and the state committed.
    commits: Mutex<Vec<(String, CallState)>>,
}

#[async_trait]
impl CallStore for FakeStore {
    async fn commit(&self, call: &CallRecord, state: &CallState, published: &[Lifecycle]) -> Result<(), StoreError> {
        if call.id == "call_panics" && state.status == CallStatus::Ringing {
            panic!("a bug in the store adapter");
        }
        self.commits.lock().unwrap().push((call.id.clone(), state.clone()));
        let mut calls = self.calls.lock().unwrap();
        let entry = calls.entry(call.id.clone()).or_insert_with(|| (call.clone(), state.clone(), Vec::new()));
        entry.1 = state.clone();
        entry.2.extend_from_slice(published);
        Ok(())
    }
    async fn load_state(&self, call_id: &str) -> Result<Option<(CallRecord, CallState)>, StoreError> {
        Ok(self.calls.lock().unwrap().get(call_id).map(|(r, s, _)| (r.clone(), s.clone())))
    }
    async fn save_recording(&self, _call: &CallRecord, _recording: &Recording) -> Result<(), StoreError> {
        Ok(())
    }
    async fn load_recording(&self, _call_id: &str) -> Result<Option<Recording>, StoreError> {
        Ok(None)
    }
    async fn save_transcript(&self, _call: &CallRecord, _transcript: &Transcript) -> Result<(), StoreError> {
        Ok(())
    }
}

#[derive(Default)]
struct FakeCounters {
    live: Mutex<HashSet<String>>,
}

#[async_trait]
impl LiveCounters for FakeCounters {
    async fn call_started(&self, call: &CallRecord) -> Result<(), CounterError> {
        self.live.lock().unwrap().insert(call.id.clone());
        Ok(())
    }
    async fn call_ended(&self, call: &CallRecord) -> Result<(), CounterError> {
        self.live.lock().unwrap().remove(&call.id);
        Ok(())
    }
    async fn live_calls(&self, _scope: &str) -> Result<u64, CounterError> {
        Ok(self.live.lock().unwrap().len() as u64)
    }
    async fn counted(&self) -> Result<CountedCalls, CounterError> {
        Ok(CountedCalls::from([("all".to_string(), self.live.lock().unwrap().clone())]))
    }
    async fn reconcile(&self, before: &CountedCalls, live: &[CallRecord]) -> Result<(), CounterError> {
        let mut counted = self.live.lock().unwrap();
        for ended in before.values().flatten().filter(|id| !live.iter().any(|c| &c.id == *id)) {
            counted.remove(ended);
        }
        counted.extend(live.iter().map(|c| c.id.clone()));
        Ok(())
    }
}

struct NoTranscriber;

#[async_trait]
impl Transcriber for NoTranscriber {
    async fn transcribe(&self, _call: &CallRecord, _recording: &Recording) -> Result<Transcript, TranscriptionError> {
        Err(TranscriptionError { message: "none".into(), retryable: false })
    }
}

fn record(id: &str) -> CallRecord {
    CallRecord {
        id: id.into(),
        workspace_id: "ws".into(),
        user_id: "usr".into(),
        call_type: CallType::ClickToCall,
        customer_number: "919999999999".into(),
        agent_number: "918888888888".into(),
        did: None,
        carrier: "fake".into(),
        transcript_enabled: false,
        transcript_language: None,
        agent_config: serde_json::json!({}),
    }
}

/// Call dependencies on the fakes above, with a fast watchdog and one attempt per stage.
fn deps(store: &Arc<FakeStore>, counters: &Arc<FakeCounters>, registry: &Arc<CallRegistry>) -> Arc<CallDeps> {
    Arc::new(CallDeps {
        carrier: Arc::new(FakeCarrier::default()),
        store: store.clone(),
        counters: counters.clone(),
        transcriber: Arc::new(NoTranscriber),
        clock: Arc::new(SystemClock),
        registry: registry.clone(),
        policy: Policy::default(),
        watchdog_interval: Duration::from_millis(50),
        stage_attempts: 1,
    })
}

fn carrier_update(sequence: u64, leg: Leg, status: LegStatus) -> Event {
    Event::Carrier(CarrierUpdate {
        sequence,
        leg,
        status,
        at: Utc::now(),
        duration_s: None,
        answer_duration_s: None,
        recording_url: None,
    })
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_call_fails_alone_with_one_terminal_event() {
    let store = Arc::new(FakeStore::default());
    let counters = Arc::new(FakeCounters::default());
    let registry = Arc::new(CallRegistry::default());
    let (root, handle) = RootSupervisor::start(deps(&store, &counters, &registry)).await.unwrap();
    let at = Utc::now();
    for id in ["call_panics", "call_survives"] {
        assert!(handle.start_call(record(id), CallState::new(CallType::ClickToCall, false, at)));
    }
    let status = |id: &str| store.calls.lock().unwrap().get(id).map(|(_, s, _)| s.clone());
    eventually("both calls dialing", || {
        ["call_panics", "call_survives"].iter().all(|id| status(id).is_some_and(|s| s.provider_call_id.is_some()))
    })
    .await;
    // A live call's owner is known without the store; a call with no actor is not.
    let owner = LiveOwner { workspace_id: "ws".into(), carrier: "fake".into() };
    assert_eq!(registry.owner("call_survives"), Some(owner));
    assert_eq!(registry.owner("call_never_started"), None);

    for id in ["call_panics", "call_survives"] {
        assert!(registry.deliver(id, carrier_update(1, Leg::Agent, LegStatus::Ringing)));
    }
    eventually("the panicking call to end", || status("call_panics").is_some_and(|s| s.is_ended())).await;
    let failed = status("call_panics").unwrap();
    assert_eq!(failed.outcome, Some(Outcome::Failed));
    assert_eq!(failed.reason.as_deref(), Some("engine_error"));
    let ended_events =
        |id: &str| store.calls.lock().unwrap()[id].2.iter().filter(|l| matches!(l, Lifecycle::Ended { .. })).count();
    assert_eq!(ended_events("call_panics"), 1);
    eventually("the dead actor to leave the registry", || registry.get("call_panics").is_none()).await;
    assert_eq!(registry.owner("call_panics"), None);

    // The supervisor and the other call carry on.
    for (sequence, leg, leg_status) in [
        (2, Leg::Agent, LegStatus::Answered),
        (3, Leg::Customer, LegStatus::Ringing),
        (4, Leg::Customer, LegStatus::Answered),
        (5, Leg::Customer, LegStatus::Completed),
    ] {
        assert!(registry.deliver("call_survives", carrier_update(sequence, leg, leg_status)));
    }
    eventually("the other call to complete", || status("call_survives").is_some_and(|s| s.is_ended())).await;
    assert_eq!(status("call_survives").unwrap().outcome, Some(Outcome::Completed));
    assert_eq!(ended_events("call_survives"), 1);
    assert!(handle.start_call(record("call_after"), CallState::new(CallType::ClickToCall, false, Utc::now())));
    eventually("a new call to start", || status("call_after").is_some()).await;
    eventually("live counters to forget ended calls", || {
        let live = counters.live.lock().unwrap();
        !live.contains("call_panics") && !live.contains("call_survives")
    })
    .await;
    RootSupervisor::shutdown(root, &handle).await;
}

/// A call stored already dialing (its row and first transition one write) starts by running that
/// transition's effects: it is counted live and placed, and the actor commits no `dialing` of its
/// own; the first thing it commits is the carrier's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_created_dialing_is_placed_without_committing_dialing_again() {
    let store = Arc::new(FakeStore::default());
    let counters = Arc::new(FakeCounters::default());
    let registry = Arc::new(CallRegistry::default());
    let (root, handle) = RootSupervisor::start(deps(&store, &counters, &registry)).await.unwrap();
    let created = fsm::create(CallType::ClickToCall, false, Utc::now(), &Policy::default());
    assert!(handle.start_call_with(record("call_created"), created.next, created.effects));
    eventually("the call to be placed", || !store.commits.lock().unwrap().is_empty()).await;
    let commits = store.commits.lock().unwrap().clone();
    let (id, first) = &commits[0];
    assert_eq!(id, "call_created");
    assert_eq!(first.status, CallStatus::Dialing);
    assert_eq!(first.provider_call_id.as_deref(), Some("P-call_created"));
    assert!(counters.live.lock().unwrap().contains("call_created"));
    RootSupervisor::shutdown(root, &handle).await;
}

/// Transcribes the recording `tape`, and nothing else.
struct TapeTranscriber;

#[async_trait]
impl Transcriber for TapeTranscriber {
    async fn transcribe(&self, _call: &CallRecord, recording: &Recording) -> Result<Transcript, TranscriptionError> {
        if recording.bytes != b"tape" {
            return Err(TranscriptionError { message: "not the tape".into(), retryable: false });
        }
        let outcomes = serde_json::Map::new();
        Ok(Transcript {
            language: "en".into(),
            history: Vec::new(),
            summary: "s".into(),
            call_outcome: "c".into(),
            outcomes,
        })
    }
}

/// The recording a call just stored goes to its transcription from the actor's hands: the fake
/// store never gives a recording back, and the call is still transcribed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_recording_is_transcribed_without_reading_it_back() {
    let store = Arc::new(FakeStore::default());
    let counters = Arc::new(FakeCounters::default());
    let registry = Arc::new(CallRegistry::default());
    let mut deps = Arc::into_inner(deps(&store, &counters, &registry)).unwrap();
    deps.carrier = Arc::new(FakeCarrier { recording: Some(b"tape") });
    deps.transcriber = Arc::new(TapeTranscriber);
    let (root, handle) = RootSupervisor::start(Arc::new(deps)).await.unwrap();
    let call = CallRecord { transcript_enabled: true, ..record("call_recorded") };
    assert!(handle.start_call(call, CallState::new(CallType::ClickToCall, true, Utc::now())));
    let status = |id: &str| store.calls.lock().unwrap().get(id).map(|(_, s, _)| s.clone());
    eventually("the call to be placed", || status("call_recorded").is_some_and(|s| s.provider_call_id.is_some())).await;
    for (sequence, leg, leg_status) in [
        (1, Leg::Agent, LegStatus::Ringing),
        (2, Leg::Agent, LegStatus::Answered),
        (3, Leg::Customer, LegStatus::Ringing),
        (4, Leg::Customer, LegStatus::Answered),
    ] {
        assert!(registry.deliver("call_recorded", carrier_update(sequence, leg, leg_status)));
    }
    let Event::Carrier(mut completed) = carrier_update(5, Leg::Customer, LegStatus::Completed) else { unreachable!() };
    completed.recording_url = Some("https://carrier.example/recording.wav".into());
    assert!(registry.deliver("call_recorded", Event::Carrier(completed)));
    eventually("the transcript to settle", || {
        status("call_recorded")
            .is_some_and(|s| matches!(s.transcript, TranscriptStatus::Ready | TranscriptStatus::Failed))
    })
    .await;
    let published = store.calls.lock().unwrap()["call_recorded"].2.clone();
    assert!(published.contains(&Lifecycle::TranscriptReady), "published {published:?}");
    RootSupervisor::shutdown(root, &handle).await;
}

/// The registry's table follows its calls down: with 10 of 10,000 calls left it has given back
/// all but a few dozen slots, and still finds the calls it holds.
#[test]
fn the_registry_table_shrinks_as_calls_end() {
    let mut calls: HashMap<String, u64> = (0..10_000).map(|i| (format!("call_{i}"), i)).collect();
    let busiest = calls.capacity();
    for i in 10..10_000 {
        assert_eq!(remove_and_shrink(&mut calls, &format!("call_{i}")), Some(i));
    }
    assert!(calls.capacity() <= 64, "{} slots of {busiest} are kept for 10 calls", calls.capacity());
    assert!((0..10).all(|i| calls[&format!("call_{i}")] == i));
}
