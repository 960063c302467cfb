//! Seed 003's per-route limits, counted per user and minute: past the limit a route answers 429
//! with `{"detail": "Rate limit exceeded: 5/minute"}`, and every answer of a limited route says
//! where its caller stands in `X-RateLimit-*` headers.

use serde_json::{Value, json};

use crate::support::*;

/// A POST with a bearer token: the status, the `X-RateLimit-*` / `Retry-After` headers and the body.
async fn post(server: &TestServer, path: &str, token: &str, body: Value) -> (u16, Vec<Option<u64>>, Value) {
    let response = server.http.post(server.url(path)).bearer_auth(token).json(&body).send().await.unwrap();
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()?.parse().ok());
    let headers =
        ["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"].map(header).to_vec();
    (response.status().as_u16(), headers, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_is_launched_at_most_five_times_a_minute_per_user() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let body = json!({ "name": "Limited", "agent_number": "918888888888", "caller_ids": ["+919484956750"] });
    let (status, campaign) = server.send("POST", "/v1/campaigns", Some(&token), Some(body)).await;
    assert_eq!(status, 201, "{campaign}");
    let launch = format!("/v1/campaigns/{}/launch", campaign["id"].as_str().unwrap());
    // Counts are per minute: all six must fall in one, so start afresh when this one ends soon.
    let (_, headers, _) = post(&server, &launch, &token, json!({})).await;
    let reset = headers[2].expect("X-RateLimit-Reset");
    let mut counted = 1;
    if reset < 20 {
        tokio::time::sleep(std::time::Duration::from_secs(reset + 1)).await;
        counted = 0;
    }
    for n in counted + 1..=5u64 {
        // A campaign without contacts completes at once: a launch after that is a 409, but counts.
        let (status, headers, body) = post(&server, &launch, &token, json!({})).await;
        assert!(matches!(status, 200 | 409), "launch {n}: {body}");
        assert_eq!((headers[0], headers[1], headers[3]), (Some(5), Some(5 - n), None), "launch {n}");
    }
    let (status, headers, body) = post(&server, &launch, &token, json!({})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body, json!({ "detail": "Rate limit exceeded: 5/minute", "code": "rate_limited" }));
    assert_eq!((headers[0], headers[1]), (Some(5), Some(0)));
    assert!(headers[3].is_some_and(|retry| retry <= 60), "Retry-After: {headers:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_count_per_route_and_per_user_and_unlimited_routes_are_not_counted() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let hash = dialplane::auth::hash_password("other password").unwrap();
    dialplane::store::users::create(&server.db, "other@example.com", &hash, "member").await.unwrap();
    let other = server.login("other@example.com", "other password").await;
    let body = json!({ "name": "Limited", "agent_number": "918888888888", "caller_ids": ["+919484956750"] });
    let (_, campaign) = server.send("POST", "/v1/campaigns", Some(&token), Some(body)).await;
    let id = campaign["id"].as_str().unwrap();

    let (status, headers, _) = post(&server, &format!("/v1/campaigns/{id}/launch"), &token, json!({})).await;
    assert_eq!((status, headers[0], headers[1]), (200, Some(5), Some(4)));
    // Stop counts on its own; pause is not limited.
    let (status, headers, _) = post(&server, &format!("/v1/campaigns/{id}/pause"), &token, json!({})).await;
    assert_eq!((status, headers[0]), (200, None));
    let (status, headers, _) = post(&server, &format!("/v1/campaigns/{id}/stop"), &token, json!({})).await;
    assert_eq!((status, headers[0], headers[1]), (200, Some(5), Some(4)));
    // Another user has a count of their own (their request is refused, but still counted).
    let (status, headers, _) = post(&server, &format!("/v1/campaigns/{id}/launch"), &other, json!({})).await;
    assert_eq!((status, headers[1]), (404, Some(4)));
    // Contacts: 60 a minute.
    let (status, headers, body) = post(&server, "/v1/contacts", &token, json!({ "phone": "+919812345678" })).await;
    assert_eq!((status, headers[0], headers[1]), (201, Some(60), Some(59)), "{body}");
    // Without a valid token nothing is counted: the route answers 401.
    let (status, headers, _) = post(&server, "/v1/contacts", "not-a-token", json!({ "phone": "+919812345679" })).await;
    assert_eq!((status, headers[0]), (401, None));
    server.stop().await;
}
