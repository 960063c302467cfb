//! Per-call `callback_url` delivery (seed 000): a worker drains the callback rows of the outbox,
//! signing each message with the workspace's secret per Standard Webhooks (`webhook-id` stable
//! across retries, a fresh `webhook-timestamp` per attempt) and retrying failures by the same
//! rules as webhook subscriptions. Messages of one call are delivered in order: a later event
//! waits while an earlier one is still pending.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use dialplane_actors::webhook::fsm::{self, DeliveryPolicy, EndpointHealth, MessageFate};
use futures::StreamExt;
use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

use crate::store::entities::outbox as outbox_row;
use crate::store::outbox::{self, AttemptResult};
use crate::store::users;
use crate::store::writer::{WriteOp, Writer};
use crate::telemetry;
use crate::webhooks::sender::SignedPost;

/// How many attempts a round of deliveries has in flight at most. A round ends when its last
/// attempt has been answered (or timed out) and its result committed. At 32, under a load of 900
/// whole calls a second, rounds delivered 500 callbacks a second while 1,650 were queued, and
/// the queue grew until the load stopped; at 256 it stays near 200 (BENCHMARKS.md).
const DELIVERIES_IN_FLIGHT: usize = 256;

/// The longest a shutdown waits for the callbacks due when it began.
const SHUTDOWN_DELIVERY_GRACE: Duration = Duration::from_secs(5);

/// Delivers outbox messages.
pub struct DeliveryWorker {
    db: DatabaseConnection,
    /// Records attempts, group-committed with the other hot writes.
    writer: Writer,
    post: Arc<SignedPost>,
    /// Woken when a commit adds outbox rows.
    outbox_ready: Arc<Notify>,
    policy: DeliveryPolicy,
    /// Signing secrets by workspace id.
    secrets: Mutex<HashMap<String, String>>,
}

impl DeliveryWorker {
    /// Builds the worker.
    pub fn new(
        db: DatabaseConnection,
        writer: Writer,
        outbox_ready: Arc<Notify>,
        policy: DeliveryPolicy,
        post: Arc<SignedPost>,
    ) -> Self {
        DeliveryWorker { db, writer, post, outbox_ready, policy, secrets: Mutex::new(HashMap::new()) }
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
                return self.deliver_what_is_due().await;
            }
            if delivered_any {
                continue;
            }
            tokio::select! {
                _ = self.outbox_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = shutdown.changed() => return self.deliver_what_is_due().await,
            }
        }
    }

    /// At shutdown: attempts the messages due now, round after round (a call's next message is due
    /// once the one before it is delivered), until a round finds none, for at most
    /// [`SHUTDOWN_DELIVERY_GRACE`]. The calls drained before the shutdown announce their ends
    /// as they finish, and their callbacks went out with them, not at the next start. A message
    /// that fails is retried later, by the next start, so the rounds end.
    async fn deliver_what_is_due(&self) {
        let rounds = async {
            while let Ok(n) = self.deliver_due().await
                && n > 0
            {}
        };
        if tokio::time::timeout(SHUTDOWN_DELIVERY_GRACE, rounds).await.is_err() {
            warn!("callbacks still due at shutdown are left for the next start");
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
        futures::stream::iter(due).for_each_concurrent(DELIVERIES_IN_FLIGHT, |row| self.attempt(row)).await;
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
        let (report, fate) = match self.secret(&row.workspace_id).await {
            Some(secret) => {
                let report = self.post.post(&row.target_url, &row.message_id, &row.body, &[&secret]).await;
                let failures = u32::try_from(attempts).unwrap_or(u32::MAX);
                let jitter = fsm::jitter(&row.message_id, failures);
                // A callback URL is per call: its endpoint's health is not tracked.
                let decision =
                    fsm::decide(&self.policy, &EndpointHealth::default(), failures, &report.result, Utc::now(), jitter);
                (report, decision.fate)
            }
            None => {
                warn!(message.id = %row.message_id, "workspace signing secret unavailable; retrying later");
                return;
            }
        };
        let error = report.error.clone().unwrap_or_default();
        let status_code = report.status_code;
        let result = match fate {
            MessageFate::Delivered => AttemptResult::Delivered { status_code: status_code.unwrap_or(200) },
            MessageFate::RetryAt(next_attempt_at) => AttemptResult::Retry { status_code, error, next_attempt_at },
            MessageFate::Exhausted | MessageFate::Abandoned => AttemptResult::Failed { status_code, error },
        };
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
        if let Err(e) = self.writer.write(WriteOp::CallbackAttempt { id: row.id, attempts, result }).await {
            warn!(message.id = %row.message_id, error = %e, "delivery result could not be recorded; it will be attempted again");
        }
    }
}
