//! The HTTP layer: warp filters that only route and extract, handing over to plain async handlers
//! in [`api`], [`carrier`] and [`ops`]. Every answered request is counted and timed by its route
//! template; unmatched requests get FastAPI-style JSON errors.

pub mod agents;
pub mod api;
pub mod calls;
pub mod campaigns;
pub mod carrier;
pub mod carriers;
pub mod contacts;
pub mod listing;
pub mod ops;
pub mod validate;
pub mod webhooks;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use crate::App;
use crate::error::{ApiError, json_response};
use crate::ratelimit::{self, RouteLimit};
use crate::telemetry;

/// Largest request body accepted.
const MAX_BODY_BYTES: u64 = 256 * 1024;
/// Largest body of a bulk request (10,000 contacts).
const BULK_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Largest CSV upload; it is streamed, so this bounds time, not memory.
const IMPORT_BODY_BYTES: u64 = 512 * 1024 * 1024;

/// Runs a handler, turns its error into a response, and records the request's metrics.
///
/// The handler's future is boxed here, once its route has matched. Unboxed, it would sit inline
/// in its route's filter future, which warp builds (and [`BoxedFilter`] moves onto the heap) for
/// every route a request is tried against before one matches: several KiB copied per route, per
/// request (BENCHMARKS.md, 2026-11-27 run).
fn timed<Fut>(route: &'static str, method: &'static str, handler: Fut) -> BoxFuture<'static, Response>
where
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    respond(route, method, handler, ApiError::into_response)
}

/// [`timed`] for the `/v1` surface, whose errors carry a `code` (seed 003).
fn timed_v1<Fut>(route: &'static str, method: &'static str, handler: Fut) -> BoxFuture<'static, Response>
where
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    respond(route, method, handler, ApiError::into_v1_response)
}

fn respond<Fut>(
    route: &'static str,
    method: &'static str,
    handler: Fut,
    on_error: fn(ApiError) -> Response,
) -> BoxFuture<'static, Response>
where
    Fut: Future<Output = Result<Response, ApiError>> + Send + 'static,
{
    Box::pin(async move {
        let started = Instant::now();
        let response = handler.await.unwrap_or_else(on_error);
        telemetry::http_request(route, method, response.status().as_u16(), started.elapsed().as_secs_f64());
        response
    })
}

/// Runs a `/v1` handler under its route's per-user rate limit ([`crate::ratelimit`]): past the
/// limit it answers 429 without running; every answer carries the `X-RateLimit-*` headers. A
/// request without a valid access token is not counted (its handler answers 401).
async fn limited<Fut>(
    app: Arc<App>,
    authorization: Option<String>,
    limit: RouteLimit,
    handler: Fut,
) -> Result<Response, ApiError>
where
    Fut: Future<Output = Result<Response, ApiError>> + Send,
{
    let user = crate::auth::bearer_token(authorization.as_deref()).and_then(|token| app.auth.verify_access(token));
    let Some(user) = user else { return handler.await };
    let Some(verdict) = app.rate_limits.check(&user.sub, limit).await else { return handler.await };
    let mut response = if verdict.allowed() {
        handler.await.unwrap_or_else(ApiError::into_v1_response)
    } else {
        ApiError::RateLimited(verdict.limit).into_v1_response()
    };
    verdict.set_headers(response.headers_mut());
    Ok(response)
}

/// Combines routes, boxing at every step so the filter types stay flat.
fn any_of(routes: Vec<BoxedFilter<(Response,)>>) -> BoxedFilter<(Response,)> {
    routes.into_iter().reduce(|a, b| a.or(b).unify().boxed()).expect("at least one route")
}

/// `call_outcomes` → outcomes (true), `call_infields` → infields (false).
fn field_kind(segment: &str) -> Option<bool> {
    match segment {
        "call_outcomes" => Some(true),
        "call_infields" => Some(false),
        _ => None,
    }
}

fn field_route(outcome: bool) -> &'static str {
    if outcome { "/api/agents/{agent_id}/call_outcomes" } else { "/api/agents/{agent_id}/call_infields" }
}

fn field_item_route(outcome: bool) -> &'static str {
    if outcome { "/api/agents/{agent_id}/call_outcomes/{name}" } else { "/api/agents/{agent_id}/call_infields/{name}" }
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

fn authorization() -> impl Filter<Extract = (Option<String>,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
}

fn body() -> impl Filter<Extract = (bytes::Bytes,), Error = Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::bytes())
}

fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Returns every route of the server.
pub fn routes(app: Arc<App>) -> BoxedFilter<(Response,)> {
    let api = warp::path!("api" / "login")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(body())
        .then(|app, body| timed("/api/login", "POST", api::login(app, body)))
        .or(warp::path!("api" / "refresh-token")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(body())
            .then(|app, body| timed("/api/refresh-token", "POST", api::refresh_token(app, body))))
        .unify()
        .or(warp::path!("api" / "calls" / "click2call")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(warp::header::optional::<String>("idempotency-key"))
            .and(body())
            .then(|app, auth, key, body| timed("/api/calls/click2call", "POST", api::click2call(app, auth, key, body))))
        .unify()
        .or(warp::path!("api" / "calls" / "recent")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed("/api/calls/recent", "GET", api::recent(app, auth, query))))
        .unify()
        .or(warp::path!("api" / "calls" / String / "transcript")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|call_id, app, auth| {
                timed("/api/calls/{call_id}/transcript", "GET", api::transcript(app, auth, call_id))
            }))
        .unify()
        .boxed();

    // Each route is boxed on its own: one long chain of `or` makes the compiler's work explode.
    let agents_routes = any_of(vec![
        warp::path!("api" / "agents")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(body())
            .then(|app, body| timed("/api/agents", "POST", agents::legacy_list(app, body)))
            .boxed(),
        warp::path!("api" / "developer" / "api-key")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|app, auth| timed("/api/developer/api-key", "POST", agents::issue_api_key(app, auth)))
            .boxed(),
        warp::path!("api" / "agents" / "create")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| timed("/api/agents/create", "POST", agents::create(app, auth, body)))
            .boxed(),
        warp::path!("api" / "agents" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed("/api/agents/{agent_id}", "GET", agents::get(app, auth, id)))
            .boxed(),
        warp::path!("api" / "agents" / String)
            .and(warp::patch().or(warp::put()).unify())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| timed("/api/agents/{agent_id}", "PATCH", agents::update(app, auth, id, body)))
            .boxed(),
        warp::path!("api" / "agents" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed("/api/agents/{agent_id}", "DELETE", agents::delete(app, auth, id)))
            .boxed(),
        warp::path!("api" / "agents" / String / "configs")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(body())
            .then(|id, app, auth, query, body| {
                timed("/api/agents/{agent_id}/configs", "POST", agents::create_config(app, auth, id, query, body))
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|id, app, auth, query| {
                timed("/api/agents/{agent_id}/configs", "GET", agents::list_configs(app, auth, id, query))
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / "current")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| {
                timed("/api/agents/{agent_id}/configs/current", "GET", agents::current_config(app, auth, id))
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / "render")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(body())
            .then(|id, app, auth, query, body| {
                timed("/api/agents/{agent_id}/configs/render", "POST", agents::render(app, auth, id, query, body))
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / "validate")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(body())
            .then(|id, app, auth, query, body| {
                timed(
                    "/api/agents/{agent_id}/configs/validate",
                    "POST",
                    agents::validate_metadata(app, auth, id, query, body),
                )
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / "enhance")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| {
                timed("/api/agents/{agent_id}/configs/enhance", "POST", agents::enhance(app, auth, id, body))
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, version, app, auth| {
                timed("/api/agents/{agent_id}/configs/{version}", "GET", agents::get_config(app, auth, id, version))
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / String)
            .and(warp::put().or(warp::patch()).unify())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, version, app, auth, body| {
                timed(
                    "/api/agents/{agent_id}/configs/{version}",
                    "PUT",
                    agents::edit_config(app, auth, id, version, body),
                )
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, version, app, auth| {
                timed(
                    "/api/agents/{agent_id}/configs/{version}",
                    "DELETE",
                    agents::delete_config(app, auth, id, version),
                )
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / String / "publish")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, version, app, auth| {
                timed(
                    "/api/agents/{agent_id}/configs/{version}/publish",
                    "POST",
                    agents::publish_or_rollback(app, auth, id, version, false),
                )
            })
            .boxed(),
        warp::path!("api" / "agents" / String / "configs" / String / "rollback")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, version, app, auth| {
                timed(
                    "/api/agents/{agent_id}/configs/{version}/rollback",
                    "POST",
                    agents::publish_or_rollback(app, auth, id, version, true),
                )
            })
            .boxed(),
        // Before the routes below, which take the body of any `/api/agents/{id}/{a}/{b}`.
        warp::path!("api" / "agents" / String / "config" / String)
            .and(warp::put())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, service, app, auth, body| {
                timed(
                    "/api/agents/{agent_id}/config/{service_type}",
                    "PUT",
                    agents::put_service(app, auth, id, service, body),
                )
            })
            .boxed(),
        warp::path!("api" / "agents" / String / String)
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .and_then(|id, kind: String, app, auth, body| async move {
                match field_kind(&kind) {
                    Some(outcome) => {
                        Ok(timed(field_route(outcome), "POST", agents::create_field(app, auth, id, outcome, body))
                            .await)
                    }
                    None => Err(warp::reject::not_found()),
                }
            })
            .boxed(),
        warp::path!("api" / "agents" / String / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and_then(|id, kind: String, app, auth| async move {
                match field_kind(&kind) {
                    Some(outcome) => {
                        Ok(timed(field_route(outcome), "GET", agents::list_fields(app, auth, id, outcome)).await)
                    }
                    None => Err(warp::reject::not_found()),
                }
            })
            .boxed(),
        warp::path!("api" / "agents" / String / String / String)
            .and(warp::put().or(warp::patch()).unify())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .and_then(|id, kind: String, name, app, auth, body| async move {
                match field_kind(&kind) {
                    Some(outcome) => Ok(timed(
                        field_item_route(outcome),
                        "PUT",
                        agents::update_field(app, auth, id, name, outcome, body),
                    )
                    .await),
                    None => Err(warp::reject::not_found()),
                }
            })
            .boxed(),
        warp::path!("api" / "agents" / String / String / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .and_then(|id, kind: String, name, app, auth| async move {
                match field_kind(&kind) {
                    Some(outcome) => Ok(timed(
                        field_item_route(outcome),
                        "DELETE",
                        agents::delete_field(app, auth, id, name, outcome),
                    )
                    .await),
                    None => Err(warp::reject::not_found()),
                }
            })
            .boxed(),
    ]);

    let carrier = warp::path!("providers" / "sandbox" / "status")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(warp::header::optional::<String>(crate::carriers::sandbox::SIGNATURE_HEADER))
        .and(body())
        .then(|app, signature, body| {
            timed("/providers/sandbox/status", "POST", carrier::sandbox_status(app, signature, body))
        })
        .or(warp::path!("sandbox" / "v1" / "calls")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| timed("/sandbox/v1/calls", "POST", carrier::sandbox_place_call(app, auth, body))))
        .unify()
        .or(warp::path!("sandbox" / "v1" / "calls" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|lookup, app, auth| {
                timed("/sandbox/v1/calls/{sid}", "GET", carrier::sandbox_call_status(app, auth, lookup))
            }))
        .unify()
        .or(warp::path!("sandbox" / "v1" / "recordings" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|file, app, auth| {
                timed("/sandbox/v1/recordings/{sid}", "GET", carrier::sandbox_recording(app, auth, file))
            }))
        .unify()
        .or(warp::path!("recordings" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(raw_query())
            .then(|call_id, app, query| timed("/recordings/{call_id}", "GET", carrier::recording(app, call_id, query))))
        .unify()
        .boxed();

    let v1 = warp::path!("v1" / "webhooks")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(authorization())
        .and(body())
        .then(|app: Arc<App>, auth: Option<String>, body| {
            let handler = webhooks::create(app.clone(), auth.clone(), body);
            timed_v1("/v1/webhooks", "POST", limited(app, auth, ratelimit::WEBHOOK_CREATE, handler))
        })
        .or(warp::path!("v1" / "webhooks")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed_v1("/v1/webhooks", "GET", webhooks::list(app, auth, query))))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/webhooks/{id}", "GET", webhooks::get(app, auth, id))))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String)
            .and(warp::put().or(warp::patch()).unify())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| timed_v1("/v1/webhooks/{id}", "PUT", webhooks::update(app, auth, id, body))))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/webhooks/{id}", "DELETE", webhooks::delete(app, auth, id))))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String / "test")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/webhooks/{id}/test", "POST", webhooks::test(app, auth, id))))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String / "logs")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|id, app, auth, query| {
                timed_v1("/v1/webhooks/{id}/logs", "GET", webhooks::logs(app, auth, id, query))
            }))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String / "replay")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| {
                timed_v1("/v1/webhooks/{id}/replay", "POST", webhooks::replay(app, auth, id, body))
            }))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String / "secret")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/webhooks/{id}/secret", "GET", webhooks::secret(app, auth, id))))
        .unify()
        .or(warp::path!("v1" / "webhooks" / String / "secret" / "rotate")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| {
                timed_v1("/v1/webhooks/{id}/secret/rotate", "POST", webhooks::rotate_secret(app, auth, id, body))
            }))
        .unify()
        .or(warp::path!("v1" / "workspace" / "signing-secret")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|app, auth| {
                timed_v1("/v1/workspace/signing-secret", "GET", webhooks::workspace_signing_secret(app, auth))
            }))
        .unify()
        .boxed();

    let contacts_routes = any_of(vec![
        warp::path!("v1" / "contacts")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(body())
            .then(|app: Arc<App>, auth: Option<String>, query, body| {
                let handler = contacts::create(app.clone(), auth.clone(), query, body);
                timed_v1("/v1/contacts", "POST", limited(app, auth, ratelimit::CONTACT_CREATE, handler))
            })
            .boxed(),
        warp::path!("v1" / "contacts")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed_v1("/v1/contacts", "GET", contacts::list(app, auth, query)))
            .boxed(),
        warp::path!("v1" / "contacts" / "bulk")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(warp::body::content_length_limit(BULK_BODY_BYTES).and(warp::body::bytes()))
            .then(|app: Arc<App>, auth: Option<String>, query, body| {
                let handler = contacts::bulk(app.clone(), auth.clone(), query, body);
                timed_v1("/v1/contacts/bulk", "POST", limited(app, auth, ratelimit::CONTACT_BULK, handler))
            })
            .boxed(),
        warp::path!("v1" / "contacts" / "import")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(warp::multipart::form().max_length(IMPORT_BODY_BYTES))
            .then(|app, auth, query, form| {
                timed_v1("/v1/contacts/import", "POST", contacts::import(app, auth, query, form))
            })
            .boxed(),
        warp::path!("v1" / "contacts" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/contacts/{id}", "GET", contacts::get(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "contacts" / String)
            .and(warp::patch())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(body())
            .then(|id, app: Arc<App>, auth: Option<String>, query, body| {
                let handler = contacts::update(app.clone(), auth.clone(), id, query, body);
                timed_v1("/v1/contacts/{id}", "PATCH", limited(app, auth, ratelimit::CONTACT_UPDATE, handler))
            })
            .boxed(),
        warp::path!("v1" / "contacts" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/contacts/{id}", "DELETE", contacts::delete(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "dnc")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(body())
            .then(|app, auth, query, body| timed_v1("/v1/dnc", "POST", contacts::add_dnc(app, auth, query, body)))
            .boxed(),
        warp::path!("v1" / "dnc")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed_v1("/v1/dnc", "GET", contacts::list_dnc(app, auth, query)))
            .boxed(),
        warp::path!("v1" / "dnc" / "bulk")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(warp::body::content_length_limit(BULK_BODY_BYTES).and(warp::body::bytes()))
            .then(|app, auth, query, body| timed_v1("/v1/dnc/bulk", "POST", contacts::bulk_dnc(app, auth, query, body)))
            .boxed(),
        warp::path!("v1" / "dnc" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|phone, app, auth, query| {
                timed_v1("/v1/dnc/{phone}", "DELETE", contacts::remove_dnc(app, auth, phone, query))
            })
            .boxed(),
    ]);

    let campaign_routes = any_of(vec![
        warp::path!("v1" / "campaigns")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| timed_v1("/v1/campaigns", "POST", campaigns::create(app, auth, body)))
            .boxed(),
        warp::path!("v1" / "campaigns")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed_v1("/v1/campaigns", "GET", campaigns::list(app, auth, query)))
            .boxed(),
        warp::path!("v1" / "campaigns" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/campaigns/{id}", "GET", campaigns::get(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "campaigns" / String)
            .and(warp::patch().or(warp::put()).unify())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| timed_v1("/v1/campaigns/{id}", "PATCH", campaigns::update(app, auth, id, body)))
            .boxed(),
        warp::path!("v1" / "campaigns" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/campaigns/{id}", "DELETE", campaigns::delete(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "campaigns" / String / "stats")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/campaigns/{id}/stats", "GET", campaigns::stats(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "campaigns" / String / "status")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/campaigns/{id}/status", "GET", campaigns::status(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "campaigns" / String / "contacts")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(warp::body::content_length_limit(BULK_BODY_BYTES).and(warp::body::bytes()))
            .then(|id, app, auth, body| {
                timed_v1("/v1/campaigns/{id}/contacts", "POST", campaigns::add_contacts(app, auth, id, body))
            })
            .boxed(),
        warp::path!("v1" / "campaigns" / String / "contacts" / "import")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .and(warp::multipart::form().max_length(IMPORT_BODY_BYTES))
            .then(|id, app, auth, query, form| {
                timed_v1(
                    "/v1/campaigns/{id}/contacts/import",
                    "POST",
                    campaigns::import_contacts(app, auth, id, query, form),
                )
            })
            .boxed(),
        warp::path!("v1" / "campaigns" / String / String)
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and_then(|id, action: String, app: Arc<App>, auth: Option<String>| async move {
                let (action, limit): (&'static str, _) = match action.as_str() {
                    "launch" => ("launch", Some(ratelimit::CAMPAIGN_LAUNCH)),
                    "pause" => ("pause", None),
                    "resume" => ("resume", None),
                    "stop" => ("stop", Some(ratelimit::CAMPAIGN_STOP)),
                    _ => return Err(warp::reject::not_found()),
                };
                let handler = campaigns::act(app.clone(), auth.clone(), id, action);
                let response = match limit {
                    Some(limit) => timed_v1("/v1/campaigns/{id}/{action}", "POST", limited(app, auth, limit, handler)),
                    None => timed_v1("/v1/campaigns/{id}/{action}", "POST", handler),
                };
                Ok(response.await)
            })
            .boxed(),
    ]);

    let carrier_routes = any_of(vec![
        warp::path!("providers" / "twilio" / String / String)
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(warp::query::raw().map(Some).or(warp::any().map(|| None)).unify())
            .and(warp::header::optional::<String>(crate::carriers::twilio::SIGNATURE_HEADER))
            .and(body())
            .and_then(|carrier_id, kind: String, app, query, signature, body| async move {
                if !matches!(kind.as_str(), "status" | "recording") {
                    return Err(warp::reject::not_found());
                }
                Ok(timed(
                    "/providers/twilio/{carrier}/{kind}",
                    "POST",
                    carrier::twilio_callback(app, carrier_id, kind, query, signature, body),
                )
                .await)
            })
            .boxed(),
        warp::path!("providers" / "exotel" / String / String / "status")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(warp::header::optional::<String>("content-type"))
            .and(body())
            .then(|carrier_id, token, app, content_type, body| {
                timed(
                    "/providers/exotel/{carrier}/{token}/status",
                    "POST",
                    carrier::exotel_callback(app, carrier_id, token, content_type, body),
                )
            })
            .boxed(),
        warp::path!("webhook" / "livekit")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| timed("/webhook/livekit", "POST", carrier::livekit_webhook(app, auth, body)))
            .boxed(),
        warp::path!("v1" / "carriers")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| timed_v1("/v1/carriers", "POST", carriers::create_account(app, auth, body)))
            .boxed(),
        warp::path!("v1" / "carriers")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed_v1("/v1/carriers", "GET", carriers::list_accounts(app, auth, query)))
            .boxed(),
        warp::path!("v1" / "carriers" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/carriers/{id}", "GET", carriers::get_account(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "carriers" / String)
            .and(warp::patch().or(warp::put()).unify())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| {
                timed_v1("/v1/carriers/{id}", "PATCH", carriers::update_account(app, auth, id, body))
            })
            .boxed(),
        warp::path!("v1" / "carriers" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/carriers/{id}", "DELETE", carriers::delete_account(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "phone-numbers")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| timed_v1("/v1/phone-numbers", "POST", carriers::create_number(app, auth, body)))
            .boxed(),
        warp::path!("v1" / "phone-numbers")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(raw_query())
            .then(|app, auth, query| timed_v1("/v1/phone-numbers", "GET", carriers::list_numbers(app, auth, query)))
            .boxed(),
        warp::path!("v1" / "phone-numbers" / "map_agent")
            .and(warp::put())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|app, auth, body| {
                timed_v1("/v1/phone-numbers/map_agent", "PUT", carriers::map_agent(app, auth, body))
            })
            .boxed(),
        warp::path!("v1" / "phone-numbers" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/phone-numbers/{id}", "GET", carriers::get_number(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "phone-numbers" / String)
            .and(warp::patch())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| {
                timed_v1("/v1/phone-numbers/{id}", "PATCH", carriers::update_number(app, auth, id, body))
            })
            .boxed(),
        warp::path!("v1" / "phone-numbers" / String)
            .and(warp::delete())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/phone-numbers/{id}", "DELETE", carriers::delete_number(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "calls" / String)
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/calls/{id}", "GET", calls::get(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "calls" / String / "events")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/calls/{id}/events", "GET", calls::events(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "calls" / String / "hangup")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .then(|id, app, auth| timed_v1("/v1/calls/{id}/hangup", "POST", calls::hangup(app, auth, id)))
            .boxed(),
        warp::path!("v1" / "calls" / String / "transfer")
            .and(warp::post())
            .and(with_app(app.clone()))
            .and(authorization())
            .and(body())
            .then(|id, app, auth, body| {
                timed_v1("/v1/calls/{id}/transfer", "POST", calls::transfer(app, auth, id, body))
            })
            .boxed(),
    ]);

    let ops = warp::path!("health")
        .and(warp::get())
        .then(|| timed("/health", "GET", ops::health()))
        .or(warp::path!("liveness").and(warp::get()).then(|| timed("/liveness", "GET", ops::liveness())))
        .unify()
        .or(warp::path!("readiness")
            .and(warp::get())
            .and(with_app(app.clone()))
            .then(|app| timed("/readiness", "GET", ops::readiness(app))))
        .unify()
        .or(warp::path!("version").and(warp::get()).then(|| timed("/version", "GET", ops::version())))
        .unify()
        .or(warp::path!("metrics")
            .and(warp::get())
            .and(with_app(app))
            .then(|app| timed("/metrics", "GET", ops::metrics(app))))
        .unify()
        .boxed();

    api.or(agents_routes)
        .unify()
        .or(carrier)
        .unify()
        .or(v1)
        .unify()
        .or(contacts_routes)
        .unify()
        .or(campaign_routes)
        .unify()
        .or(carrier_routes)
        .unify()
        .or(ops)
        .unify()
        .recover(rejection)
        .unify()
        .boxed()
}

/// Answers requests no route took, in FastAPI's shape.
async fn rejection(rejection: Rejection) -> Result<Response, Infallible> {
    let (status, detail) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "Not Found")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (StatusCode::LENGTH_REQUIRED, "Length Required")
    } else if rejection.find::<warp::reject::InvalidHeader>().is_some() {
        (StatusCode::BAD_REQUEST, "Invalid header")
    } else {
        tracing::debug!(rejection = ?rejection, "unhandled rejection");
        (StatusCode::BAD_REQUEST, "Bad Request")
    };
    telemetry::http_request("unmatched", "ANY", status.as_u16(), 0.0);
    Ok(json_response(status, &json!({ "detail": detail })))
}
