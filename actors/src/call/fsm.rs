//! The call state machine: a pure function from (state, event, policy) to the next state and the
//! effects the actor must run. No IO and no clock reads: time arrives inside events.
//!
//! Rules it enforces (see DESIGN §4):
//! - a leg only moves forward (`idle → ringing → answered → terminal`), so duplicate and reordered
//!   carrier callbacks never move a call backwards;
//! - the call status is derived from its legs and never moves backwards either;
//! - a call publishes exactly one `Ended` event, and each post-call stage settles exactly once;
//! - the actor is told to stop (`Effect::Finish`) once, when the call has ended and both post-call
//!   stages are settled.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::CallType;

/// A point in time as carried by events.
pub type Timestamp = DateTime<Utc>;

/// Where the call as a whole is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Queued,
    Dialing,
    Ringing,
    InProgress,
    Ended,
}

/// How an ended call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl Outcome {
    /// Returns the snake_case name used in the API and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
        }
    }
}

/// One side of a call as the carrier reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Leg {
    Agent,
    Customer,
}

/// What the carrier last said about one leg.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegStatus {
    #[default]
    Idle,
    Ringing,
    Answered,
    Completed,
    Busy,
    NoAnswer,
    Failed,
    Canceled,
}

impl LegStatus {
    /// Returns how far along a leg is; a leg only ever moves to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            LegStatus::Idle => 0,
            LegStatus::Ringing => 1,
            LegStatus::Answered => 2,
            _ => 3,
        }
    }

    /// Returns true for the statuses after which the leg is over.
    pub fn is_terminal(self) -> bool {
        self.rank() == 3
    }

    /// Returns the outcome a call takes when this leg ends it without having been answered.
    fn unanswered_outcome(self) -> Outcome {
        match self {
            LegStatus::Busy => Outcome::Busy,
            LegStatus::NoAnswer => Outcome::NoAnswer,
            LegStatus::Canceled => Outcome::Canceled,
            _ => Outcome::Failed,
        }
    }

    /// Returns the snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LegStatus::Idle => "idle",
            LegStatus::Ringing => "ringing",
            LegStatus::Answered => "answered",
            LegStatus::Completed => "completed",
            LegStatus::Busy => "busy",
            LegStatus::NoAnswer => "no_answer",
            LegStatus::Failed => "failed",
            LegStatus::Canceled => "canceled",
        }
    }
}

/// Status and timings of one leg.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LegState {
    pub status: LegStatus,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
}

/// The recording post-call stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    Pending,
    Ready,
    None,
    Failed,
}

impl RecordingStatus {
    /// Returns the snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingStatus::Pending => "pending",
            RecordingStatus::Ready => "ready",
            RecordingStatus::None => "none",
            RecordingStatus::Failed => "failed",
        }
    }
}

/// The transcript post-call stage, in seed 000's `transcript_status` vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TranscriptStatus {
    Disabled,
    Pending,
    Processing,
    Ready,
    Failed,
}

impl TranscriptStatus {
    /// Returns the snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            TranscriptStatus::Disabled => "disabled",
            TranscriptStatus::Pending => "pending",
            TranscriptStatus::Processing => "processing",
            TranscriptStatus::Ready => "ready",
            TranscriptStatus::Failed => "failed",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disabled" => TranscriptStatus::Disabled,
            "pending" => TranscriptStatus::Pending,
            "processing" => TranscriptStatus::Processing,
            "ready" => TranscriptStatus::Ready,
            "failed" => TranscriptStatus::Failed,
            _ => return None,
        })
    }

    fn is_settled(self) -> bool {
        matches!(self, TranscriptStatus::Disabled | TranscriptStatus::Ready | TranscriptStatus::Failed)
    }
}

/// Everything that changes during a call's life. Persisted as JSON beside the call row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallState {
    pub call_type: CallType,
    pub status: CallStatus,
    pub outcome: Option<Outcome>,
    /// Why the call ended the way it did (`customer_busy`, `carrier_timeout`, …).
    pub reason: Option<String>,
    pub agent_leg: LegState,
    pub customer_leg: LegState,
    pub provider_call_id: Option<String>,
    /// Highest carrier sequence number seen (for the event log and reconciliation).
    pub highest_sequence: u64,
    pub created_at: Timestamp,
    /// Last time anything was heard about the call; the watchdog measures silence from here.
    pub last_activity_at: Timestamp,
    /// When the customer answered (the legs were bridged).
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Whole call duration in seconds, as the carrier reported it.
    pub duration_s: Option<u32>,
    /// Time the customer was connected, in seconds.
    pub answer_duration_s: Option<u32>,
    pub recording: RecordingStatus,
    /// Where the carrier serves the recording (fetched once, then stored by Dialplane).
    pub recording_source_url: Option<String>,
    pub transcript: TranscriptStatus,
    /// The provider's error text when the transcript failed.
    pub transcript_error: Option<String>,
    /// When the engine asked the carrier for the call's status and has no answer yet.
    #[serde(default)]
    pub carrier_check_since: Option<Timestamp>,
}

impl CallState {
    /// Returns the state of a call that has just been committed and not yet dialed.
    pub fn new(call_type: CallType, transcript_enabled: bool, at: Timestamp) -> Self {
        CallState {
            call_type,
            status: CallStatus::Queued,
            outcome: None,
            reason: None,
            agent_leg: LegState::default(),
            customer_leg: LegState::default(),
            provider_call_id: None,
            highest_sequence: 0,
            created_at: at,
            last_activity_at: at,
            answered_at: None,
            ended_at: None,
            duration_s: None,
            answer_duration_s: None,
            recording: RecordingStatus::Pending,
            recording_source_url: None,
            transcript: if transcript_enabled { TranscriptStatus::Pending } else { TranscriptStatus::Disabled },
            transcript_error: None,
            carrier_check_since: None,
        }
    }

    /// Returns the status name shown by the API: the outcome once ended, else the live status.
    pub fn api_status(&self) -> &'static str {
        match (self.status, self.outcome) {
            (CallStatus::Ended, Some(outcome)) => outcome.as_str(),
            (CallStatus::Ended, None) => "failed",
            (CallStatus::Queued, _) => "queued",
            (CallStatus::Dialing, _) => "dialing",
            (CallStatus::Ringing, _) => "ringing",
            (CallStatus::InProgress, _) => "in_progress",
        }
    }

    /// Returns true once the call has ended.
    pub fn is_ended(&self) -> bool {
        self.status == CallStatus::Ended
    }

    /// Returns true once the call has ended and both post-call stages are settled.
    pub fn is_finished(&self) -> bool {
        self.is_ended() && self.recording != RecordingStatus::Pending && self.transcript.is_settled()
    }

    fn leg_mut(&mut self, leg: Leg) -> &mut LegState {
        match leg {
            Leg::Agent => &mut self.agent_leg,
            Leg::Customer => &mut self.customer_leg,
        }
    }
}

/// A status report from the carrier about one leg.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarrierUpdate {
    /// The carrier's own ordering of its callbacks for this call (Twilio's `SequenceNumber`).
    pub sequence: u64,
    pub leg: Leg,
    pub status: LegStatus,
    pub at: Timestamp,
    pub duration_s: Option<u32>,
    pub answer_duration_s: Option<u32>,
    /// Some carriers put the recording's URL in the final status callback.
    pub recording_url: Option<String>,
}

/// Something that happened to a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The actor is about to send the call to the carrier.
    DialStarted {
        at: Timestamp,
    },
    /// The carrier accepted the call.
    Placed {
        provider_call_id: String,
        at: Timestamp,
    },
    /// The carrier refused the call.
    PlaceFailed {
        reason: String,
        at: Timestamp,
    },
    /// A carrier status callback.
    Carrier(CarrierUpdate),
    /// The carrier says where the recording is (a recording callback).
    RecordingAvailable {
        url: String,
        at: Timestamp,
    },
    /// Dialplane fetched and stored the recording.
    RecordingStored {
        at: Timestamp,
    },
    RecordingFailed {
        reason: String,
        at: Timestamp,
    },
    TranscriptReady {
        at: Timestamp,
    },
    TranscriptFailed {
        error: String,
        at: Timestamp,
    },
    /// The carrier accepted a transfer of the customer to another number (`to`, masked).
    Transferred {
        to: String,
        at: Timestamp,
    },
    /// The watchdog's periodic look at a call.
    Tick {
        at: Timestamp,
    },
    /// The engine lost the call's actor; the call must still end truthfully.
    EngineFailed {
        reason: String,
        at: Timestamp,
    },
    /// The call's actor was started again after a restart; work that was under way resumes.
    Resumed {
        at: Timestamp,
    },
    /// The carrier's answer to a status request.
    CarrierStatus {
        answer: StatusAnswer,
        at: Timestamp,
    },
}

/// What the carrier said when asked about a call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StatusAnswer {
    /// The carrier has no record of the call: it was never placed.
    NotFound,
    /// The carrier could not be asked (unreachable, or it does not say).
    Unknown,
    /// The carrier knows the call: its id and every status report it has, in any order.
    Found { provider_call_id: Option<String>, updates: Vec<CarrierUpdate> },
}

impl Event {
    /// Returns the time the event happened.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::DialStarted { at }
            | Event::Placed { at, .. }
            | Event::PlaceFailed { at, .. }
            | Event::RecordingAvailable { at, .. }
            | Event::RecordingStored { at }
            | Event::RecordingFailed { at, .. }
            | Event::TranscriptReady { at }
            | Event::TranscriptFailed { at, .. }
            | Event::Tick { at }
            | Event::Transferred { at, .. }
            | Event::EngineFailed { at, .. }
            | Event::Resumed { at }
            | Event::CarrierStatus { at, .. } => *at,
            Event::Carrier(update) => update.at,
        }
    }
}

/// A lifecycle event the call publishes (to the event log, callbacks and webhooks).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Lifecycle {
    Ringing,
    Answered,
    /// The customer was moved to another number (masked).
    Transferred {
        to: String,
    },
    Ended {
        outcome: Outcome,
        reason: Option<String>,
    },
    RecordingReady,
    TranscriptReady,
    TranscriptFailed {
        error: String,
    },
    TranscriptDisabled,
}

/// Work the actor must do after the transition is committed.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send the call to the carrier.
    PlaceCall,
    /// Publish a lifecycle event (it is committed with the transition).
    Publish(Lifecycle),
    /// The call became live: count it.
    CountLive,
    /// The call ended: stop counting it.
    UncountLive,
    /// Fetch the recording from the carrier and store it.
    FetchRecording { url: String },
    /// Transcribe and analyse the stored recording.
    Transcribe,
    /// Ask the carrier for the call's status (its answer comes back as `Event::CarrierStatus`).
    FetchStatus,
    /// Nothing is left to do for this call: the actor may stop.
    Finish,
}

/// Limits the watchdog enforces.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Silence allowed while queued or dialing before the call is given up.
    pub dial_timeout: Duration,
    /// Silence allowed while ringing.
    pub ring_timeout: Duration,
    /// Longest a bridged call may last without an end report.
    pub max_call_duration: Duration,
    /// How long to wait after the end for the recording.
    pub recording_timeout: Duration,
    /// How long to wait for the carrier's answer to a status request before giving up on the call.
    pub status_check_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            dial_timeout: Duration::seconds(120),
            ring_timeout: Duration::seconds(180),
            max_call_duration: Duration::hours(4),
            recording_timeout: Duration::minutes(30),
            status_check_timeout: Duration::seconds(30),
        }
    }
}

/// The result of applying an event: the next state and the effects to run, in order.
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    pub next: CallState,
    pub effects: Vec<Effect>,
}

impl Transition {
    /// Returns the lifecycle events this transition publishes.
    pub fn published(&self) -> impl Iterator<Item = &Lifecycle> {
        self.effects.iter().filter_map(|effect| match effect {
            Effect::Publish(lifecycle) => Some(lifecycle),
            _ => None,
        })
    }
}

/// Why an event did not apply. Expected (late or duplicate input), never a fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidTransition {
    #[error("call already ended")]
    AlreadyEnded,
    #[error("duplicate or out-of-order carrier callback")]
    Stale,
    #[error("{event} does not apply while the call is {status:?}")]
    NotApplicable { event: &'static str, status: CallStatus },
}

/// A new call as it is first stored: created and already dialing, so the call's row and its first
/// transition are one write. The transition's effects (count the call live, place it) are its
/// actor's first work. Should `DialStarted` ever not apply to a new call, the call is returned
/// queued with no effects, and its actor dials it as it does a call resumed queued.
pub fn create(call_type: CallType, transcript_enabled: bool, at: Timestamp, policy: &Policy) -> Transition {
    let queued = CallState::new(call_type, transcript_enabled, at);
    apply(&queued, Event::DialStarted { at }, policy).unwrap_or(Transition { next: queued, effects: Vec::new() })
}

/// Applies `event` to `state` under `policy`.
///
/// Returns the next state with the effects to run, or why the event does not apply. A `Tick` that
/// finds nothing to do returns the same state with no effects.
pub fn apply(state: &CallState, event: Event, policy: &Policy) -> Result<Transition, InvalidTransition> {
    let mut next = state.clone();
    let mut effects = Vec::new();
    let at = event.at();
    // The watchdog and status checks are the engine's own doing, not news from the call.
    let is_news = !matches!(event, Event::Tick { .. } | Event::Resumed { .. } | Event::CarrierStatus { .. });
    match event {
        Event::DialStarted { .. } => {
            if state.status != CallStatus::Queued {
                return Err(not_applicable("dial_started", state));
            }
            next.status = CallStatus::Dialing;
            effects.push(Effect::CountLive);
            effects.push(Effect::PlaceCall);
        }
        Event::Placed { provider_call_id, .. } => {
            if state.provider_call_id.is_some() {
                return Err(InvalidTransition::Stale);
            }
            next.provider_call_id = Some(provider_call_id);
        }
        Event::PlaceFailed { reason, .. } => {
            if !matches!(state.status, CallStatus::Queued | CallStatus::Dialing) {
                return Err(not_applicable("place_failed", state));
            }
            end(&mut next, &mut effects, Outcome::Failed, Some(reason), at);
        }
        Event::Carrier(update) => apply_carrier(&mut next, &mut effects, update)?,
        Event::RecordingAvailable { url, .. } => {
            if state.recording != RecordingStatus::Pending || state.recording_source_url.is_some() {
                return Err(InvalidTransition::Stale);
            }
            next.recording_source_url = Some(url.clone());
            effects.push(Effect::FetchRecording { url });
        }
        Event::RecordingStored { .. } => {
            if state.recording != RecordingStatus::Pending {
                return Err(not_applicable("recording_stored", state));
            }
            next.recording = RecordingStatus::Ready;
            effects.push(Effect::Publish(Lifecycle::RecordingReady));
            if next.transcript == TranscriptStatus::Processing {
                effects.push(Effect::Transcribe);
            }
        }
        Event::RecordingFailed { reason, .. } => {
            if state.recording != RecordingStatus::Pending {
                return Err(not_applicable("recording_failed", state));
            }
            next.recording = RecordingStatus::Failed;
            if next.transcript == TranscriptStatus::Processing {
                fail_transcript(&mut next, &mut effects, format!("recording unavailable: {reason}"));
            }
        }
        Event::TranscriptReady { .. } => {
            if state.transcript != TranscriptStatus::Processing {
                return Err(not_applicable("transcript_ready", state));
            }
            next.transcript = TranscriptStatus::Ready;
            effects.push(Effect::Publish(Lifecycle::TranscriptReady));
        }
        Event::TranscriptFailed { error, .. } => {
            if state.transcript != TranscriptStatus::Processing {
                return Err(not_applicable("transcript_failed", state));
            }
            fail_transcript(&mut next, &mut effects, error);
        }
        Event::Transferred { to, .. } => {
            if next.is_ended() || next.customer_leg.answered_at.is_none() {
                return Err(not_applicable("transferred", state));
            }
            effects.push(Effect::Publish(Lifecycle::Transferred { to }));
        }
        Event::Tick { .. } => watchdog(&mut next, &mut effects, policy, at),
        Event::Resumed { .. } => resume(&mut next, &mut effects),
        Event::CarrierStatus { answer, .. } => carrier_status(&mut next, &mut effects, answer, policy, at)?,
        Event::EngineFailed { reason, .. } => {
            if !next.is_ended() {
                end(&mut next, &mut effects, Outcome::Failed, Some(reason.clone()), at);
            }
            if next.recording == RecordingStatus::Pending {
                next.recording = RecordingStatus::Failed;
            }
            if matches!(next.transcript, TranscriptStatus::Pending | TranscriptStatus::Processing) {
                fail_transcript(&mut next, &mut effects, reason);
            }
        }
    }
    if is_news && (!effects.is_empty() || next != *state) {
        next.last_activity_at = next.last_activity_at.max(at);
    }
    if next.is_finished() && !state.is_finished() {
        effects.push(Effect::Finish);
    }
    Ok(Transition { next, effects })
}

fn not_applicable(event: &'static str, state: &CallState) -> InvalidTransition {
    InvalidTransition::NotApplicable { event, status: state.status }
}

/// Merges a carrier report into the legs and derives the call status from them.
fn apply_carrier(
    next: &mut CallState,
    effects: &mut Vec<Effect>,
    update: CarrierUpdate,
) -> Result<(), InvalidTransition> {
    let at = update.at;
    let mut changed = false;
    if let Some(url) = update.recording_url.clone()
        && next.recording == RecordingStatus::Pending
        && next.recording_source_url.is_none()
    {
        next.recording_source_url = Some(url.clone());
        effects.push(Effect::FetchRecording { url });
        changed = true;
    }
    if next.is_ended() {
        return if changed { Ok(()) } else { Err(InvalidTransition::AlreadyEnded) };
    }
    next.highest_sequence = next.highest_sequence.max(update.sequence);
    let leg = next.leg_mut(update.leg);
    if update.status.rank() > leg.status.rank() {
        leg.status = update.status;
        if update.status == LegStatus::Answered || update.status == LegStatus::Completed {
            leg.answered_at.get_or_insert(at);
        }
        if update.status.is_terminal() {
            leg.ended_at = Some(at);
        }
        changed = true;
    }
    if !changed {
        return Err(InvalidTransition::Stale);
    }
    if update.duration_s.is_some() {
        next.duration_s = update.duration_s;
    }
    if update.answer_duration_s.is_some() {
        next.answer_duration_s = update.answer_duration_s;
    }
    derive_status(next, effects, at);
    Ok(())
}

/// Moves the call status forward to what its legs say, publishing each milestone once.
fn derive_status(next: &mut CallState, effects: &mut Vec<Effect>, at: Timestamp) {
    let agent = next.agent_leg.status;
    let customer = next.customer_leg.status;
    let agent_counts = next.call_type == CallType::ClickToCall;
    // An agent leg that ends without being answered ends a click-to-call: the customer is never rung.
    if agent_counts && agent.is_terminal() && next.agent_leg.answered_at.is_none() {
        let outcome = agent.unanswered_outcome();
        let reason = format!("agent_{}", agent.as_str());
        end(next, effects, outcome, Some(reason), at);
        return;
    }
    // The customer leg decides how a call ends once the agent is on the line.
    if customer.is_terminal() {
        if next.customer_leg.answered_at.is_some() {
            reach(next, effects, CallStatus::InProgress, at);
            end(next, effects, Outcome::Completed, None, at);
        } else {
            let outcome = customer.unanswered_outcome();
            let reason = format!("customer_{}", customer.as_str());
            end(next, effects, outcome, Some(reason), at);
        }
        return;
    }
    if customer == LegStatus::Answered {
        reach(next, effects, CallStatus::InProgress, at);
    } else if customer == LegStatus::Ringing || (agent_counts && agent.rank() >= 1) {
        reach(next, effects, CallStatus::Ringing, at);
    }
}

/// Advances the live status to `target` if it is further along, publishing what it passes.
fn reach(next: &mut CallState, effects: &mut Vec<Effect>, target: CallStatus, at: Timestamp) {
    if next.status >= target {
        return;
    }
    if next.status < CallStatus::Ringing {
        effects.push(Effect::Publish(Lifecycle::Ringing));
    }
    if target == CallStatus::InProgress {
        next.answered_at.get_or_insert(next.customer_leg.answered_at.unwrap_or(at));
        effects.push(Effect::Publish(Lifecycle::Answered));
    }
    next.status = target;
}

/// Ends the call once: sets the outcome, fills missing timings and settles what cannot run.
fn end(next: &mut CallState, effects: &mut Vec<Effect>, outcome: Outcome, reason: Option<String>, at: Timestamp) {
    if next.is_ended() {
        return;
    }
    next.status = CallStatus::Ended;
    next.outcome = Some(outcome);
    next.reason = reason.clone();
    next.ended_at = Some(at);
    let whole_from = next.agent_leg.answered_at.or(next.answered_at);
    if next.duration_s.is_none() {
        next.duration_s = Some(whole_from.map_or(0, |from| seconds_between(from, at)));
    }
    if next.answer_duration_s.is_none() {
        next.answer_duration_s = Some(next.answered_at.map_or(0, |from| seconds_between(from, at)));
    }
    effects.push(Effect::UncountLive);
    effects.push(Effect::Publish(Lifecycle::Ended { outcome, reason }));
    if outcome != Outcome::Completed {
        next.recording = RecordingStatus::None;
        next.recording_source_url = None;
        effects.retain(|effect| !matches!(effect, Effect::FetchRecording { .. }));
    }
    match next.transcript {
        TranscriptStatus::Disabled => effects.push(Effect::Publish(Lifecycle::TranscriptDisabled)),
        TranscriptStatus::Pending => match (outcome, next.recording) {
            (Outcome::Completed, RecordingStatus::Ready) => {
                next.transcript = TranscriptStatus::Processing;
                effects.push(Effect::Transcribe);
            }
            (Outcome::Completed, RecordingStatus::Pending) => next.transcript = TranscriptStatus::Processing,
            (Outcome::Completed, _) => {
                fail_transcript(next, effects, "recording unavailable".to_string());
            }
            (other, _) => {
                let error = format!("call ended {}: no recording to transcribe", other.as_str());
                fail_transcript(next, effects, error);
            }
        },
        _ => {}
    }
}

fn fail_transcript(next: &mut CallState, effects: &mut Vec<Effect>, error: String) {
    next.transcript = TranscriptStatus::Failed;
    next.transcript_error = Some(error.clone());
    effects.push(Effect::Publish(Lifecycle::TranscriptFailed { error }));
}

/// Returns true when the live call has been silent for longer than the policy allows.
fn timed_out(state: &CallState, policy: &Policy, at: Timestamp) -> bool {
    let silent_for = at - state.last_activity_at;
    match state.status {
        CallStatus::Queued | CallStatus::Dialing => silent_for > policy.dial_timeout,
        CallStatus::Ringing => silent_for > policy.ring_timeout,
        CallStatus::InProgress => state.answered_at.is_some_and(|from| at - from > policy.max_call_duration),
        CallStatus::Ended => false,
    }
}

/// The earliest time at which a watchdog `Tick` could change `state`: a tick before it finds
/// nothing to do, so the watchdog need not visit the call until then. `None` when no tick ever
/// could. Mirrors [`timed_out`] and the recording wait in `watchdog`.
pub fn next_deadline(state: &CallState, policy: &Policy) -> Option<Timestamp> {
    let silence_limit = match state.status {
        CallStatus::Queued | CallStatus::Dialing => Some(state.last_activity_at + policy.dial_timeout),
        CallStatus::Ringing => Some(state.last_activity_at + policy.ring_timeout),
        CallStatus::InProgress => state.answered_at.map(|from| from + policy.max_call_duration),
        CallStatus::Ended => None,
    };
    let recording_wait = if state.is_ended() && state.recording == RecordingStatus::Pending {
        state.ended_at.map(|ended| ended + policy.recording_timeout)
    } else {
        None
    };
    match (silence_limit, recording_wait) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Returns the reason a call the carrier still reports as going, past its limits, ends with.
fn timeout_reason(state: &CallState) -> String {
    if state.status == CallStatus::InProgress { "max_call_duration" } else { "carrier_timeout" }.to_string()
}

/// Asks the carrier about a silent call; gives up on it when the carrier does not answer either,
/// and on a recording that never comes.
fn watchdog(next: &mut CallState, effects: &mut Vec<Effect>, policy: &Policy, at: Timestamp) {
    if timed_out(next, policy, at) {
        match next.carrier_check_since {
            None => {
                next.carrier_check_since = Some(at);
                effects.push(Effect::FetchStatus);
            }
            Some(since) if at - since > policy.status_check_timeout => {
                next.carrier_check_since = None;
                end(next, effects, Outcome::Failed, Some("carrier_timeout".to_string()), at);
            }
            Some(_) => {}
        }
        return;
    }
    let recording_overdue = next.is_ended()
        && next.recording == RecordingStatus::Pending
        && next.ended_at.is_some_and(|ended| at - ended > policy.recording_timeout);
    if recording_overdue {
        next.recording = RecordingStatus::None;
        if next.transcript == TranscriptStatus::Processing {
            fail_transcript(next, effects, "no recording was received from the carrier".to_string());
        }
    }
}

/// Restarts the work a call had under way when the engine stopped: a live call is checked with the
/// carrier (callbacks may have been missed), a recording is fetched again, a transcript redone.
fn resume(next: &mut CallState, effects: &mut Vec<Effect>) {
    match next.status {
        CallStatus::Queued => {}
        CallStatus::Dialing | CallStatus::Ringing | CallStatus::InProgress => {
            effects.push(Effect::FetchStatus);
        }
        CallStatus::Ended => {
            if next.recording == RecordingStatus::Pending
                && let Some(url) = &next.recording_source_url
            {
                effects.push(Effect::FetchRecording { url: url.clone() });
            }
            if next.recording == RecordingStatus::Ready && next.transcript == TranscriptStatus::Processing {
                effects.push(Effect::Transcribe);
            }
        }
    }
}

/// Applies the carrier's answer to a status request.
fn carrier_status(
    next: &mut CallState,
    effects: &mut Vec<Effect>,
    answer: StatusAnswer,
    policy: &Policy,
    at: Timestamp,
) -> Result<(), InvalidTransition> {
    let was_checking = next.carrier_check_since.take().is_some();
    if next.is_ended() {
        // Only a recording the callbacks never announced is still of interest.
        if let StatusAnswer::Found { updates, .. } = answer {
            let mut changed = false;
            for update in updates {
                changed |= apply_carrier(next, effects, update).is_ok();
            }
            if changed {
                return Ok(());
            }
        }
        return if was_checking { Ok(()) } else { Err(InvalidTransition::AlreadyEnded) };
    }
    match answer {
        StatusAnswer::NotFound => {
            let reason = if next.status <= CallStatus::Dialing && next.provider_call_id.is_none() {
                "not_placed"
            } else {
                "carrier_timeout"
            };
            end(next, effects, Outcome::Failed, Some(reason.to_string()), at);
        }
        StatusAnswer::Unknown => {
            // The carrier cannot say: a call past its limits ends, truthfully, as a timeout.
            if timed_out(next, policy, at) {
                end(next, effects, Outcome::Failed, Some("carrier_timeout".to_string()), at);
            }
        }
        StatusAnswer::Found { provider_call_id, mut updates } => {
            if next.provider_call_id.is_none() {
                next.provider_call_id = provider_call_id;
            }
            updates.sort_by_key(|update| update.sequence);
            let mut changed = false;
            for update in updates {
                changed |= apply_carrier(next, effects, update).is_ok();
            }
            if changed {
                next.last_activity_at = next.last_activity_at.max(at);
            }
            if !next.is_ended() && timed_out(next, policy, at) {
                let reason = timeout_reason(next);
                end(next, effects, Outcome::Failed, Some(reason), at);
            }
        }
    }
    Ok(())
}

fn seconds_between(from: Timestamp, to: Timestamp) -> u32 {
    u32::try_from((to - from).num_seconds().max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
