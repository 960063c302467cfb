//! Storage on sea-orm: SQLite (WAL) embedded by default, PostgreSQL in production. Connecting runs
//! the migrations. The modules beside this one are stateless query services over a connection:
//! [`users`], [`calls`], [`outbox`], and [`call_store::SeaCallStore`], the actors' `CallStore` port.

pub mod bulk;
pub mod call_store;
pub mod calls;
pub mod entities;
pub mod outbox;
pub mod refresh_tokens;
pub mod users;
pub mod writer;

use std::time::Duration;

use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ActiveModelTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait, Set, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use entities::setting;

/// Opens the database at `url` and brings its schema up to date.
pub async fn connect(url: &str, acquire_timeout: Duration) -> anyhow::Result<DatabaseConnection> {
    let db = open_with(url, acquire_timeout).await?;
    Migrator::up(&db, None).await.map_err(|e| anyhow::anyhow!("DATABASE_URL: migrations failed: {e}"))?;
    Ok(db)
}

/// Opens the database at `url` without migrating it.
pub async fn open(url: &str) -> anyhow::Result<DatabaseConnection> {
    open_with(url, Duration::from_secs(10)).await
}

/// Opens the database at `url`; requests wait at most `acquire_timeout` for a connection.
pub async fn open_with(url: &str, acquire_timeout: Duration) -> anyhow::Result<DatabaseConnection> {
    open_pool(url, acquire_timeout, Pool::Main).await
}

/// Returns the connection the server's timers read through: the delivery poll (every 250 ms)
/// and the upkeep (every 30 s), which run whether or not anyone uses the server. On SQLite it is
/// a pool of its own with one connection, beside `db`, whose connections then close once idle
/// for [`SQLITE_IDLE_TIMEOUT`]: sqlx hands out the connection idle longest, so a poll every
/// 250 ms on the main pool kept every connection in use and none ever reached its idle timeout.
/// On PostgreSQL the timers share `db`.
pub async fn open_for_timers(
    db: &DatabaseConnection,
    url: &str,
    acquire_timeout: Duration,
) -> anyhow::Result<DatabaseConnection> {
    open_beside(db, url, acquire_timeout, Pool::Timers).await
}

/// The planner settings of the writer's PostgreSQL connections.
///
/// - Each prepared statement keeps one generic plan (`force_generic_plan`). Planning a batch's
///   bulk statement ([`bulk`]) for its values took 0.2 to 0.45 ms of PostgreSQL's CPU, as much as
///   running it, at every batch (BENCHMARKS.md, 2026-12-07, 20:45 run).
/// - Hash joins, merge joins, materialised inner sides and sequential scans are ruled out. The
///   writer's statements touch rows by their key, and a generic plan is made for the table's
///   size when it is first planned: with these allowed, the bulk update of call states, planned
///   while `calls` was nearly empty, hashed the whole table at every batch as it grew (19 ms a
///   batch at 33,000 rows) until an `ANALYZE` invalidated the plan. Without them every join is a
///   loop over the batch's rows that looks each row up through the table's key.
///
/// One case is left: a table `ANALYZE`d while it held fewer than about ten rows may be planned
/// as a loop over the table's rows. PostgreSQL's autovacuum analyses a table again once 50 rows
/// and a tenth of it have changed, which invalidates the plan.
pub const WRITER_PLANNER_SETTINGS: [(&str, &str); 5] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
    ("enable_hashjoin", "off"),
    ("enable_mergejoin", "off"),
    ("enable_material", "off"),
];

/// Returns the connection the group-commit writer ([`writer`]) writes through. On SQLite it is a
/// pool of its own with one connection, beside `db`: SQLite drops a connection's whole page cache
/// when it begins a transaction and finds that another connection wrote since its last one. The
/// writer took whichever main connection had been idle longest, so each batch found its pages
/// gone and read every page it touched back from the file: about a tenth of the SQLite thread's
/// time was `pread` and the page faults of rebuilding its cache (BENCHMARKS.md). Its own
/// connection keeps what it wrote cached.
///
/// On PostgreSQL it is a pool of [`writer::POSTGRES_WRITERS`] connections with the planner
/// settings of [`WRITER_PLANNER_SETTINGS`]: each statement is planned once per connection, and
/// every plan finds the rows it updates by their key.
pub async fn open_for_writer(
    db: &DatabaseConnection,
    url: &str,
    acquire_timeout: Duration,
) -> anyhow::Result<DatabaseConnection> {
    open_beside(db, url, acquire_timeout, Pool::Writer).await
}

/// Opens the pool `pool` beside `db`: on SQLite always, on PostgreSQL only the writer's (the
/// timers share `db` there).
async fn open_beside(
    db: &DatabaseConnection,
    url: &str,
    acquire_timeout: Duration,
    pool: Pool,
) -> anyhow::Result<DatabaseConnection> {
    match (db.get_database_backend(), pool) {
        (sea_orm::DbBackend::Sqlite, _) | (_, Pool::Writer) => open_pool(url, acquire_timeout, pool).await,
        _ => Ok(db.clone()),
    }
}

/// How long a connection of the main SQLite pool stays open unused. Each one is a thread, a
/// glibc arena, a statement cache and a page cache: an idle server closes them.
pub const SQLITE_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of the server's pools to open.
#[derive(Clone, Copy)]
enum Pool {
    /// Requests, call actors and the writer.
    Main,
    /// The timers' single SQLite connection ([`open_for_timers`]).
    Timers,
    /// The writer's connections ([`open_for_writer`]): on SQLite one, closed once idle; on
    /// PostgreSQL one per writer task, with [`WRITER_PLANNER_SETTINGS`].
    Writer,
}

async fn open_pool(url: &str, acquire_timeout: Duration, pool: Pool) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_string());
    options.sqlx_logging(false).acquire_timeout(acquire_timeout).connect_timeout(acquire_timeout);
    // A connection is pinged before use only once it has sat idle a while (a server or a firewall
    // may have dropped it): pinging at every checkout cost a round trip per query and per
    // writer batch.
    options.test_before_acquire_if_idle_for(Duration::from_secs(30));
    if url.starts_with("sqlite:") {
        // One writer at a time is SQLite's nature; WAL lets readers run beside it and the busy
        // timeout makes writers queue instead of failing. `synchronous = FULL` syncs the WAL at
        // every commit, so a committed write (a 200) survives a power cut, not only a crash of
        // the process; group commit pays that sync once per batch. Temporary files stay in
        // memory: a writer batch is one multi-row statement, whose statement journal (its undo
        // log, should it fail halfway) outgrew SQLite's 64 KiB and went to a new file on disk
        // for every batch, about 5 % of creation's CPU (BENCHMARKS.md).
        match pool {
            Pool::Main => options
                .max_connections(sqlite_connections(std::thread::available_parallelism().map_or(1, |n| n.get())))
                .min_connections(0)
                .idle_timeout(SQLITE_IDLE_TIMEOUT),
            Pool::Timers => options.max_connections(1).min_connections(1),
            Pool::Writer => options.max_connections(1).min_connections(0).idle_timeout(SQLITE_IDLE_TIMEOUT),
        };
        options
            .map_sqlx_sqlite_opts(|opts| {
                opts.journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
                    .pragma("temp_store", "MEMORY")
            })
            .map_sqlx_sqlite_pool_opts(|pool| {
                pool.after_connect(|connection, _| Box::pin(async move { keep_query_plans(connection).await }))
            });
    } else {
        match pool {
            Pool::Main | Pool::Timers => options.max_connections(16).min_connections(1),
            Pool::Writer => options
                .max_connections(u32::try_from(writer::POSTGRES_WRITERS).unwrap_or(u32::MAX))
                .min_connections(1)
                .map_sqlx_postgres_opts(|opts| opts.options(WRITER_PLANNER_SETTINGS)),
        };
    }
    Database::connect(options).await.map_err(|e| anyhow::anyhow!("DATABASE_URL: cannot connect: {e}"))
}

/// How many connections the SQLite pool may open on a machine with `cores` cores: two per core,
/// at least 4 and at most 16. SQLite runs each connection's statements on that connection's own
/// thread and takes one writer at a time, so connections beyond what the cores can run add no
/// reads in flight, only a thread, a glibc arena and up to 2 MiB of page cache each. On 2 cores,
/// 4 connections did creation, whole calls and webhook delivery as fast as 8 and left the idle
/// server about 3 MiB smaller after a load (BENCHMARKS.md).
fn sqlite_connections(cores: usize) -> u32 {
    u32::try_from(cores.saturating_mul(2)).unwrap_or(u32::MAX).clamp(4, 16)
}

/// Makes SQLite keep a cached statement's query plan whatever values are bound to it (the
/// query planner stability guarantee, `SQLITE_DBCONFIG_ENABLE_QPSG`).
///
/// Without it, SQLite marks a statement whose plan read a bound value as expired at every new
/// binding, and prepares it again at its next step. sea-orm's `.one()` binds its `LIMIT`, so every
/// lookup of one row (a call, a transcript, a subscription) was compiled afresh each time: about
/// a third of a whole call's CPU (BENCHMARKS.md, 16:16 run). The plans it gives up are those
/// tuned to a `LIMIT`'s value, to a bound `LIKE` prefix or to `ANALYZE` samples; none is on a
/// path that needs them.
async fn keep_query_plans(connection: &mut sea_orm::sqlx::SqliteConnection) -> Result<(), sea_orm::sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is this connection's open handle, held locked for the call; the option takes
    // an int (1: on) and an int pointer for the new setting, which may be null.
    let rc = unsafe {
        libsqlite3_sys::sqlite3_db_config(
            db,
            libsqlite3_sys::SQLITE_DBCONFIG_ENABLE_QPSG,
            1,
            std::ptr::null_mut::<i32>(),
        )
    };
    if rc != libsqlite3_sys::SQLITE_OK {
        return Err(sea_orm::sqlx::Error::Configuration(format!("SQLite refused ENABLE_QPSG (code {rc})").into()));
    }
    Ok(())
}

/// Returns a stored setting.
pub async fn get_setting(db: &DatabaseConnection, key: &str) -> Result<Option<String>, sea_orm::DbErr> {
    Ok(setting::Entity::find_by_id(key.to_string()).one(db).await?.map(|row| row.value))
}

/// Stores a setting if it is not set yet, and returns the value that is stored.
pub async fn get_or_init_setting(
    db: &DatabaseConnection,
    key: &str,
    init: impl FnOnce() -> String,
) -> Result<String, sea_orm::DbErr> {
    if let Some(value) = get_setting(db, key).await? {
        return Ok(value);
    }
    let value = init();
    let row = setting::ActiveModel { key: Set(key.to_string()), value: Set(value.clone()) };
    match row.insert(db).await {
        Ok(_) => Ok(value),
        // Another node initialised it first: take theirs.
        Err(e) => get_setting(db, key).await?.ok_or(e),
    }
}

/// Returns true when the database answers.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.ping().await.is_ok()
}

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (`BEGIN IMMEDIATE`), so a transaction that reads first cannot fail with `SQLITE_BUSY_SNAPSHOT`
/// when it later writes; PostgreSQL ignores the option.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::*;

    /// A 200 means the write is on disk: SQLite runs in WAL mode and syncs the log at every
    /// commit (`synchronous = FULL`, 2), so a committed write survives a power cut, not only a
    /// crash of the process.
    #[tokio::test]
    async fn sqlite_syncs_every_commit_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("durable.db").display());
        let db = connect(&url, Duration::from_secs(5)).await.unwrap();
        let pragma = |name: &str| {
            let db = db.clone();
            let sql = format!("PRAGMA {name}");
            async move { db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap().unwrap() }
        };
        assert_eq!(pragma("journal_mode").await.try_get_by_index::<String>(0).unwrap(), "wal");
        assert_eq!(pragma("synchronous").await.try_get_by_index::<i32>(0).unwrap(), 2, "FULL");
    }

    /// The queries the server runs on a timer, loaded or idle, find their rows through an index
    /// and never read a whole table: the live counters' rebuild, every 30 s, read every call
    /// ever made, and on an idle server filled each pooled connection's page cache in turn.
    #[tokio::test]
    async fn the_periodic_queries_read_an_index_not_a_whole_table() {
        use sea_orm::QueryTrait;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plans.db").display());
        connect(&url, Duration::from_secs(5)).await.unwrap().close().await.unwrap();
        // Connections opened after the migrations: `EXPLAIN QUERY PLAN` does not check that a
        // connection's copy of the schema is current, so one opened while they ran could plan
        // without the last migration's indexes (a real statement would notice and plan again).
        let db = open(&url).await.unwrap();
        let statements = [
            ("counted_live", calls::counted_live_query().build(DbBackend::Sqlite)),
            ("outbox::pending", outbox::pending_query(1000).build(DbBackend::Sqlite)),
            (
                "forget_idempotency_keys",
                calls::forget_idempotency_keys_query(chrono::Utc::now()).build(DbBackend::Sqlite),
            ),
            (
                "refresh_tokens::forget_expired",
                refresh_tokens::forget_expired_query(chrono::Utc::now()).build(DbBackend::Sqlite),
            ),
        ];
        for (name, statement) in statements {
            let values = statement.values.map(|values| values.0).unwrap_or_default();
            let explain = Statement::from_sql_and_values(
                DbBackend::Sqlite,
                format!("EXPLAIN QUERY PLAN {}", statement.sql),
                values,
            );
            let plan: Vec<String> = db
                .query_all_raw(explain)
                .await
                .unwrap()
                .iter()
                .map(|step| step.try_get::<String>("", "detail").unwrap())
                .collect();
            assert!(plan.iter().any(|step| step.contains("USING")), "{name} uses no index: {plan:?}");
            assert!(plan.iter().all(|step| !step.starts_with("SCAN")), "{name} reads a whole table: {plan:?}");
        }
    }

    /// The SQLite pool opens two connections per core, between 4 and 16.
    #[tokio::test]
    async fn the_sqlite_pool_opens_two_connections_per_core() {
        assert_eq!([1, 2, 3, 8, 64].map(sqlite_connections), [4, 4, 6, 16, 16]);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("pool.db").display());
        let db = open(&url).await.unwrap();
        let cores = std::thread::available_parallelism().unwrap().get();
        assert_eq!(db.get_sqlite_connection_pool().options().get_max_connections(), sqlite_connections(cores));
    }

    /// The main SQLite pool lets its connections close once idle, down to none, while the
    /// server's timers read through one connection of their own, so their polls keep no main
    /// connection open.
    #[tokio::test]
    async fn idle_sqlite_connections_close_while_the_timers_keep_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("idle.db").display());
        let db = connect(&url, Duration::from_secs(5)).await.unwrap();
        let main = db.get_sqlite_connection_pool();
        assert_eq!(main.options().get_min_connections(), 0);
        assert_eq!(main.options().get_idle_timeout(), Some(SQLITE_IDLE_TIMEOUT));
        let timers = open_for_timers(&db, &url, Duration::from_secs(1)).await.unwrap();
        // Every main connection is taken, and the timers still read, through their own.
        let mut held = Vec::new();
        for _ in 0..main.options().get_max_connections() {
            held.push(main.acquire().await.unwrap());
        }
        for _ in 0..20 {
            calls::counted_live(&timers).await.expect("the timers read beside a busy main pool");
            outbox::pending(&timers, 1000).await.expect("the timers read beside a busy main pool");
        }
        assert_eq!(timers.get_sqlite_connection_pool().size(), 1);
    }

    /// The writer writes through one SQLite connection of its own, even while every main
    /// connection is taken, and lets it close once idle; on PostgreSQL (checked when
    /// `TEST_DATABASE_URL` names one, as in CI) through a pool of its own, one connection per
    /// writer task, with the writer's planner settings.
    #[tokio::test]
    async fn the_writer_has_connections_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("writer.db").display());
        let db = connect(&url, Duration::from_secs(5)).await.unwrap();
        let writer = open_for_writer(&db, &url, Duration::from_secs(1)).await.unwrap();
        let own = writer.get_sqlite_connection_pool();
        assert_eq!(own.options().get_max_connections(), 1);
        assert_eq!(own.options().get_min_connections(), 0);
        assert_eq!(own.options().get_idle_timeout(), Some(SQLITE_IDLE_TIMEOUT));
        let main = db.get_sqlite_connection_pool();
        let mut held = Vec::new();
        for _ in 0..main.options().get_max_connections() {
            held.push(main.acquire().await.unwrap());
        }
        for n in 0..5 {
            let txn = begin_write(&writer).await.expect("the writer begins beside a busy main pool");
            let row = setting::ActiveModel { key: Set(format!("writer-{n}")), value: Set("v".into()) };
            row.insert(&txn).await.unwrap();
            txn.commit().await.unwrap();
        }
        assert_eq!(own.size(), 1);
        drop(held);
        assert_eq!(get_setting(&db, "writer-4").await.unwrap().as_deref(), Some("v"));

        if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
            let postgres = open(&url).await.unwrap();
            let own = open_for_writer(&postgres, &url, Duration::from_secs(1)).await.unwrap();
            assert_eq!(
                own.get_postgres_connection_pool().options().get_max_connections() as usize,
                writer::POSTGRES_WRITERS
            );
            let setting = |db: DatabaseConnection, name: &'static str| async move {
                let show = Statement::from_string(DbBackend::Postgres, format!("SHOW {name}"));
                db.query_one_raw(show).await.unwrap().unwrap().try_get_by_index::<String>(0).unwrap()
            };
            for (name, value) in WRITER_PLANNER_SETTINGS {
                assert_eq!(setting(own.clone(), name).await, value, "{name}");
            }
            assert_eq!(setting(postgres.clone(), "plan_cache_mode").await, "auto", "the main pool keeps the default");
            assert_eq!(setting(postgres.clone(), "enable_hashjoin").await, "on", "the main pool keeps the default");
            // A pool of its own: it writes with the main one closed.
            postgres.close().await.unwrap();
            assert!(own.ping().await.is_ok());
        }
    }

    /// On PostgreSQL (checked when `TEST_DATABASE_URL` names one, as in CI) the writer plans its
    /// bulk update of call states once per connection, and the plan, made while `calls` is new,
    /// finds each call through the table's key: no hash of the whole table, no scan of it.
    #[tokio::test]
    async fn the_writers_bulk_update_is_planned_once_and_goes_by_key() {
        use chrono::Utc;
        use dialplane_actors::CallType;
        use dialplane_actors::fsm::CallState;

        let Some(admin_url) = std::env::var("TEST_DATABASE_URL").ok().filter(|u| u.starts_with("postgres")) else {
            return;
        };
        let name = format!("dp_test_{}", crate::ids::random_lower_alphanumeric(12));
        let admin = open(&admin_url).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&format!("/{name}"));
        let db = connect(url.as_str(), Duration::from_secs(5)).await.unwrap();
        let writer = open_for_writer(&db, url.as_str(), Duration::from_secs(5)).await.unwrap();
        let record = writer::tests::record("call_1");
        let state = CallState::new(CallType::ClickToCall, false, Utc::now());
        let new_call = bulk::BulkWrite { new_calls: vec![calls::new_row(&record, None, &state)], ..Default::default() };
        bulk::write(&writer, &new_call, Utc::now()).await.unwrap();

        // One connection for the rest: prepared statements are a connection's own.
        let txn = writer.begin().await.unwrap();
        let update = bulk::BulkWrite { states: vec![(&record, &state)], ..Default::default() };
        for _ in 0..3 {
            bulk::write(&txn, &update, Utc::now()).await.unwrap();
        }
        let prepared = Statement::from_string(
            DbBackend::Postgres,
            r#"SELECT name, generic_plans, custom_plans FROM pg_prepared_statements
               WHERE statement LIKE 'WITH w0 AS (UPDATE "calls"%'"#,
        );
        let prepared = txn.query_one_raw(prepared).await.unwrap().expect("the bulk update is a prepared statement");
        let statement: String = prepared.try_get_by_index(0).unwrap();
        let (generic, custom): (i64, i64) =
            (prepared.try_get_by_index(1).unwrap(), prepared.try_get_by_index(2).unwrap());
        assert_eq!(custom, 0, "planned for its values");
        assert!(generic >= 3, "{generic} runs of the one plan");
        let explain = Statement::from_string(DbBackend::Postgres, format!("EXPLAIN EXECUTE {statement}('[]', 0)"));
        let plan: Vec<String> = txn
            .query_all_raw(explain)
            .await
            .unwrap()
            .iter()
            .map(|line| line.try_get_by_index::<String>(0).unwrap())
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("Index Cond") && plan.contains("calls_pkey"), "{plan}");
        assert!(!plan.contains("Seq Scan on calls") && !plan.contains("Hash Join"), "{plan}");
        txn.rollback().await.unwrap();
        writer.close().await.unwrap();
        db.close().await.unwrap();
        admin.execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
    }

    /// A statement journal never becomes a file: temporary storage is memory (2), on every
    /// pooled connection.
    #[tokio::test]
    async fn sqlite_keeps_temporary_files_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("temp.db").display());
        let db = open(&url).await.unwrap();
        let pool = db.get_sqlite_connection_pool();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut connection = pool.acquire().await.unwrap();
            let (store,): (i32,) =
                sea_orm::sqlx::query_as("PRAGMA temp_store").fetch_one(&mut *connection).await.unwrap();
            assert_eq!(store, 2, "MEMORY");
            held.push(connection);
        }
    }

    /// A cached statement whose `LIMIT` is bound (every sea-orm `.one()`) keeps its compiled plan
    /// when it is bound again: SQLite counts no re-preparation. Without `keep_query_plans` it
    /// prepares the statement again at every run.
    #[tokio::test]
    async fn sqlite_keeps_a_statements_plan_across_bindings() {
        use libsqlite3_sys as ffi;
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("plans.db").display());
        let db = open(&url).await.unwrap();
        let mut connection = db.get_sqlite_connection_pool().acquire().await.unwrap();
        let mut handle = connection.lock_handle().await.unwrap();
        let raw = handle.as_raw_handle().as_ptr();
        let sql = c"SELECT 1 LIMIT ?1";
        // SAFETY: `raw` is an open handle held locked for the test; the statement is finalized
        // before the handle is released.
        let reprepared = unsafe {
            let mut statement = std::ptr::null_mut();
            let flags = ffi::SQLITE_PREPARE_PERSISTENT;
            let rc = ffi::sqlite3_prepare_v3(raw, sql.as_ptr(), -1, flags, &mut statement, std::ptr::null_mut());
            assert_eq!(rc, ffi::SQLITE_OK);
            for _ in 0..3 {
                assert_eq!(ffi::sqlite3_bind_int64(statement, 1, 1), ffi::SQLITE_OK);
                assert_eq!(ffi::sqlite3_step(statement), ffi::SQLITE_ROW);
                assert_eq!(ffi::sqlite3_reset(statement), ffi::SQLITE_OK);
            }
            let reprepared = ffi::sqlite3_stmt_status(statement, ffi::SQLITE_STMTSTATUS_REPREPARE, 0);
            ffi::sqlite3_finalize(statement);
            reprepared
        };
        assert_eq!(reprepared, 0, "the statement was prepared again after a new binding");
    }
}
