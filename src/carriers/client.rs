//! What the carrier adapters share: one HTTP client setup, `Retry-After` handling for carriers
//! that rate-limit their APIs (a refused request was not acted on, so it is safe to send again),
//! and the small helpers for numbers, hosts and callback parameters.

use std::time::Duration;

use dialplane_actors::ports::{CarrierError, Recording};
use dialplane_actors::{CallRecord, CallType};
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{Map, Value};
use tracing::warn;

/// How many times a rate-limited request is sent before giving up.
const RATE_LIMITED_ATTEMPTS: u32 = 6;
/// The longest single wait a carrier's `Retry-After` may impose.
const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest a request waits out rate limits in all.
const LONGEST_TOTAL_WAIT: Duration = Duration::from_secs(90);

/// Returns the HTTP client carrier adapters use: 15 s per request, no redirects, and unless
/// `allow_private`, only public addresses (a workspace names its carrier's API base URL, which
/// must not reach into the internal network).
pub fn http_client(allow_private: bool) -> anyhow::Result<reqwest::Client> {
    let mut builder =
        crate::outbound::client_builder().timeout(Duration::from_secs(15)).redirect(reqwest::redirect::Policy::none());
    if !allow_private {
        builder = builder.dns_resolver(std::sync::Arc::new(crate::netguard::PublicOnlyResolver));
    }
    Ok(builder.build()?)
}

/// Reads `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3); 1 s when absent.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Duration {
    let Some(raw) = headers.get(reqwest::header::RETRY_AFTER).and_then(|v| v.to_str().ok()) else {
        return Duration::from_secs(1);
    };
    let raw = raw.trim();
    let longest = LONGEST_RETRY_AFTER.as_secs_f64();
    let wait = if let Ok(seconds) = raw.parse::<f64>() {
        // Clamped first: `inf`, `NaN` or `1e20` must not reach the conversion.
        Duration::from_secs_f64(if seconds.is_finite() { seconds.clamp(0.0, longest) } else { longest })
    } else if let Ok(at) = chrono::DateTime::parse_from_rfc2822(raw) {
        (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default()
    } else {
        Duration::from_secs(1)
    };
    wait.min(LONGEST_RETRY_AFTER)
}

/// Sends a request, waiting out `429 Too Many Requests` as the carrier asks.
pub async fn send(provider: &str, build: impl Fn() -> RequestBuilder) -> Result<Response, CarrierError> {
    let mut waited = Duration::ZERO;
    for attempt in 1..=RATE_LIMITED_ATTEMPTS {
        let response =
            build().send().await.map_err(|e| CarrierError::Unavailable(format!("{provider}: {}", e.without_url())))?;
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return Ok(response);
        }
        let wait = retry_after(response.headers());
        if waited + wait > LONGEST_TOTAL_WAIT {
            break;
        }
        warn!(provider, attempt, wait_ms = wait.as_millis() as u64, "carrier rate-limited the request; waiting");
        tokio::time::sleep(wait).await;
        waited += wait;
    }
    Err(CarrierError::Unavailable(format!("{provider} kept answering 429 Too Many Requests")))
}

/// Passes a successful answer through; turns any other into the carrier's error, read from its
/// body by `error_of(status, body)`.
pub async fn success_or(response: Response, error_of: fn(u16, &str) -> CarrierError) -> Result<Response, CarrierError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    Err(error_of(status.as_u16(), &body))
}

/// Returns the caller ID of a click-to-call placed through `provider` (a Twilio or Exotel
/// account): only click-to-calls with a `did` can go out that way.
pub fn click_to_call_caller_id<'a>(call: &'a CallRecord, provider: &str) -> Result<&'a str, CarrierError> {
    if call.call_type != CallType::ClickToCall {
        return Err(CarrierError::Refused {
            reason: "unsupported_call_type",
            detail: "AI-agent calls go out through a LiveKit carrier account".to_string(),
        });
    }
    call.did.as_deref().ok_or_else(|| CarrierError::Refused {
        reason: "missing_caller_id",
        detail: format!("{provider} calls need a did"),
    })
}

/// Reads a recording download: its bytes, and its type (`default_type` when not given).
pub async fn recording_of(response: Response, default_type: &str) -> Result<Recording, CarrierError> {
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or(default_type)
        .to_string();
    let bytes = response.bytes().await.map_err(|e| CarrierError::Unavailable(e.without_url().to_string()))?;
    Ok(Recording { content_type, bytes: bytes.to_vec() })
}

/// Returns a number in E.164 form (`+` and digits) from the digits Dialplane keeps.
pub fn e164(number: &str) -> String {
    if number.starts_with('+') { number.to_string() } else { format!("+{number}") }
}

/// Returns true when `url` is on the same scheme, host and port as `base`: credentials are only
/// ever sent back to the carrier's own API.
pub fn same_origin(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(a), Ok(b)) => a.origin() == b.origin(),
        _ => false,
    }
}

/// Puts `pairs` on a request as an `application/x-www-form-urlencoded` body.
pub fn with_form<K: AsRef<str>, V: AsRef<str>>(request: RequestBuilder, pairs: &[(K, V)]) -> RequestBuilder {
    let mut body = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        body.append_pair(key.as_ref(), value.as_ref());
    }
    request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body.finish())
}

/// Parses a form-urlencoded body into its pairs, repeated keys kept.
pub fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

/// Returns the first value of `name`.
pub fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Returns true for parameter names that may carry a secret.
fn is_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["token", "secret", "password", "authorization", "api_key", "apikey"].iter().any(|s| lower.contains(s))
        && lower != "i-twilio-idempotency-token"
}

/// Returns callback parameters as a JSON object for the call's event log, secrets removed; a
/// repeated key becomes an array.
pub fn loggable(pairs: &[(String, String)]) -> Value {
    let mut object = Map::new();
    for (key, value) in pairs.iter().filter(|(k, _)| !is_secret(k)) {
        match object.get_mut(key) {
            None => {
                object.insert(key.clone(), Value::String(value.clone()));
            }
            Some(Value::Array(values)) => values.push(Value::String(value.clone())),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(value.clone())]);
            }
        }
    }
    Value::Object(object)
}

/// Removes secret-looking keys from a JSON callback body, at any depth.
pub fn loggable_json(mut value: Value) -> Value {
    fn scrub(value: &mut Value) {
        match value {
            Value::Object(map) => {
                map.retain(|k, _| !is_secret(k));
                map.values_mut().for_each(scrub);
            }
            Value::Array(items) => items.iter_mut().for_each(scrub),
            _ => {}
        }
    }
    scrub(&mut value);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&headers), Duration::from_secs(1));
        headers.insert(reqwest::header::RETRY_AFTER, "30".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::from_secs(30));
        headers.insert(reqwest::header::RETRY_AFTER, "3600".parse().unwrap());
        assert_eq!(retry_after(&headers), LONGEST_RETRY_AFTER);
        for absurd in ["inf", "NaN", "1e20", "-5"] {
            headers.insert(reqwest::header::RETRY_AFTER, absurd.parse().unwrap());
            assert!(retry_after(&headers) <= LONGEST_RETRY_AFTER, "{absurd}");
        }
        headers.insert(reqwest::header::RETRY_AFTER, "Fri, 31 Dec 1999 23:59:59 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Duration::ZERO, "a date in the past means now");
    }

    #[test]
    fn logged_parameters_keep_repeats_and_drop_secrets() {
        let pairs = vec![
            ("CallStatus".to_string(), "ringing".to_string()),
            ("Digits".to_string(), "1".to_string()),
            ("Digits".to_string(), "2".to_string()),
            ("AuthToken".to_string(), "s3cret".to_string()),
        ];
        let logged = loggable(&pairs);
        assert_eq!(logged["CallStatus"], "ringing");
        assert_eq!(logged["Digits"], serde_json::json!(["1", "2"]));
        assert!(logged.get("AuthToken").is_none());
        let scrubbed = loggable_json(serde_json::json!({"a": {"api_token": "x", "b": 1}}));
        assert_eq!(scrubbed, serde_json::json!({"a": {"b": 1}}));
    }

    #[test]
    fn credentials_only_go_to_the_carrier_origin() {
        assert!(same_origin("https://api.twilio.com/2010-04-01/x", "https://api.twilio.com"));
        assert!(!same_origin("https://evil.example/x", "https://api.twilio.com"));
        assert!(!same_origin("http://api.twilio.com/x", "https://api.twilio.com"));
    }
}
