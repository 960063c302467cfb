//! The group-commit writer's batch in bulk. Every row a batch adds to one table (calls, the event
//! log, the sandbox's log, the outbox, the webhook attempt log), and every call-state,
//! sandbox-progress or delivered-message update it makes,
//! travel together as one JSON document per table, bound as a single parameter, and the database
//! unpacks them (`jsonb_each` on SQLite, `jsonb_array_elements` on PostgreSQL). So each bulk write
//! costs one hand-off to SQLite's thread (or one round trip to PostgreSQL) whatever its size and
//! mix, and the statement's text does not depend on how many rows it writes, so it is prepared
//! once per connection and mix of tables (at most 511 texts). A batch
//! makes one bulk write before its other writes, and a second after them for the events its
//! transitions announce.
//!
//! - Only the statements that have rows to write run (at most nine).
//! - SQLite runs them in one call (sqlx runs a query of several statements in order, binding each
//!   its own parameter).
//! - PostgreSQL takes one parameter set per statement, so there they are data-modifying CTEs of
//!   one statement. They see the same snapshot: an update does not see a row inserted by the same
//!   batch, and the writer keeps such updates out of the bulk write.
//!
//! Values are put in the document as sqlx would bind them, so a row written here reads back, and
//! compares, exactly like one written by sea-orm: on SQLite a time is the text sqlx writes, on
//! PostgreSQL each value is cast to its column's type.
//!
//! The statements run in the batch's transaction. If the rows written are not the rows expected
//! (an update found no row), the write fails, and the writer runs the batch again write by write,
//! so a bad write still fails alone.
//!
//! Transitions that announce events need their rows as updated (the events' payloads are built
//! from them), so they are not part of the bulk write: [`advance`] writes them with one
//! `UPDATE … RETURNING` of its own per batch, where [`calls::advance_state`] took one per
//! transition.

use chrono::{DateTime, SecondsFormat, Utc};
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::CallState;
use sea_orm::sea_query::ColumnType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait, IdenStatic, Iterable, ModelTrait,
    PrimaryKeyToColumn, PrimaryKeyTrait, Statement, Value,
};

use super::calls;
use super::entities::{call, call_event, outbox, sandbox_call, webhook_attempt};

/// What one batch writes in bulk.
#[derive(Default)]
pub struct BulkWrite<'a> {
    /// New calls, as stored.
    pub new_calls: Vec<call::Model>,
    /// Rows of the call event log (the database numbers them).
    pub log_rows: Vec<&'a call_event::Model>,
    /// Calls the sandbox carrier accepted.
    pub sandbox_rows: Vec<&'a sandbox_call::Model>,
    /// Call states to write onto stored calls, a call once at most.
    pub states: Vec<(&'a CallRecord, &'a CallState)>,
    /// The sandbox's progress through stored calls (sid, last acknowledged callback, finished), a
    /// call once at most.
    pub progress: Vec<(&'a str, i32, bool)>,
    /// Messages for the outbox (the database numbers them).
    pub outbox_rows: Vec<&'a outbox::Model>,
    /// `callback_url` messages delivered: (id, the attempt's number, status code, when).
    pub delivered: Vec<(i32, i32, u16, DateTime<Utc>)>,
    /// Webhook attempts that delivered their messages: (the attempt's log row, the message's
    /// id, when).
    pub webhooks_delivered: Vec<(&'a webhook_attempt::Model, i32, DateTime<Utc>)>,
}

impl BulkWrite<'_> {
    /// Its rows as fragments, with `now` as the time of its state updates.
    fn rows(&self, backend: DbBackend, now: DateTime<Utc>) -> Result<BulkRows, DbErr> {
        let mut rows = BulkRows::default();
        for row in &self.new_calls {
            rows.push(&new_call(backend, row)?);
        }
        for row in &self.log_rows {
            rows.push(&log_row(backend, row)?);
        }
        for row in &self.sandbox_rows {
            rows.push(&sandbox_row(backend, row)?);
        }
        for (record, state) in &self.states {
            rows.push(&state_update(backend, record, state, now)?);
        }
        for (sid, acked, finished) in &self.progress {
            rows.push(&progress_update(backend, sid, *acked, *finished)?);
        }
        for row in &self.outbox_rows {
            rows.push(&outbox_row(backend, row)?);
        }
        for (id, attempts, status_code, at) in &self.delivered {
            rows.push(&delivered_update(backend, *id, *attempts, *status_code, *at)?);
        }
        for (log, row_id, at) in &self.webhooks_delivered {
            rows.push(&webhook_delivered(backend, log, *row_id, *at)?);
        }
        Ok(rows)
    }
}

/// The nine statements of a bulk write, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    NewCalls,
    LogRows,
    SandboxRows,
    States,
    Progress,
    OutboxRows,
    /// `callback_url` messages delivered (the attempt that delivered each).
    Delivered,
    /// Rows of the webhook attempt log.
    AttemptLogs,
    /// Webhook messages delivered, if still pending (the attempt that delivered each).
    PendingDelivered,
}

const PARTS: usize = 9;

/// The parts in the order their statements run (and [`BulkRows`] keeps their documents).
const PART_ORDER: [Part; PARTS] = [
    Part::NewCalls,
    Part::LogRows,
    Part::SandboxRows,
    Part::States,
    Part::Progress,
    Part::OutboxRows,
    Part::Delivered,
    Part::AttemptLogs,
    Part::PendingDelivered,
];

/// The columns a delivered message's row gets, besides its id.
const DELIVERED_COLUMNS: [outbox::Column; 5] = [
    outbox::Column::Attempts,
    outbox::Column::Status,
    outbox::Column::LastStatusCode,
    outbox::Column::LastError,
    outbox::Column::DeliveredAt,
];

/// One row of a bulk write: the JSON object its statement unpacks. The writer's callers build
/// their writes' fragments before queueing them ([`super::writer`]), so the writer, whose batches
/// are a chain nothing else overlaps, only joins them.
#[derive(Debug)]
pub struct Fragment {
    part: Part,
    json: String,
    /// A second row, of another part, for a write that adds one row and changes another.
    also: Option<(Part, String)>,
}

impl Fragment {
    fn one(part: Part, json: String) -> Fragment {
        Fragment { part, json, also: None }
    }
}

/// A new call's row, as stored.
pub fn new_call(backend: DbBackend, row: &call::Model) -> Result<Fragment, DbErr> {
    row_fragment(backend, Part::NewCalls, row)
}

/// A row of the call event log (the database numbers it).
pub fn log_row(backend: DbBackend, row: &call_event::Model) -> Result<Fragment, DbErr> {
    row_fragment(backend, Part::LogRows, row)
}

/// A call the sandbox carrier accepted.
pub fn sandbox_row(backend: DbBackend, row: &sandbox_call::Model) -> Result<Fragment, DbErr> {
    row_fragment(backend, Part::SandboxRows, row)
}

/// A message for the outbox (the database numbers it).
pub fn outbox_row(backend: DbBackend, row: &outbox::Model) -> Result<Fragment, DbErr> {
    row_fragment(backend, Part::OutboxRows, row)
}

/// A call state to write onto the stored call `record` names, as of `now`.
pub fn state_update(
    backend: DbBackend,
    record: &CallRecord,
    state: &CallState,
    now: DateTime<Utc>,
) -> Result<Fragment, DbErr> {
    let key = [
        (call::Column::Id, Value::from(record.id.as_str())),
        (call::Column::WorkspaceId, record.workspace_id.as_str().into()),
    ];
    let columns = key.into_iter().chain(calls::STATE_COLUMNS.into_iter().zip(calls::state_values(state, now)));
    Ok(Fragment::one(Part::States, object(backend, columns)?))
}

/// A webhook attempt that delivered its message (row `row_id`) at `at`: its log row, and its
/// message marked delivered if it is still pending (what [`crate::webhooks::store::record_attempt`]
/// writes for a delivery).
pub fn webhook_delivered(
    backend: DbBackend,
    log: &webhook_attempt::Model,
    row_id: i32,
    at: DateTime<Utc>,
) -> Result<Fragment, DbErr> {
    let log_row = row_fragment(backend, Part::AttemptLogs, log)?;
    let delivered = delivered_object(backend, row_id, log.attempt, log.status_code, log.error.clone(), at)?;
    Ok(Fragment { also: Some((Part::PendingDelivered, delivered)), ..log_row })
}

/// A transition that announces `events` events, for [`advance`]: its state, and how far its row's
/// event sequence moves on (under the `event_seq` key).
pub struct Advance {
    json: String,
}

/// The [`Advance`] of a transition of `record` to `state`, at `now`, announcing `events` events.
pub fn advance_update(
    backend: DbBackend,
    record: &CallRecord,
    state: &CallState,
    now: DateTime<Utc>,
    events: i32,
) -> Result<Advance, DbErr> {
    let key = [
        (call::Column::Id, Value::from(record.id.as_str())),
        (call::Column::WorkspaceId, record.workspace_id.as_str().into()),
    ];
    let columns = key
        .into_iter()
        .chain(calls::STATE_COLUMNS.into_iter().zip(calls::state_values(state, now)))
        .chain(std::iter::once((call::Column::EventSeq, Value::from(events))));
    Ok(Advance { json: object(backend, columns)? })
}

/// Writes transitions that announce events onto their calls ([`calls::advance_state`] for many
/// calls, a call once at most) with one statement, and returns the rows as updated, in no
/// particular order. Fails with [`DbErr::RecordNotFound`] when a call is not stored in its
/// workspace.
pub async fn advance(conn: &impl ConnectionTrait, advances: &[&Advance]) -> Result<Vec<call::Model>, DbErr> {
    if advances.is_empty() {
        return Ok(Vec::new());
    }
    let backend = conn.get_database_backend();
    let mut document = String::with_capacity(advances.iter().map(|a| a.json.len() + 1).sum::<usize>() + 1);
    for advance in advances {
        push_element(&mut document, &advance.json);
    }
    document.push(']');
    let mut sql = update_sql::<call::Entity>(
        backend,
        &[call::Column::Id, call::Column::WorkspaceId],
        &calls::STATE_COLUMNS,
        &[call::Column::EventSeq],
        1,
    )?;
    // SQLite's RETURNING names only the updated table's columns; PostgreSQL's would take `j`'s too.
    sql.push_str(match backend {
        DbBackend::Postgres => " RETURNING \"calls\".*",
        _ => " RETURNING *",
    });
    let statement = Statement::from_sql_and_values(backend, sql, [Value::from(document)]);
    let rows = call::Entity::find().from_raw_sql(statement).all(conn).await?;
    if rows.len() != advances.len() {
        return Err(DbErr::RecordNotFound(format!(
            "{} of {} calls were advanced: a call is not stored",
            rows.len(),
            advances.len()
        )));
    }
    Ok(rows)
}

/// The sandbox's progress through a stored call: its last acknowledged callback, and whether it
/// is finished.
pub fn progress_update(backend: DbBackend, sid: &str, acked: i32, finished: bool) -> Result<Fragment, DbErr> {
    let columns = [
        (sandbox_call::Column::Sid, Value::from(sid)),
        (sandbox_call::Column::AckedSequence, acked.into()),
        (sandbox_call::Column::Finished, finished.into()),
    ];
    Ok(Fragment::one(Part::Progress, object(backend, columns)?))
}

/// An outbox message delivered by its attempt number `attempts`, with `status_code`, at `at`
/// (what [`super::outbox::record_attempt`] writes for a delivery).
pub fn delivered_update(
    backend: DbBackend,
    id: i32,
    attempts: i32,
    status_code: u16,
    at: DateTime<Utc>,
) -> Result<Fragment, DbErr> {
    let delivered = delivered_object(backend, id, attempts, Some(i32::from(status_code)), None, at)?;
    Ok(Fragment::one(Part::Delivered, delivered))
}

/// The object of an outbox row `id` delivered by attempt number `attempts` at `at`: its id and
/// [`DELIVERED_COLUMNS`].
fn delivered_object(
    backend: DbBackend,
    id: i32,
    attempts: i32,
    status_code: Option<i32>,
    error: Option<String>,
    at: DateTime<Utc>,
) -> Result<String, DbErr> {
    let values: [Value; 5] = [attempts.into(), "delivered".into(), status_code.into(), error.into(), at.into()];
    object(
        backend,
        std::iter::once((outbox::Column::Id, Value::from(id))).chain(DELIVERED_COLUMNS.into_iter().zip(values)),
    )
}

/// The rows of one bulk write, as the nine JSON documents its statements unpack.
#[derive(Default)]
pub struct BulkRows {
    documents: [String; PARTS],
    rows: usize,
}

impl BulkRows {
    /// Adds a row.
    pub fn push(&mut self, fragment: &Fragment) {
        self.push_row(fragment.part, &fragment.json);
        if let Some((part, json)) = &fragment.also {
            self.push_row(*part, json);
        }
    }

    fn push_row(&mut self, part: Part, json: &str) {
        push_element(&mut self.documents[part as usize], json);
        self.rows += 1;
    }

    /// How many rows it holds.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }
}

/// Adds `json` to a JSON array being written (opened by its first element, closed by the caller).
fn push_element(document: &mut String, json: &str) {
    document.push(if document.is_empty() { '[' } else { ',' });
    document.push_str(json);
}

/// Writes `bulk` with one statement, `now` the time of its state updates. Fails with
/// [`DbErr::RecordNotFound`] when an update finds no row (a call not stored in its workspace, a
/// sandbox call the sandbox does not know); the caller's transaction then rolls back the rest.
pub async fn write(conn: &impl ConnectionTrait, bulk: &BulkWrite<'_>, now: DateTime<Utc>) -> Result<(), DbErr> {
    write_rows(conn, bulk.rows(conn.get_database_backend(), now)?).await
}

/// Writes `rows` with one statement, failing as [`write`] does.
pub async fn write_rows(conn: &impl ConnectionTrait, rows: BulkRows) -> Result<(), DbErr> {
    let expected = rows.len();
    if expected == 0 {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    // Only the statements with rows to write. On SQLite each statement run is a result sent
    // back from its thread and a wake-up of the writer; on PostgreSQL each is one more part of
    // the statement to run. A batch of creations fills three of the nine.
    let mut statements = Vec::with_capacity(PARTS);
    let mut values = Vec::with_capacity(PARTS + 1);
    for (part, mut document) in PART_ORDER.into_iter().zip(rows.documents) {
        if document.is_empty() {
            continue;
        }
        document.push(']');
        statements.push(part_sql(backend, part, statements.len() + 1)?);
        values.push(Value::from(document));
    }
    let written = match backend {
        DbBackend::Sqlite => {
            let sql = statements.join(";\n");
            conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?.rows_affected()
        }
        DbBackend::Postgres => {
            // The statement checks its own count: short of the rows expected, it divides by
            // zero, so it fails whole, and a batch written with no transaction around it (the
            // writer's one-statement batches) leaves nothing behind.
            let ctes: Vec<String> =
                statements.iter().enumerate().map(|(i, sql)| format!("w{i} AS ({sql} RETURNING 1)")).collect();
            let counts: Vec<String> = (0..statements.len()).map(|i| format!("(SELECT count(*) FROM w{i})")).collect();
            let sql = format!(
                "WITH {} SELECT written / (written = ${})::int FROM (SELECT ({})::bigint AS written) AS counted",
                ctes.join(",\n"),
                statements.len() + 1,
                counts.join(" + ")
            );
            values.push(Value::from(i64::try_from(expected).unwrap_or(i64::MAX)));
            let row = match conn.query_one_raw(Statement::from_sql_and_values(backend, sql, values)).await {
                Err(e) if is_division_by_zero(&e) => return Err(short_of(None, expected)),
                other => other?,
            };
            let written = row.map(|row| row.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(0);
            u64::try_from(written).unwrap_or(0)
        }
        other => return Err(DbErr::Custom(format!("bulk writes are not built for {other:?}"))),
    };
    if written != expected as u64 {
        return Err(short_of(Some(written), expected));
    }
    Ok(())
}

/// The error of a bulk write that wrote fewer rows than it had (`written`, when known).
fn short_of(written: Option<u64>, expected: usize) -> DbErr {
    let written = written.map_or_else(|| "fewer".to_string(), |n| n.to_string());
    DbErr::RecordNotFound(format!("{written} of {expected} rows were written: an update found no row"))
}

/// Whether PostgreSQL refused the statement for a division by zero (SQLSTATE 22012).
fn is_division_by_zero(e: &DbErr) -> bool {
    use sea_orm::{RuntimeErr, sqlx};
    match e {
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), sqlx::Error::Database(db) if db.code().as_deref() == Some("22012"))
        }
        _ => false,
    }
}

/// The statement of `part`, reading its rows from parameter `param`.
fn part_sql(backend: DbBackend, part: Part, param: usize) -> Result<String, DbErr> {
    match part {
        Part::NewCalls => insert_sql::<call::Entity>(backend, param),
        Part::LogRows => insert_sql::<call_event::Entity>(backend, param),
        Part::SandboxRows => insert_sql::<sandbox_call::Entity>(backend, param),
        Part::States => update_sql::<call::Entity>(
            backend,
            &[call::Column::Id, call::Column::WorkspaceId],
            &calls::STATE_COLUMNS,
            &[],
            param,
        ),
        Part::Progress => update_sql::<sandbox_call::Entity>(
            backend,
            &[sandbox_call::Column::Sid],
            &[sandbox_call::Column::AckedSequence, sandbox_call::Column::Finished],
            &[],
            param,
        ),
        Part::OutboxRows => insert_sql::<outbox::Entity>(backend, param),
        Part::Delivered => update_sql::<outbox::Entity>(backend, &[outbox::Column::Id], &DELIVERED_COLUMNS, &[], param),
        Part::AttemptLogs => insert_sql::<webhook_attempt::Entity>(backend, param),
        // A webhook message no longer pending (given up on meanwhile) is left as it is: the
        // update finds no row, and the writer records the attempt on its own.
        Part::PendingDelivered => Ok(format!(
            "{} AND \"{}\".\"{}\" = 'pending'",
            update_sql::<outbox::Entity>(backend, &[outbox::Column::Id], &DELIVERED_COLUMNS, &[], param)?,
            outbox::Entity.table_name(),
            outbox::Column::Status.as_str()
        )),
    }
}

/// `INSERT INTO table (columns) SELECT … FROM` the rows of parameter `param`. The columns are
/// all of the entity's but a primary key the database generates.
fn insert_sql<E: EntityTrait>(backend: DbBackend, param: usize) -> Result<String, DbErr> {
    let columns = stored_columns::<E>();
    let names: Vec<String> = columns.iter().map(|column| format!("\"{}\"", column.as_str())).collect();
    let fields: Vec<String> = columns.iter().map(|column| field(backend, *column)).collect::<Result<_, _>>()?;
    Ok(format!(
        "INSERT INTO \"{}\" ({}) SELECT {} FROM {}",
        E::default().table_name(),
        names.join(", "),
        fields.join(", "),
        elements(backend, param)
    ))
}

/// `UPDATE table SET set… FROM` the rows of parameter `param` `WHERE` each key column equals the
/// row's. The `set` columns take the row's values; the `add` columns are moved on by them.
fn update_sql<E: EntityTrait>(
    backend: DbBackend,
    keys: &[E::Column],
    set: &[E::Column],
    add: &[E::Column],
    param: usize,
) -> Result<String, DbErr> {
    let table = E::default().table_name();
    let assignments: Vec<String> = set
        .iter()
        .map(|column| Ok(format!("\"{}\" = {}", column.as_str(), field(backend, *column)?)))
        .chain(add.iter().map(|column| {
            let name = column.as_str();
            Ok(format!("\"{name}\" = \"{table}\".\"{name}\" + {}", field(backend, *column)?))
        }))
        .collect::<Result<_, DbErr>>()?;
    let matches: Vec<String> = keys
        .iter()
        .map(|key| Ok(format!("\"{table}\".\"{}\" = {}", key.as_str(), field(backend, *key)?)))
        .collect::<Result<_, DbErr>>()?;
    Ok(format!(
        "UPDATE \"{table}\" SET {} FROM {} WHERE {}",
        assignments.join(", "),
        elements(backend, param),
        matches.join(" AND ")
    ))
}

/// The rows of the JSON array bound as parameter `param` (1-based), as a table `j` of `value`s.
fn elements(backend: DbBackend, param: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("jsonb_array_elements(${param}::jsonb) AS j(value)"),
        // `jsonb_each` gives each row as binary JSON: `json_each` gave it as text, which every
        // `->>` parsed again.
        _ => "jsonb_each(?) AS j".to_string(),
    }
}

/// A row's value for `column`, read from the row's JSON object.
fn field<C: ColumnTrait>(backend: DbBackend, column: C) -> Result<String, DbErr> {
    let name = column.as_str();
    match backend {
        DbBackend::Postgres => {
            Ok(format!("(j.value ->> '{name}')::{}", postgres_type(column.def().get_column_type())?))
        }
        _ => Ok(format!("j.value ->> '{name}'")),
    }
}

/// The PostgreSQL type to cast a column's text to.
fn postgres_type(column_type: &ColumnType) -> Result<&'static str, DbErr> {
    Ok(match column_type {
        ColumnType::String(_) | ColumnType::Text | ColumnType::Char(_) => "text",
        ColumnType::Integer => "integer",
        ColumnType::BigInteger => "bigint",
        ColumnType::Boolean => "boolean",
        ColumnType::Double => "double precision",
        ColumnType::TimestampWithTimeZone => "timestamptz",
        other => return Err(DbErr::Custom(format!("bulk writes do not handle columns of type {other:?}"))),
    })
}

/// The entity's columns a new row sets: all but a primary key the database generates.
fn stored_columns<E: EntityTrait>() -> Vec<E::Column> {
    let generated: Vec<&str> = if <E::PrimaryKey as PrimaryKeyTrait>::auto_increment() {
        E::PrimaryKey::iter().map(|key| key.into_column().as_str()).collect()
    } else {
        Vec::new()
    };
    E::Column::iter().filter(|column| !generated.contains(&column.as_str())).collect()
}

/// A model's row as the fragment of `part`: an object of its stored columns.
fn row_fragment<M: ModelTrait>(backend: DbBackend, part: Part, row: &M) -> Result<Fragment, DbErr> {
    let columns = stored_columns::<M::Entity>();
    Ok(Fragment::one(part, object(backend, columns.into_iter().map(|column| (column, row.get(column))))?))
}

/// The JSON object of the given columns' values, written straight into one string (a row's
/// values were each turned into a `serde_json::Value` and a string of their own first: two
/// allocations and a copy per value, on every write of every call).
fn object<C: ColumnTrait>(backend: DbBackend, columns: impl IntoIterator<Item = (C, Value)>) -> Result<String, DbErr> {
    let mut json = String::with_capacity(256);
    json.push('{');
    for (column, value) in columns {
        if json.len() > 1 {
            json.push(',');
        }
        // Column names are plain identifiers: no escaping needed.
        json.push('"');
        json.push_str(column.as_str());
        json.push_str("\":");
        push_value(&mut json, backend, value)?;
    }
    json.push('}');
    Ok(json)
}

/// Adds a value to `json`, written as sqlx would bind it.
fn push_value(json: &mut String, backend: DbBackend, value: Value) -> Result<(), DbErr> {
    use std::fmt::Write;
    match value {
        Value::Bool(Some(b)) => json.push_str(if b { "true" } else { "false" }),
        Value::Int(Some(i)) => write!(json, "{i}").expect("writing to a String cannot fail"),
        Value::BigInt(Some(i)) => write!(json, "{i}").expect("writing to a String cannot fail"),
        // As serde_json writes it (a value that is not finite is `null`).
        Value::Double(Some(f)) => json.push_str(&serde_json::Value::from(f).to_string()),
        Value::String(Some(s)) => push_string(json, &s),
        Value::ChronoDateTimeUtc(Some(t)) => push_string(json, &time_text(backend, t)),
        Value::Bool(None)
        | Value::Int(None)
        | Value::BigInt(None)
        | Value::Double(None)
        | Value::String(None)
        | Value::ChronoDateTimeUtc(None) => json.push_str("null"),
        other => return Err(DbErr::Custom(format!("bulk writes do not handle values like {other:?}"))),
    }
    Ok(())
}

/// Adds `text` to `json` as a JSON string, escaped as serde_json escapes it: `"` and `\\`, and
/// the control characters below U+0020 (`\n`, `\r`, `\t`, `\b`, `\f`, or `\u00XX`).
fn push_string(json: &mut String, text: &str) {
    json.push('"');
    let mut clean_from = 0;
    for (at, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        json.push_str(&text[clean_from..at]);
        if escaped.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            json.push_str("\\u00");
            json.push(char::from(HEX[usize::from(byte >> 4)]));
            json.push(char::from(HEX[usize::from(byte & 0xf)]));
        } else {
            json.push_str(escaped);
        }
        clean_from = at + 1;
    }
    json.push_str(&text[clean_from..]);
    json.push('"');
}

/// A time as text: on SQLite exactly what sqlx stores; on PostgreSQL in microseconds, cut as
/// sqlx cuts them (not rounded, as PostgreSQL would round more digits).
fn time_text(backend: DbBackend, t: DateTime<Utc>) -> String {
    match backend {
        DbBackend::Postgres => t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        _ => t.to_rfc3339_opts(SecondsFormat::AutoSi, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every character a value may hold comes out as serde_json writes it, so the databases read
    /// back exactly the text that was written.
    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut every_ascii: String = (0u8..=0x7f).map(char::from).collect();
        every_ascii.push_str("é → 📞 \u{2028}\u{2029} \\\"{\"state\":\"dialing\"}");
        for text in [every_ascii.as_str(), "", "plain", "\"", "\\", "a\u{0}b", "\u{1f}\u{7f}"] {
            let mut written = String::new();
            push_string(&mut written, text);
            assert_eq!(written, serde_json::to_string(text).unwrap(), "{text:?}");
            assert_eq!(serde_json::from_str::<String>(&written).unwrap(), text);
        }
    }

    /// A row's object holds each value as sqlx binds it: numbers and booleans bare, absent
    /// values `null`, times as the text of the database's own format.
    #[test]
    fn an_object_holds_each_value_as_it_is_bound() {
        let at = DateTime::parse_from_rfc3339("2026-12-07T21:30:00.123456789Z").unwrap().with_timezone(&Utc);
        let values: [Value; 5] =
            [3.into(), "delivered".into(), Option::<i32>::None.into(), Some("a \"b\"\n").into(), at.into()];
        let columns =
            std::iter::once((outbox::Column::Id, Value::from(7))).chain(DELIVERED_COLUMNS.into_iter().zip(values));
        let sqlite = object(DbBackend::Sqlite, columns.clone()).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&sqlite).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                "id": 7,
                "attempts": 3,
                "status": "delivered",
                "last_status_code": null,
                "last_error": "a \"b\"\n",
                "delivered_at": "2026-12-07T21:30:00.123456789+00:00",
            })
        );
        let postgres: serde_json::Value = serde_json::from_str(&object(DbBackend::Postgres, columns).unwrap()).unwrap();
        assert_eq!(postgres["delivered_at"], "2026-12-07T21:30:00.123456Z");
        let flags = [(call::Column::IsLive, Value::from(true)), (call::Column::EventSeq, Value::BigInt(Some(-2)))];
        assert_eq!(object(DbBackend::Sqlite, flags).unwrap(), r#"{"is_live":true,"event_seq":-2}"#);
        let large = [
            (call::Column::DurationS, Value::Double(Some(1.5))),
            (call::Column::AnswerDurationS, Value::Double(Some(f64::NAN))),
        ];
        assert_eq!(object(DbBackend::Sqlite, large).unwrap(), r#"{"duration_s":1.5,"answer_duration_s":null}"#);
    }
}
