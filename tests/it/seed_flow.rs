//! Seed 000's "End-to-End Curl Flow", step by step, against a running server (and against one whose
//! sandbox carrier is another server's).

use dialplane::store::entities::sandbox_call;
use sea_orm::EntityTrait;
use serde_json::Value;

use crate::support::*;

fn is_signed_recording_url(server: &TestServer, value: &Value, call_id: &str) -> bool {
    value.as_str().is_some_and(|url| {
        url.starts_with(&server.url(&format!("/recordings/{call_id}?expires="))) && url.contains("&signature=")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_000_end_to_end_flow() {
    let server = TestServer::start().await;
    let receiver = WebhookReceiver::start().await;

    // Login.
    let (status, login) =
        server.post_json("/api/login", None, &serde_json::json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, 200);
    assert_eq!(login["status_code"], 200);
    assert_eq!(login["message"], "Login successful");
    assert_eq!(login["error"], Value::Null);
    assert_eq!(login["data"]["token_type"], "bearer");
    assert!(login["data"]["refresh_token"].is_string());
    let token = login["data"]["access_token"].as_str().unwrap().to_string();

    // Create the click2call.
    let request = seed_request("919999999999", &receiver.url);
    let (status, created) = server.post_json("/api/calls/click2call", Some(&token), &request).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["status_code"], 200);
    assert_eq!(created["message"], "Click2Call request created");
    assert_eq!(created["error"], Value::Null);
    let data = &created["data"];
    let call_id = data["call_id"].as_str().unwrap().to_string();
    assert_eq!(call_id.len(), 21);
    assert!(call_id.starts_with("call_") && call_id[5..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert_eq!(data["status"], "queued");
    assert_eq!(data["did"], "919484956750");
    assert_eq!(data["callback_url"], receiver.url.as_str());
    assert_eq!(data["transcript"], true);
    assert_eq!(data["transcript_language"], "hi");

    // Callbacks: call.completed, then transcript.ready.
    let deliveries = receiver.wait_for(&call_id, 2).await;
    assert_eq!(events(&deliveries), ["call.completed", "transcript.ready"]);
    let completed = &deliveries[0].body;
    assert_eq!(completed["status_code"], 200);
    assert_eq!(completed["message"], "Call completed");
    assert_eq!(completed["error"], Value::Null);
    assert_eq!(completed["data"]["transcript_status"], "processing");
    assert_eq!(completed["data"]["customer_number"], "xxxxx9999999");
    assert_eq!(completed["data"]["agent_number"], "xxxxx8888888");
    assert_eq!(completed["data"]["transcript"], Value::Null);
    let duration: u32 = completed["data"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((25..=95).contains(&duration), "duration {duration}");
    assert!(is_signed_recording_url(&server, &completed["data"]["recording"], &call_id));

    let ready = &deliveries[1].body;
    assert_eq!(ready["message"], "Transcript ready");
    assert_eq!(ready["data"]["transcript_status"], "ready");
    let transcript = &ready["data"]["transcript"];
    for key in ["transcript_id", "summary", "call_outcome", "history", "createdAt", "updatedAt"] {
        assert!(!transcript[key].is_null(), "transcript.{key} missing: {transcript}");
    }
    assert!(!transcript["history"].as_array().unwrap().is_empty());

    // Every delivery is signed per Standard Webhooks with the workspace's secret.
    let secret = server.signing_secret(EMAIL).await;
    for delivery in &deliveries {
        let id = &delivery.headers["webhook-id"];
        let timestamp: i64 = delivery.headers["webhook-timestamp"].parse().unwrap();
        assert!(id.starts_with("msg_"));
        assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 300);
        let expected = dialplane::signing::standard_webhook_signature(&secret, id, timestamp, &delivery.raw).unwrap();
        assert_eq!(delivery.headers["webhook-signature"], expected);
    }
    assert_ne!(deliveries[0].headers["webhook-id"], deliveries[1].headers["webhook-id"]);

    // Recent logs.
    let (status, recent) = server.get_json("/api/calls/recent?limit=10&page=1", Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(recent["message"], "Recent call logs fetched");
    let page = &recent["data"];
    assert_eq!(page["total"], 1);
    assert_eq!(page["page"], 1);
    assert_eq!(page["limit"], 10);
    assert_eq!(page["has_more"], false);
    let call = &page["calls"][0];
    assert_eq!(call["call_id"], call_id.as_str());
    assert_eq!(call["status"], "completed");
    assert_eq!(call["customer_number"], "919999999999");
    assert_eq!(call["agent_number"], "918888888888");
    assert_eq!(call["did"], "919484956750");
    assert_eq!(call["duration"], completed["data"]["duration"]);
    assert!(call["answer_duration"].as_str().unwrap().parse::<u32>().unwrap() < duration);
    assert_eq!(call["call_type"], "C2C");
    assert_eq!(call["transcript_enabled"], true);
    assert_eq!(call["transcript_status"], "ready");
    assert!(is_signed_recording_url(&server, &call["recording"], &call_id));
    assert_eq!(call["recording"], call["recording_url"]);
    assert_eq!(call["transcript"]["summary"], transcript["summary"]);
    assert_eq!(call["transcript"]["call_outcome"], transcript["call_outcome"]);
    for key in ["created_at", "updated_at"] {
        let at = call[key].as_str().unwrap();
        assert!(at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{key}: {at}");
    }

    // Transcript.
    let (status, fetched) = server.get_json(&format!("/api/calls/{call_id}/transcript"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["message"], "Transcript found");
    assert_eq!(fetched["data"]["transcript_status"], "ready");
    assert_eq!(fetched["data"]["customer_number"], "xxxxx9999999");
    assert_eq!(fetched["data"]["agent_number"], "xxxxx8888888");
    assert_eq!(fetched["data"]["duration"], completed["data"]["duration"]);
    assert_eq!(fetched["data"]["transcript"], transcript.clone());

    // The signed recording URL serves the stored WAV; a tampered one does not.
    let url = call["recording"].as_str().unwrap();
    let response = server.http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    assert_eq!(&response.bytes().await.unwrap()[0..4], b"RIFF");
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(server.http.get(tampered).send().await.unwrap().status(), 403);
    let other_call = url.replace(&call_id, "call_aaaaaaaaaaaaaaaa");
    assert_eq!(server.http.get(other_call).send().await.unwrap().status(), 403);

    // Exactly one terminal event, and nothing after the transcript.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(events(&receiver.accepted_for(&call_id)), ["call.completed", "transcript.ready"]);

    // The logs told the story without a raw phone number, a token or a password.
    let logs = captured_logs();
    assert!(logs.contains(&call_id), "the call was logged");
    for secret in ["919999999999", "918888888888", "919484956750", token.as_str(), PASSWORD, &secret] {
        assert!(!logs.contains(secret), "logs contain {secret}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transcript_is_pending_before_the_carrier_reports() {
    // Real-time sandbox: nothing is reported for the first simulated second.
    let server = TestServer::start_with(ServerOptions { sandbox_time_scale: 1.0, ..Default::default() }).await;
    let token = server.token().await;
    let call_id = server
        .click2call(&token, serde_json::json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750", "transcript": true}))
        .await;
    let (status, body) = server.get_json(&format!("/api/calls/{call_id}/transcript"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(body["message"], "Transcript not available yet");
    let data = &body["data"];
    assert_eq!(data["call_id"], call_id.as_str());
    assert_eq!(data["transcript_status"], "pending");
    assert_eq!(data["customer_number"], "xxxxx9999999");
    assert_eq!(data["agent_number"], "xxxxx8888888");
    assert_eq!(data["duration"], Value::Null);
    assert_eq!(data["recording"], "pending");
    assert_eq!(data["transcript"], Value::Null);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_of_other_users_and_unknown_calls_are_refused() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let call_id = server
        .click2call(&token, serde_json::json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"}))
        .await;
    let hash = dialplane::auth::hash_password("another-password").unwrap();
    dialplane::store::users::create(&server.db, "other@example.com", &hash, "member").await.unwrap();
    let other = server.login("other@example.com", "another-password").await;

    let (status, body) = server.get_json(&format!("/api/calls/{call_id}/transcript"), Some(&other)).await;
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].is_string());
    let (status, _) = server.get_json("/api/calls/call_0000000000000000/transcript", Some(&token)).await;
    assert_eq!(status, 404);
    let (_, recent) = server.get_json("/api/calls/recent", Some(&other)).await;
    assert_eq!(recent["data"]["total"], 0, "another user's calls are not listed");
    let (status, body) = server.get_json(&format!("/api/calls/{call_id}/transcript"), None).await;
    assert_eq!(status, 401);
    assert_eq!(body, serde_json::json!({"detail": "Could not validate credentials"}));

    // Transcript disabled: the payload says so.
    let settled = server.wait_until_settled(&token, &call_id).await;
    assert_eq!(settled["transcript_status"], "disabled");
    let (_, body) = server.get_json(&format!("/api/calls/{call_id}/transcript"), Some(&token)).await;
    assert_eq!(body["data"]["transcript_status"], "disabled");
    assert_eq!(body["data"]["transcript"], Value::Null);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_timeout_leaves_live_calls_live() {
    let server = TestServer::start_with(ServerOptions { sandbox_time_scale: 1.0, ..Default::default() }).await;
    let token = server.token().await;
    let call_id = server
        .click2call(&token, serde_json::json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"}))
        .await;
    let db = server.db.clone();
    server.stop().await;
    let row = dialplane::store::calls::find(&db, &call_id).await.unwrap().unwrap();
    assert!(row.is_live, "the call stays live for the next start to resume");
    assert_ne!(row.status, "failed", "a shutdown is not a call failure");
    assert!(row.ended_at.is_none());
}

/// With `DIALPLANE_SANDBOX_URL` set, sandbox calls are placed with the sandbox network another
/// server serves, over HTTP: that server keeps the carrier's log, posts the callbacks here and
/// serves the recording, and this server's own sandbox places nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandbox_calls_go_to_the_sandbox_network_configured() {
    let network = TestServer::start().await;
    let mut options = ServerOptions::default();
    options.extra.push(("DIALPLANE_SANDBOX_URL", network.base.clone()));
    let engine = TestServer::start_with(options).await;
    let receiver = WebhookReceiver::start().await;
    let token = engine.token().await;

    let call_id = engine.click2call(&token, seed_request("919999999999", &receiver.url)).await;
    let deliveries = receiver.wait_for(&call_id, 2).await;
    assert_eq!(events(&deliveries), ["call.completed", "transcript.ready"]);
    assert!(is_signed_recording_url(&engine, &deliveries[0].body["data"]["recording"], &call_id));
    let (status, call) = engine.get_json(&format!("/v1/calls/{call_id}"), Some(&token)).await;
    assert_eq!(status, 200);
    assert_eq!(call["recording_status"], "ready", "{call}");

    let placed = sandbox_call::Entity::find().all(&network.db).await.unwrap();
    assert_eq!(placed.iter().map(|row| row.reference.as_str()).collect::<Vec<_>>(), [call_id.as_str()]);
    assert!(placed[0].finished, "the network played the whole timeline");
    assert_eq!(placed[0].status_callback, format!("{}/providers/sandbox/status", engine.base));
    assert!(sandbox_call::Entity::find().all(&engine.db).await.unwrap().is_empty());
}
