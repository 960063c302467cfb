//! The Exotel voice v1 adapter: click-to-call through `Calls/connect` (Exotel rings `From`, the
//! agent, first, then bridges `To`, the customer), status callbacks with per-leg results, and the
//! call details API for reconciliation. Exotel does not sign its callbacks, so the callback URL
//! carries the account's unguessable token; its API is rate-limited (429 with `Retry-After`).

use async_trait::async_trait;
use chrono::Utc;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CarrierUpdate, Leg, LegStatus, StatusAnswer};
use dialplane_actors::ports::{Carrier, CarrierError, PlacedCall, Recording};
use serde_json::{Map, Value};

use super::accounts::ExotelSettings;
use super::client::{self, e164};

/// Maps an Exotel call or leg status to a leg status (`queued` says nothing yet).
fn leg_status(status: &str) -> Option<LegStatus> {
    Some(match status.to_ascii_lowercase().as_str() {
        "ringing" => LegStatus::Ringing,
        "in-progress" | "answered" => LegStatus::Answered,
        "completed" => LegStatus::Completed,
        "busy" => LegStatus::Busy,
        "no-answer" => LegStatus::NoAnswer,
        "failed" => LegStatus::Failed,
        "canceled" | "cancelled" => LegStatus::Canceled,
        _ => return None,
    })
}

/// A status callback, as JSON or as a form (`Legs[0][Status]=…`).
pub fn callback_body(body: &[u8], json: bool) -> Result<Value, String> {
    if json {
        return serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"));
    }
    let mut object = Map::new();
    let mut legs: Vec<Map<String, Value>> = Vec::new();
    for (key, value) in client::form_pairs(body) {
        if let Some(rest) = key.strip_prefix("Legs[")
            && let Some((index, field)) = rest.split_once("][")
            && let Ok(index) = index.parse::<usize>()
            && index < 8
        {
            if legs.len() <= index {
                legs.resize_with(index + 1, Map::new);
            }
            legs[index].insert(field.trim_end_matches(']').to_string(), Value::String(value));
        } else {
            object.insert(key, Value::String(value));
        }
    }
    if !legs.is_empty() {
        object.insert("Legs".to_string(), Value::Array(legs.into_iter().map(Value::Object).collect()));
    }
    Ok(Value::Object(object))
}

fn text(value: &Value, field: &str) -> Option<String> {
    match value.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(value: &Value, field: &str) -> Option<u32> {
    text(value, field).and_then(|t| t.parse::<f64>().ok()).map(|n| n.max(0.0) as u32)
}

/// Returns the call id a callback is about (`CustomField`, which Dialplane sets to it).
pub fn call_reference(callback: &Value) -> Option<String> {
    text(callback, "CustomField")
}

/// Parses a status callback into leg updates. Leg 1 is the agent (`From`), leg 2 the customer.
pub fn updates_of(callback: &Value) -> Result<Vec<CarrierUpdate>, String> {
    let event = text(callback, "EventType").unwrap_or_else(|| "terminal".to_string());
    let status = text(callback, "Status").ok_or("Status is missing")?;
    let at = Utc::now();
    let recording_url = text(callback, "RecordingUrl");
    let conversation = number(callback, "ConversationDuration");
    let legs: Vec<Value> = callback.get("Legs").and_then(Value::as_array).cloned().unwrap_or_default();
    let sequence_base: u64 = if event == "answered" { 1 } else { 10 };
    let mut updates = Vec::new();
    let mut push = |leg, status, duration_s, answer_duration_s, recording_url, offset| {
        updates.push(CarrierUpdate {
            sequence: sequence_base + offset,
            leg,
            status,
            at,
            duration_s,
            answer_duration_s,
            recording_url,
        })
    };
    if legs.is_empty() {
        // Without legs the call's status speaks for the agent, and for the customer once bridged.
        let leg_status = leg_status(&status).ok_or_else(|| format!("unknown Status {status:?}"))?;
        if event == "answered" {
            push(Leg::Agent, LegStatus::Answered, None, None, None, 0);
        } else if leg_status == LegStatus::Completed {
            push(Leg::Agent, LegStatus::Completed, None, None, None, 0);
            push(Leg::Customer, LegStatus::Completed, None, conversation, recording_url, 1);
        } else {
            push(Leg::Agent, leg_status, None, None, recording_url, 0);
        }
        return Ok(updates);
    }
    for (index, leg_value) in legs.iter().take(2).enumerate() {
        let Some(status) = text(leg_value, "Status").and_then(|s| leg_status(&s)) else { continue };
        let leg = if index == 0 { Leg::Agent } else { Leg::Customer };
        let on_call = number(leg_value, "OnCallDuration");
        match leg {
            Leg::Agent => push(leg, status, on_call, None, None, 0),
            Leg::Customer => push(leg, status, None, conversation.or(on_call), recording_url.clone(), 1),
        }
    }
    let answered_without_legs = event == "answered" && !legs.iter().take(2).any(|l| text(l, "Status").is_some());
    if answered_without_legs {
        push(Leg::Agent, LegStatus::Answered, None, None, None, 0);
    }
    Ok(updates)
}

/// The `Carrier` port for one Exotel account.
pub struct ExotelCarrier {
    settings: ExotelSettings,
    http: reqwest::Client,
    /// `{public}/providers/exotel/{carrier_id}/{token}/status`
    status_callback: String,
    /// Whether URLs on private addresses may be fetched (development and tests).
    allow_private: bool,
}

impl ExotelCarrier {
    pub fn new(
        settings: ExotelSettings,
        public_url: &str,
        carrier_id: &str,
        token: &str,
        allow_private: bool,
    ) -> anyhow::Result<Self> {
        Ok(ExotelCarrier {
            settings,
            http: client::http_client(allow_private)?,
            status_callback: format!(
                "{}/providers/exotel/{carrier_id}/{token}/status",
                public_url.trim_end_matches('/')
            ),
            allow_private,
        })
    }

    fn account_url(&self) -> String {
        format!("{}/v1/Accounts/{}", self.settings.api_base, self.settings.account_sid)
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.http.get(url).basic_auth(&self.settings.api_key, Some(&self.settings.api_token))
    }
}

/// Maps an Exotel error answer (`{"RestException": {"Status", "Message", "Code"}}`).
pub fn error_of(status: u16, body: &str) -> CarrierError {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let exception = parsed.as_ref().and_then(|v| v.get("RestException"));
    let message = exception.and_then(|e| text(e, "Message")).unwrap_or_else(|| body.chars().take(200).collect());
    let detail = format!("Exotel answered {status}: {message}");
    match status {
        401 => CarrierError::Refused { reason: "carrier_auth_failed", detail },
        402 => CarrierError::Refused { reason: "carrier_balance", detail },
        403 => CarrierError::Refused { reason: "carrier_account_suspended", detail },
        s if s >= 500 => CarrierError::Unavailable(detail),
        _ => CarrierError::Rejected(detail),
    }
}

async fn ok_or_error(response: reqwest::Response) -> Result<reqwest::Response, CarrierError> {
    client::success_or(response, error_of).await
}

#[async_trait]
impl Carrier for ExotelCarrier {
    fn name(&self) -> &'static str {
        "exotel"
    }

    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError> {
        let did = client::click_to_call_caller_id(call, "Exotel")?;
        let mut form = vec![
            ("From", e164(&call.agent_number)),
            ("To", e164(&call.customer_number)),
            ("CallerId", e164(did)),
            ("TimeOut", self.settings.ring_timeout_s.to_string()),
            ("CustomField", call.id.clone()),
            ("StatusCallback", self.status_callback.clone()),
            ("StatusCallbackEvents[0]", "terminal".to_string()),
            ("StatusCallbackEvents[1]", "answered".to_string()),
            ("StatusCallbackContentType", "application/json".to_string()),
        ];
        if self.settings.record {
            form.push(("Record", "true".to_string()));
        }
        let url = format!("{}/Calls/connect.json", self.account_url());
        let response = client::send("exotel", || {
            let request = self.http.post(&url).basic_auth(&self.settings.api_key, Some(&self.settings.api_token));
            client::with_form(request, &form)
        })
        .await?;
        let response = ok_or_error(response).await?;
        let body: Value = response.json().await.map_err(|e| CarrierError::Protocol(e.to_string()))?;
        let sid = body
            .get("Call")
            .and_then(|c| text(c, "Sid"))
            .ok_or_else(|| CarrierError::Protocol("Exotel's answer has no Call.Sid".to_string()))?;
        Ok(PlacedCall { provider_call_id: sid })
    }

    async fn fetch_recording(&self, _call: &CallRecord, url: &str) -> Result<Recording, CarrierError> {
        // The URL comes from a callback: it must not reach into the internal network (the
        // client's resolver refuses private names; literal addresses are refused here).
        if crate::netguard::check_callback_url(url, self.allow_private).is_err() {
            return Err(CarrierError::Rejected("the recording URL is not a public http(s) URL".to_string()));
        }
        // Exotel serves recordings from its own storage; credentials go only to its API.
        let authenticated = client::same_origin(url, &self.settings.api_base);
        let response =
            client::send("exotel", || if authenticated { self.get(url) } else { self.http.get(url) }).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status.is_server_error() {
            return Err(CarrierError::Unavailable(format!("Exotel answered {status} for the recording")));
        }
        let response = ok_or_error(response).await?;
        client::recording_of(response, "audio/mpeg").await
    }

    async fn fetch_status(
        &self,
        _call: &CallRecord,
        provider_call_id: Option<&str>,
    ) -> Result<StatusAnswer, CarrierError> {
        let Some(sid) = provider_call_id else {
            return Ok(StatusAnswer::Unknown);
        };
        let url = format!("{}/Calls/{sid}.json?details=true", self.account_url());
        let response = client::send("exotel", || self.get(&url)).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(StatusAnswer::NotFound);
        }
        let body: Value =
            ok_or_error(response).await?.json().await.map_err(|e| CarrierError::Protocol(e.to_string()))?;
        let call = body.get("Call").ok_or_else(|| CarrierError::Protocol("no Call in the answer".to_string()))?;
        let details = call.get("Details").cloned().unwrap_or(Value::Null);
        // The details API reports `Leg1Status` / `Leg2Status`; shaped as a terminal callback.
        let mut callback = serde_json::json!({
            "EventType": "terminal",
            "Status": text(call, "Status").unwrap_or_default(),
            "RecordingUrl": text(call, "RecordingUrl"),
            "ConversationDuration": text(&details, "ConversationDuration"),
        });
        let legs: Vec<Value> = ["Leg1Status", "Leg2Status"]
            .iter()
            .filter_map(|field| text(&details, field))
            .map(|status| serde_json::json!({ "Status": status }))
            .collect();
        if !legs.is_empty() {
            callback["Legs"] = Value::Array(legs);
        }
        let Some(status) = text(call, "Status") else {
            return Err(CarrierError::Protocol("no Call.Status in the answer".to_string()));
        };
        if leg_status(&status).is_none() {
            // Queued: Exotel knows the call, nothing has happened yet.
            return Ok(StatusAnswer::Found { provider_call_id: Some(sid.to_string()), updates: Vec::new() });
        }
        let mut updates = updates_of(&callback).map_err(CarrierError::Protocol)?;
        for update in &mut updates {
            update.sequence += 10_000;
        }
        Ok(StatusAnswer::Found { provider_call_id: Some(sid.to_string()), updates })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_callbacks_report_both_legs() {
        let body = br#"{"CallSid":"80bfbec2d78bbbf10fb851f4fa165211","EventType":"terminal","DateUpdated":"2024-01-15 14:30:45","Status":"completed","ConversationDuration":320,"CustomField":"call_x","RecordingUrl":"https://example.com/abc123.mp3","Legs":[{"OnCallDuration":41,"Status":"completed","AnsweredBy":"NA"},{"OnCallDuration":"32","Status":"completed","AnsweredBy":"HUMAN"}]}"#;
        let callback = callback_body(body, true).unwrap();
        assert_eq!(call_reference(&callback).as_deref(), Some("call_x"));
        let updates = updates_of(&callback).unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(
            (updates[0].leg, updates[0].status, updates[0].duration_s),
            (Leg::Agent, LegStatus::Completed, Some(41))
        );
        assert_eq!((updates[1].leg, updates[1].answer_duration_s), (Leg::Customer, Some(320)));
        assert_eq!(updates[1].recording_url.as_deref(), Some("https://example.com/abc123.mp3"));
    }

    #[test]
    fn form_callbacks_are_read_like_json_ones() {
        let body = b"CallSid=abc&EventType=terminal&Status=busy&CustomField=call_y&Legs%5B0%5D%5BStatus%5D=completed&Legs%5B1%5D%5BStatus%5D=busy";
        let callback = callback_body(body, false).unwrap();
        let updates = updates_of(&callback).unwrap();
        assert_eq!(updates[1].status, LegStatus::Busy);
        assert_eq!(updates[0].status, LegStatus::Completed);
    }

    #[test]
    fn error_bodies_name_the_reason() {
        let body = r#"{"RestException": {"Status": 401, "Message": "Authentication failed", "Code": "UNAUTHORIZED"}}"#;
        assert_eq!(error_of(401, body).reason_code(), "carrier_auth_failed");
        assert!(error_of(502, "").is_retryable());
    }
}
