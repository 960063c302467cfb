//! The CallActor: owns one live call. It applies events with the pure [`fsm::apply`], commits the
//! result through the [`CallStore`] port, then runs the effects (carrier request, recording fetch,
//! transcription, live counters). It never returns `Err` from a handler: expected failures are
//! turned into events, so the call still ends truthfully.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tracing::{debug, error, warn};

use super::CallRecord;
use super::fsm::{self, CallState, Effect, Event, Lifecycle, Policy, StatusAnswer};
use crate::ports::{CallStore, Carrier, Clock, LiveCounters, Recording, Transcriber};
use crate::supervisor::{CallRegistry, FINISHED, WatchdogDue};

/// Everything a call actor needs from the outside world, shared by all calls.
pub struct CallDeps {
    pub carrier: Arc<dyn Carrier>,
    pub store: Arc<dyn CallStore>,
    pub counters: Arc<dyn LiveCounters>,
    pub transcriber: Arc<dyn Transcriber>,
    pub clock: Arc<dyn Clock>,
    /// Where live call actors are found by call id (carrier callbacks are routed through it).
    pub registry: Arc<CallRegistry>,
    pub policy: Policy,
    /// How often the watchdog looks at each call.
    pub watchdog_interval: Duration,
    /// Attempts for recording fetch and transcription before giving up.
    pub stage_attempts: u32,
}

/// What a call actor is started with.
pub struct CallActorArgs {
    pub record: CallRecord,
    pub state: CallState,
    /// Effects of the transition `state` was committed by that are still to run (a call created
    /// already dialing starts by placing itself); empty for a call resumed from the store.
    pub effects: Vec<Effect>,
    pub deps: Arc<CallDeps>,
}

/// Messages a call actor handles.
pub enum CallMessage {
    /// Apply an event (a carrier callback, a finished stage, a watchdog tick).
    Apply(Event),
    /// Apply `RecordingStored` of a call to be transcribed, keeping the recording it stored for
    /// the transcription that follows, so it is not read back from the store.
    RecordingStored(Event, Box<Recording>),
    /// Reply with the current state.
    Snapshot(RpcReplyPort<CallState>),
}

/// The actor's state: the call and its dependencies.
pub struct CallActorState {
    record: CallRecord,
    state: CallState,
    deps: Arc<CallDeps>,
    /// When the watchdog next needs to look at the call.
    watchdog: Arc<WatchdogDue>,
    /// Effects committed with the call that `post_start` runs (taken, so empty afterwards).
    first_effects: Vec<Effect>,
    /// The recording just stored, kept (boxed: most calls never have one here) only when the
    /// call is to be transcribed, until transcription takes it. A call resumed from the store
    /// has none, and transcription reads the recording back.
    stored_recording: Option<Box<Recording>>,
}

/// Drives one call from `queued` to finished.
pub struct CallActor;

impl Actor for CallActor {
    type Msg = CallMessage;
    type State = CallActorState;
    type Arguments = CallActorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CallMessage>,
        args: CallActorArgs,
    ) -> Result<CallActorState, ActorProcessingErr> {
        // The CallSupervisor's one ticker reaches the call through the registry (no timer per
        // call), once the call's next deadline has come.
        let watchdog = args.deps.registry.insert(&args.record, myself.clone());
        watchdog.set(fsm::next_deadline(&args.state, &args.deps.policy));
        Ok(CallActorState {
            record: args.record,
            state: args.state,
            deps: args.deps,
            watchdog,
            first_effects: args.effects,
            stored_recording: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<CallMessage>,
        s: &mut CallActorState,
    ) -> Result<(), ActorProcessingErr> {
        let at = s.deps.clock.now();
        let first_effects = std::mem::take(&mut s.first_effects);
        if !first_effects.is_empty() {
            for effect in first_effects {
                Box::pin(run_effect(&myself, s, effect)).await;
            }
        } else if s.state.status == fsm::CallStatus::Queued {
            Box::pin(apply_and_run(&myself, s, Event::DialStarted { at })).await;
        } else if s.state.is_finished() {
            myself.stop(Some(FINISHED.into()));
        } else {
            Box::pin(apply_and_run(&myself, s, Event::Resumed { at })).await;
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<CallMessage>,
        s: &mut CallActorState,
    ) -> Result<(), ActorProcessingErr> {
        s.deps.registry.remove(&s.record.id);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<CallMessage>,
        message: CallMessage,
        s: &mut CallActorState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            // Boxed: the actor's task is sized for its largest future, and most live calls sit
            // idle, so a transition's future is allocated only while it runs.
            CallMessage::Apply(event) => Box::pin(apply_and_run(&myself, s, event)).await,
            CallMessage::RecordingStored(event, recording) => {
                s.stored_recording = Some(recording);
                Box::pin(apply_and_run(&myself, s, event)).await;
                // Transcription took it if it started; a recording it did not take is let go.
                s.stored_recording = None;
            }
            CallMessage::Snapshot(reply) => {
                let _ = reply.send(s.state.clone());
            }
        }
        Ok(())
    }
}

/// Applies an event, commits the transition, then runs its effects.
async fn apply_and_run(myself: &ActorRef<CallMessage>, s: &mut CallActorState, event: Event) {
    let transition = match fsm::apply(&s.state, event, &s.deps.policy) {
        Ok(transition) => transition,
        Err(why) => {
            debug!(call.id = %s.record.id, reason = %why, "event ignored");
            return;
        }
    };
    if transition.next == s.state && transition.effects.is_empty() {
        return;
    }
    let published: Vec<Lifecycle> = transition.published().cloned().collect();
    if !commit_with_retry(s, &transition.next, &published).await {
        error!(call.id = %s.record.id, "call state could not be committed; stopping the call actor");
        myself.stop(Some("store unavailable".into()));
        return;
    }
    s.state = transition.next;
    s.watchdog.set(fsm::next_deadline(&s.state, &s.deps.policy));
    for effect in transition.effects {
        run_effect(myself, s, effect).await;
    }
}

async fn commit_with_retry(s: &CallActorState, next: &CallState, published: &[Lifecycle]) -> bool {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=8 {
        match s.deps.store.commit(&s.record, next, published).await {
            Ok(()) => return true,
            Err(e) => {
                warn!(call.id = %s.record.id, attempt, error = %e, "commit failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
    false
}

async fn run_effect(myself: &ActorRef<CallMessage>, s: &mut CallActorState, effect: Effect) {
    let deps = s.deps.clone();
    let record = s.record.clone();
    match effect {
        Effect::PlaceCall => {
            let myself = myself.clone();
            tokio::spawn(async move {
                let event = match deps.carrier.place_call(&record).await {
                    Ok(placed) => Event::Placed { provider_call_id: placed.provider_call_id, at: deps.clock.now() },
                    Err(e) => {
                        warn!(call.id = %record.id, error = %e, "carrier did not place the call");
                        Event::PlaceFailed { reason: e.reason_code().to_string(), at: deps.clock.now() }
                    }
                };
                let _ = myself.send_message(CallMessage::Apply(event));
            });
        }
        Effect::Publish(_) => {}
        Effect::CountLive => {
            if let Err(e) = deps.counters.call_started(&record).await {
                warn!(call.id = %record.id, error = %e, "could not count live call");
            }
        }
        Effect::UncountLive => {
            if let Err(e) = deps.counters.call_ended(&record).await {
                warn!(call.id = %record.id, error = %e, "could not uncount live call");
            }
        }
        Effect::FetchRecording { url } => {
            let myself = myself.clone();
            tokio::spawn(async move {
                // The recording goes back to the actor only for the transcription that follows.
                let message = match fetch_recording(&deps, &record, &url).await {
                    (event, Some(recording)) if record.transcript_enabled => {
                        CallMessage::RecordingStored(event, recording)
                    }
                    (event, _) => CallMessage::Apply(event),
                };
                let _ = myself.send_message(message);
            });
        }
        Effect::Transcribe => {
            let myself = myself.clone();
            let stored = s.stored_recording.take();
            tokio::spawn(async move {
                let event = transcribe(&deps, &record, stored).await;
                let _ = myself.send_message(CallMessage::Apply(event));
            });
        }
        Effect::FetchStatus => {
            let myself = myself.clone();
            let provider_call_id = s.state.provider_call_id.clone();
            tokio::spawn(async move {
                let answer = fetch_status(&deps, &record, provider_call_id.as_deref()).await;
                let _ = myself.send_message(CallMessage::Apply(Event::CarrierStatus { answer, at: deps.clock.now() }));
            });
        }
        Effect::Finish => myself.stop(Some(FINISHED.into())),
    }
}

/// Fetches the recording from the carrier and stores it, retrying what may pass; with
/// `RecordingStored` comes the recording stored.
async fn fetch_recording(deps: &CallDeps, record: &CallRecord, url: &str) -> (Event, Option<Box<Recording>>) {
    let mut last_error = String::new();
    for attempt in 0..deps.stage_attempts {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        match deps.carrier.fetch_recording(record, url).await {
            Ok(recording) => match deps.store.save_recording(record, &recording).await {
                Ok(()) => return (Event::RecordingStored { at: deps.clock.now() }, Some(Box::new(recording))),
                Err(e) => last_error = e.to_string(),
            },
            Err(e) if e.is_retryable() => last_error = e.to_string(),
            Err(e) => return (Event::RecordingFailed { reason: e.to_string(), at: deps.clock.now() }, None),
        }
    }
    (Event::RecordingFailed { reason: last_error, at: deps.clock.now() }, None)
}

/// Asks the carrier about the call, retrying while it is unreachable; `Unknown` when it stays so.
async fn fetch_status(deps: &CallDeps, record: &CallRecord, provider_call_id: Option<&str>) -> StatusAnswer {
    for attempt in 0..deps.stage_attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        match deps.carrier.fetch_status(record, provider_call_id).await {
            Ok(answer) => return answer,
            Err(e) if e.is_retryable() => {
                warn!(call.id = %record.id, attempt, error = %e, "carrier status unavailable")
            }
            Err(e) => {
                warn!(call.id = %record.id, error = %e, "carrier could not say how the call is");
                break;
            }
        }
    }
    StatusAnswer::Unknown
}

/// Transcribes the stored recording (`stored` when the actor still has it, else read back from
/// the store) and stores the transcript, retrying what may pass.
async fn transcribe(deps: &CallDeps, record: &CallRecord, stored: Option<Box<Recording>>) -> Event {
    let loaded = match stored {
        Some(recording) => Ok(Some(*recording)),
        None => deps.store.load_recording(&record.id).await,
    };
    let recording = match loaded {
        Ok(Some(recording)) => recording,
        Ok(None) => return Event::TranscriptFailed { error: "recording not found".into(), at: deps.clock.now() },
        Err(e) => return Event::TranscriptFailed { error: e.to_string(), at: deps.clock.now() },
    };
    let mut last_error = String::new();
    for attempt in 0..deps.stage_attempts {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        match deps.transcriber.transcribe(record, &recording).await {
            Ok(transcript) => match deps.store.save_transcript(record, &transcript).await {
                Ok(()) => return Event::TranscriptReady { at: deps.clock.now() },
                Err(e) => last_error = e.to_string(),
            },
            Err(e) if e.retryable => last_error = e.message,
            Err(e) => return Event::TranscriptFailed { error: e.message, at: deps.clock.now() },
        }
    }
    Event::TranscriptFailed { error: last_error, at: deps.clock.now() }
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(1 << attempt.min(8)))
}
