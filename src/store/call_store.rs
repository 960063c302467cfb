//! [`SeaCallStore`]: the actors' `CallStore` port on sea-orm. A commit writes the call's new state,
//! its lifecycle events to the call event log, and the `callback_url` deliveries they cause to the
//! outbox, all in one transaction (through the group-commit [`Writer`]); only then is the delivery
//! worker woken.

use async_trait::async_trait;
use chrono::Utc;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CallState, Lifecycle};
use dialplane_actors::ports::{CallStore, Recording, StoreError, Transcript};
use sea_orm::{DatabaseConnection, EntityTrait};

use super::calls;
use super::entities::{recording, transcript};
use super::writer::{WriteOp, Writer};
use crate::ids;

/// The `CallStore` port on a sea-orm connection.
pub struct SeaCallStore {
    db: DatabaseConnection,
    /// Commits transitions, group-committed with every other hot write.
    writer: Writer,
}

impl SeaCallStore {
    /// Builds the store.
    pub fn new(db: DatabaseConnection, writer: Writer) -> Self {
        SeaCallStore { db, writer }
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
        Lifecycle::Transferred { .. } => "call.transferred",
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
        let op = WriteOp::Commit { record: record.clone(), state: state.clone(), published: published.to_vec() };
        self.writer.write(op).await.map(|_| ()).map_err(store_error)
    }

    async fn load_state(&self, call_id: &str) -> Result<Option<(CallRecord, CallState)>, StoreError> {
        match calls::find(&self.db, call_id).await.map_err(store_error)? {
            Some(row) => Ok(Some(calls::record_of(&row).map_err(store_error)?)),
            None => Ok(None),
        }
    }

    async fn save_recording(&self, call: &CallRecord, rec: &Recording) -> Result<(), StoreError> {
        let row = recording::Model {
            call_id: call.id.clone(),
            workspace_id: call.workspace_id.clone(),
            content_type: rec.content_type.clone(),
            bytes: rec.bytes.clone(),
            created_at: Utc::now(),
        };
        self.writer.write(WriteOp::SaveRecording(Box::new(row))).await.map(|_| ()).map_err(store_error)
    }

    async fn load_recording(&self, call_id: &str) -> Result<Option<Recording>, StoreError> {
        let row = recording::Entity::find_by_id(call_id.to_string()).one(&self.db).await.map_err(store_error)?;
        Ok(row.map(|row| Recording { content_type: row.content_type, bytes: row.bytes }))
    }

    async fn save_transcript(&self, call: &CallRecord, t: &Transcript) -> Result<(), StoreError> {
        let now = Utc::now();
        let row = transcript::Model {
            call_id: call.id.clone(),
            transcript_id: ids::new_id("trn"),
            workspace_id: call.workspace_id.clone(),
            language: t.language.clone(),
            summary: t.summary.clone(),
            call_outcome: t.call_outcome.clone(),
            outcomes: (!t.outcomes.is_empty()).then(|| serde_json::Value::Object(t.outcomes.clone()).to_string()),
            history: serde_json::to_string(&t.history).expect("turns serialize"),
            created_at: now,
            updated_at: now,
        };
        self.writer.write(WriteOp::SaveTranscript(Box::new(row))).await.map(|_| ()).map_err(store_error)
    }
}
