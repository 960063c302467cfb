//! Queries over calls: creation, look-up, the filtered listing of `GET /api/calls/recent`, and the
//! mapping between a call row and the actors' [`CallRecord`] / [`CallState`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dialplane_actors::fsm::CallState;
use dialplane_actors::{CallRecord, CallType};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, OnConflict, Query, UpdateStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, IntoActiveModel,
    ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use super::entities::{call, call_event, idempotency_key, recording, transcript};

/// Returns the call row of a new call in `state`, as stored: its first event, `call.queued`,
/// is numbered 1.
pub fn new_row(record: &CallRecord, callback_url: Option<String>, state: &CallState) -> call::Model {
    let mut row = call::Model {
        id: record.id.clone(),
        workspace_id: record.workspace_id.clone(),
        user_id: record.user_id.clone(),
        call_type: record.call_type.as_api_str().to_string(),
        status: String::new(),
        reason: None,
        customer_number: record.customer_number.clone(),
        agent_number: record.agent_number.clone(),
        did: record.did.clone(),
        callback_url,
        carrier: record.carrier.clone(),
        provider_call_id: None,
        transcript_enabled: record.transcript_enabled,
        transcript_language: record.transcript_language.clone(),
        transcript_status: String::new(),
        recording_status: String::new(),
        duration_s: None,
        answer_duration_s: None,
        agent_config: record.agent_config.to_string(),
        state: String::new(),
        is_live: true,
        // `call.queued` is its first event, written with the row.
        event_seq: 1,
        campaign_id: None,
        created_at: state.created_at,
        updated_at: state.created_at,
        ended_at: None,
    };
    apply_state(&mut row, state, state.created_at);
    row
}

/// Copies a state machine state onto the searchable columns of its row.
pub fn apply_state(row: &mut call::Model, state: &CallState, now: DateTime<Utc>) {
    for (column, value) in STATE_COLUMNS.into_iter().zip(state_values(state, now)) {
        row.set(column, value);
    }
}

/// The `UPDATE` of a call's state columns to `state`, for the call `record` names in its workspace.
fn state_update(record: &CallRecord, state: &CallState, now: DateTime<Utc>) -> UpdateStatement {
    let mut update = Query::update();
    update.table(call::Entity);
    for (column, value) in STATE_COLUMNS.into_iter().zip(state_values(state, now)) {
        update.value(column, value);
    }
    update
        .and_where(call::Column::Id.eq(record.id.as_str()))
        .and_where(call::Column::WorkspaceId.eq(record.workspace_id.as_str()));
    update
}

fn not_stored(record: &CallRecord) -> DbErr {
    DbErr::RecordNotFound(format!("call {} is not stored", record.id))
}

/// Writes a state onto its call's row with one `UPDATE` of the state columns, without reading
/// the row first (for transitions that publish nothing). Fails when the call is not stored.
pub async fn update_state(
    conn: &impl ConnectionTrait,
    record: &CallRecord,
    state: &CallState,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if conn.execute(&state_update(record, state, now)).await?.rows_affected() == 0 {
        return Err(not_stored(record));
    }
    Ok(())
}

/// Writes a state onto its call's row, moves the row's event sequence on by `events`, and returns
/// the row as updated: one `UPDATE … RETURNING` (for transitions that announce events, which need
/// the row for their payloads) where reading the row and writing all of it back took two
/// statements. Fails when the call is not stored.
pub async fn advance_state(
    conn: &impl ConnectionTrait,
    record: &CallRecord,
    state: &CallState,
    now: DateTime<Utc>,
    events: i32,
) -> Result<call::Model, DbErr> {
    let mut update = state_update(record, state, now);
    update.value(call::Column::EventSeq, Expr::col(call::Column::EventSeq).add(events)).returning_all();
    let statement = conn.get_database_backend().build(&update);
    call::Entity::find().from_raw_sql(statement).one(conn).await?.ok_or_else(|| not_stored(record))
}

/// The state columns a transition writes onto its call's row ([`apply_state`] onto a row in
/// memory, [`update_state`] and the writer's multi-row update onto stored rows);
/// [`state_values`] gives their values.
pub const STATE_COLUMNS: [call::Column; 11] = [
    call::Column::Status,
    call::Column::Reason,
    call::Column::ProviderCallId,
    call::Column::TranscriptStatus,
    call::Column::RecordingStatus,
    call::Column::DurationS,
    call::Column::AnswerDurationS,
    call::Column::State,
    call::Column::IsLive,
    call::Column::UpdatedAt,
    call::Column::EndedAt,
];

/// The values of [`STATE_COLUMNS`] for `state`, in the same order.
pub fn state_values(state: &CallState, now: DateTime<Utc>) -> [sea_orm::Value; 11] {
    let duration = |s: Option<u32>| s.map(|s| i32::try_from(s).unwrap_or(i32::MAX));
    [
        state.api_status().to_string().into(),
        state.reason.clone().into(),
        state.provider_call_id.clone().into(),
        state.transcript.as_str().to_string().into(),
        state.recording.as_str().to_string().into(),
        duration(state.duration_s).into(),
        duration(state.answer_duration_s).into(),
        serde_json::to_string(state).expect("call state serializes").into(),
        (!state.is_finished()).into(),
        now.into(),
        state.ended_at.into(),
    ]
}

/// Returns the actors' view of a call row, with its state.
pub fn record_of(row: &call::Model) -> Result<(CallRecord, CallState), DbErr> {
    let call_type = CallType::from_api_str(&row.call_type)
        .ok_or_else(|| DbErr::Custom(format!("call {} has unknown call_type {}", row.id, row.call_type)))?;
    let state: CallState =
        serde_json::from_str(&row.state).map_err(|e| DbErr::Custom(format!("call {} state: {e}", row.id)))?;
    let record = CallRecord {
        id: row.id.clone(),
        workspace_id: row.workspace_id.clone(),
        user_id: row.user_id.clone(),
        call_type,
        customer_number: row.customer_number.clone(),
        agent_number: row.agent_number.clone(),
        did: row.did.clone(),
        carrier: row.carrier.clone(),
        transcript_enabled: row.transcript_enabled,
        transcript_language: row.transcript_language.clone(),
        agent_config: serde_json::from_str(&row.agent_config).unwrap_or_default(),
    };
    Ok((record, state))
}

/// The Idempotency-Key of a call-creating request, with the response it gets.
pub struct IdempotentRequest {
    pub key: String,
    /// SHA-256 of the request's canonical JSON.
    pub request_hash: String,
    pub response_status: i32,
    pub response_body: String,
}

/// What creating a call came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Creation {
    /// The call was stored.
    Created,
    /// The key was used before with the same request: answer what was answered then.
    Replay { call_id: String, response_status: i32, response_body: String },
    /// The key was used before with another request.
    KeyReused,
}

/// Returns the answer to a request whose Idempotency-Key is already stored.
pub fn replay_or_reuse(existing: idempotency_key::Model, request_hash: &str) -> Creation {
    if existing.request_hash == request_hash {
        Creation::Replay {
            call_id: existing.call_id,
            response_status: existing.response_status,
            response_body: existing.response_body,
        }
    } else {
        Creation::KeyReused
    }
}

/// Returns a stored Idempotency-Key.
pub async fn find_idempotency_key(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    key: &str,
) -> Result<Option<idempotency_key::Model>, DbErr> {
    idempotency_key::Entity::find_by_id((workspace_id.to_string(), key.to_string())).one(db).await
}

/// Deletes Idempotency-Keys created before `before`. Returns how many.
pub async fn forget_idempotency_keys(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(forget_idempotency_keys_query(before).exec(db).await?.rows_affected)
}

/// The statement of [`forget_idempotency_keys`], which runs every 30 s.
pub(crate) fn forget_idempotency_keys_query(before: DateTime<Utc>) -> sea_orm::DeleteMany<idempotency_key::Entity> {
    idempotency_key::Entity::delete_many().filter(idempotency_key::Column::CreatedAt.lt(before))
}

/// Returns the calls the live counters must count: dialing, ringing or in progress.
pub async fn counted_live(db: &impl ConnectionTrait) -> Result<Vec<call::Model>, DbErr> {
    counted_live_query().all(db).await
}

/// The query of [`counted_live`]. It runs at every counter rebuild (every 30 s by default), so
/// it reads `idx_calls_live`, which holds the few live calls, instead of every call ever made:
/// filtered on `status` alone it read the whole table each time. A call in one of these
/// statuses has not ended, so it is live.
pub(crate) fn counted_live_query() -> sea_orm::Select<call::Entity> {
    call::Entity::find().filter(call::Column::IsLive.eq(true)).filter(call::Column::Status.is_in([
        "dialing",
        "ringing",
        "in_progress",
    ]))
}

/// Inserts a new call row.
pub async fn insert(db: &impl ConnectionTrait, row: call::Model) -> Result<call::Model, DbErr> {
    row.into_active_model().reset_all().insert(db).await
}

/// Returns a call by id.
pub async fn find(db: &impl ConnectionTrait, id: &str) -> Result<Option<call::Model>, DbErr> {
    call::Entity::find_by_id(id.to_string()).one(db).await
}

/// Whose a call is and which carrier account placed it: all a carrier callback needs to find,
/// check and log its call, read without the rest of the row (its state, its agent config).
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct CallOwner {
    pub id: String,
    pub workspace_id: String,
    pub carrier: String,
}

/// Narrows a query of calls to the columns of [`CallOwner`].
fn owner_columns(query: sea_orm::Select<call::Entity>) -> sea_orm::Select<call::Entity> {
    query.select_only().columns([call::Column::Id, call::Column::WorkspaceId, call::Column::Carrier])
}

/// Returns the owner of a call by id.
pub async fn find_owner(db: &impl ConnectionTrait, id: &str) -> Result<Option<CallOwner>, DbErr> {
    owner_columns(call::Entity::find_by_id(id.to_string())).into_model::<CallOwner>().one(db).await
}

/// Returns the owner of the call a carrier account knows by its own id.
pub async fn find_owner_by_provider_call_id(
    db: &impl ConnectionTrait,
    carrier: &str,
    provider_call_id: &str,
) -> Result<Option<CallOwner>, DbErr> {
    owner_columns(call::Entity::find())
        .filter(call::Column::Carrier.eq(carrier))
        .filter(call::Column::ProviderCallId.eq(provider_call_id))
        .into_model::<CallOwner>()
        .one(db)
        .await
}

/// Returns a call's event log, oldest first.
pub async fn events_of(db: &impl ConnectionTrait, call_id: &str) -> Result<Vec<call_event::Model>, DbErr> {
    call_event::Entity::find()
        .filter(call_event::Column::CallId.eq(call_id))
        .order_by_asc(call_event::Column::Id)
        .all(db)
        .await
}

/// Returns a call's transcript.
pub async fn find_transcript(db: &impl ConnectionTrait, call_id: &str) -> Result<Option<transcript::Model>, DbErr> {
    transcript::Entity::find_by_id(call_id.to_string()).one(db).await
}

/// Returns the calls whose actors must run (not finished), oldest first.
pub async fn unfinished(db: &impl ConnectionTrait) -> Result<Vec<call::Model>, DbErr> {
    call::Entity::find().filter(call::Column::IsLive.eq(true)).order_by_asc(call::Column::CreatedAt).all(db).await
}

/// Returns how many calls are not finished.
pub async fn count_unfinished(db: &impl ConnectionTrait) -> Result<u64, DbErr> {
    call::Entity::find().filter(call::Column::IsLive.eq(true)).count(db).await
}

/// The filters of `GET /api/calls/recent`.
#[derive(Clone, Debug, Default)]
pub struct RecentFilter {
    pub status: Option<String>,
    pub call_type: Option<String>,
    pub transcript_status: Option<String>,
    pub customer_number: Option<String>,
    pub agent_number: Option<String>,
    pub did: Option<String>,
    pub date_from: Option<DateTime<Utc>>,
    pub date_to: Option<DateTime<Utc>>,
}

/// One page of a user's calls.
pub struct RecentPage {
    pub total: u64,
    pub calls: Vec<(call::Model, Option<transcript::Model>)>,
}

/// Returns the user's calls matching `filter`, newest first, `limit` per page.
pub async fn recent(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    user_id: &str,
    filter: &RecentFilter,
    limit: u64,
    page: u64,
) -> Result<RecentPage, DbErr> {
    let mut condition =
        Condition::all().add(call::Column::WorkspaceId.eq(workspace_id)).add(call::Column::UserId.eq(user_id));
    if let Some(status) = &filter.status {
        condition = condition.add(call::Column::Status.eq(status.as_str()));
    }
    if let Some(call_type) = &filter.call_type {
        condition = condition.add(call::Column::CallType.eq(call_type.as_str()));
    }
    if let Some(transcript_status) = &filter.transcript_status {
        condition = condition.add(call::Column::TranscriptStatus.eq(transcript_status.as_str()));
    }
    for (column, needle) in [
        (call::Column::CustomerNumber, &filter.customer_number),
        (call::Column::AgentNumber, &filter.agent_number),
        (call::Column::Did, &filter.did),
    ] {
        if let Some(needle) = needle {
            condition = condition.add(contains_ignoring_case(column, needle));
        }
    }
    if let Some(from) = filter.date_from {
        condition = condition.add(call::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.date_to {
        condition = condition.add(call::Column::CreatedAt.lte(to));
    }
    let query = call::Entity::find().filter(condition);
    let total = query.clone().count(db).await?;
    let rows = query
        .order_by_desc(call::Column::CreatedAt)
        .order_by_desc(call::Column::Id)
        .limit(limit)
        .offset(limit.saturating_mul(page.saturating_sub(1)))
        .all(db)
        .await?;
    let ready: Vec<String> =
        rows.iter().filter(|row| row.transcript_status == "ready").map(|row| row.id.clone()).collect();
    let mut transcripts: HashMap<String, transcript::Model> = HashMap::new();
    if !ready.is_empty() {
        for t in transcript::Entity::find().filter(transcript::Column::CallId.is_in(ready)).all(db).await? {
            transcripts.insert(t.call_id.clone(), t);
        }
    }
    let calls = rows
        .into_iter()
        .map(|row| {
            let transcript = transcripts.remove(&row.id);
            (row, transcript)
        })
        .collect();
    Ok(RecentPage { total, calls })
}

/// `lower(column) LIKE '%needle%'` with the needle's wildcards escaped, the same on SQLite and
/// PostgreSQL.
fn contains_ignoring_case(column: call::Column, needle: &str) -> sea_orm::sea_query::SimpleExpr {
    let escaped: String = needle
        .to_lowercase()
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            other => vec![other],
        })
        .collect();
    Expr::expr(Func::lower(Expr::col((call::Entity, column)))).like(LikeExpr::new(format!("%{escaped}%")).escape('\\'))
}

/// Stores a call's recording, replacing any earlier one.
pub async fn save_recording(conn: &impl ConnectionTrait, row: &recording::Model) -> Result<(), DbErr> {
    recording::Entity::insert(row.clone().into_active_model())
        .on_conflict(
            OnConflict::column(recording::Column::CallId)
                .update_columns([recording::Column::ContentType, recording::Column::Bytes])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}

/// Stores a call's transcript, replacing any earlier one's text and analysis (its id and creation
/// time stay).
pub async fn save_transcript(conn: &impl ConnectionTrait, row: &transcript::Model) -> Result<(), DbErr> {
    transcript::Entity::insert(row.clone().into_active_model())
        .on_conflict(
            OnConflict::column(transcript::Column::CallId)
                .update_columns([
                    transcript::Column::Language,
                    transcript::Column::Summary,
                    transcript::Column::CallOutcome,
                    transcript::Column::Outcomes,
                    transcript::Column::History,
                    transcript::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec(conn)
        .await?;
    Ok(())
}
