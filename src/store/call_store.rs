//! [`SeaCallStore`]: the actors' `CallStore` port on sea-orm. A commit writes the call's new state,
//! its lifecycle events to the call event log, and the `callback_url` deliveries they cause to the
//! outbox, all in one transaction; only then is the delivery worker woken.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CallState, Lifecycle};
use dialplane_actors::ports::{CallStore, Recording, StoreError, Transcript};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, IntoActiveModel, Set};
use tokio::sync::Notify;

use super::calls;
use super::entities::{call_event, outbox, recording, transcript};
use crate::call_view;
use crate::ids;
use crate::signing::RecordingUrlSigner;
use crate::telemetry;

/// The `CallStore` port on a sea-orm connection.
pub struct SeaCallStore {
    db: DatabaseConnection,
    /// Signs the recording URLs put in callback bodies.
    signer: RecordingUrlSigner,
    /// Wakes the delivery worker when new outbox rows are committed.
    outbox_ready: Arc<Notify>,
}

impl SeaCallStore {
    /// Builds the store.
    pub fn new(db: DatabaseConnection, signer: RecordingUrlSigner, outbox_ready: Arc<Notify>) -> Self {
        SeaCallStore { db, signer, outbox_ready }
    }
}

fn store_error(e: sea_orm::DbErr) -> StoreError {
    StoreError(e.to_string())
}

/// Returns the log name of a lifecycle event.
pub fn lifecycle_kind(lifecycle: &Lifecycle) -> &'static str {
    match lifecycle {
        Lifecycle::Ringing => "call.ringing",
        Lifecycle::Answered => "call.answered",
        Lifecycle::Ended { .. } => "call.ended",
        Lifecycle::RecordingReady => "recording.ready",
        Lifecycle::TranscriptReady => "transcript.ready",
        Lifecycle::TranscriptFailed { .. } => "transcript.failed",
        Lifecycle::TranscriptDisabled => "transcript.disabled",
    }
}

#[async_trait]
impl CallStore for SeaCallStore {
    async fn commit(&self, record: &CallRecord, state: &CallState, published: &[Lifecycle]) -> Result<(), StoreError> {
        let now = Utc::now();
        let txn = super::begin_write(&self.db).await.map_err(store_error)?;
        let mut row = calls::find(&txn, &record.id)
            .await
            .map_err(store_error)?
            .filter(|row| row.workspace_id == record.workspace_id)
            .ok_or_else(|| StoreError(format!("call {} is not stored", record.id)))?;
        calls::apply_state(&mut row, state, now);
        row.clone().into_active_model().reset_all().update(&txn).await.map_err(store_error)?;

        let mut queued = 0;
        let transcript = if published.contains(&Lifecycle::TranscriptReady) {
            calls::find_transcript(&txn, &record.id).await.map_err(store_error)?
        } else {
            None
        };
        for lifecycle in published {
            call_event::ActiveModel {
                call_id: Set(record.id.clone()),
                workspace_id: Set(record.workspace_id.clone()),
                source: Set("engine".to_string()),
                kind: Set(lifecycle_kind(lifecycle).to_string()),
                payload: Set(serde_json::to_string(lifecycle).expect("lifecycle serializes")),
                created_at: Set(now),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map_err(store_error)?;
            let Some(url) = &row.callback_url else { continue };
            let Some(body) = call_view::callback_body(lifecycle, &row, transcript.as_ref(), &self.signer, now) else {
                continue;
            };
            outbox::ActiveModel {
                message_id: Set(ids::new_id("msg")),
                workspace_id: Set(record.workspace_id.clone()),
                call_id: Set(Some(record.id.clone())),
                event_type: Set(body["event"].as_str().unwrap_or_default().to_string()),
                target_url: Set(url.clone()),
                body: Set(body.to_string()),
                status: Set("pending".to_string()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                last_status_code: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                delivered_at: Set(None),
                ..Default::default()
            }
            .insert(&txn)
            .await
            .map_err(store_error)?;
            queued += 1;
        }
        txn.commit().await.map_err(store_error)?;

        for lifecycle in published {
            if let Lifecycle::Ended { outcome, .. } = lifecycle {
                telemetry::call_ended(record.call_type.as_api_str(), outcome.as_str());
            }
        }
        if queued > 0 {
            self.outbox_ready.notify_one();
        }
        Ok(())
    }

    async fn load_state(&self, call_id: &str) -> Result<Option<(CallRecord, CallState)>, StoreError> {
        match calls::find(&self.db, call_id).await.map_err(store_error)? {
            Some(row) => Ok(Some(calls::record_of(&row).map_err(store_error)?)),
            None => Ok(None),
        }
    }

    async fn save_recording(&self, call: &CallRecord, rec: &Recording) -> Result<(), StoreError> {
        let row = recording::ActiveModel {
            call_id: Set(call.id.clone()),
            workspace_id: Set(call.workspace_id.clone()),
            content_type: Set(rec.content_type.clone()),
            bytes: Set(rec.bytes.clone()),
            created_at: Set(Utc::now()),
        };
        recording::Entity::insert(row)
            .on_conflict(
                OnConflict::column(recording::Column::CallId)
                    .update_columns([recording::Column::ContentType, recording::Column::Bytes])
                    .to_owned(),
            )
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn load_recording(&self, call_id: &str) -> Result<Option<Recording>, StoreError> {
        let row = recording::Entity::find_by_id(call_id.to_string()).one(&self.db).await.map_err(store_error)?;
        Ok(row.map(|row| Recording { content_type: row.content_type, bytes: row.bytes }))
    }

    async fn save_transcript(&self, call: &CallRecord, t: &Transcript) -> Result<(), StoreError> {
        let now = Utc::now();
        let row = transcript::ActiveModel {
            call_id: Set(call.id.clone()),
            transcript_id: Set(ids::new_id("trn")),
            workspace_id: Set(call.workspace_id.clone()),
            language: Set(t.language.clone()),
            summary: Set(t.summary.clone()),
            call_outcome: Set(t.call_outcome.clone()),
            history: Set(serde_json::to_string(&t.history).expect("turns serialize")),
            created_at: Set(now),
            updated_at: Set(now),
        };
        transcript::Entity::insert(row)
            .on_conflict(
                OnConflict::column(transcript::Column::CallId)
                    .update_columns([
                        transcript::Column::Language,
                        transcript::Column::Summary,
                        transcript::Column::CallOutcome,
                        transcript::Column::History,
                        transcript::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
