//! Callback delivery: a worker drains the outbox, signing each message per Standard Webhooks
//! (`webhook-id` stable across retries, a fresh `webhook-timestamp` per attempt) and retrying
//! failures on the Svix schedule. Messages of one call are delivered in order: a later event waits
//! while an earlier one is still pending.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use rand::Rng;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::netguard::{self, PublicOnlyResolver};
use crate::signing::standard_webhook_signature;
use crate::store::entities::outbox as outbox_row;
use crate::store::outbox::{self, AttemptResult};
use crate::store::users;
use crate::telemetry;

/// Delay before each retry, after 1, 2, … failed attempts (Svix's schedule); 8 attempts in all.
const RETRY_SCHEDULE_S: [u64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// Returns how long to wait after `failed_attempts` failures, or `None` when attempts ran out.
pub fn retry_delay(failed_attempts: u32, scale: f64) -> Option<Duration> {
    let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
    RETRY_SCHEDULE_S.get(index).map(|s| Duration::from_secs_f64(*s as f64 * scale))
}

/// Parses a `Retry-After` header given in seconds.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(|s| Duration::from_secs(s.min(24 * 3600)))
}

/// Delivers outbox messages.
pub struct DeliveryWorker {
    db: DatabaseConnection,
    http: reqwest::Client,
    /// Woken when a commit adds outbox rows.
    outbox_ready: Arc<Notify>,
    /// Multiplier of [`RETRY_SCHEDULE_S`].
    backoff_scale: f64,
    allow_private: bool,
    /// Signing secrets by workspace id.
    secrets: Mutex<HashMap<String, String>>,
}

impl DeliveryWorker {
    /// Builds the worker.
    pub fn new(
        db: DatabaseConnection,
        outbox_ready: Arc<Notify>,
        backoff_scale: f64,
        allow_private: bool,
    ) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Dialplane-Webhooks/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        Ok(DeliveryWorker {
            db,
            http: builder.build()?,
            outbox_ready,
            backoff_scale,
            allow_private,
            secrets: Mutex::new(HashMap::new()),
        })
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        info!("callback delivery started");
        loop {
            let delivered_any = match self.deliver_due().await {
                Ok(n) => n > 0,
                Err(e) => {
                    warn!(error = %e, "outbox could not be read");
                    false
                }
            };
            if *shutdown.borrow() {
                return;
            }
            if delivered_any {
                continue;
            }
            tokio::select! {
                _ = self.outbox_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Attempts every due message that is first in line for its call. Returns how many.
    async fn deliver_due(&self) -> Result<usize, sea_orm::DbErr> {
        let now = Utc::now();
        let mut in_line = HashSet::new();
        let mut due = Vec::new();
        for row in outbox::pending(&self.db, 1000).await? {
            let line = row.call_id.clone().unwrap_or_else(|| row.message_id.clone());
            if in_line.insert(line) && row.next_attempt_at <= now {
                due.push(row);
            }
        }
        let count = due.len();
        futures::stream::iter(due).for_each_concurrent(32, |row| self.attempt(row)).await;
        Ok(count)
    }

    async fn secret(&self, workspace_id: &str) -> Option<String> {
        if let Some(secret) = self.secrets.lock().expect("secrets lock").get(workspace_id) {
            return Some(secret.clone());
        }
        let workspace = users::find_workspace(&self.db, workspace_id).await.ok()??;
        self.secrets.lock().expect("secrets lock").insert(workspace_id.to_string(), workspace.signing_secret.clone());
        Some(workspace.signing_secret)
    }

    async fn attempt(&self, row: outbox_row::Model) {
        let attempts = row.attempts + 1;
        let result = self.send(&row, attempts).await;
        let label = match &result {
            AttemptResult::Delivered { .. } => "delivered",
            AttemptResult::Retry { .. } => "retrying",
            AttemptResult::Failed { .. } => "failed",
        };
        telemetry::callback_delivery(label);
        match &result {
            AttemptResult::Delivered { status_code } => {
                debug!(message.id = %row.message_id, event = %row.event_type, status = status_code, "callback delivered")
            }
            AttemptResult::Retry { error, .. } | AttemptResult::Failed { error, .. } => {
                warn!(message.id = %row.message_id, event = %row.event_type, attempts, error = %error, result = label, "callback not delivered")
            }
        }
        if let Err(e) = outbox::record_attempt(&self.db, row.id, attempts, &result).await {
            warn!(message.id = %row.message_id, error = %e, "delivery result could not be recorded; it will be attempted again");
        }
    }

    async fn send(&self, row: &outbox_row::Model, attempts: i32) -> AttemptResult {
        let failed_attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
        let retry_or_fail = |status_code: Option<u16>, error: String, at_least: Option<Duration>| match retry_delay(
            failed_attempts,
            self.backoff_scale,
        ) {
            Some(delay) => {
                let jitter = rand::rng().random_range(0.9..1.1);
                let delay = delay.mul_f64(jitter).max(at_least.unwrap_or_default());
                let next_attempt_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                AttemptResult::Retry { status_code, error, next_attempt_at }
            }
            None => AttemptResult::Failed { status_code, error },
        };
        if let Err(refusal) = netguard::check_callback_url(&row.target_url, self.allow_private) {
            return AttemptResult::Failed { status_code: None, error: refusal.to_string() };
        }
        let Some(secret) = self.secret(&row.workspace_id).await else {
            return retry_or_fail(None, "workspace signing secret unavailable".to_string(), None);
        };
        let timestamp = Utc::now().timestamp();
        let signature = match standard_webhook_signature(&secret, &row.message_id, timestamp, row.body.as_bytes()) {
            Ok(signature) => signature,
            Err(e) => return AttemptResult::Failed { status_code: None, error: e.to_string() },
        };
        let response = self
            .http
            .post(&row.target_url)
            .header("content-type", "application/json")
            .header("webhook-id", &row.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(row.body.clone())
            .send()
            .await;
        match response {
            Ok(response) => {
                let status = response.status();
                if status.is_success() {
                    return AttemptResult::Delivered { status_code: status.as_u16() };
                }
                let aborted = response.headers().get("webhook-delivery").is_some_and(|v| v == "abort-message");
                if status.as_u16() == 410 || aborted {
                    return AttemptResult::Failed {
                        status_code: Some(status.as_u16()),
                        error: format!("receiver answered {status}; not retried"),
                    };
                }
                retry_or_fail(
                    Some(status.as_u16()),
                    format!("receiver answered {status}"),
                    retry_after(response.headers()),
                )
            }
            Err(e) => {
                let error = if e.is_timeout() { "timed out".to_string() } else { e.without_url().to_string() };
                retry_or_fail(None, error, None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_svix_schedule_then_stop() {
        assert_eq!(retry_delay(0, 1.0), None);
        assert_eq!(retry_delay(1, 1.0), Some(Duration::from_secs(5)));
        assert_eq!(retry_delay(2, 1.0), Some(Duration::from_secs(300)));
        assert_eq!(retry_delay(7, 1.0), Some(Duration::from_secs(36000)));
        assert_eq!(retry_delay(8, 1.0), None, "eight attempts in all");
        assert_eq!(retry_delay(1, 0.001), Some(Duration::from_millis(5)));
    }
}
