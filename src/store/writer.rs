//! The group-commit writer: it owns the hot writes (call creation, call transitions with their
//! events and outbox rows, carrier-callback log rows, recordings and transcripts, webhook and
//! `callback_url` delivery attempts). It takes every write that queued up while the previous
//! batch ran, applies them in one transaction, commits once, and only then answers each caller.
//! A 200 still means the write is on disk. What many writes do alike goes in one statement
//! ([`super::bulk`]), from rows each caller turned into JSON before queueing its write, so the
//! writer only joins them. When a write of the batch fails, the batch is run again with each write in
//! its own savepoint, so only the failing write fails.
//!
//! On SQLite one task does it all: it is then the only writer on the hot path, and a second one
//! would make each wait for the other's lock in SQLite's busy handler, which sleeps 1 to 100 ms a
//! turn. On PostgreSQL a batch spends most of its time waiting on round trips, so
//! [`POSTGRES_WRITERS`] tasks write side by side, each owning the writes of its share of the rows
//! ([`WriteOp::row_key`]): the writes of one call, one sandbox call or one webhook subscription
//! always go to the same task, so they stay in the order they were made.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::{CallState, Lifecycle};
use dialplane_actors::webhook::fsm::MessageFate;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, Set, TransactionTrait,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::warn;

use super::bulk;
use super::calls::{self, Creation, IdempotentRequest};
use super::entities::{call, call_event, idempotency_key, outbox, recording, sandbox_call, transcript};
use super::outbox::AttemptResult;
use crate::call_view;
use crate::ids;
use crate::signing::RecordingUrlSigner;
use crate::telemetry;
use crate::webhooks::SubscriptionDirectory;
use crate::webhooks::events;
use crate::webhooks::store::{self as webhook_store, WakeSender};

/// The event a new call announces to the subscriptions.
const QUEUED_EVENT: &str = "call.queued";

/// Most writes one transaction takes.
const MAX_BATCH: usize = 256;

/// How many writer tasks write side by side on PostgreSQL (one on SQLite).
pub const POSTGRES_WRITERS: usize = 2;

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
    /// The sandbox carrier accepted a call (its own durable log).
    SandboxCall(Box<sandbox_call::Model>),
    /// The sandbox carrier's progress through a call's timeline.
    SandboxProgress { sid: String, acked_sequence: i32, finished: bool },
    /// A call's recording, fetched from its carrier.
    SaveRecording(Box<recording::Model>),
    /// A call's transcript and analysis.
    SaveTranscript(Box<transcript::Model>),
    /// A `callback_url` delivery attempt: its outbox row's new state.
    CallbackAttempt { id: i32, attempts: i32, result: AttemptResult },
}

/// The row (or group of rows) a write belongs to: writes with the same key go to the same writer
/// task, in the order they were made.
#[derive(Debug, PartialEq, Eq, Hash)]
pub enum RowKey<'a> {
    /// A call: its row, event log, recording, transcript and the outbox rows its transitions add.
    Call(&'a str),
    /// A sandbox carrier call's own row.
    SandboxCall(&'a str),
    /// A webhook message's outbox row and its attempt log, by subscription.
    Subscription(&'a str),
    /// A `callback_url` message's outbox row.
    Callback(i32),
}

impl WriteOp {
    /// Which rows the write belongs to, for [`Writer`] to keep their writes in order.
    pub fn row_key(&self) -> RowKey<'_> {
        match self {
            WriteOp::InsertCall { row, .. } => RowKey::Call(&row.id),
            WriteOp::Commit { record, .. } => RowKey::Call(&record.id),
            WriteOp::LogEvent { event } => RowKey::Call(&event.call_id),
            WriteOp::SaveRecording(row) => RowKey::Call(&row.call_id),
            WriteOp::SaveTranscript(row) => RowKey::Call(&row.call_id),
            WriteOp::SandboxCall(row) => RowKey::SandboxCall(&row.sid),
            WriteOp::SandboxProgress { sid, .. } => RowKey::SandboxCall(sid),
            WriteOp::RecordAttempt(record) => RowKey::Subscription(&record.log.subscription_id),
            WriteOp::CallbackAttempt { id, .. } => RowKey::Callback(*id),
        }
    }
}

/// Which of `writers` tasks takes the writes of `key`.
fn writer_of(key: &RowKey<'_>, writers: usize) -> usize {
    use std::hash::{Hash, Hasher};
    if writers <= 1 {
        return 0;
    }
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % writers as u64) as usize
}

/// What a write came to.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    Done,
    Created(Creation),
}

struct Job {
    op: WriteOp,
    /// The write's row in a bulk write, when it can go in one, built by the caller.
    fragment: Option<bulk::Fragment>,
    /// The write's row in the batch's [`bulk::advance`], for a transition that announces events.
    advance: Option<bulk::Advance>,
    reply: oneshot::Sender<Result<WriteOutcome, DbErr>>,
}

impl Job {
    fn new(backend: DbBackend, op: WriteOp, reply: oneshot::Sender<Result<WriteOutcome, DbErr>>) -> Job {
        Job { fragment: bulk_fragment(backend, &op), advance: bulk_advance(backend, &op), op, reply }
    }
}

/// How far a transition moves its call's event sequence: one per event it announces.
fn event_count(published: &[Lifecycle]) -> i32 {
    i32::try_from(published.len()).unwrap_or(i32::MAX)
}

/// The row of a transition that announces events, for the batch's [`bulk::advance`].
fn bulk_advance(backend: DbBackend, op: &WriteOp) -> Option<bulk::Advance> {
    let WriteOp::Commit { record, state, published } = op else { return None };
    if published.is_empty() {
        return None;
    }
    bulk::advance_update(backend, record, state, Utc::now(), event_count(published))
        .inspect_err(|e| warn!(error = %e, "a transition is not advanced in bulk"))
        .ok()
}

/// The row `op` adds or changes in a bulk write, if it is a write that can go in one. A write
/// that would not (a value a bulk write does not handle) is written on its own.
fn bulk_fragment(backend: DbBackend, op: &WriteOp) -> Option<bulk::Fragment> {
    let fragment = match op {
        WriteOp::InsertCall { row, idempotency: None } => bulk::new_call(backend, row),
        WriteOp::LogEvent { event } => bulk::log_row(backend, event),
        WriteOp::SandboxCall(row) => bulk::sandbox_row(backend, row),
        WriteOp::Commit { record, state, published } if published.is_empty() => {
            bulk::state_update(backend, record, state, Utc::now())
        }
        WriteOp::SandboxProgress { sid, acked_sequence, finished } => {
            bulk::progress_update(backend, sid, *acked_sequence, *finished)
        }
        WriteOp::CallbackAttempt { id, attempts, result: AttemptResult::Delivered { status_code } } => {
            bulk::delivered_update(backend, *id, *attempts, *status_code, Utc::now())
        }
        WriteOp::RecordAttempt(record) if record.fate == MessageFate::Delivered => {
            bulk::webhook_delivered(backend, &record.log, record.row_id, record.at)
        }
        _ => return None,
    };
    fragment.inspect_err(|e| warn!(error = %e, "a write is not put in a bulk write")).ok()
}

/// A handle to the writer tasks.
#[derive(Clone)]
pub struct Writer {
    /// One queue per task.
    queues: Arc<[mpsc::Sender<Job>]>,
    backend: DbBackend,
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
    /// Starts the writer tasks: [`POSTGRES_WRITERS`] on PostgreSQL, one on SQLite.
    pub fn start(context: WriterContext) -> Writer {
        let backend = context.db.get_database_backend();
        let writers = match backend {
            DbBackend::Postgres => POSTGRES_WRITERS,
            _ => 1,
        };
        let context = Arc::new(context);
        let queues = (0..writers)
            .map(|_| {
                let (jobs, queue) = mpsc::channel(8192);
                tokio::spawn(run(context.clone(), queue));
                jobs
            })
            .collect();
        Writer { queues, backend }
    }

    /// How many tasks write side by side.
    pub fn writers(&self) -> usize {
        self.queues.len()
    }

    /// Performs a write; returns once it is committed.
    pub async fn write(&self, op: WriteOp) -> Result<WriteOutcome, DbErr> {
        let (reply, answer) = oneshot::channel();
        let queue = &self.queues[writer_of(&op.row_key(), self.queues.len())];
        // Built here, on the caller's task: the writer's batches are a chain nothing overlaps.
        let job = Job::new(self.backend, op, reply);
        queue.send(job).await.map_err(|_| DbErr::Custom("the writer has stopped".to_string()))?;
        answer.await.map_err(|_| DbErr::Custom("the writer dropped a write".to_string()))?
    }
}

async fn run(context: Arc<WriterContext>, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // A fresh batch of full capacity: growing one from empty cost a realloc per doubling.
        let jobs = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        write_batch(&context, jobs).await;
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
    // Most batches succeed whole: one transaction, no savepoints (two statements fewer per
    // write). Only when a write fails is the batch run again write by write, each in its own
    // savepoint, so the failure stays its own.
    let (started, writes) = (Instant::now(), jobs.len());
    match write_together(context, &jobs).await {
        Ok((outcomes, after, went)) => {
            telemetry::write_batch(writes, started.elapsed().as_secs_f64(), went);
            settle(context, after);
            for (job, outcome) in jobs.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        // A lone write's own error, as it came (callers look at unique violations), unless it
        // was written in bulk: its bulk statement fails where it alone may not (a delivered
        // webhook message that is no longer pending).
        Err(e) if jobs.len() == 1 && jobs[0].fragment.is_none() && jobs[0].advance.is_none() => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
        Err(_) => {
            write_each(context, jobs).await;
            telemetry::write_batch(writes, started.elapsed().as_secs_f64(), "each");
        }
    }
}

/// What a batch's writes came to, what is left to do once they are committed, and how they went
/// (`one_statement` or `together`, for the metrics).
type Together = (Vec<WriteOutcome>, AfterCommit, &'static str);

/// Applies every write of a batch in one transaction (or one statement, which is one); any
/// failure rolls all of them back.
async fn write_together(context: &WriterContext, jobs: &[Job]) -> Result<Together, DbErr> {
    if let Some(rows) = bulk_write_alone(context.db.get_database_backend(), &context.subscriptions, jobs) {
        bulk::write_rows(&context.db, rows).await?;
        let outcome = |job: &Job| match job.op {
            WriteOp::InsertCall { .. } => WriteOutcome::Created(Creation::Created),
            _ => WriteOutcome::Done,
        };
        return Ok((jobs.iter().map(outcome).collect(), AfterCommit::default(), "one_statement"));
    }
    let txn = super::begin_write(&context.db).await?;
    let mut after = AfterCommit::default();
    let applied = async {
        let bulked = write_in_bulk(&txn, jobs).await?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut announced = Announced::default();
        for (job, bulked) in jobs.iter().zip(bulked) {
            outcomes.push(apply(context, &txn, &job.op, &mut after, bulked, Some(&mut announced)).await?);
        }
        announced.write(&txn).await?;
        Ok::<_, DbErr>(outcomes)
    }
    .await;
    match applied {
        Ok(outcomes) => {
            txn.commit().await?;
            Ok((outcomes, after, "together"))
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

/// What [`write_in_bulk`] did of a write.
enum Bulked {
    /// Nothing: [`apply`] does all of it.
    No,
    /// Its part of the bulk write: [`apply`] does the rest.
    Done,
    /// Its transition is written, and this is its call's row as updated: [`apply`] announces it.
    Advanced(Box<call::Model>),
}

/// Writes with one statement ([`bulk::write_rows`]) what many writes of a batch do alike: the
/// rows of new calls (those without an Idempotency-Key), of the event log and of the sandbox's
/// log, the state of transitions that publish nothing, and the sandbox's progress, each from the
/// fragment its caller built; then, with one more ([`bulk::advance`]), the transitions that
/// announce events. Returns, per write, what of it is done; [`apply`] does the rest.
async fn write_in_bulk(conn: &impl ConnectionTrait, jobs: &[Job]) -> Result<Vec<Bulked>, DbErr> {
    let mut bulked: Vec<Bulked> = jobs.iter().map(|_| Bulked::No).collect();
    let mut rows = bulk::BulkRows::default();
    let mut advances = Vec::new();
    for ((job, bulked), alone) in jobs.iter().zip(bulked.iter_mut()).zip(alone_in_batch(jobs)) {
        if let Some(fragment) = &job.fragment
            && alone
        {
            rows.push(fragment);
            *bulked = Bulked::Done;
        } else if let Some(advance) = &job.advance
            && alone
        {
            advances.push(advance);
        }
    }
    bulk::write_rows(conn, rows).await?;
    // Each advanced call is alone in the batch, so its row is the only write to it.
    let mut advanced: HashMap<String, call::Model> =
        bulk::advance(conn, &advances).await?.into_iter().map(|row| (row.id.clone(), row)).collect();
    for (job, bulked) in jobs.iter().zip(bulked.iter_mut()) {
        if let (Some(_), WriteOp::Commit { record, .. }) = (&job.advance, &job.op)
            && let Some(row) = advanced.remove(&record.id)
        {
            *bulked = Bulked::Advanced(Box::new(row));
        }
    }
    Ok(bulked)
}

/// Per write of the batch, whether it may go in a bulk statement: not an update of a call (or a
/// sandbox call) the batch writes more than once. Those go one by one, in order: two
/// transitions, or a transition of a row the same batch adds (on PostgreSQL, the bulk statement's
/// updates do not see its own inserts).
fn alone_in_batch(jobs: &[Job]) -> Vec<bool> {
    let mut writes_per_call: HashMap<&str, usize> = HashMap::new();
    let mut writes_per_sandbox_call: HashMap<&str, usize> = HashMap::new();
    for job in jobs {
        let (writes, id) = match &job.op {
            WriteOp::Commit { record, .. } => (&mut writes_per_call, record.id.as_str()),
            WriteOp::InsertCall { row, .. } => (&mut writes_per_call, row.id.as_str()),
            WriteOp::SandboxProgress { sid, .. } => (&mut writes_per_sandbox_call, sid.as_str()),
            WriteOp::SandboxCall(row) => (&mut writes_per_sandbox_call, row.sid.as_str()),
            _ => continue,
        };
        *writes.entry(id).or_default() += 1;
    }
    jobs.iter()
        .map(|job| match &job.op {
            WriteOp::Commit { record, .. } => writes_per_call.get(record.id.as_str()) == Some(&1),
            WriteOp::SandboxProgress { sid, .. } => writes_per_sandbox_call.get(sid.as_str()) == Some(&1),
            _ => true,
        })
        .collect()
}

/// The batch's bulk rows, when its bulk write is all of it: every write goes in the bulk
/// statement and leaves [`apply`] nothing to do (no Idempotency-Key to store, no event to
/// announce, no subscription told of a new call). Only on PostgreSQL, where one statement is a
/// transaction of its own: such a batch is then one round trip, not three (`BEGIN`, the write,
/// `COMMIT`), and creation at saturation gained about 8 % (BENCHMARKS.md, 12:55 run; the batches
/// mostly wait for a core, not for the round trips). On SQLite the bulk write is several
/// statements, and only a transaction makes them one.
fn bulk_write_alone(backend: DbBackend, subscriptions: &SubscriptionDirectory, jobs: &[Job]) -> Option<bulk::BulkRows> {
    if backend != DbBackend::Postgres {
        return None;
    }
    let mut rows = bulk::BulkRows::default();
    for (job, alone) in jobs.iter().zip(alone_in_batch(jobs)) {
        let fragment = job.fragment.as_ref().filter(|_| alone)?;
        if let WriteOp::InsertCall { row, .. } = &job.op
            && !subscriptions.subscribers(&row.workspace_id, QUEUED_EVENT).is_empty()
        {
            return None;
        }
        rows.push(fragment);
    }
    Some(rows)
}

/// An event log row to insert one by one: the database numbers the log.
fn log_row(event: &call_event::Model) -> call_event::ActiveModel {
    let mut row = event.clone().into_active_model().reset_all();
    row.id = sea_orm::ActiveValue::NotSet;
    row
}

/// Runs what a committed batch leaves to do: metrics, the delivery worker, subscriptions.
fn settle(context: &WriterContext, after: AfterCommit) {
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
}

/// Applies each write of a batch in its own savepoint of one transaction: a failing write rolls
/// back alone.
async fn write_each(context: &WriterContext, jobs: Vec<Job>) {
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
            Ok(savepoint) => match apply(context, &savepoint, &job.op, &mut effects, Bulked::No, None).await {
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
            settle(context, after);
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

/// The event-log and outbox rows a batch's announced transitions add, written in bulk once every
/// write of the batch is applied: two statements fewer per transition.
#[derive(Default)]
struct Announced {
    log_rows: Vec<call_event::Model>,
    outbox_rows: Vec<outbox::Model>,
}

impl Announced {
    async fn write(&self, conn: &impl ConnectionTrait) -> Result<(), DbErr> {
        let bulk = bulk::BulkWrite {
            log_rows: self.log_rows.iter().collect(),
            outbox_rows: self.outbox_rows.iter().collect(),
            ..Default::default()
        };
        bulk::write(conn, &bulk, Utc::now()).await
    }
}

/// Applies one write, skipping what [`write_in_bulk`] did of it (`bulked`). With `announced`, a
/// transition's event-log and outbox rows are left there for the batch to write; without it they
/// are written in bulk at the end of the write.
async fn apply(
    context: &WriterContext,
    conn: &impl ConnectionTrait,
    op: &WriteOp,
    after: &mut AfterCommit,
    bulked: Bulked,
    announced: Option<&mut Announced>,
) -> Result<WriteOutcome, DbErr> {
    let in_bulk = matches!(bulked, Bulked::Done);
    match op {
        WriteOp::InsertCall { row, idempotency } => {
            insert_call(context, conn, row, idempotency.as_ref(), after, in_bulk).await.map(WriteOutcome::Created)
        }
        WriteOp::LogEvent { .. }
        | WriteOp::SandboxCall(_)
        | WriteOp::Commit { .. }
        | WriteOp::SandboxProgress { .. }
        | WriteOp::CallbackAttempt { .. }
        | WriteOp::RecordAttempt(_)
            if in_bulk =>
        {
            Ok(WriteOutcome::Done)
        }
        WriteOp::LogEvent { event } => {
            log_row(event).insert(conn).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Commit { record, state, published } if published.is_empty() => {
            // Nothing to announce: the row's state columns are all that change.
            calls::update_state(conn, record, state, Utc::now()).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::Commit { record, state, published } => {
            let row = match bulked {
                Bulked::Advanced(row) => *row,
                _ => calls::advance_state(conn, record, state, Utc::now(), event_count(published)).await?,
            };
            announce_transition(context, conn, record, published, &row, after, announced).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::RecordAttempt(record) => {
            webhook_store::record_attempt(conn, record).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::SandboxCall(row) => {
            row.as_ref().clone().into_active_model().reset_all().insert(conn).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::SaveRecording(row) => {
            calls::save_recording(conn, row).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::SaveTranscript(row) => {
            calls::save_transcript(conn, row).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::CallbackAttempt { id, attempts, result } => {
            super::outbox::record_attempt(conn, *id, *attempts, result, Utc::now()).await?;
            Ok(WriteOutcome::Done)
        }
        WriteOp::SandboxProgress { sid, acked_sequence, finished } => {
            sandbox_call::Entity::update_many()
                .filter(sandbox_call::Column::Sid.eq(sid.as_str()))
                .col_expr(sandbox_call::Column::AckedSequence, Expr::value(*acked_sequence))
                .col_expr(sandbox_call::Column::Finished, Expr::value(*finished))
                .exec(conn)
                .await?;
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
    row_written: bool,
) -> Result<Creation, DbErr> {
    if let Some(request) = idempotency {
        let id = (row.workspace_id.clone(), request.key.clone());
        if let Some(existing) = idempotency_key::Entity::find_by_id(id).one(conn).await? {
            return Ok(calls::replay_or_reuse(existing, &request.request_hash));
        }
    }
    if !row_written {
        calls::insert(conn, row.clone()).await?;
    }
    let event = webhook_store::Event {
        workspace_id: &row.workspace_id,
        event_type: QUEUED_EVENT,
        call_id: Some(&row.id),
        at: row.created_at,
        except: None,
    };
    // The row may be stored already dialing (its first transition written with it); the event
    // tells of the call's acceptance, as the API's answer does: `queued`.
    let queued = || events::call_data(row, 1, Some(("status", serde_json::json!("queued"))));
    after.woken.extend(webhook_store::fan_out(conn, &context.subscriptions, event, queued).await?);
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

/// Announces what a transition published: its event-log rows, its subscriptions' messages and
/// its `callback_url` messages, from `row`, its call as the transition left it.
async fn announce_transition(
    context: &WriterContext,
    conn: &impl ConnectionTrait,
    record: &CallRecord,
    published: &[Lifecycle],
    row: &call::Model,
    after: &mut AfterCommit,
    announced: Option<&mut Announced>,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let events = event_count(published);
    // Without the batch's rows to join, this transition's are written as its last step.
    let mut own = Announced::default();
    let written_here = announced.is_none();
    let announced = announced.unwrap_or(&mut own);
    let first_sequence = row.event_seq - events + 1;
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
                Lifecycle::RecordingReady => Some(("recording", call_view::recording_field(row, &context.signer, now))),
                Lifecycle::Transferred { to } => Some(("transferred_to", serde_json::Value::String(to.clone()))),
                _ => None,
            };
            events::call_data(row, sequence, extra)
        };
        after.woken.extend(webhook_store::fan_out(conn, &context.subscriptions, event, data).await?);
        let event_row = call_event::Model {
            id: 0,
            call_id: record.id.clone(),
            workspace_id: record.workspace_id.clone(),
            source: "engine".to_string(),
            kind: kind.to_string(),
            payload: serde_json::to_string(lifecycle).expect("lifecycle serializes"),
            created_at: now,
        };
        announced.log_rows.push(event_row);
        if let Lifecycle::Ended { outcome, .. } = lifecycle {
            after.ended.push((record.call_type.as_api_str(), outcome.as_str()));
        }
        let Some(url) = &row.callback_url else { continue };
        let Some(body) = call_view::callback_body(lifecycle, row, transcript.as_ref(), &context.signer, now) else {
            continue;
        };
        let message = outbox::Model {
            id: 0,
            message_id: ids::new_id("msg"),
            workspace_id: record.workspace_id.clone(),
            call_id: Some(record.id.clone()),
            event_type: body["event"].as_str().unwrap_or_default().to_string(),
            target_url: url.clone(),
            body: body.to_string(),
            status: "pending".to_string(),
            attempts: 0,
            next_attempt_at: now,
            last_status_code: None,
            last_error: None,
            created_at: now,
            delivered_at: None,
            subscription_id: None,
            event_id: None,
        };
        announced.outbox_rows.push(message);
        after.outbox_rows += 1;
    }
    if written_here {
        own.write(conn).await?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::entities::call_event;
    use sea_orm::{EntityTrait, PaginatorTrait, QueryOrder};

    fn log_write(call_id: &str) -> WriteOp {
        WriteOp::LogEvent {
            event: call_event::Model {
                id: 0,
                call_id: call_id.to_string(),
                workspace_id: "ws_1".to_string(),
                source: "test".to_string(),
                kind: "test".to_string(),
                payload: "{}".to_string(),
                created_at: Utc::now(),
            },
        }
    }

    /// Every write of one call, and of one sandbox call, goes to the same writer task; the
    /// calls themselves spread over every task.
    #[test]
    fn the_writes_of_one_row_go_to_one_writer() {
        let mut used = std::collections::HashSet::new();
        for n in 0..64 {
            let id = format!("call_{n}");
            let state = CallState::new(dialplane_actors::CallType::ClickToCall, false, Utc::now());
            let (log, commit) = (log_write(&id), WriteOp::Commit { record: record(&id), state, published: Vec::new() });
            assert_eq!(log.row_key(), RowKey::Call(&id));
            assert_eq!(commit.row_key(), RowKey::Call(&id));
            let writer = writer_of(&log.row_key(), POSTGRES_WRITERS);
            assert_eq!(writer_of(&commit.row_key(), POSTGRES_WRITERS), writer);
            used.insert(writer);
            let progress = WriteOp::SandboxProgress { sid: format!("SB{n}"), acked_sequence: 1, finished: false };
            assert_eq!(progress.row_key(), RowKey::SandboxCall(&format!("SB{n}")));
            assert_eq!(writer_of(&log.row_key(), 1), 0);
        }
        assert_eq!(used.len(), POSTGRES_WRITERS, "the calls spread over every writer");
    }

    /// SQLite gets one writer task (a second would wait on the first's lock), PostgreSQL
    /// [`POSTGRES_WRITERS`] (checked when `TEST_DATABASE_URL` names one, as in CI).
    #[tokio::test]
    async fn postgres_gets_writers_side_by_side_and_sqlite_one() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, context) = writer_on_sqlite(&dir).await;
        assert_eq!(Writer::start(context).writers(), 1);
        let Some(url) = std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) else { return };
        let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
        assert_eq!(Writer::start(context_on(db)).writers(), POSTGRES_WRITERS);
    }

    fn job(op: WriteOp) -> (Job, oneshot::Receiver<Result<WriteOutcome, DbErr>>) {
        let (reply, answer) = oneshot::channel();
        (Job::new(DbBackend::Sqlite, op, reply), answer)
    }

    /// What [`write_in_bulk`] does of `jobs`, in a transaction rolled back (so the bulk statement
    /// itself is seen to succeed, where `write_batch` would hide a failure by going write by write).
    async fn bulk_dry_run(db: &sea_orm::DatabaseConnection, jobs: &[Job]) -> Vec<Bulked> {
        let txn = crate::store::begin_write(db).await.unwrap();
        let bulked = write_in_bulk(&txn, jobs).await.expect("the bulk statements run");
        txn.rollback().await.unwrap();
        bulked
    }

    /// Stores `call_0` to `call_2`, queued, in one batch (each with the callback URL
    /// `callback_url` gives for its id); returns them and their state.
    async fn store_three_calls(
        context: &WriterContext,
        callback_url: impl Fn(&str) -> Option<String>,
    ) -> (Vec<CallRecord>, CallState) {
        let records: Vec<CallRecord> = (0..3).map(|i| record(&format!("call_{i}"))).collect();
        let queued = CallState::new(dialplane_actors::CallType::ClickToCall, false, Utc::now());
        let (jobs, answers): (Vec<_>, Vec<_>) = records
            .iter()
            .map(|r| {
                job(WriteOp::InsertCall { row: calls::new_row(r, callback_url(&r.id), &queued), idempotency: None })
            })
            .unzip();
        write_batch(context, jobs).await;
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Created(Creation::Created));
        }
        (records, queued)
    }

    type Answer = oneshot::Receiver<Result<WriteOutcome, DbErr>>;

    /// Writes `jobs` in one batch with `missing`, a write of a call that is not stored: it fails
    /// alone, and every other write succeeds.
    async fn write_beside_a_missing_call(
        context: &WriterContext,
        mut jobs: Vec<Job>,
        answers: Vec<Answer>,
        (missing, missing_answer): (Job, Answer),
    ) {
        jobs.insert(1, missing);
        write_batch(context, jobs).await;
        assert!(matches!(missing_answer.await.unwrap(), Err(DbErr::RecordNotFound(_))));
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Done);
        }
    }

    async fn writer_on_sqlite(dir: &tempfile::TempDir) -> (sea_orm::DatabaseConnection, WriterContext) {
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("w.db").display());
        let db = crate::store::connect(&url, std::time::Duration::from_secs(5)).await.unwrap();
        (db.clone(), context_on(db))
    }

    /// A writer context on `db` with no subscriptions and a test signing key.
    fn context_on(db: sea_orm::DatabaseConnection) -> WriterContext {
        let (wake, _woken) = mpsc::unbounded_channel();
        WriterContext {
            db,
            signer: RecordingUrlSigner::new(vec![1; 32], "http://localhost"),
            outbox_ready: Arc::new(Notify::new()),
            subscriptions: Arc::new(SubscriptionDirectory::default()),
            wake_subscriptions: wake,
        }
    }

    /// A click-to-call in workspace `ws_1`, placed with the sandbox.
    pub(crate) fn record(id: &str) -> CallRecord {
        CallRecord {
            id: id.to_string(),
            workspace_id: "ws_1".to_string(),
            user_id: "usr_1".to_string(),
            call_type: dialplane_actors::CallType::ClickToCall,
            customer_number: "919999999999".to_string(),
            agent_number: "918888888888".to_string(),
            did: None,
            carrier: "sandbox".to_string(),
            transcript_enabled: false,
            transcript_language: None,
            agent_config: serde_json::Value::Null,
        }
    }

    /// On PostgreSQL a batch whose every write goes in the bulk statement, and leaves nothing
    /// else to do, is that statement alone (no transaction around it). A write the bulk
    /// statement cannot take, a second write of one call, a transition that announces events,
    /// or a new call a subscription hears of, keeps the batch in a transaction; so does SQLite.
    #[tokio::test]
    async fn a_batch_all_in_bulk_is_one_statement_on_postgres_only() {
        let pg_job = |op: WriteOp| Job::new(DbBackend::Postgres, op, oneshot::channel().0);
        let state = || CallState::new(dialplane_actors::CallType::ClickToCall, false, Utc::now());
        let insert =
            |id: &str| WriteOp::InsertCall { row: calls::new_row(&record(id), None, &state()), idempotency: None };
        let quiet = |id: &str| WriteOp::Commit { record: record(id), state: state(), published: Vec::new() };
        let progress = WriteOp::SandboxProgress { sid: "SB1".into(), acked_sequence: 2, finished: false };
        let all_in_bulk = || vec![pg_job(insert("call_a")), pg_job(quiet("call_b")), pg_job(log_write("call_c"))];
        let nobody = SubscriptionDirectory::default();
        let mut batch = all_in_bulk();
        batch.push(pg_job(progress));
        let rows = bulk_write_alone(DbBackend::Postgres, &nobody, &batch).expect("one statement");
        assert_eq!(rows.len(), 4);
        assert!(bulk_write_alone(DbBackend::Sqlite, &nobody, &batch).is_none(), "SQLite needs a transaction");

        let announcing =
            WriteOp::Commit { record: record("call_d"), state: state(), published: vec![Lifecycle::Answered] };
        let failed = WriteOp::CallbackAttempt {
            id: 1,
            attempts: 1,
            result: AttemptResult::Failed { status_code: Some(500), error: "boom".into() },
        };
        let keyed = WriteOp::InsertCall {
            row: calls::new_row(&record("call_e"), None, &state()),
            idempotency: Some(IdempotentRequest {
                key: "k".into(),
                request_hash: "h".into(),
                response_status: 200,
                response_body: "{}".into(),
            }),
        };
        for (why, extra) in [
            ("a transition that announces events", announcing),
            ("a failed delivery attempt", failed),
            ("a creation with an Idempotency-Key", keyed),
            ("a second write of call_b", quiet("call_b")),
        ] {
            let mut batch = all_in_bulk();
            batch.push(pg_job(extra));
            assert!(bulk_write_alone(DbBackend::Postgres, &nobody, &batch).is_none(), "{why}");
        }

        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let queued_only = webhook_store::SubscriptionFields {
            url: "http://localhost/subscriber".to_string(),
            description: String::new(),
            event_types: vec![QUEUED_EVENT.to_string()],
            enabled: true,
        };
        webhook_store::create(&db, "ws_1", queued_only).await.unwrap();
        context.subscriptions.reload(&db).await.unwrap();
        assert!(
            bulk_write_alone(DbBackend::Postgres, &context.subscriptions, &all_in_bulk()).is_none(),
            "a subscription hears of the new call"
        );
        let without_insert = vec![pg_job(quiet("call_b")), pg_job(log_write("call_c"))];
        assert!(bulk_write_alone(DbBackend::Postgres, &context.subscriptions, &without_insert).is_some());
    }

    /// The writes that can go in a bulk write carry their row from the caller; a transition
    /// that announces events, a creation with an Idempotency-Key, and a delivery attempt that
    /// failed are written on their own.
    #[test]
    fn a_write_carries_its_bulk_row_when_it_can_go_in_one() {
        let state = || CallState::new(dialplane_actors::CallType::ClickToCall, false, Utc::now());
        let quiet = WriteOp::Commit { record: record("call_a"), state: state(), published: Vec::new() };
        let announcing =
            WriteOp::Commit { record: record("call_a"), state: state(), published: vec![Lifecycle::Answered] };
        let progress = WriteOp::SandboxProgress { sid: "SB1".into(), acked_sequence: 2, finished: true };
        let delivered =
            WriteOp::CallbackAttempt { id: 1, attempts: 1, result: AttemptResult::Delivered { status_code: 200 } };
        for op in [log_write("call_a"), quiet, progress, delivered] {
            assert!(bulk_fragment(DbBackend::Sqlite, &op).is_some());
        }
        assert!(bulk_fragment(DbBackend::Sqlite, &announcing).is_none());
        // A failed attempt (rarer) is written on its own.
        let failed = AttemptResult::Failed { status_code: Some(500), error: "boom".into() };
        assert!(
            bulk_fragment(DbBackend::Sqlite, &WriteOp::CallbackAttempt { id: 1, attempts: 1, result: failed })
                .is_none()
        );
        let row = crate::store::calls::new_row(&record("call_b"), None, &state());
        let idempotency = Some(IdempotentRequest {
            key: "k".into(),
            request_hash: "h".into(),
            response_status: 200,
            response_body: "{}".into(),
        });
        assert!(
            bulk_fragment(DbBackend::Sqlite, &WriteOp::InsertCall { row: row.clone(), idempotency: None }).is_some()
        );
        assert!(bulk_fragment(DbBackend::Sqlite, &WriteOp::InsertCall { row, idempotency }).is_none());
    }

    /// A batch with a failing write: the others are committed all the same, and only the
    /// failing one reports its error.
    #[tokio::test]
    async fn a_failing_write_fails_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let record = record("call_missing");
        let state = CallState::new(record.call_type, false, Utc::now());
        let (first, first_answer) = job(log_write("call_a"));
        let (bad, bad_answer) = job(WriteOp::Commit { record, state, published: Vec::new() });
        let (last, last_answer) = job(log_write("call_b"));
        write_batch(&context, vec![first, bad, last]).await;
        assert_eq!(first_answer.await.unwrap().unwrap(), WriteOutcome::Done);
        assert!(matches!(bad_answer.await.unwrap(), Err(DbErr::RecordNotFound(_))));
        assert_eq!(last_answer.await.unwrap().unwrap(), WriteOutcome::Done);
        assert_eq!(call_event::Entity::find().count(&db).await.unwrap(), 2, "both good writes are on disk");
    }

    /// Writes alike share one statement per kind: every new call and every state lands on its
    /// own row, and a state update for a call that is not stored fails alone.
    #[tokio::test]
    async fn writes_alike_share_a_statement_and_each_lands_on_its_own_row() {
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let (records, queued) = store_three_calls(&context, |_| None).await;

        let placed = |i: usize| {
            let mut state = queued.clone();
            state.status = dialplane_actors::fsm::CallStatus::Dialing;
            state.provider_call_id = Some(format!("SB{i}"));
            state
        };
        let mut jobs = Vec::new();
        let mut answers = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let (commit, answer) = job(WriteOp::Commit { record: r.clone(), state: placed(i), published: Vec::new() });
            jobs.push(commit);
            answers.push(answer);
        }
        // Alone, the states go in one multi-row statement that succeeds.
        let bulked = bulk_dry_run(&db, &jobs).await;
        assert!(bulked.iter().all(|b| matches!(b, Bulked::Done)));
        let missing = job(WriteOp::Commit { record: record("call_missing"), state: placed(9), published: Vec::new() });
        write_beside_a_missing_call(&context, jobs, answers, missing).await;
        for (i, r) in records.iter().enumerate() {
            let row = calls::find(&db, &r.id).await.unwrap().expect("the call is stored");
            assert_eq!(row.event_seq, 1, "call.queued is the first event");
            assert_eq!(row.status, placed(i).api_status());
            assert_eq!(row.provider_call_id, Some(format!("SB{i}")), "each row gets its own state");
            let (_, state) = calls::record_of(&row).unwrap();
            assert_eq!(state, placed(i));
        }
    }

    /// Transitions that announce events, of calls alone in their batch, are written by one
    /// `UPDATE … RETURNING`: each call gets its own state and sequence, and announces from its
    /// own row; a transition of a call that is not stored fails alone.
    #[tokio::test]
    async fn announcing_transitions_of_many_calls_are_advanced_together() {
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let (records, queued) = store_three_calls(&context, |id| Some(format!("http://localhost/hook/{id}"))).await;
        let ringing = |i: usize| {
            let mut state = queued.clone();
            state.status = dialplane_actors::fsm::CallStatus::Ringing;
            state.provider_call_id = Some(format!("SB{i}"));
            state
        };
        let commit = |i: usize, r: &CallRecord| {
            let published = vec![Lifecycle::Ringing, Lifecycle::TranscriptDisabled];
            job(WriteOp::Commit { record: r.clone(), state: ringing(i), published })
        };
        let (jobs, answers): (Vec<_>, Vec<_>) = records.iter().enumerate().map(|(i, r)| commit(i, r)).unzip();
        let bulked = bulk_dry_run(&db, &jobs).await;
        for (b, r) in bulked.iter().zip(&records) {
            let Bulked::Advanced(row) = b else { panic!("{} was not advanced in bulk", r.id) };
            assert_eq!((row.id.as_str(), row.event_seq), (r.id.as_str(), 3), "each call gets its own row back");
        }
        write_beside_a_missing_call(&context, jobs, answers, commit(9, &record("call_missing"))).await;
        for (i, r) in records.iter().enumerate() {
            let row = calls::find(&db, &r.id).await.unwrap().expect("the call is stored");
            assert_eq!(row.event_seq, 3, "call.queued, then the two announced");
            assert_eq!(calls::record_of(&row).unwrap().1, ringing(i));
            let logged: Vec<String> = calls::events_of(&db, &r.id).await.unwrap().into_iter().map(|e| e.kind).collect();
            assert_eq!(logged, ["call.ringing", "transcript.disabled"]);
            // transcript.disabled is a callback_url event: its message goes to the call's own URL,
            // about the call's own row.
            let messages =
                outbox::Entity::find().filter(outbox::Column::CallId.eq(r.id.as_str())).all(&db).await.unwrap();
            let targets: Vec<&str> = messages.iter().map(|m| m.target_url.as_str()).collect();
            assert_eq!(targets, [format!("http://localhost/hook/{}", r.id)], "announced from its own row");
            let body: serde_json::Value = serde_json::from_str(&messages[0].body).unwrap();
            assert_eq!(body["data"]["call_id"], r.id.as_str());
        }
    }

    /// The sandbox's new calls and its progress updates go in the bulk statement; a call with
    /// two updates in one batch gets them in order, and an update for a call the sandbox does not
    /// know changes nothing and fails nothing.
    #[tokio::test]
    async fn sandbox_progress_updates_share_a_statement_and_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let sandbox_row = |sid: &str| sandbox_call::Model {
            sid: sid.to_string(),
            reference: format!("call_{sid}"),
            kind: "click_to_call".to_string(),
            customer_number: "919999999999".to_string(),
            status_callback: "http://localhost/callback".to_string(),
            placed_at: Utc::now(),
            time_scale: 0.0,
            acked_sequence: 0,
            finished: false,
        };
        let progress = |sid: &str, acked_sequence, finished| WriteOp::SandboxProgress {
            sid: sid.to_string(),
            acked_sequence,
            finished,
        };
        let (jobs, answers): (Vec<_>, Vec<_>) = ["SB1", "SB2", "SB3", "SB4"]
            .into_iter()
            .map(|sid| job(WriteOp::SandboxCall(Box::new(sandbox_row(sid)))))
            .unzip();
        write_batch(&context, jobs).await;
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Done);
        }
        let ops = vec![
            progress("SB1", 2, false),
            progress("SB2", 1, false),
            progress("SB2", 3, true),
            WriteOp::SandboxCall(Box::new(sandbox_row("SB5"))),
            progress("SB5", 4, true),
            progress("SB_unknown", 1, true),
        ];
        let (mut jobs, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(job).unzip();
        // The bulk statement itself succeeds (`write_batch` would hide a failing one by running
        // the batch again write by write). Left to go one by one: the second call's two updates,
        // and the update of a call the same batch adds.
        let unknown = jobs.pop().expect("the last job");
        let bulked = bulk_dry_run(&db, &jobs).await;
        let done: Vec<bool> = bulked.iter().map(|b| matches!(b, Bulked::Done)).collect();
        assert_eq!(done, [true, false, false, true, false]);
        // An update for a call the sandbox does not know fails the bulk statement; the batch
        // then goes write by write, where that update changes nothing and fails nothing.
        jobs.push(unknown);
        write_batch(&context, jobs).await;
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Done);
        }
        let stored = |sid: &'static str| {
            let db = db.clone();
            async move {
                let row = sandbox_call::Entity::find_by_id(sid).one(&db).await.unwrap().unwrap();
                (row.acked_sequence, row.finished)
            }
        };
        assert_eq!(stored("SB1").await, (2, false));
        assert_eq!(stored("SB2").await, (3, true), "the later update of one call wins");
        assert_eq!(stored("SB3").await, (0, false), "a call without an update is left alone");
        assert_eq!(stored("SB5").await, (4, true), "an update of a call its batch adds");
    }

    /// A batch's announced transitions log their events and queue their `callback_url` messages
    /// in bulk after every other write, in the order they were announced; when the batch goes
    /// write by write (a write in it failed) they are written at once, with the same result.
    #[tokio::test]
    async fn announced_events_are_logged_and_queued_in_order_in_bulk_or_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let everything = webhook_store::SubscriptionFields {
            url: "http://localhost/subscriber".to_string(),
            description: String::new(),
            event_types: vec!["*".to_string()],
            enabled: true,
        };
        let subscription = webhook_store::create(&db, "ws_1", everything).await.unwrap();
        context.subscriptions.reload(&db).await.unwrap();
        let ended = Lifecycle::Ended { outcome: dialplane_actors::fsm::Outcome::Completed, reason: None };
        for failing_neighbour in [false, true] {
            let r = record(if failing_neighbour { "call_each" } else { "call_bulk" });
            let queued = CallState::new(r.call_type, false, Utc::now());
            let row = calls::new_row(&r, Some("http://localhost/hook".to_string()), &queued);
            let (insert, inserted) = job(WriteOp::InsertCall { row, idempotency: None });
            write_batch(&context, vec![insert]).await;
            inserted.await.unwrap().unwrap();

            let announce = |published: Vec<Lifecycle>| {
                job(WriteOp::Commit { record: r.clone(), state: queued.clone(), published })
            };
            let (first, first_answer) = announce(vec![Lifecycle::Ringing, ended.clone()]);
            let (second, second_answer) = announce(vec![Lifecycle::TranscriptDisabled]);
            let mut jobs = vec![first, second];
            let mut missing_answer = None;
            if failing_neighbour {
                let (missing, answer) = job(WriteOp::Commit {
                    record: record("call_missing"),
                    state: queued.clone(),
                    published: Vec::new(),
                });
                jobs.insert(1, missing);
                missing_answer = Some(answer);
            }
            write_batch(&context, jobs).await;
            assert_eq!(first_answer.await.unwrap().unwrap(), WriteOutcome::Done);
            assert_eq!(second_answer.await.unwrap().unwrap(), WriteOutcome::Done);
            if let Some(answer) = missing_answer {
                assert!(matches!(answer.await.unwrap(), Err(DbErr::RecordNotFound(_))));
            }

            let stored = calls::find(&db, &r.id).await.unwrap().expect("the call is stored");
            assert_eq!(stored.event_seq, 4, "call.queued and three announced events");
            let logged: Vec<String> = calls::events_of(&db, &r.id).await.unwrap().into_iter().map(|e| e.kind).collect();
            assert_eq!(logged, ["call.ringing", "call.ended", "transcript.disabled"]);
            // The subscription got every event with the call's own sequence: 1 for call.queued,
            // then one more per announced event, across transitions and batches.
            let events: Vec<(String, serde_json::Value)> = outbox::Entity::find()
                .filter(outbox::Column::CallId.eq(r.id.as_str()))
                .filter(outbox::Column::SubscriptionId.eq(subscription.id.as_str()))
                .order_by_asc(outbox::Column::Id)
                .all(&db)
                .await
                .unwrap()
                .into_iter()
                .map(|m| {
                    let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
                    (m.event_type, body["data"]["sequence"].clone())
                })
                .collect();
            let expected = ["call.queued", "call.ringing", "call.ended", "transcript.disabled"]
                .into_iter()
                .zip(1..)
                .map(|(kind, sequence)| (kind.to_string(), serde_json::json!(sequence)))
                .collect::<Vec<_>>();
            assert_eq!(events, expected);
            let queued_messages = outbox::Entity::find()
                .filter(outbox::Column::CallId.eq(r.id.as_str()))
                .filter(outbox::Column::SubscriptionId.is_null())
                .order_by_asc(outbox::Column::Id)
                .all(&db)
                .await
                .unwrap();
            let kinds: Vec<&str> = queued_messages.iter().map(|m| m.event_type.as_str()).collect();
            assert_eq!(kinds.len(), 2, "ringing has no callback: {kinds:?}");
            for message in &queued_messages {
                assert_eq!(message.status, "pending");
                assert_eq!(message.target_url, "http://localhost/hook");
                assert!(message.subscription_id.is_none());
                let body: serde_json::Value = serde_json::from_str(&message.body).unwrap();
                assert_eq!(body["data"]["call_id"], r.id.as_str(), "{body}");
            }
            assert!(queued_messages[0].id < queued_messages[1].id);
        }
    }

    /// Recordings, transcripts and `callback_url` attempts go through the writer too (on SQLite
    /// it is then the only writer): saving again replaces, and an attempt updates its message.
    #[tokio::test]
    async fn recordings_transcripts_and_callback_attempts_are_written_through_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let recording = |bytes: &[u8]| recording::Model {
            call_id: "call_1".to_string(),
            workspace_id: "ws_1".to_string(),
            content_type: "audio/wav".to_string(),
            bytes: bytes.to_vec(),
            created_at: Utc::now(),
        };
        let transcript = |id: &str, summary: &str| transcript::Model {
            call_id: "call_1".to_string(),
            transcript_id: id.to_string(),
            workspace_id: "ws_1".to_string(),
            language: "en".to_string(),
            summary: summary.to_string(),
            call_outcome: "resolved".to_string(),
            outcomes: None,
            history: "[]".to_string(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        let message = outbox::ActiveModel {
            message_id: Set("msg_1".to_string()),
            workspace_id: Set("ws_1".to_string()),
            call_id: Set(Some("call_1".to_string())),
            event_type: Set("call.ended".to_string()),
            target_url: Set("http://localhost/hook".to_string()),
            body: Set("{}".to_string()),
            status: Set("pending".to_string()),
            attempts: Set(0),
            next_attempt_at: Set(Utc::now()),
            created_at: Set(Utc::now()),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        for batch in [
            vec![
                WriteOp::SaveRecording(Box::new(recording(b"first"))),
                WriteOp::SaveTranscript(Box::new(transcript("trn_1", "first"))),
            ],
            vec![
                WriteOp::SaveRecording(Box::new(recording(b"second"))),
                WriteOp::SaveTranscript(Box::new(transcript("trn_2", "second"))),
                WriteOp::CallbackAttempt {
                    id: message.id,
                    attempts: 1,
                    result: AttemptResult::Delivered { status_code: 204 },
                },
            ],
        ] {
            let (jobs, answers): (Vec<_>, Vec<_>) = batch.into_iter().map(job).unzip();
            write_batch(&context, jobs).await;
            for answer in answers {
                assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Done);
            }
        }
        let stored = recording::Entity::find_by_id("call_1".to_string()).one(&db).await.unwrap().unwrap();
        assert_eq!(stored.bytes, b"second");
        let stored = calls::find_transcript(&db, "call_1").await.unwrap().unwrap();
        assert_eq!((stored.transcript_id.as_str(), stored.summary.as_str()), ("trn_1", "second"));
        let delivered = outbox::Entity::find_by_id(message.id).one(&db).await.unwrap().unwrap();
        assert_eq!(
            (delivered.status.as_str(), delivered.attempts, delivered.last_status_code),
            ("delivered", 1, Some(204))
        );
        assert!(delivered.delivered_at.is_some());
    }

    /// A webhook attempt that delivered its message goes in the bulk write (its log row and its
    /// message's update); one whose message is no longer pending is logged and leaves the
    /// message as it is, alone or in a batch, as the one-by-one write does.
    #[tokio::test]
    async fn delivered_webhook_attempts_go_in_bulk_and_leave_a_settled_message_alone() {
        use crate::store::entities::webhook_attempt;
        let dir = tempfile::tempdir().unwrap();
        let (db, context) = writer_on_sqlite(&dir).await;
        let message = |id: &str, status: &str| outbox::ActiveModel {
            message_id: Set(id.to_string()),
            workspace_id: Set("ws_1".to_string()),
            call_id: Set(None),
            event_type: Set("call.ended".to_string()),
            target_url: Set("http://localhost/hook".to_string()),
            body: Set("{}".to_string()),
            status: Set(status.to_string()),
            attempts: Set(0),
            next_attempt_at: Set(Utc::now()),
            created_at: Set(Utc::now()),
            subscription_id: Set(Some("whk_1".to_string())),
            ..Default::default()
        };
        let mut rows = Vec::new();
        for (id, status) in [("msg_a", "pending"), ("msg_b", "pending"), ("msg_failed", "failed")] {
            rows.push(message(id, status).insert(&db).await.unwrap());
        }
        let delivered = |row: &outbox::Model| {
            WriteOp::RecordAttempt(Box::new(webhook_store::AttemptRecord {
                log: webhook_attempt::Model {
                    id: 0,
                    subscription_id: "whk_1".to_string(),
                    workspace_id: "ws_1".to_string(),
                    message_id: row.message_id.clone(),
                    event_type: "call.ended".to_string(),
                    attempt: 1,
                    attempted_at: Utc::now(),
                    status_code: Some(200),
                    latency_ms: 3,
                    result: "delivered".to_string(),
                    error: None,
                    response_excerpt: Some("ok".to_string()),
                },
                row_id: row.id,
                fate: MessageFate::Delivered,
                at: Utc::now(),
            }))
        };
        let ops: Vec<WriteOp> = rows[..2].iter().map(delivered).collect();
        assert!(ops.iter().all(|op| bulk_fragment(DbBackend::Sqlite, op).is_some()), "delivered attempts go in bulk");
        let (jobs, answers): (Vec<_>, Vec<_>) = ops.into_iter().map(job).unzip();
        let bulked = bulk_dry_run(&db, &jobs).await;
        assert!(bulked.iter().all(|b| matches!(b, Bulked::Done)));
        write_batch(&context, jobs).await;
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Done);
        }
        // The settled message, alone, then beside a pending one.
        let (alone, alone_answer) = job(delivered(&rows[2]));
        write_batch(&context, vec![alone]).await;
        assert_eq!(alone_answer.await.unwrap().unwrap(), WriteOutcome::Done);
        let (jobs, answers): (Vec<_>, Vec<_>) = [delivered(&rows[2]), delivered(&rows[0])].into_iter().map(job).unzip();
        write_batch(&context, jobs).await;
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap(), WriteOutcome::Done);
        }
        for row in &rows {
            let stored = outbox::Entity::find_by_id(row.id).one(&db).await.unwrap().unwrap();
            let expected = if row.status == "pending" { ("delivered", 1, Some(200)) } else { ("failed", 0, None) };
            assert_eq!(
                (stored.status.as_str(), stored.attempts, stored.last_status_code),
                expected,
                "{}",
                row.message_id
            );
            assert_eq!(stored.delivered_at.is_some(), row.status == "pending");
        }
        let logged = webhook_attempt::Entity::find().count(&db).await.unwrap();
        assert_eq!(logged, 5, "every attempt is logged");
    }
}
