//! Multi-row statements for the group-commit writer. The rows a batch adds to one table go in one
//! `INSERT`. The call-state updates that publish nothing go in one `UPDATE … FROM (VALUES …)`,
//! and so do the sandbox's progress updates (a statement per table). Per statement, sqlx hands
//! the work to SQLite's thread (or to PostgreSQL) and waits for the answer, which cost more than
//! the writing itself.
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
use super::entities::{call, sandbox_call};

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
    let keys = [call::Column::Id.as_str(), call::Column::WorkspaceId.as_str()];
    let set: Vec<&str> = calls::STATE_COLUMNS.iter().map(|column| column.as_str()).collect();
    let rows = updates.iter().map(|(record, state)| {
        let key = [record.id.as_str().into(), record.workspace_id.as_str().into()];
        key.into_iter().chain(calls::state_values(state, now)).collect()
    });
    let updated = update_from_values(conn, call::Entity.table_name(), &keys, &set, rows.collect()).await?;
    if updated != updates.len() as u64 {
        return Err(DbErr::RecordNotFound(format!("{updated} of {} calls are stored", updates.len())));
    }
    Ok(())
}

/// Writes the sandbox carrier's progress through each call's timeline (its last acknowledged
/// callback and whether it is finished), one statement per chunk. A call may appear once only;
/// like the one-row update, a call the sandbox does not know is left alone.
pub async fn update_sandbox_progress(conn: &impl ConnectionTrait, updates: &[(&str, i32, bool)]) -> Result<(), DbErr> {
    let keys = [sandbox_call::Column::Sid.as_str()];
    let set = [sandbox_call::Column::AckedSequence.as_str(), sandbox_call::Column::Finished.as_str()];
    let rows = updates.iter().map(|(sid, acked, finished)| vec![(*sid).into(), (*acked).into(), (*finished).into()]);
    update_from_values(conn, sandbox_call::Entity.table_name(), &keys, &set, rows.collect()).await?;
    Ok(())
}

/// `UPDATE table SET set… FROM (VALUES …) AS v WHERE` each key column equals its value, which
/// works alike on SQLite and PostgreSQL. Each row holds the key columns' values, then the set
/// columns'. Returns how many rows were updated.
async fn update_from_values(
    conn: &impl ConnectionTrait,
    table: &str,
    keys: &[&str],
    set: &[&str],
    rows: Vec<Vec<sea_orm::Value>>,
) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let per_row = keys.len() + set.len();
    // `VALUES` names its columns `column1`, `column2`, …: the keys first, then the set columns.
    let matches: Vec<String> =
        keys.iter().enumerate().map(|(i, key)| format!("{table}.{key} = v.column{}", i + 1)).collect();
    let assignments: Vec<String> =
        set.iter().enumerate().map(|(i, column)| format!("{column} = v.column{}", keys.len() + i + 1)).collect();
    let mut updated = 0;
    let mut rows = rows.into_iter();
    for size in chunk_sizes(rows.len()) {
        let values: Vec<sea_orm::Value> = rows.by_ref().take(size).flatten().collect();
        if values.len() != size * per_row {
            return Err(DbErr::Custom(format!("a row to update in {table} does not have {per_row} values")));
        }
        let tuples: Vec<String> = (0..size)
            .map(|row| {
                let placeholders: Vec<String> =
                    (row * per_row..(row + 1) * per_row).map(|n| placeholder(backend, n)).collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        let sql = format!(
            "UPDATE {table} SET {} FROM (VALUES {}) AS v WHERE {}",
            assignments.join(", "),
            tuples.join(", "),
            matches.join(" AND "),
        );
        updated += conn.execute_raw(Statement::from_sql_and_values(backend, sql, values)).await?.rows_affected();
    }
    Ok(updated)
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
