//! Multi-row statements for the group-commit writer. The rows a batch adds to one table go in one
//! `INSERT`, and the call-state updates that publish nothing go in one
//! `UPDATE … FROM (VALUES …)`. Per statement, sqlx hands the work to SQLite's thread (or to
//! PostgreSQL) and waits for the answer, which cost more than the writing itself.
//!
//! The statements run in the batch's transaction. If one fails, the writer runs the batch again
//! write by write, so a bad row still fails alone.
//!
//! Rows go in chunks whose sizes are powers of two (13 rows = 8 + 4 + 1). sqlx keeps every
//! statement it prepared, per connection, and a 200-row statement is a large one: with a
//! statement per batch size, that cache alone held tens of MiB.

use chrono::{DateTime, Utc};
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::CallState;
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait, IdenStatic, Statement};

use super::calls;
use super::entities::call;

/// Most rows one statement takes (a power of two).
const MAX_CHUNK: usize = 128;

/// Splits `rows` rows into chunks of at most [`MAX_CHUNK`], each a power of two, largest first.
fn chunk_sizes(mut rows: usize) -> impl Iterator<Item = usize> {
    let mut size = MAX_CHUNK;
    std::iter::from_fn(move || {
        while size > 0 {
            if rows >= size {
                rows -= size;
                return Some(size);
            }
            size /= 2;
        }
        None
    })
}

/// Inserts `rows` with as few statements as the chunking allows, without reading them back.
pub async fn insert_all<A>(conn: &impl ConnectionTrait, rows: Vec<A>) -> Result<(), DbErr>
where
    A: ActiveModelTrait,
{
    let mut rows = rows.into_iter();
    for size in chunk_sizes(rows.len()) {
        let chunk: Vec<A> = rows.by_ref().take(size).collect();
        let inserted = <A::Entity as EntityTrait>::insert_many(chunk).exec_without_returning(conn).await?;
        if inserted != size as u64 {
            return Err(DbErr::Custom(format!("{inserted} of {size} rows were inserted")));
        }
    }
    Ok(())
}

/// Writes each call's state onto its row, one statement per chunk (what [`calls::update_state`]
/// does for one call). Fails when a call is not stored in its workspace; the caller's transaction
/// then rolls back what earlier chunks wrote. A call may appear once only.
pub async fn update_call_states(
    conn: &impl ConnectionTrait,
    updates: &[(&CallRecord, &CallState)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut rest = updates;
    for size in chunk_sizes(updates.len()) {
        let (chunk, after) = rest.split_at(size);
        update_chunk(conn, chunk, now).await?;
        rest = after;
    }
    Ok(())
}

async fn update_chunk(
    conn: &impl ConnectionTrait,
    updates: &[(&CallRecord, &CallState)],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    // `v.column1` is the id and `v.column2` the workspace; the state columns follow.
    let set: Vec<String> = (calls::STATE_COLUMNS.iter().enumerate())
        .map(|(i, column)| format!("{} = v.column{}", column.as_str(), i + 3))
        .collect();
    let per_row = calls::STATE_COLUMNS.len() + 2;
    let values: Vec<sea_orm::Value> = updates
        .iter()
        .flat_map(|(record, state)| {
            let key = [record.id.as_str().into(), record.workspace_id.as_str().into()];
            key.into_iter().chain(calls::state_values(state, now))
        })
        .collect();
    let rows: Vec<String> = (0..updates.len())
        .map(|row| {
            let placeholders: Vec<String> =
                (row * per_row..(row + 1) * per_row).map(|n| placeholder(backend, n)).collect();
            format!("({})", placeholders.join(", "))
        })
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_chunked_in_distinct_powers_of_two_up_to_the_largest_chunk() {
        assert_eq!(chunk_sizes(0).count(), 0);
        assert_eq!(chunk_sizes(1).collect::<Vec<_>>(), vec![1]);
        assert_eq!(chunk_sizes(13).collect::<Vec<_>>(), vec![8, 4, 1]);
        assert_eq!(chunk_sizes(255).collect::<Vec<_>>(), vec![128, 64, 32, 16, 8, 4, 2, 1]);
        assert_eq!(chunk_sizes(300).collect::<Vec<_>>(), vec![128, 128, 32, 8, 4]);
        for rows in 0..600 {
            let sizes: Vec<usize> = chunk_sizes(rows).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows, "every row is in a chunk");
            assert!(sizes.iter().all(|size| size.is_power_of_two() && *size <= MAX_CHUNK));
        }
    }
}
