//! Callbacks for every scripted sandbox outcome, their retries, and the carrier side: the event log
//! and signature checks on `/providers/sandbox/status`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use dialplane::store::entities::{call_event, outbox};

use crate::support::*;

/// Creates a call for `customer_number` and returns its callbacks once `n` have arrived.
async fn callbacks_of(
    server: &TestServer,
    receiver: &WebhookReceiver,
    token: &str,
    customer_number: &str,
    n: usize,
) -> Vec<Value> {
    let call_id = server.click2call(token, seed_request(customer_number, &receiver.url)).await;
    receiver.wait_for(&call_id, n).await;
    // Give a wrong extra event the time to show up before counting.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let deliveries = receiver.accepted_for(&call_id);
    assert_eq!(deliveries.len(), n, "{:?}", events(&deliveries));
    deliveries.into_iter().map(|d| d.body).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sandbox_script_sends_its_callbacks() {
    let server = TestServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let token = server.token().await;

    for (number, reason, outcome) in [
        ("919999990001", "customer_busy", "busy"),
        ("919999990002", "customer_no_answer", "no_answer"),
        ("919999990003", "carrier_rejected", "failed"),
        ("919999990005", "agent_no_answer", "no_answer"),
    ] {
        let bodies = callbacks_of(&server, &receiver, &token, number, 2).await;
        let failed = &bodies[0];
        assert_eq!(failed["event"], "call.failed", "{number}: {failed}");
        assert_eq!(failed["message"], "Call failed");
        assert_eq!(failed["error"], reason, "{number}");
        assert_eq!(failed["data"]["recording"], Value::Null, "{number}: no recording");
        assert_eq!(failed["data"]["transcript_status"], "failed");
        let transcript = &bodies[1];
        assert_eq!(transcript["event"], "transcript.failed", "{number}");
        assert_eq!(transcript["status_code"], 500);
        assert_eq!(transcript["error"], transcript["data"]["error"]);
        assert!(transcript["error"].as_str().unwrap().contains("no recording"), "{transcript}");

        let call_id = failed["data"]["call_id"].as_str().unwrap();
        let (_, recent) = server.get_json(&format!("/api/calls/recent?customer_number={number}"), Some(&token)).await;
        let call = &recent["data"]["calls"][0];
        assert_eq!(call["call_id"], call_id);
        assert_eq!(call["status"], outcome, "{number}");
    }

    // 0004: answered and completed, then the speech-to-text provider refuses.
    let bodies = callbacks_of(&server, &receiver, &token, "919999990004", 2).await;
    assert_eq!(bodies[0]["event"], "call.completed");
    let failed = &bodies[1];
    assert_eq!(failed["event"], "transcript.failed");
    assert_eq!(failed["status_code"], 500);
    assert_eq!(failed["message"], "Transcript processing failed");
    assert_eq!(failed["data"]["transcript_status"], "failed");
    assert_eq!(failed["data"]["transcript"], Value::Null);
    let error = failed["error"].as_str().unwrap();
    assert!(error.starts_with("Client error '401 Unauthorized' for url"), "{error}");
    assert_eq!(failed["data"]["error"], error);
    assert!(failed["data"]["recording"].as_str().unwrap().contains("/recordings/"));
    let call_id = failed["data"]["call_id"].as_str().unwrap();
    let (_, fetched) = server.get_json(&format!("/api/calls/{call_id}/transcript"), Some(&token)).await;
    assert_eq!(fetched["message"], "Transcript processing failed");
    assert_eq!(fetched["error"], Value::Null);
    assert_eq!(fetched["data"]["error"], error);

    // transcript: false → call.completed, then transcript.disabled.
    let mut request = seed_request("919999999999", &receiver.url);
    request["transcript"] = json!(false);
    let call_id = server.click2call(&token, request).await;
    let deliveries = receiver.wait_for(&call_id, 2).await;
    assert_eq!(events(&deliveries), ["call.completed", "transcript.disabled"]);
    assert_eq!(deliveries[1].body["data"]["transcript_status"], "disabled");

    // An AI-agent call: no did needed, only the customer leg rings.
    let agent_id = server.create_agent(&token, "Sales bot").await;
    let call_id = server
        .click2call(
            &token,
            json!({"customer_number": "919999999999", "agent_number": agent_id, "callback_url": receiver.url, "transcript": true, "agent_config": {"voice": "asha"}}),
        )
        .await;
    let deliveries = receiver.wait_for(&call_id, 2).await;
    assert_eq!(events(&deliveries), ["call.completed", "transcript.ready"]);
    let (_, recent) = server.get_json("/api/calls/recent?call_type=agent_telephony", Some(&token)).await;
    assert_eq!(recent["data"]["total"], 1);
    assert_eq!(recent["data"]["calls"][0]["agent_number"], agent_id.as_str());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_callbacks_are_retried_with_the_same_webhook_id() {
    let server = TestServer::start().await;
    let receiver = WebhookReceiver::start().await;
    let token = server.token().await;
    receiver.fail_next(3);
    let call_id = server.click2call(&token, seed_request("919999999999", &receiver.url)).await;
    let deliveries = receiver.wait_for(&call_id, 2).await;
    assert_eq!(events(&deliveries), ["call.completed", "transcript.ready"], "order survives retries");

    let attempts: Vec<_> =
        receiver.all().into_iter().filter(|d| d.body["data"]["call_id"] == call_id.as_str()).collect();
    let first_id = &attempts[0].headers["webhook-id"];
    let failed: Vec<_> = attempts.iter().filter(|d| d.status == 500).collect();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|d| &d.headers["webhook-id"] == first_id), "retries keep the webhook-id");
    assert!(failed.iter().all(|d| d.body["event"] == "call.completed"), "transcript.ready waits for call.completed");
    assert_eq!(&deliveries[0].headers["webhook-id"], first_id);

    let outbox_rows = || async {
        outbox::Entity::find()
            .filter(outbox::Column::CallId.eq(call_id.as_str()))
            .order_by_asc(outbox::Column::Id)
            .all(&server.db)
            .await
            .unwrap()
    };
    // The receiver has the message a moment before the worker records it as delivered.
    eventually("both callbacks recorded as delivered", || async {
        outbox_rows().await.iter().all(|r| r.status == "delivered")
    })
    .await;
    let rows = outbox_rows().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].attempts, 4);
    assert_eq!(rows[1].attempts, 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_callbacks_are_logged_and_must_be_signed() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let call_id = server
        .click2call(
            &token,
            json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"}),
        )
        .await;
    server.wait_until_settled(&token, &call_id).await;

    let carrier_events = call_event::Entity::find()
        .filter(call_event::Column::CallId.eq(call_id.as_str()))
        .filter(call_event::Column::Source.eq("carrier:sandbox"))
        .order_by_asc(call_event::Column::Id)
        .all(&server.db)
        .await
        .unwrap();
    let kinds: Vec<_> = carrier_events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["agent.ringing", "agent.answered", "customer.ringing", "customer.answered", "customer.completed"]
    );
    let engine_events = call_event::Entity::find()
        .filter(call_event::Column::CallId.eq(call_id.as_str()))
        .filter(call_event::Column::Kind.eq("call.ended"))
        .count(&server.db)
        .await
        .unwrap();
    assert_eq!(engine_events, 1, "exactly one terminal event");

    // An unsigned or forged callback is refused and changes nothing.
    let forged = json!({"sid": "SBx", "reference": call_id, "sequence": 9, "leg": "customer", "status": "busy",
        "timestamp": "2026-01-01T00:00:00Z", "duration": null, "answer_duration": null, "recording_url": null});
    let response = server.http.post(server.url("/providers/sandbox/status")).json(&forged).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = server
        .http
        .post(server.url("/providers/sandbox/status"))
        .header("x-sandbox-signature", "00ff")
        .json(&forged)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (_, recent) = server.get_json("/api/calls/recent", Some(&token)).await;
    assert_eq!(recent["data"]["calls"][0]["status"], "completed");

    // The sandbox carrier API itself wants its key.
    let response = server.http.post(server.url("/sandbox/v1/calls")).json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_counters_return_to_zero_when_calls_end() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let mut ids = Vec::new();
    for number in ["919999999999", "919999990001", "919999990003", "919999990005"] {
        ids.push(
            server
                .click2call(
                    &token,
                    json!({"customer_number": number, "agent_number": "918888888888", "did": "919484956750"}),
                )
                .await,
        );
    }
    for id in &ids {
        server.wait_until_settled(&token, id).await;
    }
    if let Some((url, prefix)) = &server.redis {
        // The counters live in Redis under this server's prefix.
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let live: u64 =
            redis::cmd("SCARD").arg(format!("{prefix}:live:all")).query_async(&mut connection).await.unwrap();
        assert_eq!(live, 0);
    }
    let metrics = server.http.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dialplane_live_calls"), "{metrics}");
    server.stop().await;
}

/// A receiver that holds every request until `release_at` are in flight at once (or three
/// seconds pass), and notes the most it saw in flight.
async fn holding_receiver(release_at: usize) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use warp::Filter;
    let (in_flight, most, answered) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (f, m, a) = (in_flight.clone(), most.clone(), Arc::clone(&answered));
    let route = warp::post().and(warp::body::bytes()).then(move |_body: bytes::Bytes| {
        let (f, m, a) = (f.clone(), m.clone(), Arc::clone(&a));
        async move {
            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let started = tokio::time::Instant::now();
            while m.load(Ordering::SeqCst) < release_at && started.elapsed() < Duration::from_secs(3) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            f.fetch_sub(1, Ordering::SeqCst);
            a.fetch_add(1, Ordering::SeqCst);
            warp::reply::with_status("ok", warp::http::StatusCode::OK)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (url, most, answered)
}

/// Callbacks go out many at once: a slow receiver holds more than one round of the old width
/// (32) of deliveries in flight, so one slow receiver cannot keep a busy engine's callbacks
/// queued behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_to_a_slow_receiver_are_delivered_many_at_once() {
    const CALLS: usize = 64;
    const RELEASE_AT: usize = 40;
    let server = TestServer::start().await;
    let token = server.token().await;
    let (url, most, answered) = holding_receiver(RELEASE_AT).await;
    // 0003: the carrier rejects the call at once, and two callbacks follow.
    let creations = (0..CALLS).map(|_| server.click2call(&token, seed_request("919999990003", &url)));
    futures::future::join_all(creations).await;
    let started = tokio::time::Instant::now();
    while answered.load(Ordering::SeqCst) < 2 * CALLS {
        assert!(started.elapsed() < Duration::from_secs(60), "{} callbacks answered", answered.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        most.load(Ordering::SeqCst) >= RELEASE_AT,
        "at most {} callbacks were in flight",
        most.load(Ordering::SeqCst)
    );
    server.stop().await;
}
