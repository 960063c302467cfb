//! Storage of contacts and do-not-call entries. Contacts are unique by E.164 phone per workspace:
//! bulk writes and imports merge a repeated number into the existing contact (a given name or
//! timezone replaces the old one, variables are merged key by key). Do-not-call entries apply to
//! the whole workspace or to one campaign.

use std::collections::{HashMap, HashSet};

use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Func, LikeExpr, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::{Map, Value};

use crate::ids;
use crate::store::entities::{contact, dnc_entry};

/// A contact as given by a request or an imported row.
#[derive(Clone, Debug, PartialEq)]
pub struct NewContact {
    pub phone: String,
    pub name: Option<String>,
    pub timezone: Option<String>,
    pub variables: Map<String, Value>,
}

/// How many contacts a write created and how many it merged into existing ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Upserted {
    pub created: usize,
    pub merged: usize,
}

fn variables_of(row: &contact::Model) -> Map<String, Value> {
    match serde_json::from_str(&row.variables) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// Returns a workspace's contact.
pub async fn find(db: &impl ConnectionTrait, workspace_id: &str, id: &str) -> Result<Option<contact::Model>, DbErr> {
    Ok(contact::Entity::find_by_id(id.to_string()).one(db).await?.filter(|c| c.workspace_id == workspace_id))
}

/// Returns a workspace's contact by phone.
pub async fn find_by_phone(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    phone: &str,
) -> Result<Option<contact::Model>, DbErr> {
    contact::Entity::find()
        .filter(contact::Column::WorkspaceId.eq(workspace_id))
        .filter(contact::Column::Phone.eq(phone))
        .one(db)
        .await
}

/// Creates or merges contacts, in one transaction. Within `contacts`, later entries for the same
/// phone merge into earlier ones.
pub async fn upsert_many(
    db: &DatabaseConnection,
    workspace_id: &str,
    contacts: &[NewContact],
) -> Result<Upserted, DbErr> {
    let mut merged_input: Vec<NewContact> = Vec::with_capacity(contacts.len());
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut result = Upserted::default();
    for c in contacts {
        match index.get(c.phone.as_str()) {
            Some(&i) => {
                merge_into(&mut merged_input[i], c);
                result.merged += 1;
            }
            None => {
                index.insert(&c.phone, merged_input.len());
                merged_input.push(c.clone());
            }
        }
    }
    let txn = crate::store::begin_write(db).await?;
    let now = Utc::now();
    // Insert what is new; a number already in the workspace is left alone by the insert
    // (`ON CONFLICT DO NOTHING` on the unique index) and merged below, looked up by its exact
    // phone. A large `IN (…)` look-up instead degrades into scans on PostgreSQL as the book grows.
    let mut inserted: HashSet<String> = HashSet::new();
    for batch in merged_input.chunks(200) {
        let rows: Vec<contact::ActiveModel> = batch
            .iter()
            .map(|c| contact::ActiveModel {
                id: Set(ids::new_id("con")),
                workspace_id: Set(workspace_id.to_string()),
                phone: Set(c.phone.clone()),
                name: Set(c.name.clone()),
                timezone: Set(timezone_for(c)),
                variables: Set(Value::Object(c.variables.clone()).to_string()),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .collect();
        let created = contact::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([contact::Column::WorkspaceId, contact::Column::Phone]).do_nothing().to_owned(),
            )
            .exec_with_returning(&txn)
            .await?;
        inserted.extend(created.into_iter().map(|row| row.phone));
    }
    for c in merged_input.iter().filter(|c| !inserted.contains(&c.phone)) {
        let Some(mut row) = find_by_phone(&txn, workspace_id, &c.phone).await? else { continue };
        let mut variables = variables_of(&row);
        variables.extend(c.variables.clone());
        row.variables = Value::Object(variables).to_string();
        row.name = c.name.clone().or(row.name);
        row.timezone = c.timezone.clone().or(row.timezone);
        row.updated_at = now;
        row.into_active_model().reset_all().update(&txn).await?;
        result.merged += 1;
    }
    result.created += inserted.len();
    txn.commit().await?;
    Ok(result)
}

/// The timezone a new contact is stored with: its own, or the one its number points to. Only at
/// creation: merging never replaces a timezone with a guess.
fn timezone_for(contact: &NewContact) -> Option<String> {
    contact.timezone.clone().or_else(|| super::phone::timezone_of(&contact.phone).map(|tz| tz.name().to_string()))
}

fn merge_into(target: &mut NewContact, later: &NewContact) {
    if later.name.is_some() {
        target.name = later.name.clone();
    }
    if later.timezone.is_some() {
        target.timezone = later.timezone.clone();
    }
    target.variables.extend(later.variables.clone());
}

/// Creates one contact. Returns `Err(existing)` when the phone is already in the workspace.
pub async fn create(
    db: &DatabaseConnection,
    workspace_id: &str,
    new: NewContact,
) -> Result<Result<contact::Model, contact::Model>, DbErr> {
    if let Some(existing) = find_by_phone(db, workspace_id, &new.phone).await? {
        return Ok(Err(existing));
    }
    let now = Utc::now();
    let row = contact::ActiveModel {
        id: Set(ids::new_id("con")),
        workspace_id: Set(workspace_id.to_string()),
        timezone: Set(timezone_for(&new)),
        phone: Set(new.phone),
        name: Set(new.name),
        variables: Set(Value::Object(new.variables).to_string()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(Ok(row))
}

/// Filters of the contact list.
#[derive(Default)]
pub struct ContactFilter {
    /// Part of the phone or name, case-insensitive.
    pub search: Option<String>,
    pub timezone: Option<String>,
}

/// Returns one page of a workspace's contacts, oldest first, and how many match.
pub async fn list(
    db: &DatabaseConnection,
    workspace_id: &str,
    filter: &ContactFilter,
    page: u64,
    page_size: u64,
) -> Result<(Vec<contact::Model>, u64), DbErr> {
    let mut query = contact::Entity::find().filter(contact::Column::WorkspaceId.eq(workspace_id));
    if let Some(search) = &filter.search {
        let escaped = search.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        let pattern = LikeExpr::new(format!("%{escaped}%")).escape('\\');
        query = query.filter(
            Condition::any()
                .add(Expr::expr(Func::lower(Expr::col(contact::Column::Phone))).like(pattern.clone()))
                .add(Expr::expr(Func::lower(Expr::col(contact::Column::Name))).like(pattern)),
        );
    }
    if let Some(timezone) = &filter.timezone {
        query = query.filter(contact::Column::Timezone.eq(timezone.as_str()));
    }
    let query = query.order_by_asc(contact::Column::CreatedAt).order_by_asc(contact::Column::Id);
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

/// Saves a changed contact.
pub async fn save(db: &DatabaseConnection, mut row: contact::Model) -> Result<contact::Model, DbErr> {
    row.updated_at = Utc::now();
    row.into_active_model().reset_all().update(db).await
}

/// Deletes a contact.
pub async fn delete(db: &DatabaseConnection, id: &str) -> Result<(), DbErr> {
    contact::Entity::delete_by_id(id.to_string()).exec(db).await?;
    Ok(())
}

/// Adds numbers to a do-not-call list (`campaign_id` `""` for the workspace). Returns how many
/// were new; numbers already on the list are left as they are.
pub async fn add_dnc(
    db: &DatabaseConnection,
    workspace_id: &str,
    campaign_id: &str,
    phones: &[String],
    reason: Option<&str>,
) -> Result<usize, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let now = Utc::now();
    let mut added = 0;
    for batch in phones.chunks(200) {
        let rows: Vec<dnc_entry::ActiveModel> = batch
            .iter()
            .map(|phone| dnc_entry::ActiveModel {
                workspace_id: Set(workspace_id.to_string()),
                campaign_id: Set(campaign_id.to_string()),
                phone: Set(phone.clone()),
                reason: Set(reason.map(str::to_string)),
                created_at: Set(now),
                ..Default::default()
            })
            .collect();
        let inserted = dnc_entry::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    dnc_entry::Column::WorkspaceId,
                    dnc_entry::Column::CampaignId,
                    dnc_entry::Column::Phone,
                ])
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

/// Removes a number from a do-not-call list. Returns false when it was not on it.
pub async fn remove_dnc(
    db: &DatabaseConnection,
    workspace_id: &str,
    campaign_id: &str,
    phone: &str,
) -> Result<bool, DbErr> {
    let result = dnc_entry::Entity::delete_many()
        .filter(dnc_entry::Column::WorkspaceId.eq(workspace_id))
        .filter(dnc_entry::Column::CampaignId.eq(campaign_id))
        .filter(dnc_entry::Column::Phone.eq(phone))
        .exec(db)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Returns one page of a do-not-call list, newest first, and its size.
pub async fn list_dnc(
    db: &DatabaseConnection,
    workspace_id: &str,
    campaign_id: &str,
    page: u64,
    page_size: u64,
) -> Result<(Vec<dnc_entry::Model>, u64), DbErr> {
    let query = dnc_entry::Entity::find()
        .filter(dnc_entry::Column::WorkspaceId.eq(workspace_id))
        .filter(dnc_entry::Column::CampaignId.eq(campaign_id))
        .order_by_desc(dnc_entry::Column::Id);
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

/// Returns which of `phones` may not be called in a campaign: on the workspace's list or on the
/// campaign's own. Checked when a contact is about to be dialed.
pub async fn blocked(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    campaign_id: Option<&str>,
    phones: &[String],
) -> Result<HashSet<String>, DbErr> {
    if phones.is_empty() {
        return Ok(HashSet::new());
    }
    let lists: Vec<String> = std::iter::once(String::new()).chain(campaign_id.map(str::to_string)).collect();
    let rows = dnc_entry::Entity::find()
        .select_only()
        .column(dnc_entry::Column::Phone)
        .filter(dnc_entry::Column::WorkspaceId.eq(workspace_id))
        .filter(dnc_entry::Column::CampaignId.is_in(lists))
        .filter(dnc_entry::Column::Phone.is_in(phones.iter().cloned()))
        .into_tuple::<String>()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}
