//! Helpers the resource handlers share: the authenticated caller, query parameters, `page` /
//! `page_size` and seed 003's list envelope `{items, total, page, page_size, has_next, has_prev}`,
//! and the empty `204` answer.

use std::collections::HashMap;

use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;

use crate::App;
use crate::error::{ApiError, json_response};
use crate::store::entities::user;

/// Returns the user behind the `Authorization` header.
pub async fn caller(app: &App, authorization: Option<String>) -> Result<user::Model, ApiError> {
    app.auth.authenticate(&app.db, authorization.as_deref()).await
}

/// Returns a query string's parameters.
pub fn query_params(query: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

/// Returns an empty `204 No Content`.
pub fn no_content() -> Response {
    let mut response = Response::new(Vec::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Returns seed 003's list envelope.
pub fn page_of(items: Vec<Value>, total: u64, page: u64, page_size: u64) -> Response {
    json_response(
        StatusCode::OK,
        &json!({
            "items": items,
            "total": total,
            "page": page,
            "page_size": page_size,
            "has_next": page * page_size < total,
            "has_prev": page > 1,
        }),
    )
}

/// Reads `page` (from 1) and `page_size` (1–100, default 20) from a query string.
pub fn pagination(query: &str) -> Result<(u64, u64), ApiError> {
    let params = query_params(query);
    let number = |name: &str, default: u64, max: u64| match params.get(name) {
        None => Ok(default),
        Some(raw) => raw.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
            ApiError::field("query", name, format!("must be a whole number between 1 and {max}"), "value_error")
        }),
    };
    Ok((number("page", 1, 1_000_000)?, number("page_size", 20, 100)?))
}
