//! The LiveKit SIP adapter for AI-agent calls, and LiveKit server webhook verification.
//!
//! A call becomes a room named for it: `CreateSIPParticipant` dials the customer into the room
//! with the agent's rendered config as participant metadata, for the voice agent that joins it.
//! LiveKit's webhooks (`room_*`, `participant_*`) come back signed with a JWT carrying the
//! body's SHA-256 and are mapped onto the customer leg.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use dialplane_actors::fsm::{CarrierUpdate, Leg, LegStatus, StatusAnswer};
use dialplane_actors::ports::{Carrier, CarrierError, PlacedCall, Recording};
use dialplane_actors::{CallRecord, CallType};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::accounts::LivekitSettings;
use super::client::{self, e164};

/// How long the tokens Dialplane signs for LiveKit's API live.
const TOKEN_TTL: Duration = Duration::from_secs(600);

/// Claims of a LiveKit access token.
#[derive(Debug, Serialize, Deserialize)]
struct ApiClaims {
    iss: String,
    nbf: i64,
    exp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sip: Option<Value>,
}

/// Claims LiveKit puts on a webhook.
#[derive(Debug, Deserialize)]
struct WebhookClaims {
    sha256: Option<String>,
}

/// Returns an access token for LiveKit's server API with the given grants.
pub fn api_token(
    api_key: &str,
    api_secret: &str,
    video: Option<Value>,
    sip: Option<Value>,
) -> Result<String, CarrierError> {
    let now = Utc::now().timestamp();
    let claims = ApiClaims { iss: api_key.to_string(), nbf: now, exp: now + TOKEN_TTL.as_secs() as i64, video, sip };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(api_secret.as_bytes()))
        .map_err(|e| CarrierError::Protocol(format!("could not sign a LiveKit token: {e}")))
}

/// Why a webhook was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("missing authorization")]
    Missing,
    #[error("authorization is not a LiveKit token")]
    Malformed,
    #[error("no LiveKit carrier has this API key")]
    UnknownKey,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("body checksum mismatch")]
    Checksum,
}

/// Returns the API key (`iss`) a webhook token claims to be from, before it is verified.
pub fn claimed_key(authorization: Option<&str>) -> Result<String, WebhookError> {
    let token = bare_token(authorization)?;
    let payload = token.split('.').nth(1).ok_or(WebhookError::Malformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).map_err(|_| WebhookError::Malformed)?;
    let claims: Value = serde_json::from_slice(&bytes).map_err(|_| WebhookError::Malformed)?;
    claims.get("iss").and_then(Value::as_str).map(str::to_string).ok_or(WebhookError::Malformed)
}

fn bare_token(authorization: Option<&str>) -> Result<&str, WebhookError> {
    let raw = authorization.map(str::trim).filter(|a| !a.is_empty()).ok_or(WebhookError::Missing)?;
    Ok(raw.strip_prefix("Bearer ").unwrap_or(raw).trim())
}

/// Verifies a webhook: HS256 under the key's secret, issued by that key, in date (60 s leeway),
/// and carrying the SHA-256 of exactly this body. `now` is unix seconds.
pub fn verify_webhook(
    authorization: Option<&str>,
    body: &[u8],
    api_key: &str,
    api_secret: &str,
    now: i64,
) -> Result<(), WebhookError> {
    let token = bare_token(authorization)?;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.leeway = 0;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[api_key]);
    validation.required_spec_claims = ["iss".to_string(), "exp".to_string()].into_iter().collect();
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(api_secret.as_bytes()), &validation)
        .map_err(|e| WebhookError::Invalid(e.to_string()))?;
    // Dates are checked here against the caller's clock, so tests can freeze it.
    let leeway = 60;
    let exp = data.claims.get("exp").and_then(Value::as_i64).ok_or(WebhookError::Invalid("no exp".to_string()))?;
    if now > exp.saturating_add(leeway) {
        return Err(WebhookError::Invalid("token expired".to_string()));
    }
    if let Some(nbf) = data.claims.get("nbf").and_then(Value::as_i64)
        && now.saturating_add(leeway) < nbf
    {
        return Err(WebhookError::Invalid("token not yet valid".to_string()));
    }
    let claims: WebhookClaims =
        serde_json::from_value(data.claims).map_err(|e| WebhookError::Invalid(e.to_string()))?;
    let expected = STANDARD.encode(Sha256::digest(body));
    let claimed = claims.sha256.ok_or(WebhookError::Checksum)?;
    if crate::signing::constant_time_eq(claimed.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(WebhookError::Checksum)
    }
}

/// What a webhook event means for a call (rooms are named for their calls).
#[derive(Debug, PartialEq)]
pub enum RoomSignal {
    RoomStarted {
        room: String,
    },
    RoomFinished {
        room: String,
    },
    /// A SIP participant's news about the customer leg.
    Customer {
        room: String,
        status: LegStatus,
    },
    /// Nothing Dialplane acts on.
    Other,
}

fn int64(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The event id (`EV_…`) and creation time of a webhook.
pub fn event_identity(event: &Value) -> (Option<String>, Option<i64>) {
    (event.get("id").and_then(Value::as_str).map(str::to_string), int64(event.get("createdAt")))
}

/// Reads a protojson `WebhookEvent` (camelCase, int64 as strings, defaults omitted).
pub fn signal_of(event: &Value) -> RoomSignal {
    let room = event.pointer("/room/name").and_then(Value::as_str).unwrap_or_default().to_string();
    let participant = event.get("participant");
    let is_sip = participant.and_then(|p| p.get("kind")).and_then(Value::as_str) == Some("SIP");
    match event.get("event").and_then(Value::as_str).unwrap_or_default() {
        "room_started" if !room.is_empty() => RoomSignal::RoomStarted { room },
        "room_finished" if !room.is_empty() => RoomSignal::RoomFinished { room },
        "participant_joined" if is_sip && !room.is_empty() => {
            let call_status = participant.and_then(|p| p.pointer("/attributes/sip.callStatus")).and_then(Value::as_str);
            let status = match call_status {
                Some("dialing") | Some("ringing") => LegStatus::Ringing,
                _ => LegStatus::Answered,
            };
            RoomSignal::Customer { room, status }
        }
        "participant_left" | "participant_connection_aborted" if is_sip && !room.is_empty() => {
            let reason = participant.and_then(|p| p.get("disconnectReason")).and_then(Value::as_str);
            let status = match reason {
                Some("USER_UNAVAILABLE") => LegStatus::NoAnswer,
                Some("USER_REJECTED") => LegStatus::Busy,
                Some("SIP_TRUNK_FAILURE" | "JOIN_FAILURE" | "MEDIA_FAILURE" | "CONNECTION_TIMEOUT") => {
                    LegStatus::Failed
                }
                _ => LegStatus::Completed,
            };
            RoomSignal::Customer { room, status }
        }
        _ => RoomSignal::Other,
    }
}

/// The `Carrier` port for one LiveKit deployment's SIP trunk.
pub struct LivekitCarrier {
    settings: LivekitSettings,
    http: reqwest::Client,
}

impl LivekitCarrier {
    pub fn new(settings: LivekitSettings, allow_private: bool) -> anyhow::Result<Self> {
        Ok(LivekitCarrier { settings, http: client::http_client(allow_private)? })
    }

    /// Calls a Twirp method with a token carrying `video` / `sip` grants.
    async fn twirp(
        &self,
        method: &str,
        body: Value,
        video: Option<Value>,
        sip: Option<Value>,
    ) -> Result<Value, CarrierError> {
        let token = api_token(&self.settings.api_key, &self.settings.api_secret, video, sip)?;
        let url = format!("{}/twirp/{method}", self.settings.url);
        let response = client::send("livekit", || self.http.post(&url).bearer_auth(&token).json(&body)).await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(answer);
        }
        let code = answer.get("code").and_then(Value::as_str).unwrap_or_default().to_string();
        let detail = format!("LiveKit {code}: {}", answer.get("msg").and_then(Value::as_str).unwrap_or_default());
        Err(match code.as_str() {
            "unavailable" | "internal" | "deadline_exceeded" | "resource_exhausted" => {
                CarrierError::Unavailable(detail)
            }
            "not_found" => CarrierError::Refused { reason: "carrier_not_found", detail },
            "unauthenticated" | "permission_denied" => CarrierError::Refused { reason: "carrier_auth_failed", detail },
            _ if status.is_server_error() => CarrierError::Unavailable(detail),
            _ => CarrierError::Rejected(detail),
        })
    }

    fn room_admin(room: &str) -> Option<Value> {
        Some(json!({ "roomCreate": true, "roomAdmin": true, "roomList": true, "room": room }))
    }
}

/// The identity of the customer's SIP participant in a call's room.
pub fn participant_identity(call_id: &str) -> String {
    format!("sip_{call_id}")
}

#[async_trait]
impl Carrier for LivekitCarrier {
    fn name(&self) -> &'static str {
        "livekit"
    }

    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError> {
        if call.call_type != CallType::AgentTelephony {
            return Err(CarrierError::Refused {
                reason: "unsupported_call_type",
                detail: "a LiveKit carrier places AI-agent calls only".to_string(),
            });
        }
        let mut request = json!({
            "sip_trunk_id": self.settings.sip_trunk_id,
            "sip_call_to": e164(&call.customer_number),
            "room_name": call.id,
            "participant_identity": participant_identity(&call.id),
            "participant_name": "customer",
            "participant_metadata": call.agent_config.to_string(),
            "ringing_timeout": format!("{}s", self.settings.ring_timeout_s),
            "wait_until_answered": false,
        });
        if let Some(did) = &call.did {
            request["sip_number"] = Value::String(e164(did));
        }
        let answer = self
            .twirp(
                "livekit.SIP/CreateSIPParticipant",
                request,
                Self::room_admin(&call.id),
                Some(json!({ "call": true })),
            )
            .await?;
        let id = answer
            .get("sip_call_id")
            .or_else(|| answer.get("participant_id"))
            .and_then(Value::as_str)
            .ok_or_else(|| CarrierError::Protocol("LiveKit's answer has no sip_call_id".to_string()))?;
        Ok(PlacedCall { provider_call_id: id.to_string() })
    }

    async fn fetch_recording(&self, _call: &CallRecord, _url: &str) -> Result<Recording, CarrierError> {
        Err(CarrierError::Rejected("LiveKit recordings (egress) are not fetched yet".to_string()))
    }

    async fn fetch_status(
        &self,
        call: &CallRecord,
        provider_call_id: Option<&str>,
    ) -> Result<StatusAnswer, CarrierError> {
        let answer = match self
            .twirp("livekit.RoomService/ListParticipants", json!({ "room": call.id }), Self::room_admin(&call.id), None)
            .await
        {
            Ok(answer) => answer,
            Err(CarrierError::Refused { reason: "carrier_not_found", .. }) => return Ok(StatusAnswer::NotFound),
            Err(e) => return Err(e),
        };
        let identity = participant_identity(&call.id);
        let participant = answer
            .get("participants")
            .and_then(Value::as_array)
            .and_then(|ps| ps.iter().find(|p| p.get("identity").and_then(Value::as_str) == Some(identity.as_str())));
        // A customer who is gone ends their leg as canceled: the state machine still ends the
        // call completed if it saw them answer, and never takes a lost call for an answered one.
        let status = match participant {
            Some(p) => match p.pointer("/attributes/sip.callStatus").and_then(Value::as_str) {
                Some("dialing" | "ringing") => LegStatus::Ringing,
                Some("hangup") => LegStatus::Canceled,
                _ => LegStatus::Answered,
            },
            None => LegStatus::Canceled,
        };
        let update = CarrierUpdate {
            sequence: u64::MAX / 2,
            leg: Leg::Customer,
            status,
            at: Utc::now(),
            duration_s: None,
            answer_duration_s: None,
            recording_url: None,
        };
        Ok(StatusAnswer::Found { provider_call_id: provider_call_id.map(str::to_string), updates: vec![update] })
    }

    async fn hang_up(&self, call: &CallRecord, _provider_call_id: &str, _answered: bool) -> Result<(), CarrierError> {
        self.twirp("livekit.RoomService/DeleteRoom", json!({ "room": call.id }), Self::room_admin(&call.id), None)
            .await
            .map(|_| ())
    }

    async fn transfer(&self, call: &CallRecord, _provider_call_id: &str, to: &str) -> Result<(), CarrierError> {
        let request = json!({
            "participant_identity": participant_identity(&call.id),
            "room_name": call.id,
            "transfer_to": format!("tel:{}", e164(to)),
        });
        self.twirp(
            "livekit.SIP/TransferSIPParticipant",
            request,
            Self::room_admin(&call.id),
            Some(json!({ "call": true })),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PROTOCOLS.md §4.1's generated vector (its token has expired, so the clock is frozen).
    #[test]
    fn webhooks_verify_against_the_generated_vector() {
        let body = br#"{"event":"room_finished","room":{"sid":"RM_hycBMAjmt6Ub","name":"call-123","emptyTimeout":300,"creationTime":"1700000000"},"id":"EV_3Nn2Y2rZ5aqv","createdAt":"1700000100"}"#;
        let header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUElrZXkxMjMiLCJpYXQiOjE3MDAwMDAxMDAsIm5iZiI6MTcwMDAwMDEwMCwiZXhwIjoxNzAwMDAwNDAwLCJzaGEyNTYiOiJpMDFvWURXN3RQSXkyQkljZ0FwZTAvSGNBUVBxMDBXWlg4ZE1mY08ybXNVPSJ9.6Pass47jdYp78apkSWvCVQ8CBpUlwzQ0b7WJi2hxBQY";
        let secret = "secret-secret-secret-secret-1234";
        assert_eq!(STANDARD.encode(Sha256::digest(body)), "i01oYDW7tPIy2BIcgApe0/HcAQPq00WZX8dMfcO2msU=");
        assert_eq!(claimed_key(Some(header)).unwrap(), "APIkey123");
        let at = 1_700_000_200;
        assert_eq!(verify_webhook(Some(header), body, "APIkey123", secret, at), Ok(()));
        assert_eq!(verify_webhook(Some(&format!("Bearer {header}")), body, "APIkey123", secret, at), Ok(()));
        assert_eq!(verify_webhook(Some(header), b"{}", "APIkey123", secret, at), Err(WebhookError::Checksum));
        assert!(matches!(verify_webhook(Some(header), body, "APIkey123", "wrong", at), Err(WebhookError::Invalid(_))));
        assert!(matches!(verify_webhook(Some(header), body, "other", secret, at), Err(WebhookError::Invalid(_))));
        assert!(matches!(
            verify_webhook(Some(header), body, "APIkey123", secret, 1_700_000_400 + 61),
            Err(WebhookError::Invalid(_))
        ));
        assert_eq!(verify_webhook(None, body, "APIkey123", secret, at), Err(WebhookError::Missing));
        assert_eq!(
            signal_of(&serde_json::from_slice(body).unwrap()),
            RoomSignal::RoomFinished { room: "call-123".into() }
        );
    }

    #[test]
    fn webhook_tokens_without_an_expiry_are_refused() {
        let body = b"{}";
        let claims = json!({"iss": "key", "sha256": STANDARD.encode(Sha256::digest(body))});
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(b"secret"))
            .unwrap();
        assert!(matches!(verify_webhook(Some(&token), body, "key", "secret", 0), Err(WebhookError::Invalid(_))));
        let far =
            json!({"iss": "key", "exp": i64::MAX, "nbf": i64::MAX, "sha256": STANDARD.encode(Sha256::digest(body))});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &far, &EncodingKey::from_secret(b"secret")).unwrap();
        assert!(matches!(verify_webhook(Some(&token), body, "key", "secret", 0), Err(WebhookError::Invalid(_))));
    }

    #[test]
    fn sip_participants_speak_for_the_customer() {
        let left = json!({"event": "participant_left", "room": {"name": "call_a"},
            "participant": {"kind": "SIP", "disconnectReason": "USER_REJECTED"}});
        assert_eq!(signal_of(&left), RoomSignal::Customer { room: "call_a".into(), status: LegStatus::Busy });
        let joined = json!({"event": "participant_joined", "room": {"name": "call_a"},
            "participant": {"kind": "SIP", "attributes": {"sip.callStatus": "active"}}});
        assert_eq!(signal_of(&joined), RoomSignal::Customer { room: "call_a".into(), status: LegStatus::Answered });
        let agent =
            json!({"event": "participant_joined", "room": {"name": "call_a"}, "participant": {"kind": "AGENT"}});
        assert_eq!(signal_of(&agent), RoomSignal::Other);
    }

    #[test]
    fn api_tokens_carry_the_grants() {
        let token = api_token("key", "secret", None, Some(json!({"call": true}))).unwrap();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&["key"]);
        let data = jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(b"secret"), &validation).unwrap();
        assert_eq!(data.claims["sip"]["call"], true);
    }
}
