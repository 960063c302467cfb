//! The one user-facing error type of the HTTP boundary. Every failure a handler can answer with is
//! an [`ApiError`]; its status is decided in one exhaustive `match`. Bodies follow FastAPI, as the
//! `/api` contract (seed 000) does: `{"detail": "..."}`, or for validation errors a list of
//! `{loc, msg, type}`. Internal errors are logged once, here, and answered with a bare 500.

use serde::Serialize;
use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// One invalid field, in FastAPI's shape.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Where the field is: `["body", "callback_url"]`, `["query", "limit"]`.
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// Returns an error about `field` of `place` (`body`, `query`, `path`).
    pub fn new(place: &str, field: &str, msg: impl Into<String>, kind: &str) -> Self {
        FieldError { loc: vec![place.to_string(), field.to_string()], msg: msg.into(), kind: kind.to_string() }
    }
}

/// Every error a request can end with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or a token that does not verify.
    #[error("could not validate credentials")]
    Unauthenticated,
    /// The request is well-formed but cannot be honoured (wrong password, inactive user).
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not touch this resource.
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// The resource is in a state that does not allow the request.
    #[error("{0}")]
    Conflict(String),
    /// Fields failed validation.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A dependency (the database) is down; the request may be retried.
    #[error("{0}")]
    Unavailable(String),
    /// An upstream (a carrier) refused or failed the request Dialplane made for it.
    #[error("{0}")]
    BadGateway(String),
    /// The caller sent more requests to the route this minute than its limit (per minute).
    #[error("Rate limit exceeded: {0}/minute")]
    RateLimited(u64),
    /// A bug or an unexpected failure; details go to the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Returns the HTTP status of the error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Returns a validation error about one field.
    pub fn field(place: &str, field: &str, msg: impl Into<String>, kind: &str) -> Self {
        ApiError::Validation(vec![FieldError::new(place, field, msg, kind)])
    }

    /// Turns the error into its HTTP response.
    pub fn into_response(self) -> Response {
        let (status, body, extra_header) = self.parts();
        respond(status, &body, extra_header)
    }

    /// Returns the status, the FastAPI-style body and the header the error adds.
    fn parts(self) -> (StatusCode, serde_json::Value, Option<(header::HeaderName, HeaderValue)>) {
        let status = self.status();
        let body = match &self {
            ApiError::Unauthenticated => json!({ "detail": "Could not validate credentials" }),
            ApiError::BadRequest(detail)
            | ApiError::Forbidden(detail)
            | ApiError::NotFound(detail)
            | ApiError::Conflict(detail)
            | ApiError::Unavailable(detail)
            | ApiError::BadGateway(detail) => json!({ "detail": detail }),
            ApiError::Validation(errors) => json!({ "detail": errors }),
            ApiError::RateLimited(_) => json!({ "detail": self.to_string() }),
            ApiError::Internal(message) => {
                tracing::error!(error = %message, "request failed");
                json!({ "detail": "Internal Server Error" })
            }
        };
        let extra_header = match self {
            ApiError::Unauthenticated => Some((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))),
            ApiError::Unavailable(_) => Some((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_S))),
            _ => None,
        };
        (status, body, extra_header)
    }

    /// Returns the machine-readable `code` of a `/v1` error.
    fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthenticated => "unauthorized",
            ApiError::BadRequest(_) | ApiError::Validation(_) => "invalid_request",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::BadGateway(_) => "carrier_error",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Internal(_) => "internal_error",
        }
    }

    /// Turns the error into a `/v1` response (seed 003): `{"detail": "...", "code": "..."}`, with
    /// invalid fields answered 400 and a detail that names each field.
    pub fn into_v1_response(self) -> Response {
        let code = self.code();
        let this = match self {
            ApiError::Validation(errors) => ApiError::BadRequest(
                errors
                    .iter()
                    .map(|e| match e.loc.get(1) {
                        Some(field) => format!("{field}: {}", e.msg),
                        None => e.msg.clone(),
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other => other,
        };
        let (status, mut body, extra_header) = this.parts();
        body["code"] = json!(code);
        respond(status, &body, extra_header)
    }
}

fn respond(
    status: StatusCode,
    body: &serde_json::Value,
    extra_header: Option<(header::HeaderName, HeaderValue)>,
) -> Response {
    let mut response = json_response(status, body);
    if let Some((name, value)) = extra_header {
        response.headers_mut().insert(name, value);
    }
    response
}

/// Seconds a client is told to wait before retrying a 503.
pub const RETRY_AFTER_S: u32 = 5;

/// Returns true when a database error means the database cannot be reached (rather than a bug).
pub fn is_unavailable(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr, sqlx};
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => matches!(
            inner.as_ref(),
            sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
        ),
        _ => false,
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        if is_unavailable(&e) {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::Unavailable("Database unavailable, retry later".to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

/// Returns a JSON response with `status`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut response = Response::new(serde_json::to_vec(body).unwrap_or_default().into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_has_its_status() {
        let cases = [
            (ApiError::Unauthenticated, 401),
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::Forbidden("x".into()), 403),
            (ApiError::NotFound("x".into()), 404),
            (ApiError::Validation(vec![]), 422),
            (ApiError::Unavailable("x".into()), 503),
            (ApiError::Internal("x".into()), 500),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
            assert_eq!(error.into_response().status().as_u16(), status);
        }
    }

    #[test]
    fn unavailable_tells_when_to_retry() {
        let response = ApiError::Unavailable("x".into()).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn unauthenticated_is_fastapis_answer() {
        let response = ApiError::Unauthenticated.into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
    }
}
