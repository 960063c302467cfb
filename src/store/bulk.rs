//! Multi-row statements for the group-commit writer. The rows a batch adds to one table go in one
//! `INSERT`, and the call-state updates that publish nothing go in one
//! `UPDATE … FROM (VALUES …)`. Per statement, sqlx hands the work to SQLite's thread (or to
//! PostgreSQL) and waits for the answer, which cost more than the writing itself.
//!
//! The statements run in the batch's transaction. If one fails, the writer runs the batch again
//! write by write, so a bad row still fails alone.

use chrono::{DateTime, Utc};
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::CallState;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait, IdenStatic, Statement};

use super::calls;
use super::entities::call;

/// Inserts `rows` with one statement, without reading them back.
pub async fn insert_all<A>(conn: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
{
    let expected = rows.len() as u64;
    let inserted = <A::Entity as EntityTrait>::insert_many(rows).exec_without_returning(conn).await?;
    if inserted != expected {
        return Err(DbErr::Custom(format!("{inserted} of {expected} rows were inserted")));
    }
    Ok(())
}

/// Writes each call's state onto its row with one statement (what [`calls::update_state`] does
/// for one call). Fails, changing nothing, when a call is not stored in its workspace. A call may
/// appear once only.
pub async fn update_call_states(
    conn: &impl ConnectionTrait,
    updates: &[(&CallRecord, &CallState)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if updates.is_empty() {
        return Ok(());
    }
    let backend = conn.get_database_backend();
    let mut values: Vec<sea_orm::Value> = Vec::with_capacity(updates.len() * 13);
    let mut rows = Vec::with_capacity(updates.len());
    let mut set = Vec::new();
    for (record, state) in updates {
        let first = values.len();
        values.push(record.id.as_str().into());
        values.push(record.workspace_id.as_str().into());
        let columns = calls::state_columns(state, now);
        if set.is_empty() {
            // `v.column1` is the id and `v.column2` the workspace; the state columns follow.
            set = (columns.iter().enumerate())
                .map(|(i, (column, _))| format!("{} = v.column{}", column.as_str(), i + 3))
                .collect();
        }
        values.extend(columns.into_iter().map(|(_, value)| value));
        let placeholders: Vec<String> = (first..values.len()).map(|n| placeholder(backend, n)).collect();
        rows.push(format!("({})", placeholders.join(", ")));
    }
    let sql = format!(
        "UPDATE {table} SET {set} FROM (VALUES {rows}) AS v WHERE {table}.{id} = v.column1 AND {table}.{workspace} = v.column2",
        table = call::Entity.table_name(),
        set = set.join(", "),
        rows = rows.join(", "),
        id = call::Column::Id.as_str(),
        workspace = call::Column::WorkspaceId.as_str(),
    );
    let updated = conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?.rows_affected();
    if updated != updates.len() as u64 {
        return Err(DbErr::RecordNotFound(format!("{updated} of {} calls are stored", updates.len())));
    }
    Ok(())
}

/// The `n`th (0-based) bound parameter in `backend`'s syntax.
fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${}", n + 1),
        _ => "?".to_string(),
    }
}
