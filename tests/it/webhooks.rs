//! Webhook subscriptions end to end: CRUD and its errors, lifecycle events signed per Standard
//! Webhooks (checked by an implementation written here from the specification), filters and
//! ordering, retries with stable ids, `Retry-After`, redirects, auto-disable, replay, secret
//! rotation, the test event, the attempt log, metrics and SSRF refusals.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::oneshot;
use tokio::time::Instant;
use warp::Filter;

use crate::support::*;

/// Standard Webhooks verification, written from the specification (not Dialplane's code): the key
/// is the base64 after `whsec_`; the signed content is `id.timestamp.body`; any `v1,` entry of the
/// space-separated header may match; the timestamp must be within 5 minutes of `now`.
fn verify(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &[u8], now: i64) -> Result<(), String> {
    let ts: i64 = timestamp.parse().map_err(|_| "bad timestamp".to_string())?;
    if now - ts > 300 {
        return Err("timestamp too old".into());
    }
    if ts - now > 300 {
        return Err("timestamp in the future".into());
    }
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).map_err(|_| "bad secret".to_string())?;
    for entry in signatures.split(' ') {
        let Some(("v1", encoded)) = entry.split_once(',') else { continue };
        let Ok(given) = STANDARD.decode(encoded) else { continue };
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
    }
    Err("no signature matches".into())
}

fn verify_delivery(secret: &str, d: &Received, now: i64) -> Result<(), String> {
    verify(secret, &d.header("webhook-id"), &d.header("webhook-timestamp"), &d.header("webhook-signature"), &d.raw, now)
}

#[test]
fn the_verifier_accepts_the_specifications_example() {
    let (secret, id, ts) = ("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD", "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", "1649367553");
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let signature = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";
    assert_eq!(verify(secret, id, ts, signature, body, 1_649_367_553), Ok(()));
    assert_eq!(verify(secret, id, ts, &format!("v2,abc {signature}"), body, 1_649_367_600), Ok(()));
    assert!(verify(secret, id, ts, signature, b"{}", 1_649_367_553).is_err());
    assert!(verify(secret, id, ts, signature, body, 1_649_367_553 + 301).is_err());
}

/// A request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: Vec<(String, String)>,
    raw: Bytes,
    body: Value,
    at: Instant,
    /// What the receiver answered.
    status: u16,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    }
}

/// A scripted answer: status, extra headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// A webhook receiver that answers from a script (then 200) and records every request.
struct ScriptedReceiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Answer>>>,
    /// Answer every request with this status once the script runs out (200 when `None`).
    always: Arc<Mutex<Option<u16>>>,
    _shutdown: oneshot::Sender<()>,
}

impl ScriptedReceiver {
    async fn start() -> ScriptedReceiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Answer>>> = Arc::default();
        let always: Arc<Mutex<Option<u16>>> = Arc::default();
        let (r, s, a) = (received.clone(), script.clone(), always.clone());
        let route = warp::post().and(warp::header::headers_cloned()).and(warp::body::bytes()).map(
            move |headers: warp::http::HeaderMap, raw: Bytes| {
                let (status, extra, text) = s
                    .lock()
                    .unwrap()
                    .pop_front()
                    .unwrap_or_else(|| (a.lock().unwrap().unwrap_or(200), vec![], "ok".to_string()));
                r.lock().unwrap().push(Received {
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                        .collect(),
                    body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
                    raw,
                    at: Instant::now(),
                    status,
                });
                let mut response = warp::http::Response::builder().status(status);
                for (name, value) in extra {
                    response = response.header(name, value);
                }
                response.body(text).unwrap()
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        ScriptedReceiver { url, received, script, always, _shutdown: shutdown }
    }

    fn answer(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
        self.script.lock().unwrap().push_back((status, headers, body.to_string()));
    }

    fn answer_always(&self, status: Option<u16>) {
        *self.always.lock().unwrap() = status;
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `check` holds for what was received.
    async fn wait(&self, what: &str, check: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let all = self.all();
            if check(&all) {
                return all;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{what}: got {:?}",
                all.iter().map(|d| (d.status, d.body["type"].clone())).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn send(server: &TestServer, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    server.send(method, path, token, body).await
}

async fn subscribe(server: &TestServer, token: &str, url: &str, event_types: Value) -> (String, String) {
    let (status, body) =
        send(server, "POST", "/v1/webhooks", Some(token), Some(json!({ "url": url, "event_types": event_types })))
            .await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().unwrap().to_string(), body["secret"].as_str().unwrap().to_string())
}

fn fast_retries() -> ServerOptions {
    ServerOptions {
        extra: vec![
            ("DIALPLANE_DRAIN_TIMEOUT_S", "0.5".to_string()),
            ("DIALPLANE_DELIVERY_BACKOFF_SCALE", "0.001".to_string()),
        ],
        ..Default::default()
    }
}

fn types(deliveries: &[Received]) -> Vec<String> {
    deliveries.iter().map(|d| d.body["type"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_are_created_read_updated_and_deleted_with_clear_errors() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let receiver = ScriptedReceiver::start().await;

    let (status, created) = send(
        &server,
        "POST",
        "/v1/webhooks",
        Some(&token),
        Some(json!({ "url": receiver.url, "event_types": ["call.*", "transcript.ready"], "description": "CRM" })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("wh_"));
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(created["event_types"], json!(["call.*", "transcript.ready"]));
    assert_eq!(created["enabled"], true);
    assert_eq!(created["state"], "enabled");

    let (status, got) = send(&server, "GET", &format!("/v1/webhooks/{id}"), Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(got["description"], "CRM");
    assert!(got.get("secret").is_none(), "the secret is only shown at creation and on its own endpoint");
    let (_, secret) = send(&server, "GET", &format!("/v1/webhooks/{id}/secret"), Some(&token), None).await;
    assert_eq!(secret["secret"], created["secret"]);

    for _ in 0..2 {
        subscribe(&server, &token, &receiver.url, json!(["*"])).await;
    }
    let (status, page) = send(&server, "GET", "/v1/webhooks?page=1&page_size=2", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!((page["total"].as_u64(), page["items"].as_array().unwrap().len()), (Some(3), 2));
    assert_eq!((page["has_next"].as_bool(), page["has_prev"].as_bool()), (Some(true), Some(false)));
    let (status, bad_page) = send(&server, "GET", "/v1/webhooks?page_size=500", Some(&token), None).await;
    assert_eq!(status, 400);
    assert!(bad_page["detail"].as_str().unwrap().contains("page_size"), "{bad_page}");

    let (status, updated) = send(
        &server,
        "PUT",
        &format!("/v1/webhooks/{id}"),
        Some(&token),
        Some(json!({ "event_types": ["call.ended"], "enabled": false })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["event_types"], json!(["call.ended"]));
    assert_eq!(updated["url"], receiver.url.as_str(), "fields left out keep their value");
    assert_eq!(updated["state"], "disabled");

    // Errors: the status of seed 003, a detail that names the field, and a code.
    for (body, field) in [
        (json!({}), "url"),
        (json!({ "url": "ftp://example.com/x" }), "url"),
        (json!({ "url": receiver.url, "event_types": ["call.exploded"] }), "event_types"),
        (json!({ "url": receiver.url, "event_types": [] }), "event_types"),
        (json!({ "url": receiver.url, "enabled": "yes" }), "enabled"),
    ] {
        let (status, error) = send(&server, "POST", "/v1/webhooks", Some(&token), Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error["detail"].as_str().unwrap().contains(field), "{body}: {error}");
        assert_eq!(error["code"], "invalid_request");
    }
    let (status, error) = send(&server, "GET", "/v1/webhooks", None, None).await;
    assert_eq!((status, error["code"].as_str()), (401, Some("unauthorized")));
    let (status, error) = send(&server, "GET", "/v1/webhooks/wh_missing", Some(&token), None).await;
    assert_eq!((status, error["code"].as_str()), (404, Some("not_found")));

    // Another workspace sees none of it.
    let hash = dialplane::auth::hash_password("other password").unwrap();
    dialplane::store::users::create(&server.db, "other@example.com", &hash, "member").await.unwrap();
    let other = server.login("other@example.com", "other password").await;
    assert_eq!(send(&server, "GET", &format!("/v1/webhooks/{id}"), Some(&other), None).await.0, 404);
    assert_eq!(send(&server, "DELETE", &format!("/v1/webhooks/{id}"), Some(&other), None).await.0, 404);
    let (_, theirs) = send(&server, "GET", "/v1/webhooks", Some(&other), None).await;
    assert_eq!(theirs["total"], 0);
    let (status, _) = send(&server, "GET", "/v1/workspace/signing-secret", Some(&other), None).await;
    assert_eq!(status, 403, "a member does not see the workspace secret");

    let (status, _) = send(&server, "DELETE", &format!("/v1/webhooks/{id}"), Some(&token), None).await;
    assert_eq!(status, 204);
    assert_eq!(send(&server, "GET", &format!("/v1/webhooks/{id}"), Some(&token), None).await.0, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_events_are_signed_filtered_and_numbered_per_call() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let everything = ScriptedReceiver::start().await;
    let aliased = ScriptedReceiver::start().await;
    let (_, secret) =
        subscribe(&server, &token, &everything.url, json!(["call.*", "recording.*", "transcript.*"])).await;
    let (_, aliased_secret) =
        subscribe(&server, &token, &aliased.url, json!(["call.started", "transcript.ready"])).await;

    let call_id = server
        .click2call(
            &token,
            json!({ "customer_number": "919999990000", "agent_number": "918888888888", "did": "919484956750", "transcript": true }),
        )
        .await;
    let expected =
        ["call.queued", "call.ringing", "call.answered", "call.ended", "recording.ready", "transcript.ready"];
    let got = everything.wait("every lifecycle event", |all| all.len() >= expected.len()).await;
    let mut sorted = got.clone();
    sorted.sort_by_key(|d| d.body["data"]["sequence"].as_i64());
    assert_eq!(types(&sorted), expected);
    let sequences: Vec<i64> = sorted.iter().map(|d| d.body["data"]["sequence"].as_i64().unwrap()).collect();
    assert_eq!(sequences, [1, 2, 3, 4, 5, 6], "a sequence per call, without gaps");
    assert_eq!(types(&got), expected, "one call's events also arrive in order");
    // The call is stored already dialing, but its first event tells of it being accepted.
    assert_eq!(sorted[0].body["data"]["status"], "queued");
    assert_eq!(sorted[1].body["data"]["status"], "ringing");

    let now = chrono::Utc::now().timestamp();
    for d in &got {
        assert_eq!(d.body["data"]["call_id"], call_id.as_str());
        assert!(d.body["id"].as_str().unwrap().starts_with("evt_"));
        assert!(d.body["created_at"].is_string());
        assert!(d.header("webhook-id").starts_with("msg_"));
        assert_eq!(d.header("content-type"), "application/json");
        assert_eq!(verify_delivery(&secret, d, now), Ok(()), "{}", d.body["type"]);
        // What a receiver must refuse.
        let mut tampered = d.clone();
        tampered.raw = Bytes::from(String::from_utf8_lossy(&d.raw).replace("call_", "cal1_"));
        assert!(verify_delivery(&secret, &tampered, now).is_err(), "a tampered body fails");
        assert!(verify_delivery(&aliased_secret, d, now).is_err(), "another secret fails");
        assert!(verify_delivery(&secret, d, now + 301).is_err(), "a stale timestamp fails");
    }
    assert!(!got[0].body["data"]["customer_number"].as_str().unwrap().contains("99990000"), "numbers are masked");
    let transcript = got.iter().find(|d| d.body["type"] == "transcript.ready").unwrap();
    assert!(transcript.body["data"]["transcript"]["summary"].is_string(), "{}", transcript.body);

    let aliased_got = aliased.wait("call.started and transcript.ready", |all| all.len() >= 2).await;
    assert_eq!(
        types(&aliased_got),
        ["call.started", "transcript.ready"],
        "call.started is call.answered, by its asked-for name"
    );
    let answered = got.iter().find(|d| d.body["type"] == "call.answered").unwrap();
    assert_eq!(aliased_got[0].body["id"], answered.body["id"], "one event, one id, whichever name it goes by");
    assert_ne!(aliased_got[0].header("webhook-id"), answered.header("webhook-id"), "one message per subscription");
    assert_eq!(verify_delivery(&aliased_secret, &aliased_got[0], now), Ok(()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(aliased.all().len(), 2, "nothing it did not ask for");

    // The workspace secret that signs per-call callbacks is its owner's to read.
    let (status, body) = send(&server, "GET", "/v1/workspace/signing-secret", Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["signing_secret"], server.signing_secret(EMAIL).await.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_then_recovers_gets_every_event_with_a_stable_id() {
    let server = TestServer::start_with(fast_retries()).await;
    let token = server.token().await;
    let receiver = ScriptedReceiver::start().await;
    let (id, _) = subscribe(&server, &token, &receiver.url, json!(["call.*"])).await;
    let long_answer = "x".repeat(5000);
    for _ in 0..3 {
        receiver.answer(500, vec![], &long_answer);
    }
    server
        .click2call(
            &token,
            json!({ "customer_number": "919999990001", "agent_number": "918888888888", "did": "919484956750" }),
        )
        .await;
    // Busy: queued, ringing, ended.
    let all = receiver.wait("three events accepted", |all| all.iter().filter(|d| d.status == 200).count() >= 3).await;
    let accepted: Vec<_> = all.iter().filter(|d| d.status == 200).collect();
    assert_eq!(
        accepted.iter().map(|d| d.body["type"].as_str().unwrap()).collect::<Vec<_>>(),
        ["call.queued", "call.ringing", "call.ended"]
    );
    let first_id = all[0].header("webhook-id");
    assert!(all[..4].iter().all(|d| d.header("webhook-id") == first_id), "retries keep the webhook-id");
    assert_eq!(all[..4].iter().map(|d| d.status).collect::<Vec<_>>(), [500, 500, 500, 200]);

    let (status, logs) =
        send(&server, "GET", &format!("/v1/webhooks/{id}/logs?page_size=100"), Some(&token), None).await;
    assert_eq!(status, 200);
    assert_eq!(logs["total"], 6, "three failures and three deliveries: {logs}");
    let items = logs["items"].as_array().unwrap();
    let failure = items.iter().find(|a| a["status_code"] == 500).unwrap();
    assert_eq!(failure["result"], "retrying");
    assert_eq!(failure["event_type"], "call.queued");
    assert!(failure["error"].as_str().unwrap().contains("500"));
    assert_eq!(failure["response_excerpt"].as_str().unwrap().len(), 1024, "a bounded excerpt");
    assert!(failure["latency_ms"].is_number() && failure["attempted_at"].is_string());
    let attempts: Vec<i64> =
        items.iter().filter(|a| a["event_type"] == "call.queued").map(|a| a["attempt"].as_i64().unwrap()).collect();
    assert_eq!(attempts, [4, 3, 2, 1], "newest first");

    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    // The registry is shared by every server of this test binary: at least this test's attempts.
    let retrying: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dialplane_webhook_deliveries_total{result=\"retrying\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert!(retrying >= 3.0, "{metrics}");
    assert!(metrics.contains("dialplane_webhook_attempt_duration_seconds_count"));
    assert!(metrics.contains("dialplane_webhook_outbox_pending{subscription_state=\"enabled\"}"));
    assert!(metrics.contains("dialplane_webhook_outbox_oldest_age_seconds{subscription_state=\"enabled\"}"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_redirects_are_not_followed() {
    let server = TestServer::start_with(fast_retries()).await;
    let token = server.token().await;
    let receiver = ScriptedReceiver::start().await;
    let elsewhere = ScriptedReceiver::start().await;
    let (id, _) = subscribe(&server, &token, &receiver.url, json!(["*"])).await;

    receiver.answer(429, vec![("retry-after", "2".to_string())], "slow down");
    let (status, _) = send(&server, "POST", &format!("/v1/webhooks/{id}/test"), Some(&token), None).await;
    assert_eq!(status, 202);
    let all = receiver.wait("the test event after a 429", |all| all.iter().any(|d| d.status == 200)).await;
    assert_eq!(types(&all), ["webhook.test", "webhook.test"]);
    let waited = all[1].at - all[0].at;
    assert!(
        waited >= Duration::from_millis(1900),
        "Retry-After: 2 honoured (the schedule alone says 5 ms): {waited:?}"
    );

    receiver.answer(302, vec![("location", elsewhere.url.clone())], "");
    send(&server, "POST", &format!("/v1/webhooks/{id}/test"), Some(&token), None).await;
    receiver.wait("the redirected event, retried", |all| all.iter().filter(|d| d.status == 200).count() >= 2).await;
    assert!(elsewhere.all().is_empty(), "the redirect was not followed");
    let (_, logs) = send(&server, "GET", &format!("/v1/webhooks/{id}/logs"), Some(&token), None).await;
    let redirect = logs["items"].as_array().unwrap().iter().find(|a| a["status_code"] == 302).unwrap().clone();
    assert!(redirect["error"].as_str().unwrap().contains("redirects are not followed"), "{redirect}");
    assert_eq!(redirect["result"], "retrying");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_endpoint_is_disabled_once_then_enabled_and_replayed() {
    let mut options = fast_retries();
    options.extra.push(("DIALPLANE_WEBHOOK_DISABLE_AFTER_S", "1".to_string()));
    let server = TestServer::start_with(options).await;
    let token = server.token().await;
    let failing = ScriptedReceiver::start().await;
    let watcher = ScriptedReceiver::start().await;
    let (id, _) = subscribe(&server, &token, &failing.url, json!(["*"])).await;
    let (watcher_id, _) = subscribe(&server, &token, &watcher.url, json!(["webhook.disabled"])).await;
    failing.answer_always(Some(503));

    let started = chrono::Utc::now();
    for _ in 0..3 {
        assert_eq!(send(&server, "POST", &format!("/v1/webhooks/{id}/test"), Some(&token), None).await.0, 202);
    }
    let notice = watcher.wait("webhook.disabled", |all| !all.is_empty()).await;
    assert_eq!(notice[0].body["type"], "webhook.disabled");
    assert_eq!(notice[0].body["data"]["webhook_id"], id.as_str());
    let (_, disabled) = send(&server, "GET", &format!("/v1/webhooks/{id}"), Some(&token), None).await;
    assert_eq!(disabled["state"], "disabled", "{disabled}");
    assert!(disabled["disabled_reason"].as_str().unwrap().contains("failed"), "{disabled}");
    let attempts_then = failing.all().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failing.all().len(), attempts_then, "a disabled endpoint gets no attempts");
    assert_eq!(watcher.all().len(), 1, "disabled once");
    let (status, _) = send(&server, "POST", &format!("/v1/webhooks/{id}/test"), Some(&token), None).await;
    assert_eq!(status, 409, "no test event to a disabled endpoint");

    // Enabled again, it gets what was waiting.
    failing.answer_always(None);
    let (status, enabled) =
        send(&server, "PUT", &format!("/v1/webhooks/{id}"), Some(&token), Some(json!({ "enabled": true }))).await;
    assert_eq!((status, enabled["state"].as_str()), (200, Some("enabled")));
    assert_eq!(enabled["disabled_reason"], Value::Null);
    let delivered =
        failing.wait("the three test events", |all| all.iter().filter(|d| d.status == 200).count() >= 3).await;
    let mut ids: Vec<String> = delivered.iter().filter(|d| d.status == 200).map(|d| d.header("webhook-id")).collect();
    ids.sort();

    // Replay sends the same messages again, with their ids.
    let (status, error) = send(
        &server,
        "POST",
        &format!("/v1/webhooks/{id}/replay"),
        Some(&token),
        Some(json!({ "since": "yesterday" })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error["detail"].as_str().unwrap().contains("since"), "{error}");
    let since = (started - chrono::Duration::seconds(1)).to_rfc3339();
    let (status, replayed) =
        send(&server, "POST", &format!("/v1/webhooks/{id}/replay"), Some(&token), Some(json!({ "since": since })))
            .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["requeued"], 3);
    let all = failing.wait("the replayed events", |all| all.iter().filter(|d| d.status == 200).count() >= 6).await;
    let mut again: Vec<String> =
        all.iter().filter(|d| d.status == 200).skip(3).map(|d| d.header("webhook-id")).collect();
    again.sort();
    assert_eq!(again, ids);
    let (_, watcher_logs) = send(&server, "GET", &format!("/v1/webhooks/{watcher_id}/logs"), Some(&token), None).await;
    assert_eq!(watcher_logs["total"], 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_secret_keeps_signing_beside_the_new_one_for_its_overlap() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let receiver = ScriptedReceiver::start().await;
    let (id, old) = subscribe(&server, &token, &receiver.url, json!(["*"])).await;

    let (status, rotated) = send(
        &server,
        "POST",
        &format!("/v1/webhooks/{id}/secret/rotate"),
        Some(&token),
        Some(json!({ "overlap_seconds": 3600 })),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string());
    send(&server, "POST", &format!("/v1/webhooks/{id}/test"), Some(&token), None).await;
    let got = receiver.wait("a test event", |all| !all.is_empty()).await;
    let now = chrono::Utc::now().timestamp();
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert_eq!(verify_delivery(&new, &got[0], now), Ok(()));
    assert_eq!(verify_delivery(&old, &got[0], now), Ok(()), "the old secret still verifies during the overlap");

    let (_, rotated) = send(
        &server,
        "POST",
        &format!("/v1/webhooks/{id}/secret/rotate"),
        Some(&token),
        Some(json!({ "overlap_seconds": 0 })),
    )
    .await;
    let newest = rotated["secret"].as_str().unwrap().to_string();
    send(&server, "POST", &format!("/v1/webhooks/{id}/test"), Some(&token), None).await;
    let got = receiver.wait("a second test event", |all| all.len() >= 2).await;
    assert_eq!(verify_delivery(&newest, &got[1], now), Ok(()));
    assert!(verify_delivery(&new, &got[1], now).is_err(), "without overlap the replaced secret stops signing at once");
    let (status, error) = send(
        &server,
        "POST",
        &format!("/v1/webhooks/{id}/secret/rotate"),
        Some(&token),
        Some(json!({ "overlap_seconds": -1 })),
    )
    .await;
    assert_eq!(status, 400);
    assert!(error["detail"].as_str().unwrap().contains("overlap_seconds"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_reaching_internal_addresses_are_refused() {
    let server = TestServer::start_with(ServerOptions { allow_private_callbacks: false, ..Default::default() }).await;
    let token = server.token().await;
    // A name (not a literal) that resolves to loopback on this machine: its own hostname.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let resolved: Vec<_> = tokio::net::lookup_host((hostname.as_str(), 80)).await.unwrap().collect();
    assert!(
        resolved.iter().all(|a| a.ip().is_loopback()),
        "precondition: {hostname} resolves to loopback: {resolved:?}"
    );
    for url in [
        "http://127.0.0.1:9/hook".to_string(),
        "http://localhost/hook".to_string(),
        "http://10.0.0.8/hook".to_string(),
        "http://100.64.1.1/hook".to_string(),
        "http://169.254.169.254/latest/meta-data".to_string(),
        "http://[::1]/hook".to_string(),
        format!("http://{hostname}:8080/hook"),
    ] {
        let (status, error) = send(&server, "POST", "/v1/webhooks", Some(&token), Some(json!({ "url": url }))).await;
        assert_eq!(status, 400, "{url}: {error}");
        let detail = error["detail"].as_str().unwrap();
        assert!(detail.starts_with("url: "), "{url}: {detail}");
    }
    let (_, error) =
        send(&server, "POST", "/v1/webhooks", Some(&token), Some(json!({ "url": format!("http://{hostname}/") })))
            .await;
    assert!(error["detail"].as_str().unwrap().contains("resolves to a private or loopback address"), "{error}");
    server.stop().await;
}
