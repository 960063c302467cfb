//! Refresh tokens: `POST /api/refresh-token` exchanges a current one for a new pair, each is
//! used once, and one presented again after its exchange revokes its whole login.

use serde_json::{Value, json};

use crate::support::*;

/// Logs in; returns the access and refresh tokens.
async fn login(server: &TestServer) -> (String, String) {
    let (status, body) = server.post_json("/api/login", None, &json!({ "email": EMAIL, "password": PASSWORD })).await;
    assert_eq!(status, 200, "{body}");
    pair(&body)
}

fn pair(body: &Value) -> (String, String) {
    let token = |name: &str| body["data"][name].as_str().unwrap_or_else(|| panic!("no {name} in {body}")).to_string();
    (token("access_token"), token("refresh_token"))
}

async fn exchange(server: &TestServer, refresh_token: &str) -> (u16, Value) {
    server.post_json("/api/refresh-token", None, &json!({ "refresh_token": refresh_token })).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_token_is_exchanged_once_and_its_reuse_revokes_its_login() {
    let server = TestServer::start().await;
    let (_, first) = login(&server).await;
    let (_, other_login) = login(&server).await;

    let (status, body) = exchange(&server, &first).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["status_code"].as_u64(), body["data"]["token_type"].as_str()), (Some(200), Some("bearer")));
    let (access, second) = pair(&body);
    assert_ne!(second, first);
    let (status, _) = server.get_json("/api/calls/recent", Some(&access)).await;
    assert_eq!(status, 200, "the new access token works");

    // The first token again: refused, and the login it belongs to is revoked with it.
    assert_eq!(exchange(&server, &first).await.0, 401);
    assert_eq!(exchange(&server, &second).await.0, 401, "the newest token of that login is revoked");
    // Another login is not touched.
    let (status, body) = exchange(&server, &other_login).await;
    assert_eq!(status, 200, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_request_without_a_valid_refresh_token_is_refused() {
    let server = TestServer::start().await;
    let (access, _) = login(&server).await;
    let (status, body) = server.post_json("/api/refresh-token", None, &json!({})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("refresh_token"), "the error names the field: {body}");
    assert_eq!(exchange(&server, &access).await.0, 401, "an access token is not a refresh token");
    assert_eq!(exchange(&server, "not.a.token").await.0, 401);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_refresh_tokens_are_forgotten_and_current_ones_kept() {
    use dialplane::store::entities::refresh_token;
    use dialplane::store::refresh_tokens::{self, Issued};
    use sea_orm::EntityTrait;

    let server = TestServer::start().await;
    login(&server).await;
    let user = dialplane::store::users::find_by_email(&server.db, EMAIL).await.unwrap().unwrap();
    let expired = Issued {
        id: "expired",
        family_id: "family",
        user_id: &user.id,
        expires_at: chrono::Utc::now() - chrono::Duration::seconds(1),
    };
    refresh_tokens::record(&server.db, expired).await.unwrap();
    // The server's upkeep (every 0.2 s here) may forget it first.
    refresh_tokens::forget_expired(&server.db, chrono::Utc::now()).await.unwrap();
    let left = refresh_token::Entity::find().all(&server.db).await.unwrap();
    assert_eq!(left.len(), 1, "the login's token stays: {left:?}");
    assert!(left[0].expires_at > chrono::Utc::now());
    server.stop().await;
}
