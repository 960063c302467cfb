//! The sandbox carrier adapter: places calls by POSTing to the sandbox network's carrier API
//! ([`super::sandbox_network`]), fetches recordings over HTTP, and verifies and parses the status
//! callbacks the sandbox posts to `/providers/sandbox/status`.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CarrierUpdate, Leg, LegStatus, StatusAnswer};
use dialplane_actors::ports::{Carrier, CarrierError, PlacedCall, Recording};
use serde::{Deserialize, Serialize};

use super::sandbox_network::StatusReport;
use crate::signing;

/// Header carrying the hex HMAC-SHA256 of a sandbox callback body.
pub const SIGNATURE_HEADER: &str = "x-sandbox-signature";

/// What Dialplane asks the sandbox carrier API to do.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlaceCallRequest {
    /// Dialplane's call id, echoed in every callback.
    pub reference: String,
    /// `click_to_call` (agent leg first) or `agent` (customer leg only).
    pub kind: String,
    pub from: Option<String>,
    pub agent: String,
    pub to: String,
    /// Where status callbacks go.
    pub status_callback: String,
}

/// The sandbox carrier API's answer to a placed call.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlaceCallResponse {
    pub sid: String,
    pub status: String,
}

/// A status callback as the sandbox posts it.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusCallback {
    pub sid: String,
    pub reference: String,
    pub sequence: u64,
    pub leg: String,
    pub status: String,
    pub timestamp: DateTime<Utc>,
    pub duration: Option<u32>,
    pub answer_duration: Option<u32>,
    pub recording_url: Option<String>,
}

/// Why a callback was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallbackError {
    #[error("missing or invalid signature")]
    BadSignature,
    #[error("malformed callback: {0}")]
    Malformed(String),
}

/// Verifies and parses a status callback into the callback and the update it carries.
pub fn parse_status_callback(
    key: &[u8],
    body: &[u8],
    signature: Option<&str>,
) -> Result<(StatusCallback, CarrierUpdate), CallbackError> {
    let signature = signature.and_then(|s| hex::decode(s.trim()).ok()).ok_or(CallbackError::BadSignature)?;
    if !signing::verify_hmac_sha256(key, body, &signature) {
        return Err(CallbackError::BadSignature);
    }
    let callback: StatusCallback = serde_json::from_slice(body).map_err(|e| CallbackError::Malformed(e.to_string()))?;
    let update = to_update(&callback)?;
    Ok((callback, update))
}

/// Returns the state machine's view of a sandbox status report.
pub fn to_update(callback: &StatusCallback) -> Result<CarrierUpdate, CallbackError> {
    let leg = match callback.leg.as_str() {
        "agent" => Leg::Agent,
        "customer" => Leg::Customer,
        other => return Err(CallbackError::Malformed(format!("unknown leg {other:?}"))),
    };
    let status = match callback.status.as_str() {
        "ringing" => LegStatus::Ringing,
        "answered" | "in-progress" => LegStatus::Answered,
        "completed" => LegStatus::Completed,
        "busy" => LegStatus::Busy,
        "no-answer" => LegStatus::NoAnswer,
        "failed" => LegStatus::Failed,
        "canceled" => LegStatus::Canceled,
        other => return Err(CallbackError::Malformed(format!("unknown status {other:?}"))),
    };
    Ok(CarrierUpdate {
        sequence: callback.sequence,
        leg,
        status,
        at: callback.timestamp,
        duration_s: callback.duration,
        answer_duration_s: callback.answer_duration,
        recording_url: callback.recording_url.clone(),
    })
}

/// The `Carrier` port for the sandbox.
pub struct SandboxCarrier {
    http: reqwest::Client,
    /// Base URL of the sandbox carrier API (this server's public URL).
    api_base: String,
    /// Where calls are placed, parsed once rather than per call.
    calls_url: reqwest::Url,
    /// Bearer key of the sandbox carrier API.
    api_key: String,
    /// Where the sandbox posts status callbacks.
    status_callback: String,
}

impl SandboxCarrier {
    /// Builds the adapter for the sandbox network served under `network_url` (this server's or
    /// another's), which posts its callbacks to this server at `public_url`.
    pub fn new(network_url: &str, public_url: &str, api_key: String) -> anyhow::Result<Self> {
        let http = crate::outbound::client_builder().timeout(Duration::from_secs(15)).build()?;
        let api_base = format!("{}/sandbox/v1", network_url.trim_end_matches('/'));
        Ok(SandboxCarrier {
            http,
            calls_url: reqwest::Url::parse(&format!("{api_base}/calls"))?,
            api_base,
            api_key,
            status_callback: format!("{}/providers/sandbox/status", public_url.trim_end_matches('/')),
        })
    }
}

#[async_trait]
impl Carrier for SandboxCarrier {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError> {
        let request = PlaceCallRequest {
            reference: call.id.clone(),
            kind: match call.call_type {
                dialplane_actors::CallType::ClickToCall => "click_to_call",
                dialplane_actors::CallType::AgentTelephony => "agent",
            }
            .to_string(),
            from: call.did.clone(),
            agent: call.agent_number.clone(),
            to: call.customer_number.clone(),
            status_callback: self.status_callback.clone(),
        };
        let response = self
            .http
            .post(self.calls_url.clone())
            .bearer_auth(&self.api_key)
            .json(&request)
            .send()
            .await
            .map_err(|e| CarrierError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(CarrierError::Unavailable(format!("sandbox answered {status}")));
        }
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(CarrierError::Rejected(format!("sandbox answered {status}: {body}")));
        }
        let placed: PlaceCallResponse = response.json().await.map_err(|e| CarrierError::Protocol(e.to_string()))?;
        Ok(PlacedCall { provider_call_id: placed.sid })
    }

    async fn fetch_recording(&self, _call: &CallRecord, url: &str) -> Result<Recording, CarrierError> {
        let response = self
            .http
            .get(url)
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| CarrierError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 404 {
            // A recording may be announced moments before it can be fetched.
            return Err(CarrierError::Unavailable(format!("sandbox answered {status}")));
        }
        if !status.is_success() {
            return Err(CarrierError::Rejected(format!("sandbox answered {status}")));
        }
        super::client::recording_of(response, "audio/wav").await
    }

    async fn fetch_status(
        &self,
        call: &CallRecord,
        provider_call_id: Option<&str>,
    ) -> Result<StatusAnswer, CarrierError> {
        let lookup = provider_call_id.unwrap_or(&call.id);
        let response = self
            .http
            .get(format!("{}/calls/{lookup}", self.api_base))
            .bearer_auth(&self.api_key)
            .send()
            .await
            .map_err(|e| CarrierError::Unavailable(e.without_url().to_string()))?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Ok(StatusAnswer::NotFound);
        }
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(CarrierError::Unavailable(format!("sandbox answered {status}")));
        }
        if !status.is_success() {
            return Err(CarrierError::Rejected(format!("sandbox answered {status}")));
        }
        let report: StatusReport = response.json().await.map_err(|e| CarrierError::Protocol(e.to_string()))?;
        if report.reference != call.id {
            return Err(CarrierError::Protocol("the sandbox answered about another call".to_string()));
        }
        let updates = report
            .updates
            .iter()
            .map(to_update)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CarrierError::Protocol(e.to_string()))?;
        Ok(StatusAnswer::Found { provider_call_id: Some(report.sid), updates })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(key: &[u8], body: &str) -> String {
        hex::encode(signing::hmac_sha256(key, body.as_bytes()))
    }

    #[test]
    fn callbacks_must_carry_a_valid_signature() {
        let body = r#"{"sid":"SB1","reference":"call_x","sequence":1,"leg":"agent","status":"ringing","timestamp":"2026-01-01T00:00:00Z","duration":null,"answer_duration":null,"recording_url":null}"#;
        let (callback, update) = parse_status_callback(b"k", body.as_bytes(), Some(&signed(b"k", body))).unwrap();
        assert_eq!(callback.reference, "call_x");
        assert_eq!(update.leg, Leg::Agent);
        assert_eq!(update.status, LegStatus::Ringing);
        assert_eq!(
            parse_status_callback(b"k", body.as_bytes(), Some(&signed(b"other", body))).unwrap_err(),
            CallbackError::BadSignature
        );
        assert_eq!(parse_status_callback(b"k", body.as_bytes(), None).unwrap_err(), CallbackError::BadSignature);
        let odd = body.replace("ringing", "exploded");
        assert!(matches!(
            parse_status_callback(b"k", odd.as_bytes(), Some(&signed(b"k", &odd))),
            Err(CallbackError::Malformed(_))
        ));
    }
}
