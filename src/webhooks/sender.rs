//! One signed delivery attempt over HTTP, shared by webhook subscriptions and per-call callbacks:
//! Standard Webhooks headers (a fresh `webhook-timestamp` per attempt, one `v1,` signature per
//! secret in force), redirects not followed, a per-attempt timeout, the receiver's answer
//! classified for the retry rules, and a bounded excerpt of its response kept for the logs.
//! Every address a name resolves to is checked at connect time unless private targets are allowed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use dialplane_actors::ports::{AttemptReport, OutboundMessage, WebhookSender};
use dialplane_actors::webhook::fsm::AttemptResult;

use super::SubscriptionDirectory;
use crate::netguard::{self, PublicOnlyResolver};
use crate::signing::standard_webhook_signature;

/// Bytes of a receiver's response kept in the attempt log.
const EXCERPT_BYTES: usize = 1024;

/// Receivers' `Retry-After` is read on these statuses only.
const THROTTLING: [u16; 2] = [429, 503];

/// Makes signed delivery attempts.
pub struct SignedPost {
    http: reqwest::Client,
    allow_private: bool,
}

impl SignedPost {
    /// Builds the HTTP client: no redirects, `timeout` per attempt, public addresses only unless
    /// `allow_private`.
    pub fn new(timeout: Duration, allow_private: bool) -> anyhow::Result<Self> {
        let mut builder = crate::outbound::client_builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Dialplane-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(SignedPost { http: builder.build()?, allow_private })
    }

    /// Posts `body` to `url` as message `message_id`, signed with every secret in `secrets`.
    pub async fn post(&self, url: &str, message_id: &str, body: &str, secrets: &[&str]) -> AttemptReport {
        let started = Instant::now();
        let failed = |error: String| AttemptReport {
            result: AttemptResult::Failed { retry_after: None },
            status_code: None,
            latency: started.elapsed(),
            error: Some(error),
            response_excerpt: None,
        };
        if let Err(refusal) = netguard::check_callback_url(url, self.allow_private) {
            return AttemptReport { result: AttemptResult::Aborted, ..failed(refusal.to_string()) };
        }
        let timestamp = Utc::now().timestamp();
        let mut signatures = Vec::with_capacity(secrets.len());
        for secret in secrets {
            match standard_webhook_signature(secret, message_id, timestamp, body.as_bytes()) {
                Ok(signature) => signatures.push(signature),
                Err(e) => return failed(e.to_string()),
            }
        }
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signatures.join(" "))
            .body(body.to_string())
            .send()
            .await;
        let mut response = match response {
            Ok(response) => response,
            Err(e) => {
                let error = if e.is_timeout() { "timed out".to_string() } else { error_chain(e.without_url()) };
                return failed(error);
            }
        };
        let status = response.status();
        let retry_after = THROTTLING.contains(&status.as_u16()).then(|| retry_after(response.headers())).flatten();
        let aborted = response.headers().get("webhook-delivery").is_some_and(|v| v == "abort-message");
        let mut excerpt = Vec::new();
        while excerpt.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk[..chunk.len().min(EXCERPT_BYTES - excerpt.len())]),
                _ => break,
            }
        }
        let result = if status.is_success() {
            AttemptResult::Delivered
        } else if status.as_u16() == 410 {
            AttemptResult::Gone
        } else if aborted {
            AttemptResult::Aborted
        } else {
            AttemptResult::Failed { retry_after }
        };
        let error = match &result {
            AttemptResult::Delivered => None,
            _ if status.is_redirection() => Some(format!("receiver answered {status}; redirects are not followed")),
            _ => Some(format!("receiver answered {status}")),
        };
        AttemptReport {
            result,
            status_code: Some(status.as_u16()),
            latency: started.elapsed(),
            error,
            response_excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
        }
    }
}

/// Describes a request error with its causes (reqwest's own text is often just "error sending
/// request"), without the URL.
fn error_chain(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses a `Retry-After` header given in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The `WebhookSender` port: posts a subscription's message to its current URL, signed with its
/// secrets in force.
pub struct HttpWebhookSender {
    pub post: Arc<SignedPost>,
    pub directory: Arc<SubscriptionDirectory>,
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn send(&self, message: &OutboundMessage) -> AttemptReport {
        let Some(endpoint) = self.directory.get(&message.subscription_id) else {
            return AttemptReport {
                result: AttemptResult::Aborted,
                status_code: None,
                latency: Duration::ZERO,
                error: Some("the subscription no longer exists".to_string()),
                response_excerpt: None,
            };
        };
        let secrets = endpoint.signing_secrets(Utc::now());
        self.post.post(&endpoint.url, &message.message_id, &message.body, &secrets).await
    }
}
