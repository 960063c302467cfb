//! The sandbox network: a fake carrier served by Dialplane itself under `/sandbox/v1`. It accepts
//! calls over HTTP, then plays a scripted timeline, posting signed status callbacks to the URL it
//! was given, and serves each answered call's recording (a short generated WAV).
//!
//! The script is chosen by the last four digits of the customer number:
//!
//! | digits | what happens                                                            |
//! |--------|-------------------------------------------------------------------------|
//! | `0001` | the customer is busy                                                    |
//! | `0002` | the customer does not answer                                            |
//! | `0003` | the carrier rejects the call outright                                   |
//! | `0004` | answered and completed, but transcription fails with a 401-style error  |
//! | `0005` | the agent does not answer (the customer is never rung)                  |
//! | `0006` | accepted, then silent: no callback ever comes (tests the watchdog)      |
//! | `0007` | answered, then held in progress (load tests of live calls)              |
//! | other  | answered; completes after 20–90 simulated seconds derived from the number |
//!
//! Timings are in simulated seconds, multiplied by `DIALPLANE_SANDBOX_TIME_SCALE`. The sandbox keeps
//! its calls in the database (table `sandbox_calls`, its own "carrier log"): a restart of the
//! engine resumes unacknowledged callbacks, and status requests are answered from the timeline.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{debug, warn};

use super::sandbox::{PlaceCallRequest, PlaceCallResponse, SIGNATURE_HEADER, StatusCallback};
use crate::store::entities::sandbox_call;
use crate::store::writer::{WriteOp, Writer};
use crate::{ids, signing};

/// What the sandbox does with a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Answered; talks for `talk_s` simulated seconds.
    Completes {
        talk_s: u32,
    },
    CustomerBusy,
    CustomerNoAnswer,
    Rejected,
    /// Answered and completed; the recording makes the sandbox transcriber fail.
    TranscriptionFails {
        talk_s: u32,
    },
    AgentNoAnswer,
    /// Accepted, then silent: no callback ever comes (the carrier lost track of the call).
    Silent {
        talk_s: u32,
    },
    /// Answered, then held in progress: the call only ends when the engine gives up on it.
    Holds,
}

/// Returns the scripted scenario of a customer number.
pub fn scenario_for(customer_number: &str) -> Scenario {
    let digits: String = customer_number.chars().filter(char::is_ascii_digit).collect();
    let last4 = &digits[digits.len().saturating_sub(4)..];
    match last4 {
        "0001" => Scenario::CustomerBusy,
        "0002" => Scenario::CustomerNoAnswer,
        "0003" => Scenario::Rejected,
        "0004" => Scenario::TranscriptionFails { talk_s: 30 },
        "0005" => Scenario::AgentNoAnswer,
        "0006" => Scenario::Silent { talk_s: 30 },
        "0007" => Scenario::Holds,
        _ => {
            let n: u64 = digits.bytes().fold(0u64, |acc, b| acc.wrapping_mul(31).wrapping_add(u64::from(b - b'0')));
            Scenario::Completes { talk_s: 20 + (n % 71) as u32 }
        }
    }
}

/// One status callback of a timeline, `at_s` simulated seconds after the call was placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub at_s: u32,
    pub leg: &'static str,
    pub status: &'static str,
    pub duration: Option<u32>,
    pub answer_duration: Option<u32>,
    /// The step announces the recording.
    pub recording: bool,
}

fn step(at_s: u32, leg: &'static str, status: &'static str) -> Step {
    Step { at_s, leg, status, duration: None, answer_duration: None, recording: false }
}

/// Returns the callbacks the sandbox posts for a call. A click-to-call rings the agent first.
pub fn timeline(click_to_call: bool, scenario: Scenario) -> Vec<Step> {
    let mut steps = Vec::new();
    // When the customer leg starts, and when the whole-call duration starts counting.
    let (customer_from, billed_from) = if click_to_call {
        steps.push(step(1, "agent", "ringing"));
        if scenario == Scenario::AgentNoAnswer {
            steps.push(step(31, "agent", "no-answer"));
            return steps;
        }
        steps.push(step(5, "agent", "answered"));
        (6, 5)
    } else {
        (0, 3)
    };
    steps.push(step(customer_from + 1, "customer", "ringing"));
    let end_unanswered = |at_s: u32, status: &'static str| Step {
        duration: Some(at_s - billed_from.min(at_s)),
        answer_duration: Some(0),
        ..step(at_s, "customer", status)
    };
    match scenario {
        Scenario::CustomerBusy => steps.push(end_unanswered(customer_from + 4, "busy")),
        Scenario::CustomerNoAnswer | Scenario::AgentNoAnswer => {
            steps.push(end_unanswered(customer_from + 31, "no-answer"))
        }
        Scenario::Rejected | Scenario::Silent { .. } => steps.clear(),
        Scenario::Holds => steps.push(step(customer_from + 4, "customer", "answered")),
        Scenario::Completes { talk_s } | Scenario::TranscriptionFails { talk_s } => {
            let answered = customer_from + 4;
            steps.push(step(answered, "customer", "answered"));
            let ended = answered + talk_s;
            steps.push(Step {
                duration: Some(ended - billed_from),
                answer_duration: Some(talk_s),
                recording: true,
                ..step(ended, "customer", "completed")
            });
        }
    }
    steps
}

/// Marker chunk in a sandbox recording telling the sandbox transcriber what to do.
pub const SCRIPT_CHUNK: &[u8; 4] = b"dpsb";

/// Sample rate of the sandbox's recordings.
const WAV_RATE: u32 = 8000;

/// Half a second of a 440 Hz tone as 16-bit little-endian PCM, computed once: every sandbox
/// recording carries the same audio.
static TONE: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
    (0..WAV_RATE / 2)
        .flat_map(|i| {
            let sample = (f64::from(i) * 440.0 * 2.0 * std::f64::consts::PI / f64::from(WAV_RATE)).sin() * 8000.0;
            (sample as i16).to_le_bytes()
        })
        .collect()
});

/// Returns a short WAV (8 kHz mono PCM, half a second of tone) carrying a script chunk.
pub fn wav(script: &serde_json::Value) -> Vec<u8> {
    let samples: &[u8] = &TONE;
    let mut script_bytes = script.to_string().into_bytes();
    if script_bytes.len() % 2 == 1 {
        script_bytes.push(b' ');
    }
    let data_len = samples.len() as u32;
    let mut out = Vec::with_capacity(44 + 8 + script_bytes.len() + samples.len());
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(4 + 8 + 16 + 8 + script_bytes.len() as u32 + 8 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&WAV_RATE.to_le_bytes());
    out.extend_from_slice(&(WAV_RATE * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(SCRIPT_CHUNK);
    out.extend_from_slice(&(script_bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&script_bytes);
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out.extend_from_slice(samples);
    out
}

/// Returns the script chunk of a WAV made by [`wav`].
pub fn read_script(wav: &[u8]) -> Option<serde_json::Value> {
    if wav.len() < 12 || &wav[0..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= wav.len() {
        let id = &wav[at..at + 4];
        let len = u32::from_le_bytes(wav[at + 4..at + 8].try_into().ok()?) as usize;
        let body = wav.get(at + 8..at + 8 + len)?;
        if id == SCRIPT_CHUNK {
            return serde_json::from_slice(body).ok();
        }
        at += 8 + len + (len % 2);
    }
    None
}

/// Why the sandbox carrier API refused a call.
#[derive(Debug)]
pub struct Refusal {
    pub status: u16,
    pub body: serde_json::Value,
}

/// What the sandbox says about one of its calls.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusReport {
    pub sid: String,
    pub reference: String,
    /// Every status report of the call so far, as the callbacks carry them.
    pub updates: Vec<StatusCallback>,
}

/// Returns the script a call's recording carries, when the scenario has one.
fn recording_script(kind: &str, scenario: Scenario) -> Option<serde_json::Value> {
    let (talk_s, stt) = match scenario {
        Scenario::Completes { talk_s } | Scenario::Silent { talk_s } => (talk_s, "ok"),
        Scenario::TranscriptionFails { talk_s } => (talk_s, "unauthorized"),
        _ => return None,
    };
    Some(json!({ "talk_s": talk_s, "stt": stt, "click_to_call": kind == "click_to_call" }))
}

/// The fake carrier. It keeps its calls in the database, so like a real carrier it outlives a
/// restart of the engine: unfinished timelines resume, and status requests are answered from it.
pub struct SandboxNetwork {
    db: DatabaseConnection,
    /// The sandbox's own log goes through the group-commit writer, like the engine's writes.
    writer: Writer,
    http: reqwest::Client,
    /// Signs the status callbacks.
    callback_key: Vec<u8>,
    /// Bearer key clients of the carrier API must present.
    api_key: String,
    time_scale: f64,
    /// Base of the recording URLs it announces.
    public_base: String,
}

impl SandboxNetwork {
    /// Builds the network; recordings are served under `public_base`.
    pub fn new(
        db: DatabaseConnection,
        writer: Writer,
        callback_key: Vec<u8>,
        api_key: String,
        time_scale: f64,
        public_base: &str,
    ) -> anyhow::Result<Self> {
        Ok(SandboxNetwork {
            db,
            writer,
            http: crate::outbound::client_builder().timeout(Duration::from_secs(10)).build()?,
            callback_key,
            api_key,
            time_scale,
            public_base: public_base.trim_end_matches('/').to_string(),
        })
    }

    /// Returns true when `authorization` carries the API key, compared in constant time (each
    /// placement asks: comparing two HMACs of the header instead was four SHA-256 runs a call).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        bearer_is(authorization, &self.api_key)
    }

    /// Accepts a call (durably, before answering) and starts its timeline, or refuses it.
    pub async fn place(self: &Arc<Self>, request: PlaceCallRequest) -> Result<PlaceCallResponse, Refusal> {
        if !matches!(request.kind.as_str(), "click_to_call" | "agent") {
            return Err(Refusal {
                status: 400,
                body: json!({ "code": 21201, "message": format!("unknown kind {:?}", request.kind) }),
            });
        }
        if url::Url::parse(&request.status_callback).is_err() {
            return Err(Refusal {
                status: 400,
                body: json!({ "code": 21609, "message": "status_callback is not a URL" }),
            });
        }
        if scenario_for(&request.to) == Scenario::Rejected {
            return Err(Refusal {
                status: 400,
                body: json!({ "code": 13224, "message": "The number is not reachable" }),
            });
        }
        let row = accepted_row(request, self.time_scale, Utc::now());
        let inserted = self.writer.write(WriteOp::SandboxCall(Box::new(row.clone()))).await;
        if let Err(e) = inserted {
            warn!(error = %e, "sandbox could not record a call");
            return Err(Refusal { status: 503, body: json!({ "code": 20503, "message": "Service unavailable" }) });
        }
        let response = PlaceCallResponse { sid: row.sid.clone(), status: "queued".to_string() };
        // A timeline with no callbacks is stored finished: there is nothing to play or record.
        if !row.finished {
            let network = self.clone();
            tokio::spawn(async move { network.play(row).await });
        }
        Ok(response)
    }

    /// Resumes the timelines of calls whose callbacks were not all acknowledged. Returns how many.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, sea_orm::DbErr> {
        let rows = sandbox_call::Entity::find().filter(sandbox_call::Column::Finished.eq(false)).all(&self.db).await?;
        let count = rows.len();
        for row in rows {
            let network = self.clone();
            tokio::spawn(async move { network.play(row).await });
        }
        Ok(count)
    }

    fn steps_of(row: &sandbox_call::Model) -> Vec<Step> {
        timeline(row.kind == "click_to_call", scenario_for(&row.customer_number))
    }

    fn callback(&self, row: &sandbox_call::Model, index: usize, step: &Step) -> StatusCallback {
        StatusCallback {
            sid: row.sid.clone(),
            reference: row.reference.clone(),
            sequence: index as u64 + 1,
            leg: step.leg.to_string(),
            status: step.status.to_string(),
            timestamp: row.placed_at
                + chrono::Duration::milliseconds((f64::from(step.at_s) * row.time_scale * 1000.0) as i64),
            duration: step.duration,
            answer_duration: step.answer_duration,
            recording_url: step
                .recording
                .then(|| format!("{}/sandbox/v1/recordings/{}.wav", self.public_base, row.sid)),
        }
    }

    /// Returns what the sandbox knows of a call, by its sid or by the engine's reference.
    pub async fn status(&self, sid_or_reference: &str) -> Result<Option<StatusReport>, sea_orm::DbErr> {
        let mut row = sandbox_call::Entity::find_by_id(sid_or_reference.to_string()).one(&self.db).await?;
        if row.is_none() {
            row = sandbox_call::Entity::find()
                .filter(sandbox_call::Column::Reference.eq(sid_or_reference))
                .order_by_desc(sandbox_call::Column::PlacedAt)
                .one(&self.db)
                .await?;
        }
        let Some(row) = row else { return Ok(None) };
        let elapsed_ms = (Utc::now() - row.placed_at).num_milliseconds() as f64;
        let updates = Self::steps_of(&row)
            .iter()
            .enumerate()
            .filter(|(_, step)| f64::from(step.at_s) * row.time_scale * 1000.0 <= elapsed_ms)
            .map(|(index, step)| self.callback(&row, index, step))
            .collect();
        Ok(Some(StatusReport { sid: row.sid.clone(), reference: row.reference.clone(), updates }))
    }

    /// Returns the WAV of an answered call.
    pub async fn recording(&self, sid: &str) -> Result<Option<Vec<u8>>, sea_orm::DbErr> {
        let row = sandbox_call::Entity::find_by_id(sid.to_string()).one(&self.db).await?;
        Ok(row
            .and_then(|row| recording_script(&row.kind, scenario_for(&row.customer_number)))
            .map(|script| wav(&script)))
    }

    /// Posts the callbacks not yet acknowledged, each at its time on the call's timeline.
    ///
    /// Progress is recorded before each wait for a later callback and at the end, not after
    /// every callback: callbacks already due go out back to back, and if the engine stops among
    /// them they are sent again at the next start, which a carrier may do and the engine ignores
    /// (a leg only moves forward). At time scale 0 a whole timeline is one progress write.
    async fn play(&self, row: sandbox_call::Model) {
        let steps = Self::steps_of(&row);
        for (index, step) in steps.iter().enumerate() {
            let sequence = index as i32 + 1;
            if sequence <= row.acked_sequence {
                continue;
            }
            if let Ok(wait) = (due_at(&row, step) - Utc::now()).to_std() {
                tokio::time::sleep(wait).await;
            }
            // Boxed: a held call's task waits in the sleep above, sized for its largest future;
            // the request's future is allocated only while it is sent.
            match Box::pin(self.post(&row.status_callback, &self.callback(&row, index, step))).await {
                Delivery::Accepted => {
                    if waits_after(&row, steps.get(index + 1), Utc::now()) {
                        self.record_progress(&row.sid, sequence, false).await;
                    }
                }
                Delivery::Refused => {
                    // The engine will never take it: like a carrier, give up on this call.
                    self.record_progress(&row.sid, row.acked_sequence, true).await;
                    return;
                }
                Delivery::Unreachable => {
                    warn!(call.sid = %row.sid, "sandbox could not reach the engine; the timeline resumes at the next start");
                    return;
                }
            }
        }
        self.record_progress(&row.sid, steps.len() as i32, true).await;
    }

    async fn record_progress(&self, sid: &str, acked_sequence: i32, finished: bool) {
        let update =
            self.writer.write(WriteOp::SandboxProgress { sid: sid.to_string(), acked_sequence, finished }).await;
        if let Err(e) = update {
            debug!(call.sid = %sid, error = %e, "sandbox progress not recorded; a callback may be sent again");
        }
    }

    /// Posts one callback, retrying like a carrier does.
    async fn post(&self, url: &str, callback: &StatusCallback) -> Delivery {
        let body = serde_json::to_vec(callback).expect("callback serializes");
        let signature = hex::encode(signing::hmac_sha256(&self.callback_key, &body));
        for attempt in 0..6u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let result = self
                .http
                .post(url)
                .header(SIGNATURE_HEADER, &signature)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(response) if response.status().is_success() => return Delivery::Accepted,
                Ok(response) if response.status().is_client_error() && response.status().as_u16() != 429 => {
                    debug!(status = %response.status(), "sandbox callback refused");
                    return Delivery::Refused;
                }
                Ok(response) => debug!(status = %response.status(), attempt, "sandbox callback failed"),
                Err(e) => debug!(error = %e.without_url(), attempt, "sandbox callback failed"),
            }
        }
        Delivery::Unreachable
    }
}

/// The row of a call the sandbox accepts. A call whose timeline has no callbacks (a silent
/// call) is stored already finished: playing it would post nothing and only record, in a write
/// of its own, that it was done.
fn accepted_row(request: PlaceCallRequest, time_scale: f64, placed_at: chrono::DateTime<Utc>) -> sandbox_call::Model {
    let mut row = sandbox_call::Model {
        sid: format!("SB{}", ids::time_ordered(32)),
        reference: request.reference,
        kind: request.kind,
        customer_number: request.to,
        status_callback: request.status_callback,
        placed_at,
        time_scale,
        acked_sequence: 0,
        finished: false,
    };
    row.finished = SandboxNetwork::steps_of(&row).is_empty();
    row
}

/// When a step of a call's timeline is due.
fn due_at(row: &sandbox_call::Model, step: &Step) -> chrono::DateTime<Utc> {
    row.placed_at + chrono::Duration::milliseconds((f64::from(step.at_s) * row.time_scale * 1000.0) as i64)
}

/// Whether the timeline waits before its `next` step (none: it ends), so the progress so far
/// is recorded first.
fn waits_after(row: &sandbox_call::Model, next: Option<&Step>, now: chrono::DateTime<Utc>) -> bool {
    next.is_some_and(|next| due_at(row, next) > now)
}

/// What became of one callback.
enum Delivery {
    Accepted,
    /// The engine answered 4xx: it will never take this callback.
    Refused,
    /// The engine did not answer, or answered 5xx, every time.
    Unreachable,
}

/// Returns true when `authorization` is exactly `Bearer {key}`, compared in constant time.
fn bearer_is(authorization: Option<&str>, key: &str) -> bool {
    authorization
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|got| signing::constant_time_eq(got.as_bytes(), key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_api_key_as_a_bearer_token_is_authorized() {
        let key = "5f2b9c";
        assert!(bearer_is(Some("Bearer 5f2b9c"), key));
        for refused in [
            None,
            Some(""),
            Some("5f2b9c"),
            Some("Bearer "),
            Some("Bearer 5f2b9"),
            Some("Bearer 5f2b9c0"),
            Some("Bearer 5f2b9d"),
            Some("Basic 5f2b9c"),
        ] {
            assert!(!bearer_is(refused, key), "{refused:?}");
        }
    }

    #[test]
    fn the_last_four_digits_choose_the_script() {
        assert_eq!(scenario_for("919999990001"), Scenario::CustomerBusy);
        assert_eq!(scenario_for("919999990002"), Scenario::CustomerNoAnswer);
        assert_eq!(scenario_for("+919999990003"), Scenario::Rejected);
        assert!(matches!(scenario_for("919999990004"), Scenario::TranscriptionFails { .. }));
        assert_eq!(scenario_for("919999990005"), Scenario::AgentNoAnswer);
        for number in ["919999999999", "14155550100", "4420794600"] {
            let Scenario::Completes { talk_s } = scenario_for(number) else { panic!("{number}") };
            assert!((20..=90).contains(&talk_s));
            assert_eq!(scenario_for(number), Scenario::Completes { talk_s }, "deterministic");
        }
    }

    #[test]
    fn click_to_call_rings_the_agent_first_and_reports_durations() {
        let steps = timeline(true, Scenario::Completes { talk_s: 48 });
        let order: Vec<_> = steps.iter().map(|s| (s.leg, s.status)).collect();
        assert_eq!(
            order,
            [
                ("agent", "ringing"),
                ("agent", "answered"),
                ("customer", "ringing"),
                ("customer", "answered"),
                ("customer", "completed")
            ]
        );
        let last = steps.last().unwrap();
        assert_eq!(last.answer_duration, Some(48));
        assert_eq!(last.duration, Some(53));
        assert!(last.recording);
        assert!(steps.windows(2).all(|w| w[0].at_s <= w[1].at_s));
        let agent = timeline(true, Scenario::AgentNoAnswer);
        assert!(agent.iter().all(|s| s.leg == "agent"));
        let ai = timeline(false, Scenario::CustomerBusy);
        assert!(ai.iter().all(|s| s.leg == "customer"));
    }

    #[test]
    fn recordings_carry_their_script() {
        let script = json!({ "talk_s": 30, "stt": "unauthorized" });
        let bytes = wav(&script);
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize, bytes.len() - 8);
        assert_eq!(read_script(&bytes), Some(script));
        assert_eq!(read_script(b"not a wav"), None);
        // Half a second of 16-bit samples ends the file, the tone's second sample included.
        let data = &bytes[bytes.len() - 8000..];
        assert_eq!(&bytes[bytes.len() - 8008..bytes.len() - 8004], b"data");
        let second = (440.0 * 2.0 * std::f64::consts::PI / 8000.0_f64).sin() * 8000.0;
        assert_eq!(i16::from_le_bytes([data[2], data[3]]), second as i16);
    }

    fn placed(time_scale: f64) -> sandbox_call::Model {
        sandbox_call::Model {
            sid: "SB1".into(),
            reference: "call_x".into(),
            kind: "click_to_call".into(),
            customer_number: "919999999999".into(),
            status_callback: "http://engine/providers/sandbox/status".into(),
            placed_at: Utc::now(),
            time_scale,
            acked_sequence: 0,
            finished: false,
        }
    }

    /// A silent call (no callback ever comes) is stored finished when it is accepted, so it
    /// costs no progress write and is not played again at the next start; a call with callbacks
    /// is stored unfinished, for its timeline to play.
    #[test]
    fn a_call_with_no_callbacks_is_stored_finished() {
        let request = |to: &str| PlaceCallRequest {
            reference: "call_x".into(),
            kind: "click_to_call".into(),
            from: None,
            agent: "918888888888".into(),
            to: to.into(),
            status_callback: "http://engine/providers/sandbox/status".into(),
        };
        let silent = accepted_row(request("919999990006"), 0.0, Utc::now());
        assert!(silent.finished);
        assert_eq!(silent.acked_sequence, 0);
        let completes = accepted_row(request("919999999999"), 0.0, Utc::now());
        assert!(!completes.finished);
        assert!(!SandboxNetwork::steps_of(&completes).is_empty());
    }

    /// Progress is recorded before a wait, not after each callback: at time scale 0 every step
    /// is due at once and only the end is recorded; in real time, every step but the last waits.
    #[test]
    fn progress_is_recorded_only_before_a_wait() {
        let steps = timeline(true, scenario_for("919999999999"));
        let recorded_after = |row: &sandbox_call::Model| -> Vec<usize> {
            (0..steps.len()).filter(|&i| waits_after(row, steps.get(i + 1), row.placed_at)).collect()
        };
        assert_eq!(recorded_after(&placed(0.0)), Vec::<usize>::new());
        assert_eq!(recorded_after(&placed(1.0)), (0..steps.len() - 1).collect::<Vec<_>>());
    }
}
