//! Nothing lost, nothing doubled: Idempotency-Key, the watchdog, duplicated and shuffled carrier
//! callbacks, database and Redis outages, and the graceful drain.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;
use rand::seq::SliceRandom;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use dialplane::carriers::sandbox::StatusCallback;
use dialplane::carriers::sandbox_network::{Scenario, timeline};
use dialplane::store::entities::{call, call_event};

use crate::support::*;

async fn post_with_key(server: &TestServer, token: &str, key: &str, body: &Value) -> (u16, Value, bool) {
    let response = server
        .http
        .post(server.url("/api/calls/click2call"))
        .bearer_auth(token)
        .header("idempotency-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    (status, response.json().await.unwrap_or(Value::Null), replayed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_refuse_and_never_double_a_call() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let body = json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"});

    let (status, first, replayed) = post_with_key(&server, &token, "order-1", &body).await;
    assert_eq!((status, replayed), (200, false));
    let (status, again, replayed) = post_with_key(&server, &token, "order-1", &body).await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first, "the first response, replayed");
    let reordered = json!({"did": "919484956750", "agent_number": "918888888888", "customer_number": "919999999999"});
    let (_, same, replayed) = post_with_key(&server, &token, "order-1", &reordered).await;
    assert!(replayed && same["data"]["call_id"] == first["data"]["call_id"], "the same request, written differently");

    let mut other = body.clone();
    other["customer_number"] = json!("919999999998");
    let (status, refused, _) = post_with_key(&server, &token, "order-1", &other).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["detail"][0]["loc"], json!(["header", "Idempotency-Key"]));
    let (status, _, _) = post_with_key(&server, &token, &"k".repeat(256), &body).await;
    assert_eq!(status, 422);

    // Fifty at once with one key: one call.
    let answers: Vec<(u16, Value, bool)> = futures::stream::iter(0..50)
        .map(|_| post_with_key(&server, &token, "burst", &body))
        .buffer_unordered(50)
        .collect()
        .await;
    let call_ids: std::collections::HashSet<_> = answers
        .iter()
        .map(|(status, body, _)| (*status, body["data"]["call_id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(call_ids.len(), 1, "{call_ids:?}");
    assert_eq!(answers.iter().filter(|(_, _, replayed)| !replayed).count(), 1);
    let (_, recent) = server.get_json("/api/calls/recent", Some(&token)).await;
    assert_eq!(recent["data"]["total"], 2, "order-1 and burst");

    // Keys belong to a workspace: another one may use the same key.
    let hash = dialplane::auth::hash_password("another-password").unwrap();
    dialplane::store::users::create(&server.db, "other@example.com", &hash, "member").await.unwrap();
    let other_token = server.login("other@example.com", "another-password").await;
    let (status, theirs, replayed) = post_with_key(&server, &other_token, "order-1", &body).await;
    assert_eq!((status, replayed), (200, false));
    assert_ne!(theirs["data"]["call_id"], first["data"]["call_id"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_call_is_checked_with_the_carrier_then_ends_carrier_timeout() {
    let server = TestServer::start_with(ServerOptions {
        extra: vec![("DIALPLANE_DIAL_TIMEOUT_S", "0.3".into()), ("DIALPLANE_DRAIN_TIMEOUT_S", "0.5".into())],
        ..Default::default()
    })
    .await;
    let receiver = WebhookReceiver::start().await;
    let token = server.token().await;
    let call_id = server.click2call(&token, seed_request("919999990006", &receiver.url)).await;
    let deliveries = receiver.wait_for(&call_id, 2).await;
    assert_eq!(events(&deliveries), ["call.failed", "transcript.failed"]);
    assert_eq!(deliveries[0].body["error"], "carrier_timeout");
    let row = dialplane::store::calls::find(&server.db, &call_id).await.unwrap().unwrap();
    assert!(row.provider_call_id.is_some(), "the carrier did take the call");
    assert!(!row.is_live);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicated_and_shuffled_callbacks_end_every_call_once() {
    const CALLS: usize = 1000;
    let server = TestServer::start().await;
    let token = server.token().await;
    // Silent sandbox calls: the carrier takes them and leaves the callbacks to this test.
    let ids: Vec<String> = futures::stream::iter(0..CALLS)
        .map(|_| {
            server.click2call(
                &token,
                json!({"customer_number": "919999990006", "agent_number": "918888888888", "did": "919484956750"}),
            )
        })
        .buffer_unordered(16)
        .collect()
        .await;
    eventually("every call placed", || async {
        call::Entity::find().filter(call::Column::ProviderCallId.is_not_null()).count(&server.db).await.unwrap()
            as usize
            == CALLS
    })
    .await;
    let sids: HashMap<String, String> = call::Entity::find()
        .all(&server.db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.id, row.provider_call_id.unwrap()))
        .collect();

    let key = dialplane::signing::derive_key(JWT_SECRET.as_bytes(), "sandbox-callbacks");
    let steps = timeline(true, Scenario::Completes { talk_s: 40 });
    let mut bodies: Vec<String> = Vec::new();
    let mut rng = rand::rng();
    for id in &ids {
        for (index, step) in steps.iter().enumerate() {
            let callback = StatusCallback {
                sid: sids[id].clone(),
                reference: id.clone(),
                sequence: index as u64 + 1,
                leg: step.leg.into(),
                status: step.status.into(),
                timestamp: chrono::Utc::now(),
                duration: step.duration,
                answer_duration: step.answer_duration,
                recording_url: step.recording.then(|| server.url(&format!("/sandbox/v1/recordings/{}.wav", sids[id]))),
            };
            let body = serde_json::to_string(&callback).unwrap();
            for _ in 0..rand::Rng::random_range(&mut rng, 1..=3) {
                bodies.push(body.clone());
            }
        }
    }
    bodies.shuffle(&mut rng);
    let statuses: Vec<u16> = futures::stream::iter(bodies)
        .map(|body| {
            let signature = hex::encode(dialplane::signing::hmac_sha256(&key, body.as_bytes()));
            let request = server
                .http
                .post(server.url("/providers/sandbox/status"))
                .header("x-sandbox-signature", signature)
                .body(body);
            async move { request.send().await.unwrap().status().as_u16() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "duplicates and late callbacks are acknowledged");

    eventually("every call to settle", || async {
        call::Entity::find().filter(call::Column::IsLive.eq(true)).count(&server.db).await.unwrap() == 0
    })
    .await;
    let rows = call::Entity::find().all(&server.db).await.unwrap();
    assert_eq!(rows.len(), CALLS);
    for row in &rows {
        assert_eq!(row.status, "completed", "{}", row.id);
        assert_eq!(row.duration_s, Some(45), "{}: the carrier's duration, counted once", row.id);
        assert_eq!(row.answer_duration_s, Some(40));
        assert_eq!(row.recording_status, "ready");
    }
    for kind in ["call.ringing", "call.answered", "call.ended", "recording.ready", "transcript.disabled"] {
        let count =
            call_event::Entity::find().filter(call_event::Column::Kind.eq(kind)).count(&server.db).await.unwrap();
        assert_eq!(count as usize, CALLS, "{kind} is emitted once per call");
    }
    if let Some((url, prefix)) = &server.redis {
        let client = redis::Client::open(url.as_str()).unwrap();
        let connection = client.get_multiplexed_async_connection().await.unwrap();
        // A call leaves the counters just after its end is committed, so look until it has.
        eventually("no live call left in Redis", || {
            let mut connection = connection.clone();
            let key = format!("{prefix}:live:all");
            async move {
                let live: u64 = redis::cmd("SCARD").arg(key).query_async(&mut connection).await.unwrap();
                live == 0
            }
        })
        .await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_refuses_new_calls_and_counters_are_rebuilt() {
    let Ok(redis_url) = std::env::var("TEST_REDIS_URL") else { return };
    let upstream = url::Url::parse(&redis_url).unwrap().socket_addrs(|| Some(6379)).unwrap()[0];
    let proxy = CuttableProxy::start(upstream).await;
    let server = TestServer::start_with(ServerOptions {
        redis_url: Some(format!("redis://127.0.0.1:{}", proxy.port)),
        ..Default::default()
    })
    .await;
    let token = server.token().await;
    let body = json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"});
    let before = server.click2call(&token, body.clone()).await;

    proxy.cut();
    let response =
        server.http.post(server.url("/api/calls/click2call")).bearer_auth(&token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_some());
    let (_, recent) = server.get_json("/api/calls/recent", Some(&token)).await;
    assert_eq!(recent["data"]["total"], 1, "nothing was stored for the refused call");

    proxy.restore();
    let started = tokio::time::Instant::now();
    let after = loop {
        let (status, created) = server.post_json("/api/calls/click2call", Some(&token), &body).await;
        if status == 200 {
            break created["data"]["call_id"].as_str().unwrap().to_string();
        }
        assert!(started.elapsed() < PATIENCE, "new calls are accepted again once Redis is back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for id in [&before, &after] {
        server.wait_until_settled(&token, id).await;
    }
    // The counters agree with the database once reconciled.
    let (_, prefix) = server.redis.clone().unwrap();
    let client = redis::Client::open(redis_url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    eventually("redis to agree with the database", || {
        let mut connection = connection.clone();
        let key = format!("{prefix}:live:all");
        let db = server.db.clone();
        async move {
            let live: u64 = redis::cmd("SCARD").arg(key).query_async(&mut connection).await.unwrap();
            live == dialplane::store::calls::counted_live(&db).await.unwrap().len() as u64
        }
    })
    .await;
    let _ = &mut connection;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_and_the_pool_recovers() {
    let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else { return };
    // A database of its own, reached over TCP through a proxy the test can cut.
    let name = format!("dp_test_{}", dialplane::ids::random_lower_alphanumeric(12));
    let admin = dialplane::store::open(&admin_url).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&admin, &format!("CREATE DATABASE {name}")).await.unwrap();
    let proxy = CuttableProxy::start("127.0.0.1:5432".parse().unwrap()).await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", proxy.port);
    let server = TestServer::start_with(ServerOptions { database_url: Some(url), ..Default::default() }).await;
    let token = server.token().await;
    assert_eq!(server.get_json("/api/calls/recent", Some(&token)).await.0, 200);

    proxy.cut();
    let response = server.http.get(server.url("/api/calls/recent")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let response = server
        .http
        .post(server.url("/api/calls/click2call"))
        .bearer_auth(&token)
        .json(&json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(server.get_json("/readiness", None).await.0, 503);

    proxy.restore();
    eventually("the pool to recover", || async { server.get_json("/api/calls/recent", Some(&token)).await.0 == 200 })
        .await;
    assert_eq!(server.get_json("/readiness", None).await.0, 200);
    let (_, recent) = server.get_json("/api/calls/recent", Some(&token)).await;
    assert_eq!(recent["data"]["total"], 0, "no call was written during the outage");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_drains_live_calls_and_their_callbacks() {
    let mut server = TestServer::start_with(ServerOptions {
        sandbox_time_scale: 0.02,
        extra: vec![("DIALPLANE_DRAIN_TIMEOUT_S", "30".into())],
        ..Default::default()
    })
    .await;
    // Each callback is answered 300 ms after it arrives: the shutdown, which follows the call's
    // end at once, comes while the first is in flight, and the second is due only after it.
    let receiver = WebhookReceiver::start_answering_after(Duration::from_millis(300)).await;
    let token = server.token().await;
    let mut request = seed_request("919999999999", &receiver.url);
    request["transcript"] = json!(false);
    let call_id = server.click2call(&token, request).await;

    server.begin_shutdown();
    eventually("readiness to fail", || async { server.get_json("/readiness", None).await.0 == 503 }).await;
    let (status, _) = server
        .post_json(
            "/api/calls/click2call",
            Some(&token),
            &json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"}),
        )
        .await;
    assert_eq!(status, 503, "no new calls while draining");

    let db = server.db.clone();
    server.stop().await;
    let row = dialplane::store::calls::find(&db, &call_id).await.unwrap().unwrap();
    assert_eq!(row.status, "completed", "the live call ran to completion");
    assert!(!row.is_live);
    // Both callbacks went out before the server stopped, not at its next start.
    let deliveries = receiver.accepted_for(&call_id);
    assert_eq!(events(&deliveries), ["call.completed", "transcript.disabled"]);
}
