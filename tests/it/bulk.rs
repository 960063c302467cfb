//! The writer's one-statement bulk write against the store the tests run on (SQLite, or
//! PostgreSQL in CI): a row it writes must read back, and compare as text, exactly like the same
//! row written by sea-orm, and an update that finds no row must fail the write.

use chrono::{TimeZone, Utc};
use dialplane::store::bulk::{self, BulkWrite};
use dialplane::store::calls;
use dialplane::store::entities::{call, call_event, outbox, sandbox_call, webhook_attempt};
use dialplane::store::outbox::{self as outbox_store, AttemptResult};
use dialplane::webhooks::store::{self as webhook_store, AttemptRecord};
use dialplane_actors::fsm::{CallState, CallStatus};
use dialplane_actors::webhook::fsm::MessageFate;
use dialplane_actors::{CallRecord, CallType};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityName, EntityTrait, IdenStatic,
    IntoActiveModel, Iterable, QueryFilter, Statement, TransactionTrait,
};

use crate::support::fresh_database;

fn record(id: &str) -> CallRecord {
    CallRecord {
        id: id.to_string(),
        workspace_id: "ws_bulk".to_string(),
        user_id: "usr_1".to_string(),
        call_type: CallType::ClickToCall,
        customer_number: "919999999999".to_string(),
        agent_number: "918888888888".to_string(),
        did: Some("919484956750".to_string()),
        carrier: "sandbox".to_string(),
        transcript_enabled: true,
        transcript_language: Some("hi-IN".to_string()),
        agent_config: serde_json::json!({"prompt": "it's \"quoted\", ünïcödé ☎ and \\ a backslash"}),
    }
}

/// A time with nanoseconds, which PostgreSQL keeps to microseconds.
fn odd_time() -> chrono::DateTime<Utc> {
    Utc.timestamp_opt(1_795_680_000, 123_456_789).unwrap()
}

/// Every column of `table`'s row `key_column = key`, as text (and, on SQLite, with its storage
/// class), in column order.
async fn row_as_text<C: IdenStatic + Iterable>(
    db: &DatabaseConnection,
    table: &str,
    key_column: &str,
    key: &str,
    skip: &[&str],
) -> Vec<Option<String>> {
    let backend = db.get_database_backend();
    let columns: Vec<String> = C::iter()
        .map(|c| c.as_str().to_string())
        .filter(|c| !skip.contains(&c.as_str()))
        .map(|c| match backend {
            sea_orm::DbBackend::Sqlite => format!("typeof(\"{c}\") || ':' || CAST(\"{c}\" AS TEXT)"),
            _ => format!("CAST(\"{c}\" AS TEXT)"),
        })
        .collect();
    let placeholder = if backend == sea_orm::DbBackend::Postgres { "$1" } else { "?" };
    let sql = format!("SELECT {} FROM \"{table}\" WHERE \"{key_column}\" = {placeholder}", columns.join(", "));
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [key.into()]))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{table} {key} is stored"));
    (0..columns.len()).map(|i| row.try_get_by_index::<Option<String>>(i).unwrap()).collect()
}

async fn write_in_bulk(db: &DatabaseConnection, bulk: &BulkWrite<'_>) -> Result<(), DbErr> {
    let txn = db.begin().await?;
    bulk::write(&txn, bulk, odd_time()).await?;
    txn.commit().await
}

#[tokio::test]
async fn bulk_written_rows_are_stored_exactly_as_sea_orm_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dialplane::store::connect(&fresh_database(&dir).await, std::time::Duration::from_secs(10)).await.unwrap();
    let queued = CallState::new(CallType::ClickToCall, true, odd_time());
    let by_orm = calls::new_row(&record("call_orm"), Some("https://example.com/hook?a=1&b='x'".into()), &queued);
    let by_bulk = call::Model { id: "call_bulk".into(), ..by_orm.clone() };
    by_orm.clone().into_active_model().reset_all().insert(&db).await.unwrap();
    let sandbox = |sid: &str| sandbox_call::Model {
        sid: sid.to_string(),
        reference: "call_x".to_string(),
        kind: "click_to_call".to_string(),
        customer_number: "919999999999".to_string(),
        status_callback: "http://127.0.0.1:1/callback".to_string(),
        placed_at: odd_time(),
        time_scale: 0.25,
        acked_sequence: 0,
        finished: false,
    };
    sandbox("SB_orm").into_active_model().reset_all().insert(&db).await.unwrap();
    let event = |call_id: &str| call_event::Model {
        id: 0,
        call_id: call_id.to_string(),
        workspace_id: "ws_bulk".to_string(),
        source: "carrier:sandbox".to_string(),
        kind: "answered".to_string(),
        payload: r#"{"CallStatus":"in-progress","n":"é"}"#.to_string(),
        created_at: odd_time(),
    };
    let mut orm_event = event("call_orm").into_active_model().reset_all();
    orm_event.id = sea_orm::ActiveValue::NotSet;
    orm_event.insert(&db).await.unwrap();

    let message = |message_id: &str, delivered: bool| outbox::Model {
        id: 0,
        message_id: message_id.to_string(),
        workspace_id: "ws_bulk".to_string(),
        call_id: Some("call_x".to_string()),
        event_type: "call.ended".to_string(),
        target_url: "https://example.com/hook?a=1&b='x'".to_string(),
        body: r#"{"event":"call.ended","data":{"n":"é \"q\""}}"#.to_string(),
        status: "pending".to_string(),
        attempts: 0,
        next_attempt_at: odd_time(),
        last_status_code: delivered.then_some(204),
        last_error: None,
        created_at: odd_time(),
        delivered_at: delivered.then(odd_time),
        subscription_id: None,
        event_id: delivered.then(|| "evt_1".to_string()),
    };
    for (id, delivered) in
        [("msg_orm", false), ("msg_orm_delivered", true), ("msg_orm_webhook", false), ("msg_bulk_webhook", false)]
    {
        let mut row = message(id, delivered).into_active_model().reset_all();
        row.id = sea_orm::ActiveValue::NotSet;
        row.insert(&db).await.unwrap();
    }
    let bulk_messages = [message("msg_bulk", false), message("msg_bulk_delivered", true)];

    let (bulk_sandbox, bulk_event) = (sandbox("SB_bulk"), event("call_bulk"));
    write_in_bulk(
        &db,
        &BulkWrite {
            new_calls: vec![by_bulk],
            log_rows: vec![&bulk_event],
            sandbox_rows: vec![&bulk_sandbox],
            outbox_rows: bulk_messages.iter().collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    let call_row = |id: &'static str| row_as_text::<call::Column>(&db, call::Entity.table_name(), "id", id, &["id"]);
    assert_eq!(call_row("call_bulk").await, call_row("call_orm").await, "a new call");
    let sandbox_row = |sid: &'static str| {
        row_as_text::<sandbox_call::Column>(&db, sandbox_call::Entity.table_name(), "sid", sid, &["sid"])
    };
    assert_eq!(sandbox_row("SB_bulk").await, sandbox_row("SB_orm").await, "a sandbox call");
    let event_row = |call_id: &'static str| {
        row_as_text::<call_event::Column>(&db, call_event::Entity.table_name(), "call_id", call_id, &["id", "call_id"])
    };
    assert_eq!(event_row("call_bulk").await, event_row("call_orm").await, "an event log row");
    let message_row = |message_id: &'static str| {
        row_as_text::<outbox::Column>(&db, outbox::Entity.table_name(), "message_id", message_id, &["id", "message_id"])
    };
    assert_eq!(message_row("msg_bulk").await, message_row("msg_orm").await, "an outbox message");
    assert_eq!(message_row("msg_bulk_delivered").await, message_row("msg_orm_delivered").await, "a delivered message");
    let read = |id: &'static str| calls::find(&db, id);
    assert_eq!(
        call::Model { id: "call_orm".into(), ..read("call_bulk").await.unwrap().unwrap() },
        read("call_orm").await.unwrap().unwrap(),
        "the rows read back alike"
    );

    // Updates: the state of a placed call, and the sandbox's progress.
    let mut placed = queued.clone();
    placed.status = CallStatus::Dialing;
    placed.provider_call_id = Some("SB'1".to_string());
    placed.ended_at = Some(odd_time());
    calls::update_state(&db, &record("call_orm"), &placed, odd_time()).await.unwrap();
    sandbox_call::Entity::update_many()
        .filter(sandbox_call::Column::Sid.eq("SB_orm"))
        .col_expr(sandbox_call::Column::AckedSequence, sea_orm::sea_query::Expr::value(7))
        .col_expr(sandbox_call::Column::Finished, sea_orm::sea_query::Expr::value(true))
        .exec(&db)
        .await
        .unwrap();
    let message_id = |message_id: &'static str| {
        let db = db.clone();
        async move {
            outbox::Entity::find().filter(outbox::Column::MessageId.eq(message_id)).one(&db).await.unwrap().unwrap().id
        }
    };
    let delivered = AttemptResult::Delivered { status_code: 204 };
    outbox_store::record_attempt(&db, message_id("msg_orm").await, 1, &delivered, odd_time()).await.unwrap();
    let attempt_log = |message_id: &str| webhook_attempt::Model {
        id: 0,
        subscription_id: "whk_1".to_string(),
        workspace_id: "ws_bulk".to_string(),
        message_id: message_id.to_string(),
        event_type: "call.ended".to_string(),
        attempt: 1,
        attempted_at: odd_time(),
        status_code: Some(200),
        latency_ms: 12,
        result: "delivered".to_string(),
        error: None,
        response_excerpt: Some("{\"ok\": \"é\"}".to_string()),
    };
    let webhook_delivery = AttemptRecord {
        log: attempt_log("msg_orm_webhook"),
        row_id: message_id("msg_orm_webhook").await,
        fate: MessageFate::Delivered,
        at: odd_time(),
    };
    webhook_store::record_attempt(&db, &webhook_delivery).await.unwrap();
    let bulk_record = record("call_bulk");
    let bulk_attempt = attempt_log("msg_bulk_webhook");
    write_in_bulk(
        &db,
        &BulkWrite {
            states: vec![(&bulk_record, &placed)],
            progress: vec![("SB_bulk", 7, true)],
            delivered: vec![(message_id("msg_bulk").await, 1, 204, odd_time())],
            webhooks_delivered: vec![(&bulk_attempt, message_id("msg_bulk_webhook").await, odd_time())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(message_row("msg_bulk_webhook").await, message_row("msg_orm_webhook").await, "a webhook delivered");
    let attempt_row = |message_id: &'static str| {
        row_as_text::<webhook_attempt::Column>(
            &db,
            webhook_attempt::Entity.table_name(),
            "message_id",
            message_id,
            &["id", "message_id"],
        )
    };
    assert_eq!(attempt_row("msg_bulk_webhook").await, attempt_row("msg_orm_webhook").await, "a webhook attempt");
    assert_eq!(call_row("call_bulk").await, call_row("call_orm").await, "an updated call");
    assert_eq!(sandbox_row("SB_bulk").await, sandbox_row("SB_orm").await, "an updated sandbox call");
    assert_eq!(message_row("msg_bulk").await, message_row("msg_orm").await, "a message delivered");
    assert_eq!(
        outbox::Entity::find_by_id(message_id("msg_bulk").await).one(&db).await.unwrap().unwrap().status,
        "delivered"
    );
    let (_, state) = calls::record_of(&read("call_bulk").await.unwrap().unwrap()).unwrap();
    assert_eq!(state, placed);
}

#[tokio::test]
async fn a_bulk_update_that_finds_no_row_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dialplane::store::connect(&fresh_database(&dir).await, std::time::Duration::from_secs(10)).await.unwrap();
    let queued = CallState::new(CallType::ClickToCall, false, odd_time());
    let new_call = calls::new_row(&record("call_new"), None, &queued);
    let stored = calls::new_row(&record("call_stored"), None, &queued);
    stored.clone().into_active_model().reset_all().insert(&db).await.unwrap();
    let in_other_workspace = CallRecord { workspace_id: "ws_other".into(), ..record("call_stored") };
    for bulk in [
        BulkWrite {
            new_calls: vec![new_call.clone()],
            states: vec![(&in_other_workspace, &queued)],
            ..Default::default()
        },
        BulkWrite { new_calls: vec![new_call.clone()], progress: vec![("SB_unknown", 1, true)], ..Default::default() },
    ] {
        let error = write_in_bulk(&db, &bulk).await.expect_err("an update found no row");
        assert!(matches!(error, DbErr::RecordNotFound(_)), "{error:?}");
        assert!(calls::find(&db, "call_new").await.unwrap().is_none(), "the batch's insert rolled back");
        // On PostgreSQL the writer runs a batch that is all bulk as this one statement, with no
        // transaction around it: the statement checks its own count, so it fails whole.
        if db.get_database_backend() == sea_orm::DbBackend::Postgres {
            let error = bulk::write(&db, &bulk, odd_time()).await.expect_err("an update found no row");
            assert!(matches!(error, DbErr::RecordNotFound(_)), "{error:?}");
            assert!(calls::find(&db, "call_new").await.unwrap().is_none(), "the statement's insert is undone");
        }
    }
}

/// Transitions that announce events are advanced in bulk exactly as one by one: the same row, as
/// text, and the same row handed back; a call that is not stored (or not in the transition's
/// workspace) fails the statement.
#[tokio::test]
async fn a_bulk_advance_stores_and_returns_what_one_by_one_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dialplane::store::connect(&fresh_database(&dir).await, std::time::Duration::from_secs(10)).await.unwrap();
    let queued = CallState::new(CallType::ClickToCall, true, odd_time());
    for id in ["call_orm", "call_bulk", "call_other"] {
        let row = calls::new_row(&record(id), Some("https://example.com/hook".into()), &queued);
        row.into_active_model().reset_all().insert(&db).await.unwrap();
    }
    let mut ended = queued.clone();
    ended.status = CallStatus::Ended;
    ended.reason = Some("it's \"done\"".to_string());
    ended.provider_call_id = Some("SB'1".to_string());
    ended.duration_s = Some(42);
    ended.ended_at = Some(odd_time());
    let by_orm = calls::advance_state(&db, &record("call_orm"), &ended, odd_time(), 2).await.unwrap();
    let backend = db.get_database_backend();
    let advances = [
        bulk::advance_update(backend, &record("call_bulk"), &ended, odd_time(), 2).unwrap(),
        bulk::advance_update(backend, &record("call_other"), &queued, odd_time(), 1).unwrap(),
    ];
    let txn = db.begin().await.unwrap();
    let mut returned = bulk::advance(&txn, &advances.iter().collect::<Vec<_>>()).await.unwrap();
    txn.commit().await.unwrap();
    returned.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        returned.iter().map(|r| (r.id.as_str(), r.event_seq)).collect::<Vec<_>>(),
        [("call_bulk", 3), ("call_other", 2)]
    );
    assert_eq!(call::Model { id: "call_orm".into(), ..returned[0].clone() }, by_orm, "the row handed back");
    let call_row = |id: &'static str| row_as_text::<call::Column>(&db, call::Entity.table_name(), "id", id, &["id"]);
    assert_eq!(call_row("call_bulk").await, call_row("call_orm").await, "the row stored");

    let elsewhere = CallRecord { workspace_id: "ws_other".into(), ..record("call_other") };
    for missing in [record("call_missing"), elsewhere] {
        let advances = [
            bulk::advance_update(backend, &record("call_bulk"), &ended, odd_time(), 1).unwrap(),
            bulk::advance_update(backend, &missing, &ended, odd_time(), 1).unwrap(),
        ];
        let txn = db.begin().await.unwrap();
        let error = bulk::advance(&txn, &advances.iter().collect::<Vec<_>>()).await.expect_err("a call is missing");
        txn.rollback().await.unwrap();
        assert!(matches!(error, DbErr::RecordNotFound(_)), "{error:?}");
    }
    assert_eq!(calls::find(&db, "call_bulk").await.unwrap().unwrap().event_seq, 3, "rolled back");
}
