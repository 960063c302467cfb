//! The native lifecycle events (DESIGN §4): their names, the filters a subscription may ask for
//! (exact names, `prefix.*`, `*`, and seed 003's `call.started` for `call.answered`), and the
//! `{id, type, created_at, data}` envelope every subscriber receives.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::call_view;
use crate::ids::mask_number;
use crate::store::entities::call;

/// Every event type a subscription can filter on.
pub const EVENT_TYPES: &[&str] = &[
    "call.queued",
    "call.ringing",
    "call.answered",
    "call.transferred",
    "call.ended",
    "recording.ready",
    "transcript.ready",
    "transcript.failed",
    "transcript.disabled",
    "campaign.launched",
    "campaign.paused",
    "campaign.resumed",
    "campaign.stopped",
    "campaign.completed",
    "webhook.disabled",
];

/// Names other platforms use for one of ours: a subscription asking for the alias receives the
/// event under the alias.
const ALIASES: &[(&str, &str)] = &[("call.started", "call.answered")];

/// The type of the event `POST /v1/webhooks/{id}/test` sends.
pub const TEST_EVENT: &str = "webhook.test";

/// Checks one filter pattern; the error names what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    if pattern == "*" || EVENT_TYPES.contains(&pattern) || ALIASES.iter().any(|(alias, _)| *alias == pattern) {
        return Ok(());
    }
    if let Some(prefix) = pattern.strip_suffix(".*")
        && EVENT_TYPES.iter().any(|t| t.split('.').next() == Some(prefix))
    {
        return Ok(());
    }
    Err(format!(
        "unknown event type {pattern:?}; expected one of {}, a prefix such as call.*, or *",
        EVENT_TYPES.join(", ")
    ))
}

fn matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix(".*")
            .is_some_and(|prefix| event_type.strip_prefix(prefix).is_some_and(|r| r.starts_with('.')))
}

/// Returns the name under which a subscription with `patterns` receives `event_type`, or `None`
/// when it does not want it.
pub fn delivered_name(patterns: &[String], event_type: &str) -> Option<&'static str> {
    let canonical = EVENT_TYPES.iter().find(|t| **t == event_type)?;
    if patterns.iter().any(|p| matches(p, event_type)) {
        return Some(canonical);
    }
    ALIASES.iter().find(|(alias, target)| *target == event_type && patterns.iter().any(|p| p == alias)).map(|(a, _)| *a)
}

/// Returns the event envelope as the exact bytes that are stored, signed and sent.
pub fn envelope(event_id: &str, event_type: &str, created_at: DateTime<Utc>, data: &Value) -> String {
    json!({ "id": event_id, "type": event_type, "created_at": call_view::iso(created_at), "data": data }).to_string()
}

/// Returns the `data` of a call event: the call as it is after the change, with its per-call
/// `sequence` (1 for `call.queued`, then one more per event) so a receiver can restore the order.
pub fn call_data(row: &call::Model, sequence: i32, extra: Option<(&str, Value)>) -> Value {
    let mut data = json!({
        "call_id": row.id,
        "sequence": sequence,
        "call_type": row.call_type,
        "status": row.status,
        "reason": row.reason,
        "customer_number": mask_number(&row.customer_number),
        "agent_number": mask_number(&row.agent_number),
        "carrier": row.carrier,
        "duration": row.duration_s,
        "recording_status": row.recording_status,
        "transcript_status": row.transcript_status,
        "created_at": call_view::iso(row.created_at),
        "ended_at": row.ended_at.map(call_view::iso),
    });
    if let Some((key, value)) = extra {
        data[key] = value;
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn wildcards_match_whole_segments() {
        assert_eq!(delivered_name(&patterns(&["call.*"]), "call.ended"), Some("call.ended"));
        assert_eq!(delivered_name(&patterns(&["call.*"]), "recording.ready"), None);
        assert_eq!(delivered_name(&patterns(&["*"]), "transcript.failed"), Some("transcript.failed"));
        assert_eq!(delivered_name(&patterns(&["transcript.ready"]), "transcript.failed"), None);
        assert_eq!(delivered_name(&patterns(&["call.*"]), "call.unknown"), None, "only known events go out");
    }

    #[test]
    fn call_started_receives_call_answered_under_its_own_name() {
        assert_eq!(delivered_name(&patterns(&["call.started"]), "call.answered"), Some("call.started"));
        assert_eq!(delivered_name(&patterns(&["call.started", "call.*"]), "call.answered"), Some("call.answered"));
        assert_eq!(delivered_name(&patterns(&["call.started"]), "call.ended"), None);
    }

    #[test]
    fn patterns_are_checked() {
        for ok in ["*", "call.*", "campaign.*", "call.ended", "call.started", "webhook.disabled"] {
            assert!(check_pattern(ok).is_ok(), "{ok}");
        }
        for bad in ["", "call", "calls.*", "call.ende", "*.ended", "call.**"] {
            assert!(check_pattern(bad).is_err(), "{bad}");
        }
    }
}
