//! Ports: the traits through which the actors reach the outside world (carriers, storage, live
//! counters, speech-to-text, the clock). The server crate implements them; tests may fake them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::call::CallRecord;
use crate::call::fsm::{CallState, Lifecycle, StatusAnswer, Timestamp};

/// What a carrier answered when it accepted a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlacedCall {
    /// The carrier's id for the call (Twilio's CallSid, the sandbox's `SB…`).
    pub provider_call_id: String,
}

/// An audio recording as fetched from a carrier or read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Why a carrier request failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CarrierError {
    /// The carrier refused the request; sending it again will not help.
    #[error("carrier rejected the request: {0}")]
    Rejected(String),
    /// The carrier could not be reached or answered 5xx; the request may be retried.
    #[error("carrier unavailable: {0}")]
    Unavailable(String),
    /// The carrier answered something we could not understand.
    #[error("unexpected carrier response: {0}")]
    Protocol(String),
    /// The carrier refused the request for a reason it named (an invalid number, a blocked
    /// caller ID, …): `reason` is the short code recorded on the call, `detail` the carrier's words.
    #[error("carrier refused the request ({reason}): {detail}")]
    Refused { reason: &'static str, detail: String },
}

impl CarrierError {
    /// Returns the short reason recorded on a call that this error ended.
    pub fn reason_code(&self) -> &'static str {
        match self {
            CarrierError::Rejected(_) => "carrier_rejected",
            CarrierError::Unavailable(_) => "carrier_unavailable",
            CarrierError::Protocol(_) => "carrier_error",
            CarrierError::Refused { reason, .. } => reason,
        }
    }

    /// Returns true when the same request may succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(self, CarrierError::Unavailable(_))
    }
}

/// A telephony carrier: places calls and serves their recordings.
#[async_trait]
pub trait Carrier: Send + Sync + 'static {
    /// Returns the adapter's name (`sandbox`, `twilio`, …), used in metrics and on the call row.
    fn name(&self) -> &'static str;
    /// Sends the call to the carrier. Status callbacks then arrive over HTTP.
    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError>;
    /// Downloads a recording the carrier announced.
    async fn fetch_recording(&self, call: &CallRecord, url: &str) -> Result<Recording, CarrierError>;
    /// Asks the carrier what it knows of a call: by its id when known, else by Dialplane's call id
    /// (a call whose placement was cut short may be known to the carrier and not to us).
    async fn fetch_status(
        &self,
        call: &CallRecord,
        provider_call_id: Option<&str>,
    ) -> Result<StatusAnswer, CarrierError>;
    /// Ends the call at the carrier (cancels it while it rings).
    async fn hang_up(&self, call: &CallRecord, provider_call_id: &str, answered: bool) -> Result<(), CarrierError> {
        let _ = (call, provider_call_id, answered);
        Err(CarrierError::Rejected(format!("{} cannot hang up calls", self.name())))
    }
    /// Moves the customer to another number (`to`, E.164), ending the agent's part of the call.
    async fn transfer(&self, call: &CallRecord, provider_call_id: &str, to: &str) -> Result<(), CarrierError> {
        let _ = (call, provider_call_id, to);
        Err(CarrierError::Rejected(format!("{} cannot transfer calls", self.name())))
    }
}

/// Why the store failed. Always worth a retry: the database may come back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

/// One turn of a conversation in a transcript.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// `agent` or `customer`.
    pub role: String,
    pub text: String,
    /// Offset from the start of the recording, in seconds.
    pub start_s: f32,
}

/// A finished transcript with its analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub language: String,
    pub history: Vec<Turn>,
    pub summary: String,
    pub call_outcome: String,
    /// One value per visible call outcome of an agent call's config, typed as declared.
    #[serde(default)]
    pub outcomes: serde_json::Map<String, serde_json::Value>,
}

/// Durable storage of calls, as the call actor needs it.
#[async_trait]
pub trait CallStore: Send + Sync + 'static {
    /// Commits a transition: the call's new state and the lifecycle events it publishes (with their
    /// outgoing deliveries) in one transaction.
    async fn commit(&self, call: &CallRecord, state: &CallState, published: &[Lifecycle]) -> Result<(), StoreError>;
    /// Returns the last committed state of a call.
    async fn load_state(&self, call_id: &str) -> Result<Option<(CallRecord, CallState)>, StoreError>;
    /// Stores a call's recording (Dialplane keeps its own copy).
    async fn save_recording(&self, call: &CallRecord, recording: &Recording) -> Result<(), StoreError>;
    /// Reads a stored recording back.
    async fn load_recording(&self, call_id: &str) -> Result<Option<Recording>, StoreError>;
    /// Stores a call's transcript.
    async fn save_transcript(&self, call: &CallRecord, transcript: &Transcript) -> Result<(), StoreError>;
}

/// Why a live counter could not be updated or read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("live counters unavailable: {0}")]
pub struct CounterError(pub String);

/// Exact counts of live calls, idempotent per call: counting a call twice counts it once.
#[async_trait]
pub trait LiveCounters: Send + Sync + 'static {
    /// Counts the call as live in every scope it belongs to.
    async fn call_started(&self, call: &CallRecord) -> Result<(), CounterError>;
    /// Stops counting the call.
    async fn call_ended(&self, call: &CallRecord) -> Result<(), CounterError>;
    /// Returns the number of live calls in a scope (`all`, `workspace:<id>`, `carrier:<name>`, …).
    async fn live_calls(&self, scope: &str) -> Result<u64, CounterError>;
    /// Returns what the counters hold now; a rebuild reads it before it reads the database.
    async fn counted(&self) -> Result<CountedCalls, CounterError>;
    /// Rebuilds the counts from the database's truth, after a crash or an outage of the counters'
    /// store: `live` are the calls the database had live, read after `before` was taken. A call
    /// counted in `before` and not live has ended and is forgotten, and every live call is
    /// counted. A call counted since `before` is left alone, so a rebuild never loses a call that
    /// starts while it reads (one that ends meanwhile may stay counted until the next rebuild).
    async fn reconcile(&self, before: &CountedCalls, live: &[CallRecord]) -> Result<(), CounterError>;
}

/// What live counters hold: the ids of the calls counted in each scope.
pub type CountedCalls = std::collections::HashMap<String, std::collections::HashSet<String>>;

/// Why transcription failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranscriptionError {
    /// The provider's error text, kept verbatim for the user.
    pub message: String,
    /// True when another attempt may succeed (timeouts, 5xx, 429).
    pub retryable: bool,
}

/// Speech-to-text and analysis of a recording.
#[async_trait]
pub trait Transcriber: Send + Sync + 'static {
    async fn transcribe(&self, call: &CallRecord, recording: &Recording) -> Result<Transcript, TranscriptionError>;
}

/// The source of time for actors; tests may substitute their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A message waiting in a webhook subscription's outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundMessage {
    /// The outbox row.
    pub row_id: i64,
    /// `msg_…`: the `webhook-id` header, stable across retries.
    pub message_id: String,
    pub subscription_id: String,
    /// Messages of one line (one call) are delivered in order: a later one waits for an earlier one.
    pub line: String,
    pub event_type: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    /// The exact bytes to send and sign.
    pub body: String,
}

/// What one delivery attempt came to, with what the attempt log keeps of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptReport {
    pub result: crate::webhook::fsm::AttemptResult,
    pub status_code: Option<u16>,
    pub latency: std::time::Duration,
    pub error: Option<String>,
    /// The start of the receiver's response body, bounded.
    pub response_excerpt: Option<String>,
}

/// The durable side of a webhook subscription: its outbox rows, attempt log and health.
#[async_trait]
pub trait WebhookOutbox: Send + Sync + 'static {
    /// Returns the subscription's health, or `None` when it no longer exists.
    async fn health(&self, subscription_id: &str) -> Result<Option<crate::webhook::fsm::EndpointHealth>, StoreError>;
    /// Returns up to `limit` pending messages of the subscription, oldest first, due or not.
    async fn pending(&self, subscription_id: &str, limit: u64) -> Result<Vec<OutboundMessage>, StoreError>;
    /// Logs an attempt and records the message's fate, in one transaction.
    async fn record_attempt(
        &self,
        message: &OutboundMessage,
        report: &AttemptReport,
        fate: &crate::webhook::fsm::MessageFate,
        at: Timestamp,
    ) -> Result<(), StoreError>;
    /// Saves the subscription's health; with `disabled_reason` it disables the endpoint and records
    /// a `webhook.disabled` event.
    async fn save_health(
        &self,
        subscription_id: &str,
        health: &crate::webhook::fsm::EndpointHealth,
        disabled_reason: Option<&str>,
        at: Timestamp,
    ) -> Result<(), StoreError>;
}

/// Sends one signed delivery attempt to a subscription's endpoint.
#[async_trait]
pub trait WebhookSender: Send + Sync + 'static {
    async fn send(&self, message: &OutboundMessage) -> AttemptReport;
}

/// A campaign as its actor needs it, read afresh every tick (so pause and stop act at once).
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignPlan {
    pub id: String,
    pub workspace_id: String,
    /// `draft`, `scheduled`, `running`, `paused`, `completed` or `stopped`.
    pub state: String,
    pub pacing: crate::campaign::planner::Pacing,
    pub schedule: crate::campaign::planner::Schedule,
    pub retry: crate::campaign::planner::RetryPolicy,
    /// Most live calls the whole workspace may have.
    pub workspace_max_concurrent: u32,
}

/// A contact leased for dialing (its state is now `dialing`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedContact {
    pub id: i64,
    pub phone: String,
    /// IANA timezone name.
    pub timezone: String,
    /// Attempts launched before this one.
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
}

/// An attempt whose call has ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedAttempt {
    pub contact_id: i64,
    pub attempts: u32,
    /// The call's outcome: `completed`, `busy`, `no_answer`, `failed`, `canceled`.
    pub outcome: String,
    pub ended_at: Timestamp,
}

/// What to do with a campaign contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContactUpdate {
    /// Its call ended: due again at this time.
    RetryAt { outcome: String, at: Timestamp },
    /// Its call ended and no attempt follows.
    Done { outcome: String },
    /// Not dialed now (outside its window, or the launch failed): pending again, due then.
    Later(Timestamp),
    /// Never dialed again: `dnc`, `expired`.
    Never(String),
}

/// The durable side of a campaign.
#[async_trait]
pub trait CampaignStore: Send + Sync + 'static {
    /// Returns the campaign, or `None` when it was deleted.
    async fn load(&self, campaign_id: &str) -> Result<Option<CampaignPlan>, StoreError>;
    /// After a restart: contacts leased but never launched are pending again (their next lease
    /// reuses the same attempt number, so the call's idempotency key finds a call already made).
    async fn recover(&self, campaign_id: &str) -> Result<(), StoreError>;
    /// Returns the attempts whose calls have ended and are not applied yet.
    async fn finished_attempts(&self, campaign_id: &str) -> Result<Vec<FinishedAttempt>, StoreError>;
    /// Applies decisions about contacts.
    async fn update_contacts(&self, campaign_id: &str, updates: &[(i64, ContactUpdate)]) -> Result<(), StoreError>;
    /// Returns how many of the campaign's calls are in flight (contacts `dialing`).
    async fn in_flight(&self, campaign_id: &str) -> Result<u32, StoreError>;
    /// Leases up to `n` due, pending contacts, oldest due first, with one conditional update: no
    /// contact is ever leased twice.
    async fn lease(&self, campaign_id: &str, n: u32, now: Timestamp) -> Result<Vec<LeasedContact>, StoreError>;
    /// Returns which numbers are on the workspace's or the campaign's do-not-call list.
    async fn blocked(
        &self,
        campaign: &CampaignPlan,
        phones: &[String],
    ) -> Result<std::collections::HashSet<String>, StoreError>;
    /// Records the call of attempt number `attempt` of a contact.
    async fn launched(&self, contact_id: i64, attempt: u32, call_id: &str) -> Result<(), StoreError>;
    /// Completes the campaign when no contact can be dialed again. Returns true when it did.
    async fn complete_if_done(&self, campaign_id: &str, now: Timestamp) -> Result<bool, StoreError>;
    /// Moves a `scheduled` campaign to `running` (its `starts_at` has come). Returns false when it
    /// was no longer scheduled.
    async fn start_scheduled(&self, campaign_id: &str, now: Timestamp) -> Result<bool, StoreError>;
}

/// Why a campaign call could not be created.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LaunchError {
    pub message: String,
    /// Trying again will not help (the agent is gone, the campaign was deleted): the contact is
    /// given up instead of retried.
    pub permanent: bool,
}

/// Creates the call of a campaign contact's attempt.
#[async_trait]
pub trait CallLauncher: Send + Sync + 'static {
    /// Creates (or, for an attempt already launched, finds) the call; idempotent per
    /// `(contact, attempt)`. Returns the call id.
    async fn launch(
        &self,
        campaign: &CampaignPlan,
        contact: &LeasedContact,
        attempt: u32,
    ) -> Result<String, LaunchError>;
}
