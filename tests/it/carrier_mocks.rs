//! Mock carriers for the integration tests, written from the carriers' public documentation
//! (`PROTOCOLS.md` §1 Twilio, §2 Exotel, §4 LiveKit) and not from Dialplane's adapters, so that a
//! misreading of a protocol shows up as a failing test instead of two mistakes that agree.
//!
//! Each mock is a warp server on `127.0.0.1:0`. It records every request it gets (method, path,
//! query, `Authorization`, form parameters with repeated keys kept, the raw body, what it answered
//! and when), plays the carrier's REST API, and sends the carrier's callbacks to Dialplane, signed
//! as the carrier signs them. Tests script failures (error bodies, rate limits) and the status the
//! carrier reports when asked.
//!
//! Twilio signs with HMAC-SHA1. The mock builds the signed string on its own (checked against
//! Twilio's official signature vectors at the bottom of this file), so a misreading of the
//! algorithm in the adapter cannot agree with it by construction.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use tokio::time::Instant;
use warp::Filter;
use warp::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use warp::http::{HeaderMap, Method, StatusCode};

use crate::support::PATIENCE;

// ---------------------------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------------------------

/// One request a mock received, with what it answered.
#[derive(Clone, Debug)]
pub struct MockRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there was none.
    pub query: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// Form parameters in the order sent, repeated keys kept; empty unless the body was a form.
    pub form: Vec<(String, String)>,
    pub body: Bytes,
    /// The status the mock answered.
    pub status: u16,
    /// The JSON the mock answered (`null` for other answers).
    pub answer: Value,
    /// When the request arrived.
    pub at: Instant,
}

impl MockRequest {
    /// Returns the first value of a form parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    /// Returns every value of a form parameter, in the order sent.
    pub fn params(&self, name: &str) -> Vec<&str> {
        self.form.iter().filter(|(key, _)| key == name).map(|(_, value)| value.as_str()).collect()
    }

    /// Returns the first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
    }

    /// Returns the body as JSON, `null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// A request as the handler of a mock sees it, before it is answered.
struct Incoming {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Incoming {
    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_string)
    }

    /// Returns the form parameters, repeated keys kept, when the body is a form.
    fn form(&self) -> Vec<(String, String)> {
        let is_form =
            self.header("content-type").is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
        if is_form { url::form_urlencoded::parse(&self.body).into_owned().collect() } else { Vec::new() }
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What a mock answers.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer { status, headers: Vec::new(), content_type: "application/json", body: body.to_string().into_bytes() }
    }

    fn audio(content_type: &'static str, body: Vec<u8>) -> Answer {
        Answer { status: 200, headers: Vec::new(), content_type, body }
    }

    /// Adds a header; `name` must be lowercase.
    fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }

    fn json_body(&self) -> Value {
        if self.content_type == "application/json" {
            serde_json::from_slice(&self.body).unwrap_or(Value::Null)
        } else {
            Value::Null
        }
    }

    fn into_response(self) -> warp::reply::Response {
        let mut response = warp::reply::Response::new(self.body.into());
        *response.status_mut() = StatusCode::from_u16(self.status).expect("a valid status");
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        for (name, value) in self.headers {
            headers.insert(HeaderName::from_static(name), HeaderValue::from_str(&value).expect("a valid header"));
        }
        response
    }
}

/// The request log of a mock, shared with its server task.
type Log = Arc<Mutex<Vec<MockRequest>>>;

/// A mock's server: where it listens, what it received, and the sender whose drop stops it.
struct Served {
    base: String,
    log: Log,
    shutdown: oneshot::Sender<()>,
}

/// Serves `handler` on `127.0.0.1:0`, recording every request with its answer.
async fn serve(handler: impl Fn(&Incoming) -> Answer + Send + Sync + 'static) -> Served {
    let log: Log = Arc::default();
    let handler = Arc::new(handler);
    let recorder = log.clone();
    let route = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::bytes())
        .map(move |method: Method, path: warp::path::FullPath, query: String, headers: HeaderMap, body: Bytes| {
            let incoming = Incoming { method, path: path.as_str().to_string(), query, headers, body };
            let answer = handler(&incoming);
            recorder.lock().unwrap().push(MockRequest {
                method: incoming.method.to_string(),
                path: incoming.path.clone(),
                query: incoming.query.clone(),
                authorization: incoming.header("authorization"),
                content_type: incoming.header("content-type"),
                form: incoming.form(),
                body: incoming.body.clone(),
                status: answer.status,
                answer: answer.json_body(),
                at: Instant::now(),
            });
            answer.into_response()
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (shutdown, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            })
            .run(),
    );
    Served { base, log, shutdown }
}

/// Returns `METHOD path -> status` for each request, for failure messages (no headers: they
/// carry credentials).
fn summary(requests: &[MockRequest]) -> Vec<String> {
    requests.iter().map(|r| format!("{} {} -> {}", r.method, r.path, r.status)).collect()
}

/// Waits until a request in `log` satisfies `check` and returns the first that does.
async fn wait_for_request(log: &Log, what: &str, check: impl Fn(&MockRequest) -> bool) -> MockRequest {
    let started = Instant::now();
    loop {
        let found = log.lock().unwrap().iter().find(|r| check(r)).cloned();
        if let Some(request) = found {
            return request;
        }
        assert!(started.elapsed() < PATIENCE, "timed out waiting for {what}; got {:?}", summary(&log.lock().unwrap()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until at least `n` requests in `log` satisfy `check` and returns all that do.
async fn wait_for_requests(log: &Log, what: &str, n: usize, check: impl Fn(&MockRequest) -> bool) -> Vec<MockRequest> {
    let started = Instant::now();
    loop {
        let found: Vec<MockRequest> = log.lock().unwrap().iter().filter(|r| check(r)).cloned().collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "timed out waiting for {n} {what}, got {}; all requests: {:?}",
            found.len(),
            summary(&log.lock().unwrap())
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Returns an HTTP Basic `Authorization` value (RFC 7617).
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// Returns `n` random lowercase hex digits.
fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| char::from_digit(rng.random_range(0..16u32), 16).unwrap()).collect()
}

/// Returns `prefix` followed by 12 random alphanumerics (`PA_…`, `EV_…`).
fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", dialplane::ids::random_alphanumeric(12))
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Returns a short, valid WAV file: 0.1 s of 8 kHz, 16-bit mono silence.
pub fn wav_bytes() -> Vec<u8> {
    let data_len: u32 = 1600;
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // size of the fmt chunk
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8000u32.to_le_bytes()); // samples per second
    wav.extend_from_slice(&16000u32.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes per sample frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    wav.resize(44 + data_len as usize, 0);
    wav
}

/// Returns bytes shaped like an MP3 file (an empty ID3v2.4 tag, then zeros), as Exotel serves.
pub fn mp3_bytes() -> Vec<u8> {
    let mut mp3 = b"ID3\x04\x00\x00\x00\x00\x00\x00".to_vec();
    mp3.resize(512, 0);
    mp3
}

// ---------------------------------------------------------------------------------------------
// Twilio (PROTOCOLS §1)
// ---------------------------------------------------------------------------------------------

/// The duration, in seconds, Twilio reports for a completed call.
pub const TWILIO_COMPLETED_DURATION_S: &str = "42";

/// Returns true for the call statuses after which Twilio sends `CallDuration`.
fn is_terminal_twilio_status(status: &str) -> bool {
    matches!(status, "completed" | "busy" | "failed" | "no-answer" | "canceled")
}

fn twilio_duration(status: &str) -> &'static str {
    if status == "completed" { TWILIO_COMPLETED_DURATION_S } else { "0" }
}

/// A Twilio call as the mock keeps it.
#[derive(Clone, Debug)]
struct TwilioCall {
    to: String,
    from: String,
    status: String,
    /// The call whose `<Dial>` made this one, for the customer's leg.
    parent_call_sid: Option<String>,
    date_created: String,
}

#[derive(Default)]
struct TwilioState {
    calls: HashMap<String, TwilioCall>,
    /// Answers for the next create requests, given instead of the normal `201`.
    create_script: VecDeque<Answer>,
}

/// One Twilio call that status callbacks talk about: the agent's call Dialplane created, or the
/// customer's call that its `<Dial><Number>` creates as a child.
#[derive(Clone, Debug)]
pub struct TwilioLeg {
    pub call_sid: String,
    pub parent_call_sid: Option<String>,
    pub from: String,
    pub to: String,
}

impl TwilioLeg {
    /// Returns the child call a `<Dial><Number>{to}</Number></Dial>` of this call creates.
    pub fn dial(&self, to: &str) -> TwilioLeg {
        TwilioLeg {
            call_sid: format!("CA{}", random_hex(32)),
            parent_call_sid: Some(self.call_sid.clone()),
            from: self.from.clone(),
            to: to.to_string(),
        }
    }
}

/// Twilio's Programmable Voice REST API (create, fetch and update a call, fetch a recording) and
/// its signed status callbacks.
pub struct MockTwilio {
    pub base: String,
    pub account_sid: String,
    pub auth_token: String,
    state: Arc<Mutex<TwilioState>>,
    log: Log,
    http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

impl MockTwilio {
    pub async fn start() -> MockTwilio {
        let account_sid = format!("AC{}", random_hex(32));
        let auth_token = format!("test-twilio-token-{}", random_hex(16));
        let state: Arc<Mutex<TwilioState>> = Arc::default();
        let (sid, token, shared) = (account_sid.clone(), auth_token.clone(), state.clone());
        let served = serve(move |request| twilio_answer(&mut shared.lock().unwrap(), &sid, &token, request)).await;
        MockTwilio {
            base: served.base,
            account_sid,
            auth_token,
            state,
            log: served.log,
            http: http_client(),
            _shutdown: served.shutdown,
        }
    }

    /// Returns every request received so far.
    pub fn requests(&self) -> Vec<MockRequest> {
        self.log.lock().unwrap().clone()
    }

    /// Returns the create requests received so far, whatever they were answered.
    pub fn creates(&self) -> Vec<MockRequest> {
        self.requests().into_iter().filter(is_twilio_create).collect()
    }

    /// Waits until `n` create requests have arrived and returns them in arrival order.
    pub async fn wait_for_creates(&self, n: usize) -> Vec<MockRequest> {
        wait_for_requests(&self.log, "Twilio call creations", n, is_twilio_create).await
    }

    /// Waits until a request satisfies `check` and returns it.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&MockRequest) -> bool) -> MockRequest {
        wait_for_request(&self.log, what, check).await
    }

    /// Sets the status the API reports for a call (adding the call if the mock does not know it).
    pub fn set_status(&self, sid: &str, status: &str) {
        let mut state = self.state.lock().unwrap();
        let call = state.calls.entry(sid.to_string()).or_insert_with(|| TwilioCall {
            to: String::new(),
            from: String::new(),
            status: String::new(),
            parent_call_sid: None,
            date_created: Utc::now().to_rfc2822(),
        });
        call.status = status.to_string();
    }

    /// Sets the status the API reports for a leg, adding it (with its parent, so that listing the
    /// calls of a parent finds it) if the mock does not know it: Twilio creates the customer's
    /// call itself, from the `<Dial>` of the agent's call.
    pub fn set_leg_status(&self, leg: &TwilioLeg, status: &str) {
        let call = TwilioCall {
            to: leg.to.clone(),
            from: leg.from.clone(),
            status: status.to_string(),
            parent_call_sid: leg.parent_call_sid.clone(),
            date_created: Utc::now().to_rfc2822(),
        };
        self.state.lock().unwrap().calls.insert(leg.call_sid.clone(), call);
    }

    /// Answers the next create with a Twilio error body (PROTOCOLS §1.4).
    pub fn reject_next_create(&self, status: u16, code: u32, message: &str) {
        self.state.lock().unwrap().create_script.push_back(twilio_error(status, code, message));
    }

    /// Answers the next create with `429 Too Many Requests` (code 20429) and `Retry-After`.
    pub fn throttle_next_create(&self, retry_after_s: u32) {
        let answer =
            twilio_error(429, 20429, "Too Many Requests").with_header("retry-after", retry_after_s.to_string());
        self.state.lock().unwrap().create_script.push_back(answer);
    }

    /// Returns the agent's call a create request made: the sid Twilio answered, `From` and `To`.
    pub fn agent_leg(&self, create: &MockRequest) -> TwilioLeg {
        TwilioLeg {
            call_sid: create.answer["sid"].as_str().expect("the create was answered with a call").to_string(),
            parent_call_sid: None,
            from: create.param("From").unwrap_or_default().to_string(),
            to: create.param("To").unwrap_or_default().to_string(),
        }
    }

    /// Returns the parameters of a status callback about `leg` (PROTOCOLS §1.5).
    pub fn status_params(&self, leg: &TwilioLeg, status: &str, sequence: u32) -> Vec<(String, String)> {
        let direction = if leg.parent_call_sid.is_some() { "outbound-dial" } else { "outbound-api" };
        let mut params = vec![
            ("CallSid", leg.call_sid.clone()),
            ("AccountSid", self.account_sid.clone()),
            ("From", leg.from.clone()),
            ("Caller", leg.from.clone()),
            ("To", leg.to.clone()),
            ("Called", leg.to.clone()),
            ("CallStatus", status.to_string()),
            ("Direction", direction.to_string()),
            ("ApiVersion", "2010-04-01".to_string()),
            ("CallbackSource", "call-progress-events".to_string()),
            ("SequenceNumber", sequence.to_string()),
            ("Timestamp", Utc::now().to_rfc2822()),
        ];
        if let Some(parent) = &leg.parent_call_sid {
            params.push(("ParentCallSid", parent.clone()));
        }
        if is_terminal_twilio_status(status) {
            params.push(("CallDuration", twilio_duration(status).to_string()));
        }
        params.into_iter().map(|(name, value)| (name.to_string(), value)).collect()
    }

    /// Returns where the mock serves a recording, as Twilio puts it in `RecordingUrl` (no extension).
    pub fn recording_url(&self, recording_sid: &str) -> String {
        format!("{}/2010-04-01/Accounts/{}/Recordings/{recording_sid}", self.base, self.account_sid)
    }

    /// Returns the parameters of a recording status callback (PROTOCOLS §1.6).
    pub fn recording_params(&self, call_sid: &str, recording_sid: &str) -> Vec<(String, String)> {
        [
            ("AccountSid", self.account_sid.clone()),
            ("CallSid", call_sid.to_string()),
            ("RecordingSid", recording_sid.to_string()),
            ("RecordingUrl", self.recording_url(recording_sid)),
            ("RecordingStatus", "completed".to_string()),
            ("RecordingDuration", "41".to_string()),
            ("RecordingChannels", "1".to_string()),
            ("RecordingStartTime", Utc::now().to_rfc2822()),
            ("RecordingSource", "OutboundAPI".to_string()),
            ("RecordingTrack", "both".to_string()),
            ("ErrorCode", "0".to_string()),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
    }

    /// Returns the `X-Twilio-Signature` of a callback, made with this account's auth token.
    pub fn sign<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> String {
        twilio_signature(&self.auth_token, url, params)
    }

    /// POSTs a callback to `url` as Twilio does: form-encoded and signed. Returns the status.
    pub async fn callback<K: AsRef<str>, V: AsRef<str>>(&self, url: &str, params: &[(K, V)]) -> u16 {
        let signature = self.sign(url, params);
        self.callback_with_signature(url, params, Some(signature.as_str())).await
    }

    /// POSTs a callback to `url` with the given `X-Twilio-Signature` (none when `None`).
    pub async fn callback_with_signature<K: AsRef<str>, V: AsRef<str>>(
        &self,
        url: &str,
        params: &[(K, V)],
        signature: Option<&str>,
    ) -> u16 {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter().map(|(name, value)| (name.as_ref(), value.as_ref())))
            .finish();
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("user-agent", "TwilioProxy/1.1")
            .body(body);
        if let Some(signature) = signature {
            request = request.header("x-twilio-signature", signature);
        }
        request.send().await.expect("Dialplane answers callbacks").status().as_u16()
    }
}

fn is_twilio_create(request: &MockRequest) -> bool {
    request.method == "POST" && request.path.ends_with("/Calls.json")
}

/// Returns a Twilio error in the legacy 2010 API format.
fn twilio_error(status: u16, code: u32, message: &str) -> Answer {
    Answer::json(
        status,
        json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status,
        }),
    )
}

/// Plays Twilio's REST API for one request.
fn twilio_answer(state: &mut TwilioState, account_sid: &str, auth_token: &str, request: &Incoming) -> Answer {
    if request.header("authorization") != Some(basic(account_sid, auth_token)) {
        return twilio_error(401, 20003, "Authenticate");
    }
    let not_found = || twilio_error(404, 20404, "The requested resource was not found");
    let Some(resource) = request.path.strip_prefix(&format!("/2010-04-01/Accounts/{account_sid}/")) else {
        return not_found();
    };
    if resource == "Calls.json" && request.method == Method::POST {
        return twilio_create(state, account_sid, &request.form());
    }
    if resource == "Calls.json" && request.method == Method::GET {
        return Answer::json(200, twilio_call_page(state, account_sid, &request.query));
    }
    if let Some(sid) = resource.strip_prefix("Calls/").and_then(|rest| rest.strip_suffix(".json")) {
        let Some(call) = state.calls.get_mut(sid) else { return not_found() };
        if request.method == Method::POST {
            let form = request.form();
            if let Some((_, status)) = form.iter().find(|(name, _)| name == "Status") {
                if !matches!(status.as_str(), "completed" | "canceled") {
                    return twilio_error(400, 21218, "Invalid Status value");
                }
                call.status = status.clone();
            }
        } else if request.method != Method::GET {
            return not_found();
        }
        return Answer::json(200, twilio_call_json(account_sid, sid, call));
    }
    let is_recording = resource.strip_prefix("Recordings/").is_some_and(|rest| rest.ends_with(".wav"));
    if is_recording && request.method == Method::GET {
        return Answer::audio("audio/x-wav", wav_bytes());
    }
    not_found()
}

fn twilio_create(state: &mut TwilioState, account_sid: &str, form: &[(String, String)]) -> Answer {
    if let Some(scripted) = state.create_script.pop_front() {
        return scripted;
    }
    let param = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let (Some(to), Some(from)) = (param("To"), param("From")) else {
        return twilio_error(400, 21201, "No 'To' or 'From' number is specified");
    };
    if param("Url").is_none() && param("Twiml").is_none() && param("ApplicationSid").is_none() {
        return twilio_error(400, 21205, "Url parameter is required");
    }
    let sid = format!("CA{}", random_hex(32));
    let call = TwilioCall {
        to,
        from,
        status: "queued".to_string(),
        parent_call_sid: None,
        date_created: Utc::now().to_rfc2822(),
    };
    let body = twilio_call_json(account_sid, &sid, &call);
    state.calls.insert(sid, call);
    Answer::json(201, body)
}

/// Returns the Call resource (PROTOCOLS §1.2): RFC 2822 dates, durations as strings.
fn twilio_call_json(account_sid: &str, sid: &str, call: &TwilioCall) -> Value {
    let ended = is_terminal_twilio_status(&call.status);
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Calls/{sid}");
    json!({
        "sid": sid,
        "account_sid": account_sid,
        "parent_call_sid": call.parent_call_sid,
        "date_created": call.date_created,
        "date_updated": Utc::now().to_rfc2822(),
        "to": call.to,
        "to_formatted": call.to,
        "from": call.from,
        "from_formatted": call.from,
        "phone_number_sid": null,
        "status": call.status,
        "start_time": if call.status == "queued" { Value::Null } else { json!(call.date_created) },
        "end_time": if ended { json!(Utc::now().to_rfc2822()) } else { Value::Null },
        "duration": if ended { json!(twilio_duration(&call.status)) } else { Value::Null },
        "price": null,
        "price_unit": "USD",
        "direction": if call.parent_call_sid.is_some() { "outbound-dial" } else { "outbound-api" },
        "answered_by": null,
        "api_version": "2010-04-01",
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": format!("{uri}.json"),
        "subresource_uris": {
            "notifications": format!("{uri}/Notifications.json"),
            "recordings": format!("{uri}/Recordings.json"),
            "events": format!("{uri}/Events.json"),
        },
    })
}

/// Returns one page of the calls list (`GET Calls.json`), filtered by the query's `ParentCallSid`,
/// `Status`, `To` and `From` as Twilio filters it; every match fits on the first page.
fn twilio_call_page(state: &TwilioState, account_sid: &str, query: &str) -> Value {
    let filters: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let wanted = |name: &str| filters.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let mut calls: Vec<(&String, &TwilioCall)> = state
        .calls
        .iter()
        .filter(|(_, call)| {
            wanted("ParentCallSid").is_none_or(|parent| call.parent_call_sid.as_ref() == Some(&parent))
                && wanted("Status").is_none_or(|status| call.status == status)
                && wanted("To").is_none_or(|to| call.to == to)
                && wanted("From").is_none_or(|from| call.from == from)
        })
        .collect();
    calls.sort_by(|a, b| a.0.cmp(b.0));
    let uri = format!("/2010-04-01/Accounts/{account_sid}/Calls.json?{query}");
    json!({
        "calls": calls.iter().map(|(sid, call)| twilio_call_json(account_sid, sid, call)).collect::<Vec<_>>(),
        "start": 0,
        "end": calls.len().saturating_sub(1),
        "page": 0,
        "page_size": 50,
        "uri": uri,
        "first_page_uri": uri,
        "next_page_uri": null,
        "previous_page_uri": null,
    })
}

/// Returns Twilio's `X-Twilio-Signature` for a form POST to `url` (PROTOCOLS §1.7): base64 of the
/// HMAC-SHA1, keyed with the auth token, of the URL followed by each name and value, names sorted
/// and each name's distinct values sorted, with no separators.
pub fn twilio_signature<K: AsRef<str>, V: AsRef<str>>(auth_token: &str, url: &str, params: &[(K, V)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name.as_ref()).or_default().insert(value.as_ref());
    }
    let mut data = url.to_string();
    for (name, values) in sorted {
        for value in values {
            data.push_str(name);
            data.push_str(value);
        }
    }
    STANDARD.encode(hmac_sha1(auth_token.as_bytes(), data.as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Exotel (PROTOCOLS §2)
// ---------------------------------------------------------------------------------------------

/// An Exotel call as the mock keeps it.
#[derive(Clone, Debug)]
struct ExotelCall {
    from: String,
    to: String,
    caller_id: String,
    status: String,
    leg1_status: Option<String>,
    leg2_status: Option<String>,
    date_created: String,
    recording_url: Option<String>,
}

#[derive(Default)]
struct ExotelState {
    calls: HashMap<String, ExotelCall>,
    /// How many of the next connect requests are answered `429`.
    throttled: usize,
}

/// Exotel's connect-two-numbers API, its call details API and recordings, and its JSON status
/// callbacks (unsigned: Dialplane authenticates them by the token in the callback URL).
pub struct MockExotel {
    pub base: String,
    pub account_sid: String,
    pub api_key: String,
    pub api_token: String,
    state: Arc<Mutex<ExotelState>>,
    log: Log,
    http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

impl MockExotel {
    pub async fn start() -> MockExotel {
        let account_sid = format!("dialplane{}", random_hex(6));
        let api_key = format!("test-exotel-key-{}", random_hex(12));
        let api_token = format!("test-exotel-token-{}", random_hex(16));
        let state: Arc<Mutex<ExotelState>> = Arc::default();
        let auth = basic(&api_key, &api_token);
        let (sid, shared) = (account_sid.clone(), state.clone());
        let served = serve(move |request| exotel_answer(&mut shared.lock().unwrap(), &sid, &auth, request)).await;
        MockExotel {
            base: served.base,
            account_sid,
            api_key,
            api_token,
            state,
            log: served.log,
            http: http_client(),
            _shutdown: served.shutdown,
        }
    }

    /// Returns every request received so far.
    pub fn requests(&self) -> Vec<MockRequest> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until `n` connect requests have arrived (whatever they were answered).
    pub async fn wait_for_connects(&self, n: usize) -> Vec<MockRequest> {
        wait_for_requests(&self.log, "Exotel connect requests", n, is_exotel_connect).await
    }

    /// Waits until a request satisfies `check` and returns it.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&MockRequest) -> bool) -> MockRequest {
        wait_for_request(&self.log, what, check).await
    }

    /// Answers the next `n` connect requests `429` with `Retry-After: 1` and `X-RateLimit-*`.
    pub fn throttle_next(&self, n: usize) {
        self.state.lock().unwrap().throttled = n;
    }

    /// Sets what the call details API reports for a call: its status and both legs' statuses.
    pub fn set_status(&self, sid: &str, status: &str, legs: [&str; 2]) {
        let recording_url = (status == "completed").then(|| self.recording_url(sid));
        let mut state = self.state.lock().unwrap();
        let call = state.calls.get_mut(sid).expect("a call the mock placed");
        call.status = status.to_string();
        call.leg1_status = Some(legs[0].to_string());
        call.leg2_status = Some(legs[1].to_string());
        call.recording_url = recording_url;
    }

    /// Returns where the mock serves a call's recording (on the API host, so Basic auth applies).
    pub fn recording_url(&self, sid: &str) -> String {
        format!("{}/v1/Accounts/{}/Recordings/{sid}.mp3", self.base, self.account_sid)
    }

    /// Returns a JSON status callback (PROTOCOLS §2.2) about the call a connect request placed.
    /// `legs` are the statuses of leg 1 (the agent, `From`) and leg 2 (the customer, `To`).
    pub fn status_callback(&self, connect: &MockRequest, event_type: &str, status: &str, legs: [&str; 2]) -> Value {
        let sid = connect.answer["Call"]["Sid"].as_str().expect("the connect placed a call");
        let now = exotel_time();
        let conversation_s = if status == "completed" { 30 } else { 0 };
        let terminal = event_type == "terminal";
        let legs: Vec<Value> = legs
            .iter()
            .map(|leg| {
                let answered = matches!(*leg, "completed" | "in-progress");
                json!({
                    "OnCallDuration": if answered { conversation_s + 5 } else { 0 },
                    "Status": leg,
                    "AnsweredBy": if answered { "Human" } else { "NA" },
                })
            })
            .collect();
        json!({
            "CallSid": sid,
            "EventType": event_type,
            "DateCreated": now,
            "DateUpdated": now,
            "To": connect.param("To"),
            "From": connect.param("From"),
            "PhoneNumberSid": connect.param("CallerId"),
            "StartTime": now,
            "EndTime": if terminal { json!(now) } else { Value::Null },
            "Status": status,
            "ConversationDuration": conversation_s,
            "Direction": "outbound-api",
            "CustomField": connect.param("CustomField"),
            "RecordingUrl": if terminal && status == "completed" { json!(self.recording_url(sid)) } else { Value::Null },
            "Legs": legs,
        })
    }

    /// POSTs a JSON status callback to `url`, as Exotel does with
    /// `StatusCallbackContentType=application/json`. Returns the status.
    pub async fn callback(&self, url: &str, body: &Value) -> u16 {
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("Dialplane answers callbacks");
        response.status().as_u16()
    }
}

fn is_exotel_connect(request: &MockRequest) -> bool {
    request.method == "POST" && request.path.ends_with("/Calls/connect.json")
}

/// Returns Exotel's time format: `YYYY-MM-DD HH:mm:ss`, no zone.
fn exotel_time() -> String {
    Utc::now().format("%Y-%m-%d %H:%M:%S").to_string()
}

fn exotel_error(status: u16, message: &str, code: &str) -> Answer {
    Answer::json(status, json!({"RestException": {"Status": status, "Message": message, "Code": code}}))
}

/// Plays Exotel's API for one request.
fn exotel_answer(state: &mut ExotelState, account_sid: &str, auth: &str, request: &Incoming) -> Answer {
    if request.header("authorization").as_deref() != Some(auth) {
        return exotel_error(401, "Authentication failed", "UNAUTHORIZED");
    }
    let not_found = || exotel_error(404, "The requested resource was not found", "NOT_FOUND");
    let Some(resource) = request.path.strip_prefix(&format!("/v1/Accounts/{account_sid}/")) else {
        return not_found();
    };
    if resource == "Calls/connect.json" && request.method == Method::POST {
        if state.throttled > 0 {
            state.throttled -= 1;
            let reset = (Utc::now().timestamp() + 1).to_string();
            return exotel_error(429, "Too Many Requests", "TOO_MANY_REQUESTS")
                .with_header("retry-after", "1")
                .with_header("x-ratelimit-limit", "200")
                .with_header("x-ratelimit-remaining", "0")
                .with_header("x-ratelimit-reset", reset);
        }
        return exotel_connect(state, account_sid, &request.form());
    }
    if let Some(sid) = resource.strip_prefix("Calls/").and_then(|rest| rest.strip_suffix(".json"))
        && request.method == Method::GET
    {
        let Some(call) = state.calls.get(sid) else { return not_found() };
        let details = url::form_urlencoded::parse(request.query.as_bytes())
            .any(|(name, value)| name == "details" && value == "true");
        return Answer::json(200, json!({"Call": exotel_call_json(account_sid, sid, call, details)}));
    }
    if resource.starts_with("Recordings/") && request.method == Method::GET {
        return Answer::audio("audio/mpeg", mp3_bytes());
    }
    not_found()
}

fn exotel_connect(state: &mut ExotelState, account_sid: &str, form: &[(String, String)]) -> Answer {
    let param = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let (Some(from), Some(to), Some(caller_id)) = (param("From"), param("To"), param("CallerId")) else {
        return exotel_error(400, "From, To and CallerId are required", "BAD_REQUEST");
    };
    let sid = random_hex(32);
    let call = ExotelCall {
        from,
        to,
        caller_id,
        status: "in-progress".to_string(),
        leg1_status: None,
        leg2_status: None,
        date_created: exotel_time(),
        recording_url: None,
    };
    let body = json!({"Call": exotel_call_json(account_sid, &sid, &call, false)});
    state.calls.insert(sid, call);
    Answer::json(200, body)
}

/// Returns Exotel's Call object, with `Details` when asked for (`?details=true`).
fn exotel_call_json(account_sid: &str, sid: &str, call: &ExotelCall, details: bool) -> Value {
    let ended = matches!(call.status.as_str(), "completed" | "failed" | "busy" | "no-answer");
    let conversation_s = if call.status == "completed" { 30 } else { 0 };
    let mut body = json!({
        "Sid": sid,
        "ParentCallSid": null,
        "DateCreated": call.date_created,
        "DateUpdated": exotel_time(),
        "AccountSid": account_sid,
        "To": call.to,
        "From": call.from,
        "PhoneNumberSid": call.caller_id,
        "Status": call.status,
        "StartTime": call.date_created,
        "EndTime": if ended { json!(exotel_time()) } else { Value::Null },
        "Duration": if ended { json!(conversation_s + 5) } else { Value::Null },
        "Price": null,
        "Direction": "outbound-api",
        "AnsweredBy": null,
        "ForwardedFrom": null,
        "CallerName": null,
        "Uri": format!("/v1/Accounts/{account_sid}/Calls/{sid}.json"),
        "RecordingUrl": call.recording_url,
    });
    if details {
        body["Details"] = json!({
            "ConversationDuration": conversation_s,
            "Leg1Status": call.leg1_status,
            "Leg2Status": call.leg2_status,
        });
    }
    body
}

// ---------------------------------------------------------------------------------------------
// LiveKit (PROTOCOLS §4)
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct LiveKitState {
    /// The participants of each room, as `ListParticipants` reports them.
    participants: HashMap<String, Vec<Value>>,
}

/// LiveKit's Twirp API (`CreateSIPParticipant`, `ListParticipants`, `DeleteRoom`), checking the
/// access token's signature and grants, and LiveKit's signed server webhooks.
pub struct MockLiveKit {
    pub base: String,
    pub api_key: String,
    pub api_secret: String,
    log: Log,
    http: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

impl MockLiveKit {
    pub async fn start() -> MockLiveKit {
        let api_key = format!("APItest{}", random_hex(8));
        let api_secret = format!("test-livekit-secret-{}", random_hex(24));
        let state = Mutex::new(LiveKitState::default());
        let (key, secret) = (api_key.clone(), api_secret.clone());
        let served = serve(move |request| livekit_answer(&mut state.lock().unwrap(), &key, &secret, request)).await;
        MockLiveKit {
            base: served.base,
            api_key,
            api_secret,
            log: served.log,
            http: http_client(),
            _shutdown: served.shutdown,
        }
    }

    /// Returns every request received so far.
    pub fn requests(&self) -> Vec<MockRequest> {
        self.log.lock().unwrap().clone()
    }

    /// Waits until a request satisfies `check` and returns it.
    pub async fn wait_for(&self, what: &str, check: impl Fn(&MockRequest) -> bool) -> MockRequest {
        wait_for_request(&self.log, what, check).await
    }

    /// Returns the claims of the access token a request carried, checked as LiveKit checks them.
    pub fn claims_of(&self, request: &MockRequest) -> Value {
        let token = request.authorization.as_deref().and_then(|value| value.strip_prefix("Bearer ")).expect("a bearer");
        verify_access_token(&self.api_key, &self.api_secret, token).expect("a valid access token")
    }

    /// Returns the `Authorization` value LiveKit would send with this webhook body.
    pub fn webhook_token(&self, body: &[u8]) -> String {
        livekit_webhook_token(&self.api_key, &self.api_secret, body, Utc::now().timestamp())
    }

    /// POSTs a webhook event to `url`, signed as LiveKit signs it. Returns the status.
    pub async fn webhook(&self, url: &str, event: &Value) -> u16 {
        let body = event.to_string().into_bytes();
        let token = self.webhook_token(&body);
        self.webhook_with_authorization(url, &body, Some(token.as_str())).await
    }

    /// POSTs a webhook body to `url` with the given `Authorization` (none when `None`).
    pub async fn webhook_with_authorization(&self, url: &str, body: &[u8], authorization: Option<&str>) -> u16 {
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/webhook+json")
            .header("user-agent", "LiveKit")
            .body(body.to_vec());
        if let Some(authorization) = authorization {
            request = request.header("authorization", authorization);
        }
        request.send().await.expect("Dialplane answers webhooks").status().as_u16()
    }
}

/// Returns true for a request to a Twirp method, e.g. `livekit.SIP/CreateSIPParticipant`.
pub fn is_twirp(request: &MockRequest, method: &str) -> bool {
    request.method == "POST" && request.path == format!("/twirp/{method}")
}

fn twirp_error(status: u16, code: &str, message: &str) -> Answer {
    Answer::json(status, json!({"code": code, "msg": message}))
}

/// Returns the claims of an API access token: HS256 with `api_secret`, issued by `api_key`,
/// not expired (LiveKit allows a minute of clock skew).
fn verify_access_token(api_key: &str, api_secret: &str, token: &str) -> Option<Value> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[api_key]);
    validation.validate_aud = false;
    validation.leeway = 60;
    let key = DecodingKey::from_secret(api_secret.as_bytes());
    jsonwebtoken::decode::<Value>(token, &key, &validation).ok().map(|data| data.claims)
}

/// Plays LiveKit's Twirp API for one request.
fn livekit_answer(state: &mut LiveKitState, api_key: &str, api_secret: &str, request: &Incoming) -> Answer {
    if request.method != Method::POST {
        return twirp_error(405, "bad_route", "Twirp methods are called with POST");
    }
    let token = request.header("authorization").and_then(|value| value.strip_prefix("Bearer ").map(str::to_string));
    let Some(claims) = token.and_then(|token| verify_access_token(api_key, api_secret, &token)) else {
        return twirp_error(401, "unauthenticated", "invalid token");
    };
    let Some(body) = request.json() else {
        return twirp_error(400, "malformed", "the body is not JSON");
    };
    let room = body["room"].as_str().unwrap_or_default().to_string();
    match request.path.as_str() {
        "/twirp/livekit.SIP/CreateSIPParticipant" => {
            if claims["sip"]["call"] != json!(true) {
                return twirp_error(403, "permission_denied", "requires the SIP call grant");
            }
            let (Some(_), Some(_)) = (body["sip_trunk_id"].as_str(), body["sip_call_to"].as_str()) else {
                return twirp_error(400, "invalid_argument", "sip_trunk_id and sip_call_to are required");
            };
            let room = body["room_name"].as_str().map_or_else(|| random_id("room_"), str::to_string);
            let identity = body["participant_identity"].as_str().map_or_else(|| random_id("sip_"), str::to_string);
            let participant_id = random_id("PA_");
            let sip_call_id = random_id("SCL_");
            state.participants.entry(room.clone()).or_default().push(json!({
                "sid": participant_id,
                "identity": identity,
                "state": "JOINING",
                "kind": "SIP",
                "attributes": {"sip.callID": sip_call_id, "sip.callStatus": "dialing"},
            }));
            Answer::json(
                200,
                json!({
                    "participant_id": participant_id,
                    "participant_identity": identity,
                    "room_name": room,
                    "sip_call_id": sip_call_id,
                }),
            )
        }
        "/twirp/livekit.RoomService/ListParticipants" => {
            let grant = &claims["video"];
            let room_allowed = grant["room"].as_str().is_none_or(|granted| granted == room);
            if grant["roomAdmin"] != json!(true) || !room_allowed {
                return twirp_error(403, "permission_denied", "requires the roomAdmin grant for this room");
            }
            let participants = state.participants.get(&room).cloned().unwrap_or_default();
            Answer::json(200, json!({"participants": participants}))
        }
        "/twirp/livekit.RoomService/DeleteRoom" => {
            if claims["video"]["roomCreate"] != json!(true) {
                return twirp_error(403, "permission_denied", "requires the roomCreate grant");
            }
            state.participants.remove(&room);
            Answer::json(200, json!({}))
        }
        _ => twirp_error(404, "bad_route", "no such Twirp method"),
    }
}

/// The claims of a LiveKit webhook token, in the order LiveKit's Go signer writes them.
#[derive(Serialize)]
struct WebhookClaims<'a> {
    iss: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    sha256: String,
}

/// Returns the `Authorization` of a LiveKit webhook (PROTOCOLS §4.1): an HS256 JWT issued by
/// `api_key` at `now`, valid for 5 minutes, whose `sha256` claim is base64(SHA-256(body)).
pub fn livekit_webhook_token(api_key: &str, api_secret: &str, body: &[u8], now: i64) -> String {
    let claims = WebhookClaims {
        iss: api_key,
        iat: now,
        nbf: now,
        exp: now + 300,
        sha256: STANDARD.encode(Sha256::digest(body)),
    };
    let key = EncodingKey::from_secret(api_secret.as_bytes());
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("HS256 signs")
}

/// Returns a stable LiveKit-style sid (`RM_…`, `PA_…`) for a name.
fn stable_sid(prefix: &str, name: &str) -> String {
    format!("{prefix}{}", &hex::encode(Sha256::digest(name.as_bytes()))[..12])
}

/// Returns a protojson webhook event about a room (`room_started`, `room_finished`), with a fresh
/// event id; send the same value twice to simulate a redelivery.
pub fn room_event(event: &str, room: &str) -> Value {
    let now = Utc::now().timestamp().to_string();
    json!({
        "event": event,
        "id": random_id("EV_"),
        "createdAt": now,
        "room": {"sid": stable_sid("RM_", room), "name": room, "emptyTimeout": 300, "creationTime": now},
    })
}

/// Returns a protojson `participant_joined` / `participant_left` event about a SIP participant.
pub fn participant_event(event: &str, room: &str, identity: &str, disconnect_reason: Option<&str>) -> Value {
    let left = event == "participant_left";
    let mut body = room_event(event, room);
    body["participant"] = json!({
        "sid": stable_sid("PA_", identity),
        "identity": identity,
        "name": "customer",
        "kind": "SIP",
        "state": if left { "DISCONNECTED" } else { "ACTIVE" },
        "joinedAt": body["createdAt"],
        "attributes": {"sip.callStatus": if left { "hangup" } else { "active" }},
    });
    if let Some(reason) = disconnect_reason {
        body["participant"]["disconnectReason"] = json!(reason);
    }
    body
}

/// HMAC-SHA1, as Twilio signs its webhooks.
fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

#[test]
fn twilio_signatures_match_the_official_vectors() {
    let params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    for (url, expected) in [
        ("https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        ("https://mycompany.com:443/myapp.php?foo=1&bar=2", "kvajT1Ptam85bY51eRf/AJRuM3w="),
        ("http://mycompany.com:80/myapp.php?foo=1&bar=2", "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        ("http://mycompany.com:1234/myapp.php?foo=1&bar=2", "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
    ] {
        assert_eq!(twilio_signature("12345", url, &params), expected, "{url}");
    }
    // Repeated keys: values sorted, duplicates dropped; "Sid" sorts before "SidAccount".
    let multi = [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")];
    assert_eq!(
        twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", &multi),
        "IK+Dwps556ElfBT0I3Rgjkr1wJU="
    );
}

#[test]
fn livekit_webhook_tokens_agree_with_the_reference_vector() {
    let (key, secret) = ("APIkey123", "secret-secret-secret-secret-1234");
    let body = br#"{"event":"room_finished","room":{"sid":"RM_hycBMAjmt6Ub","name":"call-123","emptyTimeout":300,"creationTime":"1700000000"},"id":"EV_3Nn2Y2rZ5aqv","createdAt":"1700000100"}"#;
    let reference = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJBUElrZXkxMjMiLCJpYXQiOjE3MDAwMDAxMDAsIm5iZiI6MTcwMDAwMDEwMCwiZXhwIjoxNzAwMDAwNDAwLCJzaGEyNTYiOiJpMDFvWURXN3RQSXkyQkljZ0FwZTAvSGNBUVBxMDBXWlg4ZE1mY08ybXNVPSJ9.6Pass47jdYp78apkSWvCVQ8CBpUlwzQ0b7WJi2hxBQY";
    // The vector expired long ago: check everything but the clock.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_issuer(&[key]);
    let decode = |token: &str| {
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation).unwrap().claims
    };
    let expected = decode(reference);
    assert_eq!(expected["sha256"], "i01oYDW7tPIy2BIcgApe0/HcAQPq00WZX8dMfcO2msU=");
    assert_eq!(decode(&livekit_webhook_token(key, secret, body, 1_700_000_100)), expected);
}
