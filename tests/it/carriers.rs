//! Real carriers end to end, against the mock carriers of `carrier_mocks`: carrier accounts and
//! phone numbers (credentials never shown), then Twilio click-to-call (the create request, signed
//! status and recording callbacks, every outcome, signature failures, out-of-order callbacks, error
//! bodies, reconciliation when callbacks stop, hang-up and transfer, the per-account CPS queue),
//! Exotel (connect, JSON callbacks authenticated by a URL token, rate limits, call details) and
//! LiveKit SIP for AI agents (CreateSIPParticipant, signed server webhooks, the active-call count).
//!
//! The contract under test is the carrier contract of the server: `/v1/carriers`,
//! `/v1/phone-numbers`, `/v1/calls/{id}` (with `/events`, `/hangup`, `/transfer`), the routing of
//! seed 000's click2call by its `did`, `/providers/{carrier}/…` and `/webhook/livekit`.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::carrier_mocks::*;
use crate::support::*;

/// The click-to-call numbers as seed 000 sends them (digits, no `+`)…
const AGENT: &str = "14155550188";
const CUSTOMER: &str = "14155550123";
const DID: &str = "15005550006";
/// …and as carriers receive them.
const AGENT_E164: &str = "+14155550188";
const CUSTOMER_E164: &str = "+14155550123";
const DID_E164: &str = "+15005550006";

/// The number mapped to the AI agent of the LiveKit tests, and the LiveKit outbound trunk.
const AGENT_DID_E164: &str = "+14155550150";
const SIP_TRUNK: &str = "ST_dialplaneTest";

/// A well-formed Twilio account sid for accounts that never reach a mock.
const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

async fn send(server: &TestServer, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, Some(token), body).await
}

/// Returns seed 000's click2call body for the test numbers, with no transcript.
fn click2call_body() -> Value {
    json!({"customer_number": CUSTOMER, "agent_number": AGENT, "did": DID, "transcript": false})
}

/// Creates a carrier account and returns it.
async fn create_carrier(server: &TestServer, token: &str, body: Value) -> Value {
    let (status, carrier) = send(server, "POST", "/v1/carriers", token, Some(body)).await;
    assert_eq!(status, 201, "carrier creation failed: {carrier}");
    carrier
}

/// Registers a phone number, on a carrier account or on the sandbox, and returns it.
async fn add_number(server: &TestServer, token: &str, phone_number: &str, carrier_id: Option<&str>) -> Value {
    let body = json!({"phone_number": phone_number, "carrier_id": carrier_id});
    let (status, number) = send(server, "POST", "/v1/phone-numbers", token, Some(body)).await;
    assert_eq!(status, 201, "phone number creation failed: {number}");
    number
}

fn twilio_account(mock: &MockTwilio) -> Value {
    json!({
        "name": "Twilio US",
        "provider": "twilio",
        "config": {"account_sid": mock.account_sid, "api_base": mock.base},
        "credentials": {"auth_token": mock.auth_token},
    })
}

fn exotel_account(mock: &MockExotel) -> Value {
    json!({
        "name": "Exotel IN",
        "provider": "exotel",
        "config": {"account_sid": mock.account_sid, "api_base": mock.base},
        "credentials": {"api_key": mock.api_key, "api_token": mock.api_token},
    })
}

fn livekit_account(mock: &MockLiveKit) -> Value {
    json!({
        "name": "LiveKit SIP",
        "provider": "livekit",
        "config": {"url": mock.base, "sip_trunk_id": SIP_TRUNK},
        "credentials": {"api_key": mock.api_key, "api_secret": mock.api_secret},
    })
}

/// Returns `GET /v1/calls/{id}`.
async fn call_of(server: &TestServer, token: &str, id: &str) -> Value {
    let (status, call) = server.get_json(&format!("/v1/calls/{id}"), Some(token)).await;
    assert_eq!(status, 200, "GET /v1/calls/{id}: {call}");
    call
}

/// Polls `GET /v1/calls/{id}` until `check` holds, and returns the call.
async fn wait_for_call(
    server: &TestServer,
    token: &str,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let call = call_of(server, token, id).await;
        if check(&call) {
            return call;
        }
        assert!(started.elapsed() < PATIENCE, "call {id}: timed out waiting for {what}; last seen {call}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Returns true once a call has ended: it has an outcome.
fn has_ended(call: &Value) -> bool {
    call["outcome"].is_string()
}

/// Returns the call's outcome and failure reason.
fn outcome_of(call: &Value) -> (Option<&str>, Option<&str>) {
    (call["outcome"].as_str(), call["failure_reason"].as_str())
}

/// Returns the items of `GET /v1/calls/{id}/events`.
async fn events_of(server: &TestServer, token: &str, id: &str) -> Vec<Value> {
    let (status, body) = server.get_json(&format!("/v1/calls/{id}/events"), Some(token)).await;
    assert_eq!(status, 200, "GET /v1/calls/{id}/events: {body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

/// Returns the value of the first `name="…"` attribute in `xml`, with `&amp;` unescaped.
fn xml_attribute(xml: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!(" {name}=\""))? + name.len() + 3;
    let end = start + xml[start..].find('"')?;
    Some(xml[start..end].replace("&amp;", "&"))
}

/// Returns true for a Twilio create request of call `id` (its `StatusCallback` names the call).
fn is_create_of(request: &MockRequest, id: &str) -> bool {
    request.method == "POST"
        && request.path.ends_with("/Calls.json")
        && request.param("StatusCallback").is_some_and(|url| url.contains(&format!("call_id={id}")))
}

/// Returns the server's options with extra configuration values.
fn options_with(extra: &[(&'static str, &str)]) -> ServerOptions {
    let mut options = ServerOptions::default();
    options.extra.extend(extra.iter().map(|(key, value)| (*key, value.to_string())));
    options
}

/// Makes the watchdog ask the carrier about an answered call 1 s after the answer: past the longest
/// call (`DIALPLANE_MAX_CALL_DURATION_S`), a live call is checked with the carrier, which is how a
/// call whose callbacks stopped gets its end.
const QUICK_RECONCILIATION: &[(&str, &str)] = &[("DIALPLANE_MAX_CALL_DURATION_S", "1")];

/// A server with a Twilio account on the mock, and the DID registered on that account.
struct TwilioRig {
    server: TestServer,
    token: String,
    mock: MockTwilio,
    carrier_id: String,
}

/// A click-to-call Dialplane placed through the Twilio mock: where Twilio must call back, and the
/// two legs the callbacks talk about.
struct PlacedCall {
    id: String,
    create: MockRequest,
    agent_url: String,
    customer_url: String,
    recording_url: String,
    agent: TwilioLeg,
    customer: TwilioLeg,
}

async fn twilio_rig(options: ServerOptions, calls_per_second: Option<f64>) -> TwilioRig {
    let server = TestServer::start_with(options).await;
    let token = server.token().await;
    let mock = MockTwilio::start().await;
    let mut account = twilio_account(&mock);
    if let Some(cps) = calls_per_second {
        account["calls_per_second"] = json!(cps);
    }
    let carrier = create_carrier(&server, &token, account).await;
    let carrier_id = carrier["id"].as_str().unwrap().to_string();
    add_number(&server, &token, DID_E164, Some(carrier_id.as_str())).await;
    TwilioRig { server, token, mock, carrier_id }
}

impl TwilioRig {
    /// Creates a click-to-call from the registered DID and waits until Twilio accepted it.
    async fn place_call(&self) -> PlacedCall {
        let id = self.server.click2call(&self.token, click2call_body()).await;
        self.placed(&id).await
    }

    /// Waits until Twilio accepted call `id` and returns what callbacks need about it.
    async fn placed(&self, id: &str) -> PlacedCall {
        let create =
            self.mock.wait_for(&format!("the create of {id}"), |r| is_create_of(r, id) && r.status == 201).await;
        let agent_url = create.param("StatusCallback").expect("a StatusCallback").to_string();
        let recording_url = create.param("RecordingStatusCallback").expect("a RecordingStatusCallback").to_string();
        let twiml = create.param("Twiml").expect("Twiml");
        let customer_url = xml_attribute(twiml, "statusCallback").expect("the <Number> has a statusCallback");
        let agent = self.mock.agent_leg(&create);
        let customer = agent.dial(CUSTOMER_E164);
        PlacedCall { id: id.to_string(), create, agent_url, customer_url, recording_url, agent, customer }
    }

    /// Sends Twilio's status callback about the agent's leg and expects it accepted.
    async fn agent_status(&self, call: &PlacedCall, status: &str, sequence: u32) {
        let params = self.mock.status_params(&call.agent, status, sequence);
        let answer = self.mock.callback(&call.agent_url, &params).await;
        assert_eq!(answer, 200, "agent leg {status} ({sequence}) of {}", call.id);
    }

    /// Sends Twilio's status callback about the customer's leg and expects it accepted.
    async fn customer_status(&self, call: &PlacedCall, status: &str, sequence: u32) {
        let params = self.mock.status_params(&call.customer, status, sequence);
        let answer = self.mock.callback(&call.customer_url, &params).await;
        assert_eq!(answer, 200, "customer leg {status} ({sequence}) of {}", call.id);
    }

    /// Sends the callbacks of a call answered by both sides: agent initiated, ringing, answered;
    /// customer ringing, answered.
    async fn answer(&self, call: &PlacedCall) {
        self.agent_status(call, "initiated", 0).await;
        self.agent_status(call, "ringing", 1).await;
        self.agent_status(call, "in-progress", 2).await;
        self.customer_status(call, "ringing", 0).await;
        self.customer_status(call, "in-progress", 1).await;
    }

    async fn call(&self, id: &str) -> Value {
        call_of(&self.server, &self.token, id).await
    }

    async fn wait_for_status(&self, id: &str, status: &str) -> Value {
        wait_for_call(&self.server, &self.token, id, &format!("status {status}"), |call| call["status"] == status).await
    }

    async fn wait_until_ended(&self, id: &str) -> Value {
        wait_for_call(&self.server, &self.token, id, "its end", has_ended).await
    }

    /// Returns the requests Dialplane made about a Twilio call after creating it.
    fn requests_about(&self, sid: &str) -> Vec<MockRequest> {
        self.mock.requests().into_iter().filter(|r| r.path.contains(&format!("/Calls/{sid}.json"))).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Carrier accounts and phone numbers
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_accounts_are_managed_and_never_show_their_credentials() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let fake = |what: &str| format!("test-{what}-{}", dialplane::ids::random_lower_alphanumeric(16));
    let (twilio_token, exotel_key, exotel_token) = (fake("twilio-token"), fake("exotel-key"), fake("exotel-token"));
    let (livekit_key, livekit_secret) = (fake("livekit-key"), fake("livekit-secret"));
    let secrets = [&twilio_token, &exotel_key, &exotel_token, &livekit_key, &livekit_secret];
    let shows_no_credentials = |what: &str, body: &Value| {
        let text = body.to_string();
        for secret in secrets {
            assert!(!text.contains(secret.as_str()), "{what}: a credential value is in the response");
        }
        for key in ["auth_token", "api_key", "api_token", "api_secret"] {
            assert!(!text.contains(&format!("\"{key}\"")), "{what}: the credential key {key} is in the response");
        }
    };

    let twilio = create_carrier(
        &server,
        &token,
        json!({
            "name": "Twilio US",
            "provider": "twilio",
            "config": {"account_sid": ACCOUNT_SID, "api_base": "http://127.0.0.1:9"},
            "credentials": {"auth_token": twilio_token},
        }),
    )
    .await;
    shows_no_credentials("POST /v1/carriers (twilio)", &twilio);
    let twilio_id = twilio["id"].as_str().unwrap().to_string();
    assert!(twilio_id.starts_with("car_"), "{twilio}");
    assert_eq!((twilio["name"].as_str(), twilio["provider"].as_str()), (Some("Twilio US"), Some("twilio")));
    assert_eq!(twilio["config"]["account_sid"], ACCOUNT_SID);
    assert_eq!(twilio["calls_per_second"], 1.0, "Twilio's default CPS: {twilio}");
    assert_eq!(twilio["has_credentials"], true);
    assert!(twilio["created_at"].is_string() && twilio["updated_at"].is_string(), "{twilio}");

    let exotel = create_carrier(
        &server,
        &token,
        json!({
            "name": "Exotel IN",
            "provider": "exotel",
            "config": {"account_sid": "dialplane1"},
            "credentials": {"api_key": exotel_key, "api_token": exotel_token},
        }),
    )
    .await;
    shows_no_credentials("POST /v1/carriers (exotel)", &exotel);
    assert_eq!((exotel["provider"].as_str(), exotel["calls_per_second"].as_f64()), (Some("exotel"), Some(3.0)));

    let livekit = create_carrier(
        &server,
        &token,
        json!({
            "name": "LiveKit SIP",
            "provider": "livekit",
            "config": {"url": "http://127.0.0.1:9", "sip_trunk_id": SIP_TRUNK},
            "credentials": {"api_key": livekit_key, "api_secret": livekit_secret},
        }),
    )
    .await;
    shows_no_credentials("POST /v1/carriers (livekit)", &livekit);
    assert_eq!((livekit["provider"].as_str(), livekit["calls_per_second"].as_f64()), (Some("livekit"), Some(10.0)));
    assert_eq!(livekit["config"]["sip_trunk_id"], SIP_TRUNK);

    let (status, list) = send(&server, "GET", "/v1/carriers", &token, None).await;
    assert_eq!(status, 200, "{list}");
    shows_no_credentials("GET /v1/carriers", &list);
    assert_eq!(list["total"], 3, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        (list["page"].as_u64(), list["has_next"].as_bool(), list["has_prev"].as_bool()),
        (Some(1), Some(false), Some(false))
    );
    assert!(list["page_size"].is_u64(), "{list}");

    for created in [&twilio, &exotel, &livekit] {
        let id = created["id"].as_str().unwrap();
        let (status, got) = send(&server, "GET", &format!("/v1/carriers/{id}"), &token, None).await;
        assert_eq!(status, 200, "{got}");
        shows_no_credentials("GET /v1/carriers/{id}", &got);
        for field in ["id", "name", "provider", "config", "calls_per_second", "has_credentials"] {
            assert_eq!(got[field], created[field], "{field} of {id}");
        }
    }
    let (status, _) = send(&server, "GET", "/v1/carriers/car_doesnotexist", &token, None).await;
    assert_eq!(status, 404);

    let new_token = fake("twilio-token");
    let (status, patched) = send(
        &server,
        "PATCH",
        &format!("/v1/carriers/{twilio_id}"),
        &token,
        Some(json!({"name": "Twilio EU", "calls_per_second": 5, "credentials": {"auth_token": new_token}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    shows_no_credentials("PATCH /v1/carriers/{id}", &patched);
    assert!(!patched.to_string().contains(&new_token), "PATCH: the new credential is in the response");
    assert_eq!((patched["name"].as_str(), patched["calls_per_second"].as_f64()), (Some("Twilio EU"), Some(5.0)));
    assert_eq!(patched["has_credentials"], true);
    let other_sid = "ACfedcba9876543210fedcba9876543210";
    // Moving the account to another API needs the credentials again: the stored ones are never
    // sent anywhere but where they were given for.
    let moved = json!({"config": {"account_sid": other_sid, "api_base": "http://127.0.0.1:10"}});
    let url = format!("/v1/carriers/{twilio_id}");
    let (status, refused) = send(&server, "PATCH", &url, &token, Some(moved.clone())).await;
    assert_eq!(status, 400, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("credentials"), "{refused}");
    let mut moved = moved;
    moved["credentials"] = json!({"auth_token": fake("twilio-token")});
    let (status, patched) = send(&server, "PATCH", &url, &token, Some(moved)).await;
    assert_eq!((status, patched["config"]["account_sid"].as_str()), (200, Some(other_sid)), "{patched}");

    let valid_twilio = |extra: Value| {
        let mut body = json!({
            "name": "Twilio",
            "provider": "twilio",
            "config": {"account_sid": ACCOUNT_SID},
            "credentials": {"auth_token": "test-token"},
        });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        body
    };
    for (body, field) in [
        (valid_twilio(json!({"config": {}})), "account_sid"),
        (valid_twilio(json!({"config": {"account_sid": "AC123"}})), "account_sid"),
        (valid_twilio(json!({"credentials": {}})), "auth_token"),
        (valid_twilio(json!({"provider": "plivo"})), "provider"),
        (valid_twilio(json!({"calls_per_second": 0})), "calls_per_second"),
        (valid_twilio(json!({"calls_per_second": 1001})), "calls_per_second"),
        (
            json!({"name": "Exotel", "provider": "exotel", "config": {"account_sid": "dialplane1"},
                   "credentials": {"api_key": "test-key"}}),
            "api_token",
        ),
        (
            json!({"name": "LiveKit", "provider": "livekit", "config": {"url": "http://127.0.0.1:9"},
                   "credentials": {"api_key": "test-key", "api_secret": "test-secret"}}),
            "sip_trunk_id",
        ),
        (
            json!({"name": "LiveKit", "provider": "livekit", "config": {"sip_trunk_id": SIP_TRUNK},
                   "credentials": {"api_key": "test-key", "api_secret": "test-secret"}}),
            "url",
        ),
    ] {
        let (status, error) = send(&server, "POST", "/v1/carriers", &token, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
        let detail = error["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "{body}: the error names {field}: {error}");
        assert!(error["code"].is_string(), "{error}");
    }
    let (status, error) =
        send(&server, "PATCH", &format!("/v1/carriers/{twilio_id}"), &token, Some(json!({"calls_per_second": -1})))
            .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["detail"].as_str().unwrap_or_default().contains("calls_per_second"), "{error}");

    let number = add_number(&server, &token, DID_E164, Some(twilio_id.as_str())).await;
    let (status, error) = send(&server, "DELETE", &format!("/v1/carriers/{twilio_id}"), &token, None).await;
    assert_eq!(status, 409, "a carrier with numbers stays: {error}");
    let number_id = number["id"].as_str().unwrap();
    assert_eq!(send(&server, "DELETE", &format!("/v1/phone-numbers/{number_id}"), &token, None).await.0, 204);
    assert_eq!(send(&server, "DELETE", &format!("/v1/carriers/{twilio_id}"), &token, None).await.0, 204);
    assert_eq!(send(&server, "GET", &format!("/v1/carriers/{twilio_id}"), &token, None).await.0, 404);
    let (_, list) = send(&server, "GET", "/v1/carriers", &token, None).await;
    assert_eq!(list["total"], 2, "{list}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_numbers_are_managed_and_mapped_to_agents() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let carrier = create_carrier(
        &server,
        &token,
        json!({
            "name": "Twilio US",
            "provider": "twilio",
            "config": {"account_sid": ACCOUNT_SID},
            "credentials": {"auth_token": "test-twilio-token"},
        }),
    )
    .await;
    let carrier_id = carrier["id"].as_str().unwrap();
    let agent_id = server.create_agent(&token, "Front desk").await;

    let (status, main) = send(
        &server,
        "POST",
        "/v1/phone-numbers",
        &token,
        Some(json!({"phone_number": DID_E164, "carrier_id": carrier_id, "label": "Main line"})),
    )
    .await;
    assert_eq!(status, 201, "{main}");
    let main_id = main["id"].as_str().unwrap().to_string();
    assert!(main_id.starts_with("pn_"), "{main}");
    assert_eq!(main["phone_number"], DID_E164);
    assert_eq!((main["carrier_id"].as_str(), main["provider"].as_str()), (Some(carrier_id), Some("twilio")));
    assert_eq!((main["agent_id"].clone(), main["label"].as_str()), (Value::Null, Some("Main line")));
    assert!(main["created_at"].is_string() && main["updated_at"].is_string(), "{main}");

    let spare = add_number(&server, &token, "+15005550007", None).await;
    assert_eq!((spare["carrier_id"].clone(), spare["provider"].as_str()), (Value::Null, Some("sandbox")), "{spare}");

    let (status, error) =
        send(&server, "POST", "/v1/phone-numbers", &token, Some(json!({"phone_number": DID_E164}))).await;
    assert_eq!(status, 409, "the same number twice: {error}");
    let (status, error) = send(
        &server,
        "POST",
        "/v1/phone-numbers",
        &token,
        Some(json!({"phone_number": "+15005550008", "carrier_id": "car_doesnotexist"})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(error["detail"].as_str().unwrap_or_default().contains("carrier_id"), "{error}");

    let (status, list) = send(&server, "GET", "/v1/phone-numbers", &token, None).await;
    assert_eq!((status, list["total"].as_u64()), (200, Some(2)), "{list}");
    let (status, list) =
        send(&server, "GET", &format!("/v1/phone-numbers?carrier_id={carrier_id}"), &token, None).await;
    assert_eq!((status, list["total"].as_u64()), (200, Some(1)), "{list}");
    assert_eq!(list["items"][0]["id"], main_id.as_str());

    let (status, got) = send(&server, "GET", &format!("/v1/phone-numbers/{main_id}"), &token, None).await;
    assert_eq!((status, got["phone_number"].as_str()), (200, Some(DID_E164)), "{got}");
    let (status, patched) =
        send(&server, "PATCH", &format!("/v1/phone-numbers/{main_id}"), &token, Some(json!({"label": "Sales line"})))
            .await;
    assert_eq!((status, patched["label"].as_str()), (200, Some("Sales line")), "{patched}");

    let (status, mapped) = send(
        &server,
        "PUT",
        "/v1/phone-numbers/map_agent",
        &token,
        Some(json!({"phone_number": DID_E164, "agent_id": agent_id})),
    )
    .await;
    assert_eq!(status, 200, "{mapped}");
    assert_eq!((mapped["id"].as_str(), mapped["agent_id"].as_str()), (Some(main_id.as_str()), Some(agent_id.as_str())));
    let (_, got) = send(&server, "GET", &format!("/v1/phone-numbers/{main_id}"), &token, None).await;
    assert_eq!(got["agent_id"], agent_id.as_str(), "the mapping is stored: {got}");
    let (status, unmapped) = send(
        &server,
        "PUT",
        "/v1/phone-numbers/map_agent",
        &token,
        Some(json!({"phone_number": DID_E164, "agent_id": null})),
    )
    .await;
    assert_eq!((status, unmapped["agent_id"].clone()), (200, Value::Null), "{unmapped}");

    let spare_id = spare["id"].as_str().unwrap();
    assert_eq!(send(&server, "DELETE", &format!("/v1/phone-numbers/{spare_id}"), &token, None).await.0, 204);
    assert_eq!(send(&server, "GET", &format!("/v1/phone-numbers/{spare_id}"), &token, None).await.0, 404);
    let (_, list) = send(&server, "GET", "/v1/phone-numbers", &token, None).await;
    assert_eq!(list["total"], 1, "{list}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Twilio
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_click_to_call_is_placed_answered_completed_and_recorded() {
    let rig = twilio_rig(ServerOptions::default(), None).await;
    let call = rig.place_call().await;
    let (id, mock) = (&call.id, &rig.mock);

    let create = &call.create;
    assert_eq!(create.method, "POST");
    assert_eq!(create.path, format!("/2010-04-01/Accounts/{}/Calls.json", mock.account_sid));
    assert_eq!(create.authorization, Some(basic(&mock.account_sid, &mock.auth_token)), "Basic AccountSid:AuthToken");
    assert!(
        create.content_type.as_deref().is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded")),
        "{:?}",
        create.content_type
    );
    let status_url =
        |leg: &str| format!("{}/providers/twilio/{}/status?call_id={id}&leg={leg}", rig.server.base, rig.carrier_id);
    let recording_url = format!("{}/providers/twilio/{}/recording?call_id={id}", rig.server.base, rig.carrier_id);
    let agent_url = status_url("agent");
    for (name, expected) in [
        ("To", AGENT_E164),
        ("From", DID_E164),
        ("StatusCallback", agent_url.as_str()),
        ("StatusCallbackMethod", "POST"),
        ("Timeout", "30"),
        ("Record", "true"),
        ("RecordingStatusCallback", recording_url.as_str()),
        ("RecordingStatusCallbackEvent", "completed"),
        ("RecordingStatusCallbackMethod", "POST"),
    ] {
        assert_eq!(create.params(name), [expected], "{name}");
    }
    assert_eq!(
        create.params("StatusCallbackEvent"),
        ["initiated", "ringing", "answered", "completed"],
        "the events, as repeated keys"
    );
    assert!(create.params("MachineDetection").is_empty(), "machine detection is off by default");
    let twiml = create.param("Twiml").unwrap();
    for piece in [
        "<Response><Dial".to_string(),
        format!(r#"callerId="{DID_E164}""#),
        r#"timeout="30""#.to_string(),
        format!(r#"statusCallback="{}""#, status_url("customer").replace('&', "&amp;")),
        r#"statusCallbackEvent="initiated ringing answered completed""#.to_string(),
        r#"statusCallbackMethod="POST""#.to_string(),
        format!(">{CUSTOMER_E164}</Number></Dial></Response>"),
    ] {
        assert!(twiml.contains(&piece), "Twiml lacks {piece}: {twiml}");
    }
    assert_eq!(call.customer_url, status_url("customer"));

    let placed = wait_for_call(&rig.server, &rig.token, id, "the Twilio sid", |c| {
        c["provider_call_id"] == call.agent.call_sid.as_str()
    })
    .await;
    assert_eq!(placed["id"], id.as_str());
    assert_eq!(
        (placed["provider"].as_str(), placed["carrier_id"].as_str()),
        (Some("twilio"), Some(rig.carrier_id.as_str()))
    );
    assert!(!has_ended(&placed), "{placed}");

    rig.agent_status(&call, "initiated", 0).await;
    rig.agent_status(&call, "ringing", 1).await;
    rig.wait_for_status(id, "ringing").await;
    rig.agent_status(&call, "in-progress", 2).await;
    rig.customer_status(&call, "ringing", 0).await;
    rig.customer_status(&call, "in-progress", 1).await;
    rig.wait_for_status(id, "in_progress").await;
    rig.customer_status(&call, "completed", 2).await;
    rig.agent_status(&call, "completed", 3).await;
    let ended = rig.wait_until_ended(id).await;
    assert_eq!(outcome_of(&ended), (Some("completed"), None), "{ended}");

    let recording_sid = format!("RE{}", "0123456789abcdef".repeat(2));
    let params = mock.recording_params(&call.agent.call_sid, &recording_sid);
    assert_eq!(mock.callback(&call.recording_url, &params).await, 200);
    let download = mock
        .wait_for("the recording download", |r| r.method == "GET" && r.path.ends_with(&format!("/{recording_sid}.wav")))
        .await;
    assert_eq!(download.authorization, Some(basic(&mock.account_sid, &mock.auth_token)));
    assert_eq!(download.status, 200);
    assert_eq!(stored_recording(&rig.server, &rig.token, id).await, wav_bytes(), "Dialplane serves what Twilio had");

    let events = events_of(&rig.server, &rig.token, id).await;
    assert!(!serde_json::to_string(&events).unwrap().contains(&mock.auth_token), "no secret in the event log");
    let twilio_events: Vec<&Value> = events.iter().filter(|event| event["source"] == "carrier:twilio").collect();
    let find = |leg: &TwilioLeg, status: &str| {
        twilio_events
            .iter()
            .find(|event| {
                event["payload"]["CallSid"] == leg.call_sid.as_str() && event["payload"]["CallStatus"] == status
            })
            .copied()
    };
    for (leg, status) in [
        (&call.agent, "initiated"),
        (&call.agent, "ringing"),
        (&call.agent, "in-progress"),
        (&call.customer, "ringing"),
        (&call.customer, "in-progress"),
        (&call.customer, "completed"),
        (&call.agent, "completed"),
    ] {
        let event =
            find(leg, status).unwrap_or_else(|| panic!("no carrier:twilio event for {status} of {leg:?}: {events:?}"));
        assert!(!event["id"].is_null() && event["at"].is_string() && event["kind"].is_string(), "{event}");
        assert_eq!(event["payload"]["AccountSid"], mock.account_sid.as_str(), "raw params: {event}");
        assert_eq!(event["payload"]["CallbackSource"], "call-progress-events", "raw params: {event}");
    }
    let ringing = find(&call.agent, "ringing").unwrap();
    assert_eq!(
        (ringing["kind"].as_str(), ringing["payload"]["SequenceNumber"].as_str()),
        (Some("agent.ringing"), Some("1"))
    );
    let completed = find(&call.customer, "completed").unwrap();
    assert_eq!(completed["payload"]["CallDuration"], TWILIO_COMPLETED_DURATION_S);
    assert!(
        twilio_events.iter().any(|event| event["payload"]["RecordingSid"] == recording_sid.as_str()),
        "the recording callback is logged: {events:?}"
    );
    rig.server.stop().await;
}

/// Waits until the call's recording link (seed 000's `recording` in `recent`) serves the stored
/// recording, and returns its bytes.
async fn stored_recording(server: &TestServer, token: &str, id: &str) -> Vec<u8> {
    let started = Instant::now();
    loop {
        let (_, recent) = server.get_json("/api/calls/recent?limit=200", Some(token)).await;
        let link = recent["data"]["calls"]
            .as_array()
            .and_then(|calls| calls.iter().find(|c| c["call_id"] == id))
            .and_then(|c| c["recording"].as_str().map(str::to_string))
            .filter(|link| link.starts_with("http"));
        if let Some(link) = link {
            let response = server.http.get(&link).send().await.unwrap();
            if response.status() == 200 {
                return response.bytes().await.unwrap().to_vec();
            }
        }
        assert!(started.elapsed() < PATIENCE, "the recording of {id} was not stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_twilio_outcome_ends_the_call_truthfully() {
    let rig = twilio_rig(ServerOptions::default(), None).await;
    for (customer_status, outcome, reason) in [
        ("busy", "busy", "customer_busy"),
        ("no-answer", "no_answer", "customer_no_answer"),
        ("failed", "failed", "customer_failed"),
        ("canceled", "canceled", "customer_canceled"),
    ] {
        let call = rig.place_call().await;
        rig.agent_status(&call, "initiated", 0).await;
        rig.agent_status(&call, "ringing", 1).await;
        rig.agent_status(&call, "in-progress", 2).await;
        rig.customer_status(&call, "initiated", 0).await;
        rig.customer_status(&call, customer_status, 1).await;
        // Twilio's agent call goes on after a failed <Dial>, then completes.
        rig.agent_status(&call, "completed", 3).await;
        let ended = rig.wait_until_ended(&call.id).await;
        assert_eq!(outcome_of(&ended), (Some(outcome), Some(reason)), "customer {customer_status}: {ended}");
    }

    // The agent does not pick up: the call ends, and the customer is never rung.
    let call = rig.place_call().await;
    rig.agent_status(&call, "initiated", 0).await;
    rig.agent_status(&call, "ringing", 1).await;
    rig.agent_status(&call, "no-answer", 2).await;
    let ended = rig.wait_until_ended(&call.id).await;
    assert_eq!(outcome_of(&ended), (Some("no_answer"), Some("agent_no_answer")), "{ended}");
    assert_eq!(rig.mock.creates().iter().filter(|r| is_create_of(r, &call.id)).count(), 1, "one create, no retry");
    assert!(rig.requests_about(&call.agent.call_sid).is_empty(), "nothing more is asked of Twilio");
    let events = events_of(&rig.server, &rig.token, &call.id).await;
    assert!(
        events.iter().all(|event| event["payload"]["CallSid"] == Value::Null
            || event["payload"]["CallSid"] == call.agent.call_sid.as_str()),
        "only the agent's leg existed: {events:?}"
    );
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_callbacks_without_a_valid_signature_are_refused_and_change_nothing() {
    let rig = twilio_rig(ServerOptions::default(), None).await;
    let call = rig.place_call().await;
    rig.agent_status(&call, "initiated", 0).await;
    rig.agent_status(&call, "ringing", 1).await;
    rig.wait_for_status(&call.id, "ringing").await;
    // Let the accepted callbacks settle before taking the reference state.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rig.call(&call.id).await;
    let events_before = events_of(&rig.server, &rig.token, &call.id).await;

    let mock = &rig.mock;
    let params = mock.status_params(&call.customer, "in-progress", 1);
    let genuine = mock.sign(&call.customer_url, &params);
    let mut forged = params.clone();
    for (name, value) in &mut forged {
        if name.as_str() == "CallStatus" {
            *value = "completed".to_string();
        }
    }
    let tampered_url = call.customer_url.replace("leg=customer", "leg=agent");
    let foreign = twilio_signature("test-another-accounts-token", &call.customer_url, &params);
    for (what, url, sent, signature) in [
        ("a wrong signature", &call.customer_url, &params, Some("bm90IHRoZSBzaWduYXR1cmU=")),
        ("no signature", &call.customer_url, &params, None),
        ("another account's signature", &call.customer_url, &params, Some(foreign.as_str())),
        ("a URL changed after signing", &tampered_url, &params, Some(genuine.as_str())),
        ("parameters changed after signing", &call.customer_url, &forged, Some(genuine.as_str())),
    ] {
        assert_eq!(mock.callback_with_signature(url, sent, signature).await, 403, "{what}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rig.call(&call.id).await;
    for field in ["status", "outcome", "failure_reason"] {
        assert_eq!(after[field], before[field], "{field} is unchanged");
    }
    assert_eq!(events_of(&rig.server, &rig.token, &call.id).await, events_before, "nothing is logged");

    // The genuine callback still goes through.
    assert_eq!(mock.callback_with_signature(&call.customer_url, &params, Some(genuine.as_str())).await, 200);
    rig.wait_for_status(&call.id, "in_progress").await;
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_twilio_callbacks_never_move_a_call_backwards() {
    let rig = twilio_rig(ServerOptions::default(), None).await;
    let call = rig.place_call().await;
    rig.agent_status(&call, "initiated", 0).await;
    rig.agent_status(&call, "in-progress", 2).await;
    rig.customer_status(&call, "in-progress", 1).await;
    rig.wait_for_status(&call.id, "in_progress").await;

    // The agent's ringing (1) arrives after its answer (2): the call stays in progress.
    rig.agent_status(&call, "ringing", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.call(&call.id).await["status"], "in_progress");

    // Both legs complete; then the customer's ringing (0) and a duplicate agent answer (2) arrive late.
    rig.customer_status(&call, "completed", 2).await;
    rig.agent_status(&call, "completed", 3).await;
    let ended = rig.wait_until_ended(&call.id).await;
    assert_eq!(outcome_of(&ended), (Some("completed"), None), "{ended}");
    rig.customer_status(&call, "ringing", 0).await;
    rig.agent_status(&call, "in-progress", 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rig.call(&call.id).await;
    for field in ["status", "outcome", "failure_reason"] {
        assert_eq!(after[field], ended[field], "{field} stays as the end left it");
    }
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_errors_fail_the_call_with_a_clear_reason_and_rate_limits_are_retried() {
    let rig = twilio_rig(ServerOptions::default(), None).await;
    for (status, code, message, reason) in [
        (400, 21211, "The 'To' number is not a valid phone number.", "invalid_number"),
        (400, 21214, "'To' phone number cannot be reached", "invalid_number"),
        (400, 21212, "Invalid 'From' number", "invalid_caller_id"),
        (400, 21215, "Geo permission configuration is not permitting call", "number_not_permitted"),
        (400, 21610, "Attempt to send to unsubscribed recipient", "number_blocked"),
        (400, 21220, "Invalid call state for this operation", "carrier_rejected"),
        (500, 20500, "Internal Server Error", "carrier_unavailable"),
    ] {
        rig.mock.reject_next_create(status, code, message);
        let id = rig.server.click2call(&rig.token, click2call_body()).await;
        let ended = rig.wait_until_ended(&id).await;
        assert_eq!(outcome_of(&ended), (Some("failed"), Some(reason)), "Twilio {status} {code}: {ended}");
        if status < 500 {
            let creates = rig.mock.creates().into_iter().filter(|r| is_create_of(r, &id)).count();
            assert_eq!(creates, 1, "a rejected call is not retried ({code})");
        }
    }

    // Wrong credentials: Twilio answers 401 with code 20003.
    let (status, patched) = send(
        &rig.server,
        "PATCH",
        &format!("/v1/carriers/{}", rig.carrier_id),
        &rig.token,
        Some(json!({"credentials": {"auth_token": "test-not-the-auth-token"}})),
    )
    .await;
    assert_eq!(status, 200, "{patched}");
    let id = rig.server.click2call(&rig.token, click2call_body()).await;
    let ended = rig.wait_until_ended(&id).await;
    assert_eq!(outcome_of(&ended), (Some("failed"), Some("carrier_auth_failed")), "{ended}");
    let rejected = rig.mock.wait_for("the unauthenticated create", |r| is_create_of(r, &id)).await;
    assert_eq!(rejected.status, 401);

    // A rate limit (429 with Retry-After) is waited out: the call is placed, not failed.
    let (status, _) = send(
        &rig.server,
        "PATCH",
        &format!("/v1/carriers/{}", rig.carrier_id),
        &rig.token,
        Some(json!({"credentials": {"auth_token": rig.mock.auth_token}})),
    )
    .await;
    assert_eq!(status, 200);
    rig.mock.throttle_next_create(1);
    let id = rig.server.click2call(&rig.token, click2call_body()).await;
    let call = rig.placed(&id).await;
    let creates: Vec<MockRequest> = rig.mock.creates().into_iter().filter(|r| is_create_of(r, &id)).collect();
    assert_eq!(creates.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 201], "retried once after Retry-After");
    let placed = wait_for_call(&rig.server, &rig.token, &id, "the Twilio sid", |c| {
        c["provider_call_id"] == call.agent.call_sid.as_str()
    })
    .await;
    assert!(!has_ended(&placed), "a throttled call is not failed: {placed}");
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twilio_call_whose_callbacks_stop_is_reconciled_with_the_api() {
    let rig = twilio_rig(options_with(QUICK_RECONCILIATION), None).await;
    let call = rig.place_call().await;
    rig.agent_status(&call, "initiated", 0).await;
    rig.agent_status(&call, "ringing", 1).await;
    rig.agent_status(&call, "in-progress", 2).await;
    rig.customer_status(&call, "ringing", 0).await;
    // Twilio has finished the call, and its completed callbacks will be lost.
    rig.mock.set_status(&call.agent.call_sid, "completed");
    rig.mock.set_leg_status(&call.customer, "completed");
    rig.customer_status(&call, "in-progress", 1).await;

    let ended = rig.wait_until_ended(&call.id).await;
    assert_eq!(outcome_of(&ended), (Some("completed"), None), "{ended}");
    let fetch = rig
        .mock
        .wait_for("a status fetch", |r| {
            r.method == "GET" && r.path.ends_with(&format!("/Calls/{}.json", call.agent.call_sid))
        })
        .await;
    assert_eq!(fetch.authorization, Some(basic(&rig.mock.account_sid, &rig.mock.auth_token)));
    assert_eq!(fetch.answer["status"], "completed");
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_calls_are_transferred_and_hung_up_through_the_api() {
    let rig = twilio_rig(ServerOptions::default(), None).await;
    let auth = Some(basic(&rig.mock.account_sid, &rig.mock.auth_token));
    let call = rig.place_call().await;
    rig.answer(&call).await;
    rig.wait_for_status(&call.id, "in_progress").await;
    // The customer is the child call `<Dial>` made: the transfer redirects it, leaving the agent.
    rig.mock.set_leg_status(&call.customer, "in-progress");
    let child_path = format!("/2010-04-01/Accounts/{}/Calls/{}.json", rig.mock.account_sid, call.customer.call_sid);
    let update_path = format!("/2010-04-01/Accounts/{}/Calls/{}.json", rig.mock.account_sid, call.agent.call_sid);

    let (status, body) = send(
        &rig.server,
        "POST",
        &format!("/v1/calls/{}/transfer", call.id),
        &rig.token,
        Some(json!({"to": "+14155550100"})),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!((body["call_id"].as_str(), body["action"].as_str()), (Some(call.id.as_str()), Some("transfer")));
    let transfer = rig
        .mock
        .wait_for("the transfer", |r| r.method == "POST" && r.path == child_path && r.param("Twiml").is_some())
        .await;
    assert_eq!(
        transfer.param("Twiml"),
        Some(format!("<Response><Dial callerId=\"{DID_E164}\">+14155550100</Dial></Response>").as_str())
    );
    assert_eq!(transfer.authorization, auth);
    // The transfer is published: `call.transferred` lands in the event log after the request.
    eventually("call.transferred in the event log", || async {
        let (_, log) = send(&rig.server, "GET", &format!("/v1/calls/{}/events", call.id), &rig.token, None).await;
        let kinds: Vec<&str> = log["items"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
        kinds.contains(&"transfer_requested") && kinds.contains(&"call.transferred")
    })
    .await;

    let (status, body) = send(&rig.server, "POST", &format!("/v1/calls/{}/hangup", call.id), &rig.token, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!((body["call_id"].as_str(), body["action"].as_str()), (Some(call.id.as_str()), Some("hangup")));
    let hangup = rig
        .mock
        .wait_for("the hang-up", |r| r.method == "POST" && r.path == update_path && r.param("Status").is_some())
        .await;
    assert_eq!(hangup.param("Status"), Some("completed"), "an answered call is completed");
    assert_eq!((hangup.authorization.clone(), hangup.status), (auth.clone(), 200));
    rig.customer_status(&call, "completed", 2).await;
    rig.agent_status(&call, "completed", 3).await;
    let ended = rig.wait_until_ended(&call.id).await;
    assert_eq!(outcome_of(&ended), (Some("completed"), None), "{ended}");

    // Before anyone answers, hanging up cancels the call.
    let call = rig.place_call().await;
    rig.agent_status(&call, "initiated", 0).await;
    rig.agent_status(&call, "ringing", 1).await;
    rig.wait_for_status(&call.id, "ringing").await;
    let (status, body) = send(&rig.server, "POST", &format!("/v1/calls/{}/hangup", call.id), &rig.token, None).await;
    assert_eq!(status, 202, "{body}");
    let update_path = format!("/2010-04-01/Accounts/{}/Calls/{}.json", rig.mock.account_sid, call.agent.call_sid);
    let cancel = rig
        .mock
        .wait_for("the cancel", |r| r.method == "POST" && r.path == update_path && r.param("Status").is_some())
        .await;
    assert_eq!(cancel.param("Status"), Some("canceled"), "a call not yet answered is canceled");
    rig.agent_status(&call, "canceled", 2).await;
    let ended = rig.wait_until_ended(&call.id).await;
    assert_eq!(outcome_of(&ended), (Some("canceled"), Some("agent_canceled")), "{ended}");
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_one_twilio_account_are_paced_by_its_calls_per_second() {
    let rig = twilio_rig(ServerOptions::default(), Some(2.0)).await;
    let ids: Vec<String> =
        futures::future::join_all((0..5).map(|_| rig.server.click2call(&rig.token, click2call_body()))).await;
    let creates = rig.mock.wait_for_creates(5).await;
    // Give a sixth (duplicate) create the time to show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rig.mock.creates().len(), 5, "one create per call");
    assert!(creates.iter().all(|r| r.status == 201), "none is refused");
    for id in &ids {
        assert_eq!(creates.iter().filter(|r| is_create_of(r, id)).count(), 1, "{id} is placed once");
    }
    // The limiter guarantees a lower bound on the spacing (500 ms at 2 calls per second).
    let mut arrivals: Vec<Instant> = creates.iter().map(|r| r.at).collect();
    arrivals.sort();
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= Duration::from_millis(400), "two creates only {gap:?} apart at 2 calls per second");
    }
    for id in &ids {
        let call =
            wait_for_call(&rig.server, &rig.token, id, "its Twilio sid", |c| c["provider_call_id"].is_string()).await;
        assert!(!has_ended(&call), "a call over the cap waits, it never fails: {call}");
    }
    rig.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Exotel
// ---------------------------------------------------------------------------------------------

/// A server with an Exotel account on the mock, and the DID registered on that account.
struct ExotelRig {
    server: TestServer,
    token: String,
    mock: MockExotel,
    carrier_id: String,
}

async fn exotel_rig(options: ServerOptions) -> ExotelRig {
    let server = TestServer::start_with(options).await;
    let token = server.token().await;
    let mock = MockExotel::start().await;
    let carrier = create_carrier(&server, &token, exotel_account(&mock)).await;
    let carrier_id = carrier["id"].as_str().unwrap().to_string();
    add_number(&server, &token, DID_E164, Some(carrier_id.as_str())).await;
    ExotelRig { server, token, mock, carrier_id }
}

impl ExotelRig {
    /// Creates a click-to-call and returns its id with the connect request Exotel accepted.
    async fn place_call(&self) -> (String, MockRequest) {
        let id = self.server.click2call(&self.token, click2call_body()).await;
        let connect = self
            .mock
            .wait_for(&format!("the connect of {id}"), |r| {
                r.path.ends_with("/Calls/connect.json")
                    && r.param("CustomField") == Some(id.as_str())
                    && r.status == 200
            })
            .await;
        (id, connect)
    }

    async fn wait_for_call(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        wait_for_call(&self.server, &self.token, id, what, check).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exotel_click_to_call_is_placed_and_follows_its_callbacks() {
    let rig = exotel_rig(ServerOptions::default()).await;
    let mock = &rig.mock;
    let auth = Some(basic(&mock.api_key, &mock.api_token));
    let (id, connect) = rig.place_call().await;

    assert_eq!(connect.method, "POST");
    assert_eq!(connect.path, format!("/v1/Accounts/{}/Calls/connect.json", mock.account_sid));
    assert_eq!(connect.authorization, auth, "Basic api_key:api_token");
    assert!(
        connect.content_type.as_deref().is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded")),
        "{:?}",
        connect.content_type
    );
    for (name, expected) in [
        ("From", AGENT_E164),
        ("To", CUSTOMER_E164),
        ("CallerId", DID_E164),
        ("TimeOut", "30"),
        ("Record", "true"),
        ("CustomField", id.as_str()),
        ("StatusCallbackEvents[0]", "terminal"),
        ("StatusCallbackEvents[1]", "answered"),
        ("StatusCallbackContentType", "application/json"),
    ] {
        assert_eq!(connect.params(name), [expected], "{name}");
    }
    let callback_url = connect.param("StatusCallback").expect("a StatusCallback").to_string();
    let prefix = format!("{}/providers/exotel/{}/", rig.server.base, rig.carrier_id);
    let callback_token = callback_url
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix("/status"))
        .unwrap_or_else(|| panic!("StatusCallback is {prefix}{{token}}/status: {callback_url}"));
    assert!(callback_token.len() >= 16 && !callback_token.contains('/'), "an unguessable token: {callback_url}");
    assert!(
        !callback_url.contains(&mock.api_key) && !callback_url.contains(&mock.api_token),
        "the callback URL carries no credential"
    );

    let sid = connect.answer["Call"]["Sid"].as_str().unwrap().to_string();
    let placed = rig.wait_for_call(&id, "the Exotel sid", |c| c["provider_call_id"] == sid.as_str()).await;
    assert_eq!(
        (placed["provider"].as_str(), placed["carrier_id"].as_str()),
        (Some("exotel"), Some(rig.carrier_id.as_str()))
    );

    let answered = mock.status_callback(&connect, "answered", "in-progress", ["in-progress", "in-progress"]);
    assert_eq!(mock.callback(&callback_url, &answered).await, 200);
    rig.wait_for_call(&id, "status in_progress", |c| c["status"] == "in_progress").await;
    let terminal = mock.status_callback(&connect, "terminal", "completed", ["completed", "completed"]);
    assert_eq!(mock.callback(&callback_url, &terminal).await, 200);
    let ended = rig.wait_for_call(&id, "its end", has_ended).await;
    assert_eq!(outcome_of(&ended), (Some("completed"), None), "{ended}");
    let download = mock
        .wait_for("the recording download", |r| {
            r.method == "GET" && r.path.ends_with(&format!("/Recordings/{sid}.mp3"))
        })
        .await;
    assert_eq!((download.authorization.clone(), download.status), (auth.clone(), 200), "Basic auth on the API host");

    // The customer's leg is busy; a callback with a wrong token in its path is refused first.
    let (id, connect) = rig.place_call().await;
    let callback_url = connect.param("StatusCallback").unwrap().to_string();
    let busy = mock.status_callback(&connect, "terminal", "busy", ["completed", "busy"]);
    let forged_url = format!("{prefix}not-the-callback-token-{}/status", dialplane::ids::random_lower_alphanumeric(8));
    assert_eq!(mock.callback(&forged_url, &busy).await, 403, "a wrong token");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = call_of(&rig.server, &rig.token, &id).await;
    assert!(!has_ended(&before), "a refused callback changes nothing: {before}");
    assert_eq!(mock.callback(&callback_url, &busy).await, 200);
    let ended = rig.wait_for_call(&id, "its end", has_ended).await;
    assert_eq!(outcome_of(&ended), (Some("busy"), Some("customer_busy")), "{ended}");
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exotel_rate_limits_are_waited_out_and_lost_callbacks_reconciled() {
    let rig = exotel_rig(options_with(QUICK_RECONCILIATION)).await;
    let mock = &rig.mock;
    mock.throttle_next(1);
    let (id, connect) = rig.place_call().await;
    let connects = mock.wait_for_connects(2).await;
    assert_eq!(connects.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200], "retried after Retry-After");
    assert!(connects.iter().all(|r| r.param("CustomField") == Some(id.as_str())));
    let sid = connect.answer["Call"]["Sid"].as_str().unwrap().to_string();
    let placed = rig.wait_for_call(&id, "the Exotel sid", |c| c["provider_call_id"] == sid.as_str()).await;
    assert!(!has_ended(&placed), "a throttled call is not failed: {placed}");

    // Exotel has finished the call, and its terminal callback will be lost.
    mock.set_status(&sid, "completed", ["completed", "completed"]);
    let callback_url = connect.param("StatusCallback").unwrap();
    let answered = mock.status_callback(&connect, "answered", "in-progress", ["in-progress", "in-progress"]);
    assert_eq!(mock.callback(callback_url, &answered).await, 200);
    let ended = rig.wait_for_call(&id, "its end", has_ended).await;
    assert_eq!(outcome_of(&ended), (Some("completed"), None), "{ended}");
    let details = mock
        .wait_for("the call details request", |r| r.method == "GET" && r.path.ends_with(&format!("/Calls/{sid}.json")))
        .await;
    assert_eq!(details.query_param("details").as_deref(), Some("true"));
    assert_eq!(details.authorization, Some(basic(&mock.api_key, &mock.api_token)));
    assert_eq!(details.answer["Call"]["Details"]["Leg2Status"], "completed");
    assert_eq!(mock.requests().iter().filter(|r| r.status == 401).count(), 0, "every request was authenticated");
    rig.server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// LiveKit
// ---------------------------------------------------------------------------------------------

/// A server with a LiveKit account on the mock, an AI agent, and a number on that account mapped
/// to the agent.
struct LiveKitRig {
    server: TestServer,
    token: String,
    mock: MockLiveKit,
    carrier_id: String,
    agent_id: String,
    webhook_url: String,
}

async fn livekit_rig(options: ServerOptions) -> LiveKitRig {
    let server = TestServer::start_with(options).await;
    let token = server.token().await;
    let mock = MockLiveKit::start().await;
    let carrier = create_carrier(&server, &token, livekit_account(&mock)).await;
    let carrier_id = carrier["id"].as_str().unwrap().to_string();
    let agent_id = server.create_agent(&token, "Sales assistant").await;
    add_number(&server, &token, AGENT_DID_E164, Some(carrier_id.as_str())).await;
    let (status, mapped) = send(
        &server,
        "PUT",
        "/v1/phone-numbers/map_agent",
        &token,
        Some(json!({"phone_number": AGENT_DID_E164, "agent_id": agent_id})),
    )
    .await;
    assert_eq!((status, mapped["agent_id"].as_str()), (200, Some(agent_id.as_str())), "{mapped}");
    let webhook_url = server.url("/webhook/livekit");
    LiveKitRig { server, token, mock, carrier_id, agent_id, webhook_url }
}

impl LiveKitRig {
    /// Creates an AI-agent call (no `did`: the agent's number gives it) and returns its id with
    /// the `CreateSIPParticipant` request LiveKit received.
    async fn place_call(&self) -> (String, MockRequest) {
        let body = json!({"customer_number": CUSTOMER, "agent_number": self.agent_id, "transcript": false});
        let id = self.server.click2call(&self.token, body).await;
        let dial = self
            .mock
            .wait_for(&format!("the SIP dial of {id}"), |r| {
                is_twirp(r, "livekit.SIP/CreateSIPParticipant") && r.json()["room_name"] == id.as_str()
            })
            .await;
        (id, dial)
    }

    /// Sends a signed webhook event and expects it accepted.
    async fn webhook(&self, event: &Value) {
        assert_eq!(self.mock.webhook(&self.webhook_url, event).await, 200, "{event}");
    }

    async fn wait_for_call(&self, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        wait_for_call(&self.server, &self.token, id, what, check).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_agent_calls_dial_over_sip_and_follow_participant_webhooks() {
    let rig = livekit_rig(ServerOptions::default()).await;
    let (id, dial) = rig.place_call().await;
    assert_eq!(dial.status, 200, "{}", dial.answer);
    let dials = rig.mock.requests().into_iter().filter(|r| is_twirp(r, "livekit.SIP/CreateSIPParticipant")).count();
    assert_eq!(dials, 1, "the customer is dialed once");
    let body = dial.json();
    for (field, expected) in [
        ("sip_trunk_id", json!(SIP_TRUNK)),
        ("sip_call_to", json!(CUSTOMER_E164)),
        ("sip_number", json!(AGENT_DID_E164)),
        ("room_name", json!(id)),
        ("participant_identity", json!(format!("sip_{id}"))),
        ("participant_name", json!("customer")),
        ("ringing_timeout", json!("30s")),
        ("wait_until_answered", json!(false)),
    ] {
        assert_eq!(body[field], expected, "{field}");
    }
    let metadata = body["participant_metadata"].as_str().expect("participant_metadata is a string");
    let config: Value = serde_json::from_str(metadata).expect("participant_metadata holds JSON");
    let config = config.to_string();
    assert!(
        config.contains(&rig.agent_id) && config.contains("You are a helpful agent."),
        "the agent's config: {metadata}"
    );
    let claims = rig.mock.claims_of(&dial);
    assert_eq!(claims["iss"], rig.mock.api_key.as_str());
    assert_eq!(claims["sip"]["call"], true);
    assert_eq!(claims["video"]["room"], id.as_str());
    assert_eq!(
        (claims["video"]["roomCreate"].as_bool(), claims["video"]["roomAdmin"].as_bool()),
        (Some(true), Some(true))
    );
    let (now, exp) = (Utc::now().timestamp(), claims["exp"].as_i64().expect("exp"));
    assert!(exp > now && exp <= now + 600, "the token lasts at most 10 minutes: exp {exp}, now {now}");

    let participant = [dial.answer["participant_id"].clone(), dial.answer["sip_call_id"].clone()];
    let placed = rig.wait_for_call(&id, "the SIP participant", |c| participant.contains(&c["provider_call_id"])).await;
    assert_eq!(
        (placed["provider"].as_str(), placed["carrier_id"].as_str()),
        (Some("livekit"), Some(rig.carrier_id.as_str()))
    );

    let identity = format!("sip_{id}");
    rig.webhook(&participant_event("participant_joined", &id, &identity, None)).await;
    rig.wait_for_call(&id, "status in_progress", |c| c["status"] == "in_progress").await;
    // LiveKit sends the bare token; a "Bearer " prefix is accepted too.
    let left = participant_event("participant_left", &id, &identity, Some("CLIENT_INITIATED")).to_string().into_bytes();
    let bearer = format!("Bearer {}", rig.mock.webhook_token(&left));
    assert_eq!(rig.mock.webhook_with_authorization(&rig.webhook_url, &left, Some(bearer.as_str())).await, 200);
    let ended = rig.wait_for_call(&id, "its end", has_ended).await;
    assert_eq!(ended["outcome"], "completed", "{ended}");
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_disconnect_reasons_decide_the_outcome() {
    let rig = livekit_rig(ServerOptions::default()).await;
    for (reason, outcome) in [
        ("USER_REJECTED", "busy"),
        ("USER_UNAVAILABLE", "no_answer"),
        ("SIP_TRUNK_FAILURE", "failed"),
        ("JOIN_FAILURE", "failed"),
        ("MEDIA_FAILURE", "failed"),
    ] {
        let (id, _) = rig.place_call().await;
        rig.webhook(&participant_event("participant_left", &id, &format!("sip_{id}"), Some(reason))).await;
        let ended = rig.wait_for_call(&id, "its end", has_ended).await;
        assert_eq!(ended["outcome"], outcome, "{reason}: {ended}");
    }
    rig.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_webhooks_without_a_valid_token_are_refused() {
    let rig = livekit_rig(ServerOptions::default()).await;
    let (id, _) = rig.place_call().await;
    let joined = participant_event("participant_joined", &id, &format!("sip_{id}"), None);
    let body = joined.to_string().into_bytes();
    let mut other = joined.clone();
    other["participant"]["name"] = json!("someone else");
    let other_body = other.to_string().into_bytes();
    let (key, secret, now) = (rig.mock.api_key.as_str(), rig.mock.api_secret.as_str(), Utc::now().timestamp());
    for (what, authorization) in [
        ("no token", None),
        ("not a JWT", Some("not-a-jwt".to_string())),
        ("another secret", Some(livekit_webhook_token(key, "test-another-secret-0123456789abcdef", &body, now))),
        ("an unknown API key", Some(livekit_webhook_token("APIunknown", secret, &body, now))),
        ("the checksum of another body", Some(livekit_webhook_token(key, secret, &other_body, now))),
        ("an expired token", Some(livekit_webhook_token(key, secret, &body, now - 600))),
    ] {
        let status = rig.mock.webhook_with_authorization(&rig.webhook_url, &body, authorization.as_deref()).await;
        assert_eq!(status, 401, "{what}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let call = call_of(&rig.server, &rig.token, &id).await;
    assert!(call["status"] != "in_progress" && !has_ended(&call), "a refused webhook changes nothing: {call}");

    rig.webhook(&joined).await;
    rig.wait_for_call(&id, "status in_progress", |c| c["status"] == "in_progress").await;
    rig.server.stop().await;
}

/// Returns the number of active LiveKit calls: the Redis key (a plain counter, as seed 002 has
/// it incremented and decremented) when the server uses Redis, else the
/// `dialplane_livekit_active_calls` gauge of `/metrics`.
async fn active_livekit_calls(server: &TestServer, key: &str) -> i64 {
    if let Some((url, _)) = &server.redis {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let count: Option<i64> = redis::cmd("GET").arg(key).query_async(&mut connection).await.unwrap();
        return count.unwrap_or(0);
    }
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let gauge = "dialplane_livekit_active_calls";
    metrics
        .lines()
        .filter(|line| line.strip_prefix(gauge).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

/// Waits until the count of active LiveKit calls is `n`.
async fn expect_active(server: &TestServer, key: &str, n: i64) {
    eventually(&format!("{n} active LiveKit calls"), || async { active_livekit_calls(server, key).await == n }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livekit_room_events_keep_the_active_call_count_exact() {
    // Only this test sends room events, so the process-wide gauge is this server's when there is
    // no Redis.
    let key = format!("dp_test_{}:livekit:active_calls", dialplane::ids::random_lower_alphanumeric(12));
    let mut options = ServerOptions::default();
    options.extra.push(("DIALPLANE_LIVEKIT_ACTIVE_CALLS_KEY", key.clone()));
    let rig = livekit_rig(options).await;
    let (first, _) = rig.place_call().await;
    let (second, _) = rig.place_call().await;

    let started = room_event("room_started", &first);
    rig.webhook(&started).await;
    rig.webhook(&started).await; // redelivered: the same event id
    rig.webhook(&room_event("room_started", &first)).await; // the same room announced again
    expect_active(&rig.server, &key, 1).await;
    rig.webhook(&room_event("room_started", &second)).await;
    expect_active(&rig.server, &key, 2).await;

    let status = rig.mock.webhook(&rig.webhook_url, &room_event("room_finished", "a-room-that-never-started")).await;
    assert!(status == 200 || status == 404, "a room Dialplane never saw: {status}");
    expect_active(&rig.server, &key, 2).await;
    let finished = room_event("room_finished", &second);
    rig.webhook(&finished).await;
    rig.webhook(&finished).await;
    rig.webhook(&room_event("room_finished", &second)).await;
    expect_active(&rig.server, &key, 1).await;
    rig.webhook(&room_event("room_finished", &first)).await;
    expect_active(&rig.server, &key, 0).await;
    // Reordered: a room's finish arriving before its start never leaves it counted.
    let (third, _) = rig.place_call().await;
    rig.webhook(&room_event("room_finished", &third)).await;
    rig.webhook(&room_event("room_started", &third)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(active_livekit_calls(&rig.server, &key).await, 0);

    if let Some((url, _)) = &rig.server.redis {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let _: i64 =
            redis::cmd("DEL").arg(&key).arg(format!("{key}:rooms")).query_async(&mut connection).await.unwrap();
    }
    rig.server.stop().await;
}
