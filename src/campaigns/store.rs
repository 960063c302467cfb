//! Storage of campaigns: rows and state changes (each with its `campaign.*` event in the same
//! transaction), their contacts, statistics, and [`SeaCampaignStore`], the campaign actors' port.
//! Leasing is one conditional `UPDATE … RETURNING` over a sub-select of due contacts, the same on
//! SQLite and PostgreSQL, so no contact is ever leased twice.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use dialplane_actors::ports::{CampaignPlan, CampaignStore, ContactUpdate, FinishedAttempt, LeasedContact, StoreError};
use sea_orm::sea_query::{CaseStatement, Expr, OnConflict, Query, SelectStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, IntoActiveModel, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Value, json};

use super::settings::Settings;
use crate::ids;
use crate::store::entities::{call, campaign, campaign_contact};
use crate::telemetry;
use crate::webhooks::SubscriptionDirectory;
use crate::webhooks::store::{self as webhook_store, WakeSender};

/// Contact states.
pub const PENDING: &str = "pending";
pub const DIALING: &str = "dialing";
pub const DONE: &str = "done";
pub const CANCELED: &str = "canceled";

/// Where `campaign.*` events go.
#[derive(Clone)]
pub struct Events {
    pub directory: Arc<SubscriptionDirectory>,
    pub wake: WakeSender,
}

impl Events {
    /// Writes a `campaign.*` event for the workspace's subscribers in `conn`'s transaction.
    async fn record(
        &self,
        conn: &impl ConnectionTrait,
        row: &campaign::Model,
        event_type: &str,
        at: DateTime<Utc>,
    ) -> Result<Vec<String>, DbErr> {
        let event =
            webhook_store::Event { workspace_id: &row.workspace_id, event_type, call_id: None, at, except: None };
        let data = || json!({ "campaign_id": row.id, "name": row.name, "state": row.state });
        webhook_store::fan_out(conn, &self.directory, event, data).await
    }

    fn wake(&self, woken: Vec<String>) {
        if !woken.is_empty() {
            let _ = self.wake.send(woken);
        }
    }
}

/// Returns the settings stored with a campaign.
pub fn settings_of(row: &campaign::Model) -> Settings {
    serde_json::from_str(&row.settings).unwrap_or_default()
}

/// Creates a campaign in `draft`.
pub async fn create(
    db: &DatabaseConnection,
    workspace_id: &str,
    user_id: &str,
    name: &str,
    settings: &Settings,
) -> Result<campaign::Model, DbErr> {
    let now = Utc::now();
    campaign::ActiveModel {
        id: Set(ids::new_id("cmp")),
        workspace_id: Set(workspace_id.to_string()),
        user_id: Set(user_id.to_string()),
        name: Set(name.to_string()),
        state: Set("draft".to_string()),
        settings: Set(serde_json::to_string(settings).expect("settings serialize")),
        created_at: Set(now),
        updated_at: Set(now),
        launched_at: Set(None),
        finished_at: Set(None),
    }
    .insert(db)
    .await
}

/// Returns a workspace's campaign.
pub async fn find(db: &impl ConnectionTrait, workspace_id: &str, id: &str) -> Result<Option<campaign::Model>, DbErr> {
    Ok(campaign::Entity::find_by_id(id.to_string()).one(db).await?.filter(|c| c.workspace_id == workspace_id))
}

/// Reads a campaign inside a write transaction and, on PostgreSQL, locks its row until the
/// transaction ends (`FOR UPDATE`): a state change decided on what it read cannot race another
/// (a stop and the campaign's completion would both succeed and both emit their events). SQLite
/// needs no lock: its write transactions (`BEGIN IMMEDIATE`) run one at a time.
async fn find_for_update(txn: &DatabaseTransaction, id: &str) -> Result<Option<campaign::Model>, DbErr> {
    campaign::Entity::find_by_id(id.to_string()).lock_exclusive().one(txn).await
}

/// Returns one page of a workspace's campaigns, newest first.
pub async fn list(
    db: &DatabaseConnection,
    workspace_id: &str,
    page: u64,
    page_size: u64,
) -> Result<(Vec<campaign::Model>, u64), DbErr> {
    let query = campaign::Entity::find()
        .filter(campaign::Column::WorkspaceId.eq(workspace_id))
        .order_by_desc(campaign::Column::CreatedAt)
        .order_by_desc(campaign::Column::Id);
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

/// Saves a campaign's name and settings, and only those: a state change made meanwhile (pause,
/// stop, completion) is never written back over. Returns `None` when the campaign finished meanwhile.
pub async fn update(
    db: &DatabaseConnection,
    row: &campaign::Model,
    name: String,
    settings: &Settings,
) -> Result<Option<campaign::Model>, DbErr> {
    let result = campaign::Entity::update_many()
        .filter(campaign::Column::Id.eq(row.id.as_str()))
        .filter(campaign::Column::State.is_not_in(["completed", "stopped"]))
        .col_expr(campaign::Column::Name, Expr::value(name))
        .col_expr(campaign::Column::Settings, Expr::value(serde_json::to_string(settings).expect("settings serialize")))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(Utc::now()))
        .exec(db)
        .await?;
    if result.rows_affected == 0 {
        return Ok(None);
    }
    campaign::Entity::find_by_id(row.id.clone()).one(db).await
}

/// Deletes a campaign and its contacts (its calls stay, as call history).
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    campaign_contact::Entity::delete_many().filter(campaign_contact::Column::CampaignId.eq(id)).exec(&txn).await?;
    campaign::Entity::delete_by_id(id.to_string()).exec(&txn).await?;
    txn.commit().await
}

/// The result of a state change request.
pub enum Transition {
    /// The campaign moved to the new state and its event was recorded.
    Moved(campaign::Model),
    /// It already was there: nothing changed, no event.
    Unchanged(campaign::Model),
    /// Not from this state.
    Refused(String),
}

/// Moves a campaign: `launch` (draft → running, or → scheduled before its `starts_at`), `pause`
/// (running → paused), `resume` (paused → running), `stop` (any active state → stopped, remaining
/// contacts canceled). The state change and its event are one transaction.
pub async fn transition(
    db: &DatabaseConnection,
    events: &Events,
    workspace_id: &str,
    id: &str,
    action: &str,
) -> Result<Option<Transition>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let Some(mut row) = find_for_update(&txn, id).await?.filter(|row| row.workspace_id == workspace_id) else {
        return Ok(None);
    };
    let now = Utc::now();
    // Launched before its `starts_at`, a campaign is scheduled: its actor starts it then.
    let launched = if settings_of(&row).starts_at.is_some_and(|at| at > now) { "scheduled" } else { "running" };
    let (target, event, allowed): (&str, &str, &[&str]) = match action {
        "launch" => (launched, "campaign.launched", &["draft"]),
        "pause" => ("paused", "campaign.paused", &["running"]),
        "resume" => ("running", "campaign.resumed", &["paused"]),
        _ => ("stopped", "campaign.stopped", &["draft", "scheduled", "running", "paused"]),
    };
    let already = row.state == target || (action == "launch" && ["scheduled", "running"].contains(&row.state.as_str()));
    if already {
        return Ok(Some(Transition::Unchanged(row)));
    }
    if !allowed.contains(&row.state.as_str()) {
        return Ok(Some(Transition::Refused(format!("Cannot {action} a campaign that is {}", row.state))));
    }
    row.state = target.to_string();
    row.updated_at = now;
    if action == "launch" {
        row.launched_at = Some(now);
    }
    if action == "stop" {
        row.finished_at = Some(now);
        campaign_contact::Entity::update_many()
            .filter(campaign_contact::Column::CampaignId.eq(id))
            .filter(campaign_contact::Column::State.eq(PENDING))
            .col_expr(campaign_contact::Column::State, Expr::value(CANCELED))
            .col_expr(campaign_contact::Column::UpdatedAt, Expr::value(now))
            .exec(&txn)
            .await?;
    }
    let row = row.into_active_model().reset_all().update(&txn).await?;
    let woken = events.record(&txn, &row, event, now).await?;
    txn.commit().await?;
    events.wake(woken);
    Ok(Some(Transition::Moved(row)))
}

/// A contact to add to a campaign.
pub struct CampaignContactIn {
    pub contact_id: Option<String>,
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub variables: serde_json::Map<String, Value>,
}

/// Adds contacts to a campaign; a number already in it is skipped (`ON CONFLICT DO NOTHING` on
/// the campaign's unique phone index, which stays fast however large the campaign grows). Returns
/// how many were added.
pub async fn add_contacts(
    db: &DatabaseConnection,
    row: &campaign::Model,
    contacts: &[CampaignContactIn],
) -> Result<usize, DbErr> {
    let now = Utc::now();
    let txn = crate::store::begin_write(db).await?;
    let mut added = 0;
    for batch in contacts.chunks(200) {
        let rows: Vec<campaign_contact::ActiveModel> = batch
            .iter()
            .map(|c| {
                let timezone = c
                    .timezone
                    .clone()
                    .or_else(|| crate::contacts::phone::timezone_of(&c.phone).map(|tz| tz.name().to_string()))
                    .unwrap_or_else(|| "UTC".to_string());
                campaign_contact::ActiveModel {
                    campaign_id: Set(row.id.clone()),
                    workspace_id: Set(row.workspace_id.clone()),
                    contact_id: Set(c.contact_id.clone()),
                    phone: Set(c.phone.clone()),
                    name: Set(c.name.clone()),
                    timezone: Set(timezone),
                    variables: Set(Value::Object(c.variables.clone()).to_string()),
                    state: Set(PENDING.to_string()),
                    attempts: Set(0),
                    next_attempt_at: Set(now),
                    call_id: Set(None),
                    last_outcome: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
            })
            .collect();
        let inserted = campaign_contact::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([campaign_contact::Column::CampaignId, campaign_contact::Column::Phone])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await?;
        added += usize::try_from(inserted).unwrap_or(0);
    }
    txn.commit().await?;
    Ok(added)
}

#[derive(Debug, FromQueryResult)]
struct Count {
    key: Option<String>,
    n: i64,
}

/// A campaign's statistics, from the database: contacts by state, attempts, calls by outcome,
/// answered, answer rate and average duration of answered calls.
pub async fn stats(db: &DatabaseConnection, id: &str) -> Result<Value, DbErr> {
    let by_state = campaign_contact::Entity::find()
        .select_only()
        .column_as(campaign_contact::Column::State, "key")
        .column_as(campaign_contact::Column::Id.count(), "n")
        .filter(campaign_contact::Column::CampaignId.eq(id))
        .group_by(campaign_contact::Column::State)
        .into_model::<Count>()
        .all(db)
        .await?;
    let outcomes = call::Entity::find()
        .select_only()
        .column_as(call::Column::Status, "key")
        .column_as(call::Column::Id.count(), "n")
        .filter(call::Column::CampaignId.eq(id))
        .group_by(call::Column::Status)
        .into_model::<Count>()
        .all(db)
        .await?;
    let attempts: i64 = outcomes.iter().map(|c| c.n).sum();
    let answered = outcomes.iter().find(|c| c.key.as_deref() == Some("completed")).map_or(0, |c| c.n);
    let ended: i64 = outcomes
        .iter()
        .filter(|c| matches!(c.key.as_deref(), Some("completed" | "busy" | "no_answer" | "failed" | "canceled")))
        .map(|c| c.n)
        .sum();
    let durations: Vec<Option<i32>> = call::Entity::find()
        .select_only()
        .column(call::Column::DurationS)
        .filter(call::Column::CampaignId.eq(id))
        .filter(call::Column::Status.eq("completed"))
        .into_tuple::<Option<i32>>()
        .all(db)
        .await?;
    let known: Vec<i32> = durations.into_iter().flatten().collect();
    let average = (!known.is_empty()).then(|| known.iter().map(|d| f64::from(*d)).sum::<f64>() / known.len() as f64);
    let to_map =
        |rows: &[Count]| Value::Object(rows.iter().map(|c| (c.key.clone().unwrap_or_default(), json!(c.n))).collect());
    Ok(json!({
        "campaign_id": id,
        "contacts": to_map(&by_state),
        "contacts_total": by_state.iter().map(|c| c.n).sum::<i64>(),
        "attempts": attempts,
        "answered": answered,
        "answer_rate": if ended > 0 { answered as f64 / ended as f64 } else { 0.0 },
        "average_duration_s": average,
        "outcomes": to_map(&outcomes),
    }))
}

/// A campaign's live status: in-flight calls, calls placed in the last minute, and when the next
/// pending contact is due.
pub async fn status(db: &DatabaseConnection, row: &campaign::Model) -> Result<Value, DbErr> {
    let in_flight = campaign_contact::Entity::find()
        .filter(campaign_contact::Column::CampaignId.eq(row.id.as_str()))
        .filter(campaign_contact::Column::State.eq(DIALING))
        .count(db)
        .await?;
    let minute_ago = Utc::now() - chrono::Duration::seconds(60);
    let last_minute = call::Entity::find()
        .filter(call::Column::CampaignId.eq(row.id.as_str()))
        .filter(call::Column::CreatedAt.gte(minute_ago))
        .count(db)
        .await?;
    let next = campaign_contact::Entity::find()
        .filter(campaign_contact::Column::CampaignId.eq(row.id.as_str()))
        .filter(campaign_contact::Column::State.eq(PENDING))
        .order_by_asc(campaign_contact::Column::NextAttemptAt)
        .one(db)
        .await?;
    let pending = campaign_contact::Entity::find()
        .filter(campaign_contact::Column::CampaignId.eq(row.id.as_str()))
        .filter(campaign_contact::Column::State.eq(PENDING))
        .count(db)
        .await?;
    telemetry::campaign_gauges(&row.id, in_flight, pending);
    Ok(json!({
        "campaign_id": row.id,
        "state": row.state,
        "in_flight": in_flight,
        "pending": pending,
        "dial_rate_per_minute": last_minute,
        "next_due_at": next.map(|c| crate::call_view::iso(c.next_attempt_at)),
    }))
}

/// The campaign actors' `CampaignStore` port on sea-orm.
pub struct SeaCampaignStore {
    pub db: DatabaseConnection,
    pub events: Events,
    pub workspace_max_concurrent: u32,
}

fn store_error(e: DbErr) -> StoreError {
    StoreError(e.to_string())
}

/// Selects the ids of up to `n` of a campaign's due, pending contacts, oldest due first, ties
/// broken by id: the order `idx_campaign_contacts_due_by_id` keeps, so the first `n` are read, not
/// all.
pub fn due_contacts_query(campaign_id: &str, n: u32, now: DateTime<Utc>) -> SelectStatement {
    Query::select()
        .column(campaign_contact::Column::Id)
        .from(campaign_contact::Entity)
        .and_where(campaign_contact::Column::CampaignId.eq(campaign_id))
        .and_where(campaign_contact::Column::State.eq(PENDING))
        .and_where(campaign_contact::Column::NextAttemptAt.lte(now))
        .order_by(campaign_contact::Column::NextAttemptAt, sea_orm::Order::Asc)
        .order_by(campaign_contact::Column::Id, sea_orm::Order::Asc)
        .limit(u64::from(n))
        .to_owned()
}

/// Contacts settled by one `UPDATE`: with a due time each, that is two bound values per contact,
/// well under either database's limit.
const SETTLED_PER_STATEMENT: usize = 500;

/// What a decision writes to a contact, apart from its own due time.
#[derive(PartialEq)]
struct Settlement<'a> {
    state: &'a str,
    outcome: Option<&'a str>,
    /// Whether it sets the contact's due time.
    due: bool,
}

/// Contacts given the same decision, each with its own due time if the decision sets one.
type Settled = Vec<(i64, Option<DateTime<Utc>>)>;

/// Groups decisions by what they write, so a batch is settled by a statement per kind of decision,
/// not one per contact; each contact comes with its due time, if it gets one. A contact given two
/// decisions keeps the first, as when each was its own conditional update.
fn settlements<'a>(updates: &'a [(i64, ContactUpdate)], waiting: &'a str) -> Vec<(Settlement<'a>, Settled)> {
    let mut seen = HashSet::with_capacity(updates.len());
    let mut groups: Vec<(Settlement<'a>, Settled)> = Vec::new();
    for (id, update) in updates {
        if !seen.insert(*id) {
            continue;
        }
        let (settlement, due) = match update {
            ContactUpdate::RetryAt { outcome, at } => {
                (Settlement { state: waiting, outcome: Some(outcome), due: true }, Some(*at))
            }
            ContactUpdate::Done { outcome } => (Settlement { state: DONE, outcome: Some(outcome), due: false }, None),
            ContactUpdate::Later(at) => (Settlement { state: waiting, outcome: None, due: true }, Some(*at)),
            ContactUpdate::Never(reason) => (Settlement { state: reason, outcome: None, due: false }, None),
        };
        match groups.iter_mut().find(|(s, _)| *s == settlement) {
            Some((_, contacts)) => contacts.push((*id, due)),
            None => groups.push((settlement, vec![(*id, due)])),
        }
    }
    groups
}

/// The due times of settled contacts, as one value when they share it, else by id; `None` when
/// their decision sets none.
fn due_times(contacts: &[(i64, Option<DateTime<Utc>>)]) -> Option<Expr> {
    let first = contacts.first()?.1?;
    if contacts.iter().all(|(_, due)| *due == Some(first)) {
        return Some(Expr::value(first));
    }
    let by_id = contacts.iter().fold(CaseStatement::new(), |case, (id, due)| {
        case.case(campaign_contact::Column::Id.eq(*id), Expr::value(*due))
    });
    Some(by_id.finally(Expr::col(campaign_contact::Column::NextAttemptAt)).into())
}

#[async_trait]
impl CampaignStore for SeaCampaignStore {
    async fn load(&self, campaign_id: &str) -> Result<Option<CampaignPlan>, StoreError> {
        let Some(row) =
            campaign::Entity::find_by_id(campaign_id.to_string()).one(&self.db).await.map_err(store_error)?
        else {
            return Ok(None);
        };
        let settings = settings_of(&row);
        Ok(Some(CampaignPlan {
            id: row.id,
            workspace_id: row.workspace_id,
            state: row.state,
            pacing: settings.pacing(),
            schedule: settings.schedule(),
            retry: settings.retry(),
            workspace_max_concurrent: self.workspace_max_concurrent,
        }))
    }

    async fn recover(&self, campaign_id: &str) -> Result<(), StoreError> {
        campaign_contact::Entity::update_many()
            .filter(campaign_contact::Column::CampaignId.eq(campaign_id))
            .filter(campaign_contact::Column::State.eq(DIALING))
            .filter(campaign_contact::Column::CallId.is_null())
            .col_expr(campaign_contact::Column::State, Expr::value(PENDING))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn finished_attempts(&self, campaign_id: &str) -> Result<Vec<FinishedAttempt>, StoreError> {
        let dialing = campaign_contact::Entity::find()
            .filter(campaign_contact::Column::CampaignId.eq(campaign_id))
            .filter(campaign_contact::Column::State.eq(DIALING))
            .filter(campaign_contact::Column::CallId.is_not_null())
            .all(&self.db)
            .await
            .map_err(store_error)?;
        if dialing.is_empty() {
            return Ok(Vec::new());
        }
        let calls = call::Entity::find()
            .filter(call::Column::Id.is_in(dialing.iter().filter_map(|c| c.call_id.clone())))
            .filter(call::Column::EndedAt.is_not_null())
            .all(&self.db)
            .await
            .map_err(store_error)?;
        Ok(dialing
            .iter()
            .filter_map(|contact| {
                let call = calls.iter().find(|c| Some(&c.id) == contact.call_id.as_ref())?;
                Some(FinishedAttempt {
                    contact_id: contact.id,
                    attempts: u32::try_from(contact.attempts).unwrap_or(0),
                    outcome: call.status.clone(),
                    ended_at: call.ended_at?,
                })
            })
            .collect())
    }

    async fn update_contacts(&self, campaign_id: &str, updates: &[(i64, ContactUpdate)]) -> Result<(), StoreError> {
        let txn = crate::store::begin_write(&self.db).await.map_err(store_error)?;
        let now = Utc::now();
        // In a stopped campaign nothing is due again: what would wait is canceled.
        let stopped =
            find_for_update(&txn, campaign_id).await.map_err(store_error)?.is_none_or(|row| row.state == "stopped");
        let waiting = if stopped { CANCELED } else { PENDING };
        for (_, update) in updates {
            if let ContactUpdate::RetryAt { outcome, .. } | ContactUpdate::Done { outcome } = update {
                telemetry::campaign_outcome(campaign_id, outcome);
            }
        }
        for (settlement, contacts) in settlements(updates, waiting) {
            for chunk in contacts.chunks(SETTLED_PER_STATEMENT) {
                let mut change = campaign_contact::Entity::update_many()
                    .filter(campaign_contact::Column::Id.is_in(chunk.iter().map(|(id, _)| *id)))
                    .filter(campaign_contact::Column::CampaignId.eq(campaign_id))
                    .filter(campaign_contact::Column::State.eq(DIALING))
                    .col_expr(campaign_contact::Column::UpdatedAt, Expr::value(now))
                    .col_expr(campaign_contact::Column::State, Expr::value(settlement.state));
                if let Some(outcome) = settlement.outcome {
                    change = change.col_expr(campaign_contact::Column::LastOutcome, Expr::value(outcome));
                }
                if let Some(due) = due_times(chunk) {
                    change = change.col_expr(campaign_contact::Column::NextAttemptAt, due);
                }
                change.exec(&txn).await.map_err(store_error)?;
            }
        }
        txn.commit().await.map_err(store_error)
    }

    async fn in_flight(&self, campaign_id: &str) -> Result<u32, StoreError> {
        // One grouped count gives the tick its in-flight calls and keeps the campaign's gauges current.
        let counts = campaign_contact::Entity::find()
            .select_only()
            .column_as(campaign_contact::Column::State, "key")
            .column_as(campaign_contact::Column::Id.count(), "n")
            .filter(campaign_contact::Column::CampaignId.eq(campaign_id))
            .filter(campaign_contact::Column::State.is_in([PENDING, DIALING]))
            .group_by(campaign_contact::Column::State)
            .into_model::<Count>()
            .all(&self.db)
            .await
            .map_err(store_error)?;
        let of = |state: &str| counts.iter().find(|c| c.key.as_deref() == Some(state)).map_or(0, |c| c.n);
        let (dialing, pending) = (of(DIALING), of(PENDING));
        telemetry::campaign_gauges(
            campaign_id,
            u64::try_from(dialing).unwrap_or(0),
            u64::try_from(pending).unwrap_or(0),
        );
        Ok(u32::try_from(dialing).unwrap_or(u32::MAX))
    }

    async fn lease(&self, campaign_id: &str, n: u32, now: DateTime<Utc>) -> Result<Vec<LeasedContact>, StoreError> {
        let due = due_contacts_query(campaign_id, n, now);
        let leased = campaign_contact::Entity::update_many()
            .col_expr(campaign_contact::Column::State, Expr::value(DIALING))
            .col_expr(campaign_contact::Column::CallId, Expr::value(Option::<String>::None))
            .col_expr(campaign_contact::Column::UpdatedAt, Expr::value(now))
            .filter(campaign_contact::Column::Id.in_subquery(due))
            .filter(campaign_contact::Column::State.eq(PENDING))
            .exec_with_returning(&self.db)
            .await
            .map_err(store_error)?;
        let mut leased: Vec<LeasedContact> = leased
            .into_iter()
            .map(|c| LeasedContact {
                id: c.id,
                phone: c.phone,
                timezone: c.timezone,
                attempts: u32::try_from(c.attempts).unwrap_or(0),
                next_attempt_at: c.next_attempt_at,
            })
            .collect();
        leased.sort_by_key(|c| (c.next_attempt_at, c.id));
        Ok(leased)
    }

    async fn blocked(&self, campaign: &CampaignPlan, phones: &[String]) -> Result<HashSet<String>, StoreError> {
        crate::contacts::store::blocked(&self.db, &campaign.workspace_id, Some(&campaign.id), phones)
            .await
            .map_err(store_error)
    }

    async fn launched(&self, contact_id: i64, attempt: u32, call_id: &str) -> Result<(), StoreError> {
        campaign_contact::Entity::update_many()
            .filter(campaign_contact::Column::Id.eq(contact_id))
            .filter(campaign_contact::Column::State.eq(DIALING))
            .col_expr(campaign_contact::Column::CallId, Expr::value(call_id))
            .col_expr(campaign_contact::Column::Attempts, Expr::value(i32::try_from(attempt).unwrap_or(i32::MAX)))
            .col_expr(campaign_contact::Column::UpdatedAt, Expr::value(Utc::now()))
            .exec(&self.db)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn complete_if_done(&self, campaign_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        // Read first: an idle campaign waiting for a window must not take the write lock every tick.
        let open_contacts = || {
            campaign_contact::Entity::find()
                .filter(campaign_contact::Column::CampaignId.eq(campaign_id))
                .filter(campaign_contact::Column::State.is_in([PENDING, DIALING]))
        };
        let ends_at = campaign::Entity::find_by_id(campaign_id.to_string())
            .one(&self.db)
            .await
            .map_err(store_error)?
            .and_then(|row| settings_of(&row).ends_at);
        let ended = ends_at.is_some_and(|end| end <= now);
        if !ended && open_contacts().count(&self.db).await.map_err(store_error)? > 0 {
            return Ok(false);
        }
        let txn = crate::store::begin_write(&self.db).await.map_err(store_error)?;
        let row = find_for_update(&txn, campaign_id).await.map_err(store_error)?;
        let Some(mut row) = row.filter(|r| r.state == "running") else { return Ok(false) };
        // Past the campaign's end, contacts still waiting for a later window never will be called.
        if ended {
            campaign_contact::Entity::update_many()
                .filter(campaign_contact::Column::CampaignId.eq(campaign_id))
                .filter(campaign_contact::Column::State.eq(PENDING))
                .col_expr(campaign_contact::Column::State, Expr::value("expired"))
                .col_expr(campaign_contact::Column::UpdatedAt, Expr::value(now))
                .exec(&txn)
                .await
                .map_err(store_error)?;
        }
        if open_contacts().count(&txn).await.map_err(store_error)? > 0 {
            return Ok(false);
        }
        row.state = "completed".to_string();
        row.finished_at = Some(now);
        row.updated_at = now;
        let row = row.into_active_model().reset_all().update(&txn).await.map_err(store_error)?;
        let woken = self.events.record(&txn, &row, "campaign.completed", now).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        self.events.wake(woken);
        Ok(true)
    }

    async fn start_scheduled(&self, campaign_id: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let txn = crate::store::begin_write(&self.db).await.map_err(store_error)?;
        let row = find_for_update(&txn, campaign_id).await.map_err(store_error)?;
        let Some(mut row) = row.filter(|r| r.state == "scheduled") else { return Ok(false) };
        row.state = "running".to_string();
        row.updated_at = now;
        row.into_active_model().reset_all().update(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(true)
    }
}

/// Returns the campaigns whose actors should run: scheduled, running and paused ones, and stopped
/// ones with calls still in flight (their outcomes must still be recorded).
pub async fn active(db: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let mut ids: Vec<String> = campaign::Entity::find()
        .select_only()
        .column(campaign::Column::Id)
        .filter(campaign::Column::State.is_in(["scheduled", "running", "paused"]))
        .into_tuple::<String>()
        .all(db)
        .await?;
    let dialing: Vec<String> = campaign_contact::Entity::find()
        .select_only()
        .column(campaign_contact::Column::CampaignId)
        .filter(campaign_contact::Column::State.eq(DIALING))
        .distinct()
        .into_tuple::<String>()
        .all(db)
        .await?;
    for id in dialing {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}
