//! Every error case of the seed 000 contract: 400 on login, 401 on tokens, 422 on fields.

use sea_orm::{ActiveModelTrait, IntoActiveModel, Set};
use serde_json::{Value, json};

use crate::support::*;

fn detail_fields(body: &Value) -> Vec<(String, String)> {
    body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("detail list expected: {body}"))
        .iter()
        .map(|e| {
            assert!(e["msg"].is_string(), "{e}");
            let loc: Vec<String> =
                e["loc"].as_array().unwrap().iter().map(|p| p.as_str().unwrap_or_default().to_string()).collect();
            (loc.join("."), e["type"].as_str().unwrap().to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_refuses_wrong_credentials_and_inactive_users() {
    let server = TestServer::start().await;
    for body in
        [json!({"email": EMAIL, "password": "wrong"}), json!({"email": "nobody@example.com", "password": PASSWORD})]
    {
        let (status, response) = server.post_json("/api/login", None, &body).await;
        assert_eq!(status, 400, "{body}");
        assert!(response["detail"].is_string());
    }
    let (status, response) = server.post_json("/api/login", None, &json!({"email": EMAIL})).await;
    assert_eq!(status, 422);
    assert_eq!(detail_fields(&response), [("body.password".to_string(), "missing".to_string())]);
    let (status, _) = server.post_raw("/api/login", None, "not json".to_string()).await;
    assert_eq!(status, 422);

    // A deactivated user can no longer log in, and their tokens stop working.
    let token = server.token().await;
    let user = dialplane::store::users::find_by_email(&server.db, EMAIL).await.unwrap().unwrap();
    let mut active = user.clone().into_active_model();
    active.is_active = Set(false);
    active.update(&server.db).await.unwrap();
    let (status, response) = server.post_json("/api/login", None, &json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!((status, response["detail"].as_str().unwrap()), (400, "Inactive user"));
    let (status, _) = server.get_json("/api/calls/recent", Some(&token)).await;
    assert_eq!(status, 400);

    let mut unverified = user.into_active_model();
    unverified.is_active = Set(true);
    unverified.is_verified = Set(false);
    unverified.update(&server.db).await.unwrap();
    let (status, _) = server.post_json("/api/login", None, &json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click2call_needs_a_valid_token() {
    let server = TestServer::start().await;
    let body = json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"});
    for token in [None, Some("garbage"), Some("eyJhbGciOiJIUzI1NiJ9.e30.AAAA")] {
        let mut request = server.http.post(server.url("/api/calls/click2call")).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"detail": "Could not validate credentials"}));
    }
    // A refresh token is not an access token.
    let (_, login) = server.post_json("/api/login", None, &json!({"email": EMAIL, "password": PASSWORD})).await;
    let refresh = login["data"]["refresh_token"].as_str().unwrap();
    let (status, _) = server.post_json("/api/calls/click2call", Some(refresh), &body).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click2call_validates_every_field() {
    let server = TestServer::start_with(ServerOptions { allow_private_callbacks: false, ..Default::default() }).await;
    let token = server.token().await;
    let valid = json!({"customer_number": "919999999999", "agent_number": "918888888888", "did": "919484956750"});
    let with = |key: &str, value: Value| {
        let mut body = valid.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(Value, Vec<(&str, &str)>)> = vec![
        (without("did"), vec![("body.did", "missing")]),
        (without("customer_number"), vec![("body.customer_number", "missing")]),
        (without("agent_number"), vec![("body.agent_number", "missing")]),
        (with("customer_number", json!("12345")), vec![("body.customer_number", "string_pattern_mismatch")]),
        (with("customer_number", json!("91-9999-999999")), vec![("body.customer_number", "string_pattern_mismatch")]),
        (with("agent_number", json!(918888888888u64)), vec![("body.agent_number", "string_type")]),
        (with("did", json!("abc")), vec![("body.did", "string_pattern_mismatch")]),
        (with("callback_url", json!("not a url")), vec![("body.callback_url", "url_parsing")]),
        (with("callback_url", json!("ftp://example.com/x")), vec![("body.callback_url", "url_parsing")]),
        (with("callback_url", json!("http://127.0.0.1:9000/hook")), vec![("body.callback_url", "value_error")]),
        (with("callback_url", json!("http://localhost/hook")), vec![("body.callback_url", "value_error")]),
        (with("callback_url", json!("http://169.254.169.254/latest")), vec![("body.callback_url", "value_error")]),
        (with("transcript", json!("yes")), vec![("body.transcript", "bool_type")]),
        (with("transcript_language", json!("not a language")), vec![("body.transcript_language", "value_error")]),
        (
            json!({"customer_number": "1", "agent_number": "2", "did": "3"}),
            vec![
                ("body.customer_number", "string_pattern_mismatch"),
                ("body.agent_number", "string_pattern_mismatch"),
                ("body.did", "string_pattern_mismatch"),
            ],
        ),
        (json!(["not", "an", "object"]), vec![("body", "model_attributes_type")]),
    ];
    for (body, expected) in cases {
        let (status, response) = server.post_json("/api/calls/click2call", Some(&token), &body).await;
        assert_eq!(status, 422, "{body} → {response}");
        let expected: Vec<(String, String)> =
            expected.into_iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        assert_eq!(detail_fields(&response), expected, "{body}");
    }
    let (status, response) =
        server.post_raw("/api/calls/click2call", Some(&token), "{\"customer_number\":".to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(detail_fields(&response)[0].1, "json_invalid");

    // Nothing invalid was stored; a public callback URL and an AGT_ call without did are fine.
    let (_, recent) = server.get_json("/api/calls/recent", Some(&token)).await;
    assert_eq!(recent["data"]["total"], 0);
    let (status, created) = server
        .post_json(
            "/api/calls/click2call",
            Some(&token),
            &with("callback_url", json!("https://example.com/webhooks/indus/click2call")),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let agent_id = server.create_agent(&token, "Support").await;
    let (status, created) = server
        .post_json(
            "/api/calls/click2call",
            Some(&token),
            &json!({"customer_number": "+919999999999", "agent_number": agent_id}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["data"]["did"], Value::Null);
    assert_eq!(created["data"]["transcript"], false);
    assert_eq!(created["data"]["transcript_language"], Value::Null);
    server.stop().await;
}
