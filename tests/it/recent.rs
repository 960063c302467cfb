//! `GET /api/calls/recent`: every filter, pagination and its 422s.

use serde_json::{Value, json};

use crate::support::*;

fn ids(body: &Value) -> Vec<String> {
    body["data"]["calls"].as_array().unwrap().iter().map(|c| c["call_id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_calls_filter_and_paginate() {
    let server = TestServer::start().await;
    let token = server.token().await;
    let busy = server
        .click2call(
            &token,
            json!({"customer_number": "919999990001", "agent_number": "918888888888", "did": "919484956750"}),
        )
        .await;
    let agent_id = server.create_agent(&token, "Sales bot").await;
    let agent = server
        .click2call(&token, json!({"customer_number": "14155550100", "agent_number": agent_id, "transcript": true}))
        .await;
    let done = server.click2call(&token, json!({"customer_number": "919999999999", "agent_number": "917777777777", "did": "911111111111", "transcript": true})).await;
    for id in [&busy, &agent, &done] {
        server.wait_until_settled(&token, id).await;
    }
    let get = |query: String| {
        let server = &server;
        let token = token.clone();
        async move {
            let (status, body) = server.get_json(&format!("/api/calls/recent{query}"), Some(&token)).await;
            assert_eq!(status, 200, "{query}: {body}");
            body
        }
    };

    let all = get(String::new()).await;
    assert_eq!(ids(&all), [done.as_str(), agent.as_str(), busy.as_str()], "newest first");
    assert_eq!(all["data"]["limit"], 20);
    assert_eq!(all["data"]["page"], 1);
    assert_eq!(all["data"]["has_more"], false);
    assert_eq!(
        all["data"]["filters"],
        json!({"status": null, "call_type": null, "transcript_status": null, "customer_number": null, "agent_number": null, "did": null, "date_from": null, "date_to": null})
    );

    assert_eq!(ids(&get("?status=busy".into()).await), [busy.as_str()]);
    assert_eq!(ids(&get("?status=completed".into()).await), [done.as_str(), agent.as_str()]);
    assert_eq!(ids(&get("?status=Completed".into()).await).len(), 0, "status is exact");
    assert_eq!(ids(&get("?call_type=C2C".into()).await), [done.as_str(), busy.as_str()]);
    assert_eq!(ids(&get("?call_type=agent_telephony".into()).await), [agent.as_str()]);
    assert_eq!(ids(&get("?transcript_status=ready".into()).await), [done.as_str(), agent.as_str()]);
    assert_eq!(ids(&get("?transcript_status=disabled".into()).await), [busy.as_str()]);
    assert_eq!(ids(&get("?customer_number=0001".into()).await), [busy.as_str()]);
    let partial = format!("?agent_number={}", agent_id[..8].to_lowercase());
    assert_eq!(ids(&get(partial).await), [agent.as_str()], "case-insensitive partial");
    assert_eq!(ids(&get("?agent_number=%25".into()).await).len(), 0, "wildcards are literal");
    assert_eq!(ids(&get("?did=1111".into()).await), [done.as_str()]);
    let filtered = get("?did=1111&transcript_status=ready".into()).await;
    assert_eq!(filtered["data"]["filters"]["did"], "1111");
    assert_eq!(filtered["data"]["filters"]["transcript_status"], "ready");
    let ready = &filtered["data"]["calls"][0];
    assert!(ready["transcript"]["summary"].is_string());
    let busy_row = &get("?status=busy".into()).await["data"]["calls"][0];
    assert_eq!(busy_row["transcript"], Value::Null);
    assert_eq!(busy_row["recording"], Value::Null);

    assert_eq!(ids(&get("?date_from=2000-01-01T00:00:00Z".into()).await).len(), 3);
    assert_eq!(ids(&get("?date_from=2999-01-01T00:00:00Z".into()).await).len(), 0);
    assert_eq!(ids(&get("?date_to=2000-01-01T00:00:00Z".into()).await).len(), 0);
    let echoed = get("?date_from=2000-01-01T00:00:00Z&date_to=2999-01-01".into()).await;
    assert_eq!(echoed["data"]["total"], 3);
    assert_eq!(echoed["data"]["filters"]["date_from"], "2000-01-01T00:00:00Z");

    let first = get("?limit=2&page=1".into()).await;
    assert_eq!(ids(&first), [done.as_str(), agent.as_str()]);
    assert_eq!(first["data"]["total"], 3);
    assert_eq!(first["data"]["has_more"], true);
    let second = get("?limit=2&page=2".into()).await;
    assert_eq!(ids(&second), [busy.as_str()]);
    assert_eq!(second["data"]["has_more"], false);
    assert_eq!(ids(&get("?limit=2&page=3".into()).await).len(), 0);

    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?limit=abc", "limit"),
        ("?page=0", "page"),
        ("?page=-1", "page"),
        ("?date_from=yesterday", "date_from"),
        ("?date_to=2026-13-45", "date_to"),
        ("?transcript_status=done", "transcript_status"),
        ("?date_from=2026-02-01T00:00:00Z&date_to=2026-01-01T00:00:00Z", "date_to"),
    ] {
        let (status, body) = server.get_json(&format!("/api/calls/recent{query}"), Some(&token)).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", field]), "{query}");
    }
    let (status, _) = server.get_json("/api/calls/recent?limit=200", Some(&token)).await;
    assert_eq!(status, 200);
    let (status, _) = server.get_json("/api/calls/recent", None).await;
    assert_eq!(status, 401);
    server.stop().await;
}
