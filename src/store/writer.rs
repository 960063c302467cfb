//! The group-commit writer: one task owns the hot writes (call creation, call transitions with their
//! events and outbox rows, carrier-callback log rows, webhook delivery attempts). It takes every write that queued up while the
//! previous batch ran, applies each inside its own savepoint of one transaction, commits once, and
//! only then answers each caller. A 200 still means the write is on disk; a failing write rolls back
//! its savepoint alone.

use std::sync::Arc;

use chrono::Utc;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CallState, Lifecycle};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel, Set, TransactionTrait,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::warn;

use super::calls::{self, Creation, IdempotentRequest};
use super::entities::{call, call_event, idempotency_key, outbox};
use crate::call_view;
use crate::ids;
use crate::signing::RecordingUrlSigner;
use crate::telemetry;
use crate::webhooks::SubscriptionDirectory;
use crate::webhooks::events;
use crate::webhooks::store::{self as webhook_store, WakeSender};

/// Most writes one transaction takes.
const MAX_BATCH: usize = 256;

/// A write the writer performs.
pub enum WriteOp {
    /// A new call, with its Idempotency-Key.
    InsertCall { row: call::Model, idempotency: Option<IdempotentRequest> },
    /// A call transition: the new state, its lifecycle events, their outbox rows.
    Commit { record: CallRecord, state: CallState, published: Vec<Lifecycle> },
    /// A row of the call event log (a carrier callback, before it is applied).
    LogEvent { event: call_event::Model },
    /// A webhook delivery attempt: its log row and its message's new state.
    RecordAttempt(Box<webhook_store::AttemptRecord>),
}

/// What a write came to.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    Created(Creation),
}

struct Job {
    op: WriteOp,
    reply: oneshot::Sender<Result<WriteOutcome, DbErr>>,
}

/// A handle to the writer task.
#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// What the writer needs besides the connection.
pub struct WriterContext {
    pub db: DatabaseConnection,
    /// Signs the recording URLs put in callback bodies.
    pub signer: RecordingUrlSigner,
    /// Woken after a commit that added `callback_url` rows to the outbox.
    pub outbox_ready: Arc<Notify>,
    /// Who subscribed to which events: every lifecycle event is fanned out to them.
    pub subscriptions: Arc<SubscriptionDirectory>,
    /// Told which subscriptions got messages once a commit added them.
    pub wake_subscriptions: WakeSender,
}

impl Writer {
    /// Starts the writer task.
    pub fn start(context: WriterContext) -> Writer {
        let (jobs, queue) = mpsc::channel(8192);
        tokio::spawn(run(context, queue));
        Writer { jobs }
    }

    /// Performs a write; returns once it is committed.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, DbErr> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { op, reply }).await.map_err(|_| DbErr::Custom("the writer has stopped".to_string()))?;
        answer.await.map_err(|_| DbErr::Custom("the writer dropped a write".to_string()))?
    }
}

async fn run(context: WriterContext, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write_batch(&context, std::mem::take(&mut batch)).await;
    }
}

/// Per-write effects to run once the batch is committed.
#[derive(Default)]
struct AfterCommit {
    outbox_rows: usize,
    /// Subscriptions that got messages.
    woken: Vec<String>,
    ended: Vec<(&'static str, &'static str)>,
}

async fn write_batch(context: &WriterContext, jobs: Vec<Job>) {
    let txn = match super::begin_write(&context.db).await {
        Ok(txn) => txn,
        Err(e) => {
            for job in jobs {
                let _ = job.reply.send(Err(clone_err(&e)));
            }
            return;
        }
    };
    let mut results = Vec::with_capacity(jobs.len());
    let mut after = AfterCommit::default();
    for job in jobs {
        let mut effects = AfterCommit::default();
        let result = match txn.begin().await {
            Ok(savepoint) => match apply(context, &savepoint, &job.op, &mut effects).await {
                Ok(outcome) => savepoint.commit().await.map(|_| outcome),
                Err(e) => {
                    let _ = savepoint.rollback().await;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        if result.is_ok() {
            after.outbox_rows += effects.outbox_rows;
            after.ended.extend(effects.ended);
            after.woken.extend(effects.woken);
        }
        results.push((job.reply, result));
    }
    match txn.commit().await {
        Ok(()) => {
            for (call_type, outcome) in after.ended {
                telemetry::call_ended(call_type, outcome);
            }
            if after.outbox_rows > 0 {
                context.outbox_ready.notify_one();
            }
            if !after.woken.is_empty() {
                let mut woken = after.woken;
                woken.sort_unstable();
                woken.dedup();
                let _ = context.wake_subscriptions.send(woken);
            }
            for (reply, result) in results {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            warn!(error = %e, "a batch of writes could not be committed");
            for (reply, _) in results {
                let _ = reply.send(Err(clone_err(&e)));
            }
        }
    }
}

/// Copies a batch-wide error for each write of the batch, keeping whether the database was unreachable.
fn clone_err(e: &DbErr) -> DbErr {
    match e {
        DbErr::ConnectionAcquire(inner) => DbErr::ConnectionAcquire(*inner),
        other if crate::error::is_unavailable(other) => DbErr::Conn(sea_orm::RuntimeErr::Internal(other.to_string())),
        other => DbErr::Custom(other.to_string()),
    }
}

async fn apply(
    context: &WriterContext,
    conn: &impl ConnectionTrait,
    op: &WriteOp,
    after: &mut AfterCommit,
) -> Result<WriteOutcome, DbErr> {
    match op {
        WriteOp::InsertCall { row, idempotency } => {
            insert_call(context, conn, row, idempotency.as_ref(), after).await.map(WriteOutcome::Created)
        }
        WriteOp::LogEvent { event } => {
            let mut row = event.clone().into_active_model().reset_all();
            row.id = sea_orm::ActiveValue::NotSet; // the database numbers the log
            row.insert(conn).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Commit { record, state, published } => {
            commit_transition(context, conn, record, state, published, after).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::RecordAttempt(record) => {
            webhook_store::record_attempt(conn, record).await?;
            Ok(WriteOutcome::Done)
        }
    }
}

async fn insert_call(
    context: &WriterContext,
    conn: &impl ConnectionTrait,
    row: &call::Model,
    idempotency: Option<&IdempotentRequest>,
    after: &mut AfterCommit,
) -> Result<Creation, DbErr> {
    if let Some(request) = idempotency {
        let id = (row.workspace_id.clone(), request.key.clone());
        if let Some(existing) = idempotency_key::Entity::find_by_id(id).one(conn).await? {
            return Ok(calls::replay_or_reuse(existing, &request.request_hash));
        }
    }
    // `call.queued` is the call's first event.
    let row = call::Model { event_seq: 1, ..row.clone() };
    calls::insert(conn, row.clone()).await?;
    let event = webhook_store::Event {
        workspace_id: &row.workspace_id,
        event_type: "call.queued",
        call_id: Some(&row.id),
        at: row.created_at,
        except: None,
    };
    after.woken.extend(
        webhook_store::fan_out(conn, &context.subscriptions, event, || events::call_data(&row, 1, None)).await?,
    );
    if let Some(request) = idempotency {
        idempotency_key::ActiveModel {
            workspace_id: Set(row.workspace_id.clone()),
            key: Set(request.key.clone()),
            request_hash: Set(request.request_hash.clone()),
            call_id: Set(row.id.clone()),
            response_status: Set(request.response_status),
            response_body: Set(request.response_body.clone()),
            created_at: Set(row.created_at),
        }
        .insert(conn)
        .await?;
    }
    Ok(Creation::Created)
}

async fn commit_transition(
    context: &WriterContext,
    conn: &impl ConnectionTrait,
    record: &CallRecord,
    state: &CallState,
    published: &[Lifecycle],
    after: &mut AfterCommit,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let mut row = calls::find(conn, &record.id)
        .await?
        .filter(|row| row.workspace_id == record.workspace_id)
        .ok_or_else(|| DbErr::RecordNotFound(format!("call {} is not stored", record.id)))?;
    calls::apply_state(&mut row, state, now);
    let first_sequence = row.event_seq + 1;
    row.event_seq += i32::try_from(published.len()).unwrap_or(i32::MAX);
    row.clone().into_active_model().reset_all().update(conn).await?;
    let transcript = if published.contains(&Lifecycle::TranscriptReady) {
        calls::find_transcript(conn, &record.id).await?
    } else {
        None
    };
    for (sequence, lifecycle) in (first_sequence..).zip(published) {
        let kind = super::call_store::lifecycle_kind(lifecycle);
        let event = webhook_store::Event {
            workspace_id: &record.workspace_id,
            event_type: kind,
            call_id: Some(&record.id),
            at: now,
            except: None,
        };
        let data = || {
            let extra = match lifecycle {
                Lifecycle::TranscriptReady => {
                    transcript.as_ref().map(|t| ("transcript", call_view::transcript_object(t)))
                }
                Lifecycle::RecordingReady => {
                    Some(("recording", call_view::recording_field(&row, &context.signer, now)))
                }
                Lifecycle::Transferred { to } => Some(("transferred_to", serde_json::Value::String(to.clone()))),
                _ => None,
            };
            events::call_data(&row, sequence, extra)
        };
        after.woken.extend(webhook_store::fan_out(conn, &context.subscriptions, event, data).await?);
        call_event::ActiveModel {
            call_id: Set(record.id.clone()),
            workspace_id: Set(record.workspace_id.clone()),
            source: Set("engine".to_string()),
            kind: Set(kind.to_string()),
            payload: Set(serde_json::to_string(lifecycle).expect("lifecycle serializes")),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        if let Lifecycle::Ended { outcome, .. } = lifecycle {
            after.ended.push((record.call_type.as_api_str(), outcome.as_str()));
        }
        let Some(url) = &row.callback_url else { continue };
        let Some(body) = call_view::callback_body(lifecycle, &row, transcript.as_ref(), &context.signer, now) else {
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
            subscription_id: Set(None),
            event_id: Set(None),
            ..Default::default()
        }
        .insert(conn)
        .await?;
        after.outbox_rows += 1;
    }
    Ok(())
}
