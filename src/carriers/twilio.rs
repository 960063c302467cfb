//! The Twilio Programmable Voice adapter (`/2010-04-01` REST API, form-encoded, Basic auth).
//!
//! Click-to-call rings the agent with a `Calls.json` create whose TwiML `<Dial>`s the customer;
//! the parent call is the agent leg and the dialled child the customer leg, each with its own
//! status callback URL. Callbacks are verified with `X-Twilio-Signature` (HMAC-SHA1 over the URL
//! and the sorted parameters) and mapped onto the call state machine's leg updates.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CarrierUpdate, Event, Leg, LegStatus, StatusAnswer};
use dialplane_actors::ports::{Carrier, CarrierError, PlacedCall, Recording};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use super::accounts::TwilioSettings;
use super::client::{self, e164, param};

/// The header Twilio signs its webhooks with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// Returns `X-Twilio-Signature` for a request to `url` with form `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut data = url.to_string();
    for name in names {
        let mut values: Vec<&str> = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect();
        values.sort_unstable();
        values.dedup();
        for value in values {
            data.push_str(name);
            data.push_str(value);
        }
    }
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("hmac takes any key length");
    mac.update(data.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Returns true when `header` signs the request, trying the URL as given, without its port and
/// with the scheme's default port (load balancers change it), in constant time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], header: Option<&str>) -> bool {
    let Some(header) = header.and_then(|h| STANDARD.decode(h.trim()).ok()) else {
        return false;
    };
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    let mut candidates = vec![url.to_string()];
    let mut without_port = parsed.clone();
    if without_port.set_port(None).is_ok() {
        candidates.push(without_port.to_string());
    }
    if parsed.port().is_none()
        && let Some(port) = parsed.port_or_known_default()
    {
        // `Url` drops a default port it is given, so the host is spliced by hand.
        let host = parsed.host_str().unwrap_or_default();
        candidates.push(url.replacen(&format!("://{host}"), &format!("://{host}:{port}"), 1));
    }
    candidates.iter().any(|candidate| {
        let expected = STANDARD.decode(signature(auth_token, candidate, params)).unwrap_or_default();
        crate::signing::constant_time_eq(&expected, &header)
    })
}

/// Maps Twilio's `CallStatus` to a leg status (`queued` / `initiated` say nothing yet).
fn leg_status(status: &str) -> Result<Option<LegStatus>, String> {
    Ok(Some(match status {
        "queued" | "initiated" => return Ok(None),
        "ringing" => LegStatus::Ringing,
        "in-progress" | "answered" => LegStatus::Answered,
        "completed" => LegStatus::Completed,
        "busy" => LegStatus::Busy,
        "no-answer" => LegStatus::NoAnswer,
        "failed" => LegStatus::Failed,
        "canceled" => LegStatus::Canceled,
        other => return Err(format!("unknown CallStatus {other:?}")),
    }))
}

/// Parses a status callback of one leg into the update it carries (`None` for `queued` /
/// `initiated`, which move nothing).
pub fn status_update(pairs: &[(String, String)], leg: Leg) -> Result<Option<CarrierUpdate>, String> {
    let status = param(pairs, "CallStatus").ok_or("CallStatus is missing")?;
    let Some(status) = leg_status(status)? else {
        return Ok(None);
    };
    let at = param(pairs, "Timestamp")
        .and_then(|t| chrono::DateTime::parse_from_rfc2822(t).ok())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    let sequence = param(pairs, "SequenceNumber").and_then(|s| s.parse().ok()).unwrap_or(0);
    let duration = param(pairs, "CallDuration").and_then(|d| d.parse().ok());
    Ok(Some(CarrierUpdate {
        sequence,
        leg,
        status,
        at,
        duration_s: if leg == Leg::Agent { duration } else { None },
        answer_duration_s: if leg == Leg::Customer { duration } else { None },
        recording_url: param(pairs, "RecordingUrl").map(str::to_string),
    }))
}

/// Parses a recording status callback into the event it means, if any.
pub fn recording_event(pairs: &[(String, String)]) -> Result<Option<Event>, String> {
    let at = Utc::now();
    match param(pairs, "RecordingStatus").ok_or("RecordingStatus is missing")? {
        "completed" => {
            let url = param(pairs, "RecordingUrl").ok_or("RecordingUrl is missing")?;
            Ok(Some(Event::RecordingAvailable { url: url.to_string(), at }))
        }
        "absent" | "failed" => {
            let code = param(pairs, "ErrorCode").unwrap_or("unknown");
            Ok(Some(Event::RecordingFailed { reason: format!("twilio recording {code}"), at }))
        }
        _ => Ok(None),
    }
}

/// A Twilio error body: the 2010 API's legacy `{code, message, more_info, status}`, or RFC 9457
/// Problem Details (`type`, `title`, `detail`, with `code`).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
    title: Option<String>,
    detail: Option<String>,
}

/// Maps a Twilio error answer to a carrier error with a clear reason.
pub fn error_of(status: u16, body: &str) -> CarrierError {
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let code = parsed.as_ref().and_then(|b| b.code);
    let message =
        parsed.and_then(|b| b.message.or(b.detail).or(b.title)).unwrap_or_else(|| body.chars().take(200).collect());
    let detail = match code {
        Some(code) => format!("Twilio error {code}: {message}"),
        None => format!("Twilio answered {status}: {message}"),
    };
    let reason = match code {
        Some(21211 | 21214 | 21217 | 21401 | 21407) => "invalid_number",
        Some(21210 | 21212 | 21213) => "invalid_caller_id",
        Some(20003 | 20005) => "carrier_auth_failed",
        Some(21215 | 21216) => "number_not_permitted",
        Some(21610) => "number_blocked",
        _ if status >= 500 => return CarrierError::Unavailable(detail),
        Some(20404) => "carrier_not_found",
        None if status == 401 || status == 403 => "carrier_auth_failed",
        _ => return CarrierError::Rejected(detail),
    };
    CarrierError::Refused { reason, detail }
}

/// The `Carrier` port for one Twilio account.
pub struct TwilioCarrier {
    settings: TwilioSettings,
    http: reqwest::Client,
    /// `{public}/providers/twilio/{carrier_id}`
    callback_base: String,
}

/// The fields of a Call resource Dialplane reads.
#[derive(Debug, Deserialize)]
struct CallResource {
    sid: String,
    status: String,
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CallPage {
    calls: Vec<CallResource>,
}

impl TwilioCarrier {
    pub fn new(
        settings: TwilioSettings,
        public_url: &str,
        carrier_id: &str,
        allow_private: bool,
    ) -> anyhow::Result<Self> {
        Ok(TwilioCarrier {
            settings,
            http: client::http_client(allow_private)?,
            callback_base: format!("{}/providers/twilio/{carrier_id}", public_url.trim_end_matches('/')),
        })
    }

    fn calls_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}/Calls", self.settings.api_base, self.settings.account_sid)
    }

    /// The status callback URL of one leg of a call.
    pub fn status_url(&self, call_id: &str, leg: Leg) -> String {
        let leg = match leg {
            Leg::Agent => "agent",
            Leg::Customer => "customer",
        };
        format!("{}/status?call_id={call_id}&leg={leg}", self.callback_base)
    }

    /// The TwiML that bridges the answered agent to the customer.
    fn bridge_twiml(&self, call: &CallRecord, caller_id: &str) -> String {
        format!(
            "<Response><Dial callerId=\"{}\" timeout=\"{}\"><Number statusCallback=\"{}\" \
             statusCallbackEvent=\"initiated ringing answered completed\" statusCallbackMethod=\"POST\">{}</Number>\
             </Dial></Response>",
            xml_escape(caller_id),
            self.settings.ring_timeout_s,
            xml_escape(&self.status_url(&call.id, Leg::Customer)),
            xml_escape(&e164(&call.customer_number)),
        )
    }

    async fn post_form(&self, url: String, form: Vec<(String, String)>) -> Result<reqwest::Response, CarrierError> {
        let response = client::send("twilio", || {
            let request = self
                .http
                .post(&url)
                .basic_auth(&self.settings.account_sid, Some(&self.settings.auth_token))
                .header(reqwest::header::ACCEPT, "application/json");
            client::with_form(request, &form)
        })
        .await?;
        ok_or_error(response).await
    }

    async fn get(&self, url: String) -> Result<reqwest::Response, CarrierError> {
        client::send("twilio", || {
            self.http
                .get(&url)
                .basic_auth(&self.settings.account_sid, Some(&self.settings.auth_token))
                .header(reqwest::header::ACCEPT, "application/json")
        })
        .await
    }

    async fn call_resource(&self, sid: &str) -> Result<Option<CallResource>, CarrierError> {
        let response = self.get(format!("{}/{sid}.json", self.calls_url())).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = ok_or_error(response).await?;
        response.json().await.map(Some).map_err(|e| CarrierError::Protocol(e.to_string()))
    }

    /// Returns the calls `<Dial>` made from a parent call: the customer leg.
    async fn children(&self, parent_sid: &str) -> Result<Vec<CallResource>, CarrierError> {
        let url = format!("{}.json?ParentCallSid={parent_sid}", self.calls_url());
        let response = ok_or_error(self.get(url).await?).await?;
        let page: CallPage = response.json().await.map_err(|e| CarrierError::Protocol(e.to_string()))?;
        Ok(page.calls)
    }
}

async fn ok_or_error(response: reqwest::Response) -> Result<reqwest::Response, CarrierError> {
    client::success_or(response, error_of).await
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[async_trait]
impl Carrier for TwilioCarrier {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError> {
        let did = client::click_to_call_caller_id(call, "Twilio")?;
        let caller_id = e164(did);
        let mut form = vec![
            ("To".to_string(), e164(&call.agent_number)),
            ("From".to_string(), caller_id.clone()),
            ("Twiml".to_string(), self.bridge_twiml(call, &caller_id)),
            ("StatusCallback".to_string(), self.status_url(&call.id, Leg::Agent)),
        ];
        for event in ["initiated", "ringing", "answered", "completed"] {
            form.push(("StatusCallbackEvent".to_string(), event.to_string()));
        }
        form.push(("StatusCallbackMethod".to_string(), "POST".to_string()));
        form.push(("Timeout".to_string(), self.settings.ring_timeout_s.to_string()));
        if self.settings.record {
            form.push(("Record".to_string(), "true".to_string()));
            form.push((
                "RecordingStatusCallback".to_string(),
                format!("{}/recording?call_id={}", self.callback_base, call.id),
            ));
            form.push(("RecordingStatusCallbackEvent".to_string(), "completed".to_string()));
            form.push(("RecordingStatusCallbackMethod".to_string(), "POST".to_string()));
        }
        if self.settings.machine_detection {
            form.push(("MachineDetection".to_string(), "Enable".to_string()));
        }
        let response = self.post_form(format!("{}.json", self.calls_url()), form).await?;
        let created: CallResource = response.json().await.map_err(|e| CarrierError::Protocol(e.to_string()))?;
        Ok(PlacedCall { provider_call_id: created.sid })
    }

    async fn fetch_recording(&self, _call: &CallRecord, url: &str) -> Result<Recording, CarrierError> {
        if !client::same_origin(url, &self.settings.api_base) {
            return Err(CarrierError::Rejected("recording URL is not on the Twilio API".to_string()));
        }
        // Twilio's RecordingUrl has no extension; `.wav` asks for the uncompressed file.
        let last = url.rsplit('/').next().unwrap_or_default();
        let url = if last.contains('.') { url.to_string() } else { format!("{url}.wav") };
        let response = self.get(url).await?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND || status.is_server_error() {
            return Err(CarrierError::Unavailable(format!("Twilio answered {status} for the recording")));
        }
        let response = ok_or_error(response).await?;
        client::recording_of(response, "audio/wav").await
    }

    async fn fetch_status(
        &self,
        _call: &CallRecord,
        provider_call_id: Option<&str>,
    ) -> Result<StatusAnswer, CarrierError> {
        // Twilio cannot be asked by Dialplane's id: without a CallSid the answer is unknown.
        let Some(sid) = provider_call_id else {
            return Ok(StatusAnswer::Unknown);
        };
        let Some(parent) = self.call_resource(sid).await? else {
            return Ok(StatusAnswer::NotFound);
        };
        let now = Utc::now();
        // Sequence numbers above any callback's: these reports come after every callback seen.
        let update = |leg, status: LegStatus, duration: Option<u32>, sequence| CarrierUpdate {
            sequence,
            leg,
            status,
            at: now,
            duration_s: if leg == Leg::Agent { duration } else { None },
            answer_duration_s: if leg == Leg::Customer { duration } else { None },
            recording_url: None,
        };
        let mut updates = Vec::new();
        let parent_status = leg_status(&parent.status).map_err(CarrierError::Protocol)?;
        if let Some(status) = parent_status {
            updates.push(update(Leg::Agent, status, parent.duration.as_deref().and_then(|d| d.parse().ok()), 10_000));
        }
        let children = self.children(sid).await?;
        match children.first() {
            Some(child) => {
                if let Some(status) = leg_status(&child.status).map_err(CarrierError::Protocol)? {
                    let duration = child.duration.as_deref().and_then(|d| d.parse().ok());
                    updates.push(update(Leg::Customer, status, duration, 10_001));
                }
            }
            // The agent's call ended without `<Dial>` ringing anyone.
            None if parent_status.is_some_and(LegStatus::is_terminal) => {
                updates.push(update(Leg::Customer, LegStatus::Canceled, None, 10_001));
            }
            None => {}
        }
        Ok(StatusAnswer::Found { provider_call_id: Some(parent.sid), updates })
    }

    async fn hang_up(&self, _call: &CallRecord, provider_call_id: &str, answered: bool) -> Result<(), CarrierError> {
        let status = if answered { "completed" } else { "canceled" };
        let form = vec![("Status".to_string(), status.to_string())];
        self.post_form(format!("{}/{provider_call_id}.json", self.calls_url()), form).await.map(|_| ())
    }

    async fn transfer(&self, call: &CallRecord, provider_call_id: &str, to: &str) -> Result<(), CarrierError> {
        // The customer is the child call `<Dial>` made; redirecting it leaves the agent's call.
        let children = self.children(provider_call_id).await?;
        let child = children
            .iter()
            .find(|c| matches!(c.status.as_str(), "in-progress" | "ringing"))
            .ok_or_else(|| CarrierError::Rejected("the customer is not on the line".to_string()))?;
        let caller_id = call.did.as_deref().map(e164).unwrap_or_default();
        let twiml = format!(
            "<Response><Dial callerId=\"{}\">{}</Dial></Response>",
            xml_escape(&caller_id),
            xml_escape(&e164(to))
        );
        let form = vec![("Twiml".to_string(), twiml)];
        self.post_form(format!("{}/{}.json", self.calls_url(), child.sid), form).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The official vectors of twilio-python's `tests/unit/test_request_validator.py`.
    #[test]
    fn signatures_match_twilio_test_vectors() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert_eq!(signature("12345", url, &params), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(
            signature("12345", "https://mycompany.com:443/myapp.php?foo=1&bar=2", &params),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert_eq!(
            signature("12345", "http://mycompany.com:80/myapp.php?foo=1&bar=2", &params),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert_eq!(
            signature("12345", "http://mycompany.com:1234/myapp.php?foo=1&bar=2", &params),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        let multi = pairs(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(signature("12345", url, &multi), "IK+Dwps556ElfBT0I3Rgjkr1wJU=");
    }

    #[test]
    fn verification_accepts_the_port_forms_and_nothing_else() {
        let params = pairs(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ]);
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        assert!(verify("12345", url, &params, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")));
        // Signed with :443 added, received without it.
        assert!(verify("12345", url, &params, Some("kvajT1Ptam85bY51eRf/AJRuM3w=")));
        assert!(verify(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        ));
        assert!(!verify("54321", url, &params, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")));
        assert!(!verify("12345", url, &params, None));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".to_string();
        assert!(!verify("12345", url, &tampered, Some("RSOYDt4T1cUTdK1PDd93/VVr8B8=")));
    }

    #[test]
    fn status_callbacks_become_leg_updates() {
        let completed = pairs(&[
            ("CallStatus", "completed"),
            ("SequenceNumber", "3"),
            ("CallDuration", "49"),
            ("Timestamp", "Sun, 25 Mar 2018 09:53:19 +0000"),
        ]);
        let update = status_update(&completed, Leg::Agent).unwrap().unwrap();
        assert_eq!((update.status, update.sequence, update.duration_s), (LegStatus::Completed, 3, Some(49)));
        assert_eq!(update.at.to_rfc3339(), "2018-03-25T09:53:19+00:00");
        assert!(status_update(&pairs(&[("CallStatus", "initiated")]), Leg::Agent).unwrap().is_none());
        assert!(status_update(&pairs(&[("CallStatus", "exploded")]), Leg::Agent).is_err());
        assert!(status_update(&pairs(&[]), Leg::Agent).is_err());
    }

    #[test]
    fn error_bodies_become_clear_reasons() {
        let body = r#"{"code": 21211, "message": "The 'To' number 5551234567 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let error = error_of(400, body);
        assert_eq!(error.reason_code(), "invalid_number");
        assert!(!error.is_retryable());
        assert_eq!(error_of(401, r#"{"code": 20003, "message": "Authenticate"}"#).reason_code(), "carrier_auth_failed");
        assert!(error_of(503, "oops").is_retryable());
        assert_eq!(error_of(400, r#"{"code": 99999, "message": "?"}"#).reason_code(), "carrier_rejected");
        let problem = r#"{"type": "https://www.twilio.com/docs/errors/21211", "title": "Invalid 'To' Phone Number", "status": 400, "code": 21211, "detail": "not a valid phone number"}"#;
        let error = error_of(400, problem);
        assert_eq!(error.reason_code(), "invalid_number");
        assert!(error.to_string().contains("not a valid phone number"));
        assert_eq!(error_of(401, "Unauthorized").reason_code(), "carrier_auth_failed");
    }
}
