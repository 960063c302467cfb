//! The seed 000 views of a call: the compact `data` object shared by the transcript endpoint and
//! the `callback_url` events, the callback envelopes themselves, and the items of
//! `GET /api/calls/recent`. Pure functions of stored rows, so responses and callbacks can never
//! disagree.

use chrono::{DateTime, SecondsFormat, Utc};
use dialplane_actors::fsm::{CallState, Lifecycle, Outcome};
use serde_json::{Value, json};

use crate::ids::mask_number;
use crate::signing::RecordingUrlSigner;
use crate::store::entities::{call, transcript};

/// Formats a timestamp as seed 000 does: `2026-04-14T06:50:00Z`.
pub fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Returns the call's state machine state as stored beside the row.
pub fn state_of(call: &call::Model) -> Option<CallState> {
    serde_json::from_str(&call.state).ok()
}

/// Returns the `recording` field: a signed URL once the carrier has announced the recording,
/// `pending` before that, `null` when there is none.
pub fn recording_field(call: &call::Model, signer: &RecordingUrlSigner, now: DateTime<Utc>) -> Value {
    match call.recording_status.as_str() {
        "ready" => json!(signer.sign(&call.id, now)),
        // Only a pending recording needs the stored state: has the carrier announced it yet?
        "pending" if state_of(call).is_some_and(|state| state.recording_source_url.is_some()) => {
            json!(signer.sign(&call.id, now))
        }
        "pending" => json!("pending"),
        _ => Value::Null,
    }
}

fn duration_field(seconds: Option<i32>, call: &call::Model) -> Value {
    match (seconds, call.ended_at) {
        (Some(s), Some(_)) => json!(s.to_string()),
        _ => Value::Null,
    }
}

/// Returns the full transcript object (transcript endpoint and `transcript.ready`).
///
/// An agent call's transcript also carries `call_outcomes`: one value per visible call outcome of
/// the agent's config (absent for other calls, so seed 000's shape is unchanged).
pub fn transcript_object(transcript: &transcript::Model) -> Value {
    let mut object = json!({
        "transcript_id": transcript.transcript_id,
        "summary": transcript.summary,
        "call_outcome": transcript.call_outcome,
        "history": history(transcript),
        "createdAt": iso(transcript.created_at),
        "updatedAt": iso(transcript.updated_at),
    });
    if let Some(outcomes) = transcript.outcomes.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok()) {
        object["call_outcomes"] = outcomes;
    }
    object
}

fn history(transcript: &transcript::Model) -> Value {
    serde_json::from_str(&transcript.history).unwrap_or_else(|_| json!([]))
}

/// Returns the compact `data` object with masked numbers.
pub fn compact(
    call: &call::Model,
    transcript: Option<&transcript::Model>,
    signer: &RecordingUrlSigner,
    now: DateTime<Utc>,
) -> Value {
    let mut data = json!({
        "call_id": call.id,
        "transcript_status": call.transcript_status,
        "customer_number": mask_number(&call.customer_number),
        "agent_number": mask_number(&call.agent_number),
        "duration": duration_field(call.duration_s, call),
        "recording": recording_field(call, signer, now),
        "transcript": match (call.transcript_status.as_str(), transcript) {
            ("ready", Some(t)) => transcript_object(t),
            _ => Value::Null,
        },
    });
    if call.transcript_status == "failed" {
        let error = state_of(call)
            .and_then(|state| state.transcript_error)
            .unwrap_or_else(|| "Transcript processing failed".to_string());
        data["error"] = json!(error);
    }
    data
}

/// Returns the `message` of the transcript endpoint for the call's transcript status.
pub fn transcript_message(transcript_status: &str) -> &'static str {
    match transcript_status {
        "ready" => "Transcript found",
        "failed" => "Transcript processing failed",
        "disabled" => "Transcript disabled for this call",
        _ => "Transcript not available yet",
    }
}

/// Returns the callback event name of a lifecycle event, when `callback_url` receives it.
pub fn callback_event(lifecycle: &Lifecycle) -> Option<&'static str> {
    match lifecycle {
        Lifecycle::Ended { outcome: Outcome::Completed, .. } => Some("call.completed"),
        Lifecycle::Ended { .. } => Some("call.failed"),
        Lifecycle::TranscriptReady => Some("transcript.ready"),
        Lifecycle::TranscriptFailed { .. } => Some("transcript.failed"),
        Lifecycle::TranscriptDisabled => Some("transcript.disabled"),
        Lifecycle::Ringing | Lifecycle::Answered | Lifecycle::Transferred { .. } | Lifecycle::RecordingReady => None,
    }
}

/// Returns the body posted to `callback_url` for a lifecycle event, or `None` when the event is
/// not one seed 000 sends.
pub fn callback_body(
    lifecycle: &Lifecycle,
    call: &call::Model,
    transcript: Option<&transcript::Model>,
    signer: &RecordingUrlSigner,
    now: DateTime<Utc>,
) -> Option<Value> {
    let event = callback_event(lifecycle)?;
    let (status_code, message, error) = match lifecycle {
        Lifecycle::Ended { outcome: Outcome::Completed, .. } => (200, "Call completed", Value::Null),
        Lifecycle::Ended { reason, outcome } => {
            (200, "Call failed", json!(reason.clone().unwrap_or_else(|| outcome.as_str().to_string())))
        }
        Lifecycle::TranscriptReady => (200, "Transcript ready", Value::Null),
        Lifecycle::TranscriptFailed { error } => (500, "Transcript processing failed", json!(error)),
        Lifecycle::TranscriptDisabled => (200, "Transcript disabled", Value::Null),
        Lifecycle::Ringing | Lifecycle::Answered | Lifecycle::Transferred { .. } | Lifecycle::RecordingReady => {
            return None;
        }
    };
    Some(json!({
        "status_code": status_code,
        "message": message,
        "error": error,
        "event": event,
        "data": compact(call, transcript, signer, now),
    }))
}

/// Returns one item of `GET /api/calls/recent` (numbers unmasked: they are the caller's own).
pub fn recent_item(
    call: &call::Model,
    transcript: Option<&transcript::Model>,
    signer: &RecordingUrlSigner,
    now: DateTime<Utc>,
) -> Value {
    let recording = recording_field(call, signer, now);
    json!({
        "call_id": call.id,
        "status": call.status,
        "customer_number": call.customer_number,
        "agent_number": call.agent_number,
        "did": call.did,
        "duration": duration_field(call.duration_s, call),
        "answer_duration": duration_field(call.answer_duration_s, call),
        "call_type": call.call_type,
        "transcript_enabled": call.transcript_enabled,
        "transcript_status": call.transcript_status,
        "recording": recording,
        "recording_url": recording,
        "transcript": match (call.transcript_status.as_str(), transcript) {
            ("ready", Some(t)) => json!({ "summary": t.summary, "call_outcome": t.call_outcome, "history": history(t) }),
            _ => Value::Null,
        },
        "created_at": iso(call.created_at),
        "updated_at": iso(call.updated_at),
    })
}
