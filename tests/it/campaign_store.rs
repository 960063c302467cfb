//! The campaign actors' store on its own: a batch of decisions is settled by a statement per kind
//! of decision, each contact getting its own due time and the first decision it was given, and the
//! due contacts are read in lease order straight from their index, and a stop racing a campaign's
//! completion leaves it stopped or completed, never both.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, DurationRound, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, Statement};

use dialplane::campaigns::store::{self as campaigns, CampaignContactIn, Events, SeaCampaignStore};
use dialplane::store::entities::{campaign, campaign_contact};
use dialplane_actors::ports::{CampaignStore, ContactUpdate};

use crate::support::fresh_database;

/// A migrated database holding a draft campaign with `contacts` due contacts, and how many
/// statements the connection has run so far.
struct Fixture {
    db: DatabaseConnection,
    url: String,
    campaign: campaign::Model,
    statements: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

async fn fixture(contacts: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(&dir).await;
    let mut db = dialplane::store::connect(&url, std::time::Duration::from_secs(10)).await.unwrap();
    let statements = Arc::new(AtomicUsize::new(0));
    let counted = statements.clone();
    db.set_metric_callback(move |_| {
        counted.fetch_add(1, Ordering::SeqCst);
    });
    let user = dialplane::store::users::create(&db, "store@example.com", "x", "member").await.unwrap();
    let settings = dialplane::campaigns::settings::Settings {
        agent_number: "918888888888".into(),
        caller_ids: vec!["+919484956750".into()],
        ..Default::default()
    };
    let campaign = campaigns::create(&db, &user.workspace_id, &user.id, "store", &settings).await.unwrap();
    let rows: Vec<CampaignContactIn> = (0..contacts)
        .map(|n| CampaignContactIn {
            contact_id: None,
            phone: format!("+9198{n:08}"),
            name: None,
            timezone: Some("UTC".into()),
            variables: serde_json::Map::new(),
        })
        .collect();
    campaigns::add_contacts(&db, &campaign, &rows).await.unwrap();
    Fixture { db, url, campaign, statements, _dir: dir }
}

/// Where `campaign.*` events would go: no subscriber listens.
fn events() -> Events {
    let (wake, _) = tokio::sync::mpsc::unbounded_channel();
    Events { directory: Arc::new(dialplane::webhooks::SubscriptionDirectory::default()), wake }
}

impl Fixture {
    fn store(&self) -> SeaCampaignStore {
        SeaCampaignStore { db: self.db.clone(), events: events(), workspace_max_concurrent: u32::MAX }
    }

    /// The campaign's contacts by id: state, last outcome and due time.
    async fn contacts(&self) -> Vec<(i64, String, Option<String>, DateTime<Utc>)> {
        let mut rows = campaign_contact::Entity::find()
            .filter(campaign_contact::Column::CampaignId.eq(&self.campaign.id))
            .all(&self.db)
            .await
            .unwrap();
        rows.sort_by_key(|c| c.id);
        rows.into_iter().map(|c| (c.id, c.state, c.last_outcome, c.next_attempt_at)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_decisions_is_settled_by_a_statement_per_kind_each_contact_with_its_own() {
    let fixture = fixture(40).await;
    let store = fixture.store();
    let leased = store.lease(&fixture.campaign.id, 40, Utc::now()).await.unwrap();
    assert_eq!(leased.len(), 40);
    let id = |n: usize| leased[n].id;
    let base = Utc::now().duration_trunc(Duration::seconds(1)).unwrap() + Duration::hours(1);
    let minutes = |n: usize| base + Duration::minutes(i64::try_from(n).unwrap());
    let mut updates = Vec::new();
    for n in 0..10 {
        updates.push((id(n), ContactUpdate::Done { outcome: "completed".into() }));
    }
    for n in 10..20 {
        updates.push((id(n), ContactUpdate::RetryAt { outcome: "busy".into(), at: minutes(n) }));
    }
    for n in 20..25 {
        updates.push((id(n), ContactUpdate::RetryAt { outcome: "no-answer".into(), at: base }));
    }
    for n in 25..32 {
        updates.push((id(n), ContactUpdate::Later(minutes(n))));
    }
    for n in 32..36 {
        updates.push((id(n), ContactUpdate::Never("dnc".into())));
    }
    // A contact given two decisions keeps the first.
    updates.push((id(36), ContactUpdate::Never("expired".into())));
    updates.push((id(36), ContactUpdate::Done { outcome: "completed".into() }));
    // Contacts 37 to 39 are given none and stay dialing.

    let before = fixture.statements.load(Ordering::SeqCst);
    store.update_contacts(&fixture.campaign.id, &updates).await.unwrap();
    let ran = fixture.statements.load(Ordering::SeqCst) - before;
    // The campaign's state, then one UPDATE per kind: done, busy, no-answer, later, dnc, expired.
    assert!((6..=9).contains(&ran), "{ran} statements settled 37 decisions of 6 kinds");

    let leased_at = fixture.contacts().await;
    for (n, (contact, state, outcome, due)) in leased_at.iter().enumerate() {
        assert_eq!(*contact, id(n));
        let (want_state, want_outcome) = match n {
            0..10 => ("done", Some("completed")),
            10..20 => ("pending", Some("busy")),
            20..25 => ("pending", Some("no-answer")),
            25..32 => ("pending", None),
            32..36 => ("dnc", None),
            36 => ("expired", None),
            _ => ("dialing", None),
        };
        assert_eq!((state.as_str(), outcome.as_deref()), (want_state, want_outcome), "contact {n}");
        match n {
            10..20 | 25..32 => assert_eq!(*due, minutes(n), "contact {n}"),
            20..25 => assert_eq!(*due, base, "contact {n}"),
            _ => assert!(*due < base, "contact {n} keeps its first due time"),
        }
    }

    // Settled contacts are no longer dialing: a decision about them changes nothing.
    let again: Vec<_> = (0..40).map(|n| (id(n), ContactUpdate::Never("dnc".into()))).collect();
    store.update_contacts(&fixture.campaign.id, &again).await.unwrap();
    let after = fixture.contacts().await;
    for n in 0..37 {
        assert_eq!(after[n], leased_at[n], "contact {n}");
    }
    assert!(after[37..].iter().all(|c| c.1 == "dnc"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_contacts_are_read_in_lease_order_from_their_index_without_a_sort() {
    let fixture = fixture(3).await;
    // A pool opened after the migrations: SQLite's `EXPLAIN QUERY PLAN` does not check that a
    // connection's copy of the schema is current.
    let db = dialplane::store::open(&fixture.url).await.unwrap();
    let query = campaigns::due_contacts_query(&fixture.campaign.id, 500, Utc::now());
    let backend = db.get_database_backend();
    let built = backend.build(&query);
    let values = built.values.clone().map(|values| values.0).unwrap_or_default();
    let plan: Vec<String> = match backend {
        DbBackend::Postgres => {
            // However small the table, the planner must show whether the index gives the order.
            let txn = sea_orm::TransactionTrait::begin(&db).await.unwrap();
            txn.execute_unprepared(
                "SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off",
            )
            .await
            .unwrap();
            let explain = Statement::from_sql_and_values(backend, format!("EXPLAIN {}", built.sql), values);
            let rows = txn.query_all_raw(explain).await.unwrap();
            rows.iter().map(|row| row.try_get_by_index::<String>(0).unwrap()).collect()
        }
        _ => {
            let explain = Statement::from_sql_and_values(backend, format!("EXPLAIN QUERY PLAN {}", built.sql), values);
            let rows = db.query_all_raw(explain).await.unwrap();
            rows.iter().map(|row| row.try_get::<String>("", "detail").unwrap()).collect()
        }
    };
    assert!(plan.iter().any(|step| step.contains("idx_campaign_contacts_due")), "{plan:?}");
    assert!(plan.iter().all(|step| !step.contains("Sort") && !step.contains("B-TREE")), "{plan:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_racing_the_campaigns_completion_lets_only_one_of_them_happen() {
    let fixture = fixture(0).await;
    let (workspace, user) = (fixture.campaign.workspace_id.clone(), fixture.campaign.user_id.clone());
    let settings = campaigns::settings_of(&fixture.campaign);
    for round in 0..30 {
        // A running campaign with nothing left to dial: its actor would complete it now.
        let row = campaigns::create(&fixture.db, &workspace, &user, "race", &settings).await.unwrap();
        let launched = campaigns::transition(&fixture.db, &events(), &workspace, &row.id, "launch").await.unwrap();
        assert!(matches!(launched, Some(campaigns::Transition::Moved(_))));
        let stop = {
            let (db, workspace, id) = (fixture.db.clone(), workspace.clone(), row.id.clone());
            tokio::spawn(async move { campaigns::transition(&db, &events(), &workspace, &id, "stop").await.unwrap() })
        };
        let complete = {
            let (store, id) = (fixture.store(), row.id.clone());
            tokio::spawn(async move { store.complete_if_done(&id, Utc::now()).await.unwrap() })
        };
        let (stop, completed) = (stop.await.unwrap(), complete.await.unwrap());
        let stopped = matches!(stop, Some(campaigns::Transition::Moved(_)));
        assert!(stopped != completed, "round {round}: stopped {stopped}, completed {completed}");
        let state = campaign::Entity::find_by_id(row.id.clone()).one(&fixture.db).await.unwrap().unwrap().state;
        assert_eq!(state, if stopped { "stopped" } else { "completed" }, "round {round}");
    }
}
