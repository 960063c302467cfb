//! Operational endpoints and start-up failures.

use std::collections::HashMap;

use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operational_endpoints_answer() {
    let server = TestServer::start().await;
    assert_eq!(server.get_json("/health", None).await, (200, json!({"status": "ok"})));
    assert_eq!(server.get_json("/liveness", None).await.0, 200);
    assert_eq!(server.get_json("/readiness", None).await, (200, json!({"status": "ready", "database": "ok"})));
    let (status, version) = server.get_json("/version", None).await;
    assert_eq!(status, 200);
    assert_eq!(version["version"], env!("CARGO_PKG_VERSION"));
    let (status, body) = server.get_json("/no/such/route", None).await;
    assert_eq!((status, body), (404, json!({"detail": "Not Found"})));

    let token = server.token().await;
    let call_id = server
        .click2call(
            &token,
            json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"}),
        )
        .await;
    server.wait_until_settled(&token, &call_id).await;
    let response = server.http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = response.text().await.unwrap();
    for expected in [
        "dialplane_http_requests_total{route=\"/api/calls/click2call\",method=\"POST\",status=\"200\"}",
        "dialplane_http_request_duration_seconds_bucket{route=\"/api/login\"",
        "dialplane_calls_created_total{call_type=\"C2C\"}",
        "dialplane_calls_ended_total{call_type=\"C2C\",outcome=\"completed\"}",
        "dialplane_live_calls",
        "dialplane_carrier_callbacks_total{carrier=\"sandbox\",result=\"routed\"}",
        "dialplane_write_batch_writes_bucket{went=\"together\",le=\"1\"}",
        "dialplane_write_batch_duration_seconds_count{went=\"together\"}",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    // Names and labels only: a sample's value (a float sum such as 2.0919999999999996) may
    // happen to hold the digits.
    for line in text.lines() {
        let series = line.rsplit_once(' ').map_or(line, |(series, _value)| series);
        assert!(!series.contains("919999999999"), "metrics never carry phone numbers: {line}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_database_url_fails_start_up_naming_the_key() {
    let values: HashMap<String, String> =
        [("DATABASE_URL".to_string(), "postgres://nobody@127.0.0.1:1/none".to_string())].into();
    let config = dialplane::config::Config::from_values(&values).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = dialplane::run(config, listener, async {}).await.unwrap_err();
    assert!(error.to_string().contains("DATABASE_URL"), "{error}");
}
