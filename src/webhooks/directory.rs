//! The subscription directory: every subscription's URL, filter, secrets and state, kept in memory
//! so the group-commit writer can fan an event out without a query. It is loaded at start and
//! refreshed from the database after every change to a subscription (and periodically, for changes
//! made by other nodes).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait};

use super::events;
use crate::store::entities::webhook_subscription;

/// What delivery needs to know of a subscription.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub id: String,
    pub workspace_id: String,
    pub url: String,
    pub patterns: Vec<String>,
    pub enabled: bool,
    secret: String,
    previous_secret: Option<(String, DateTime<Utc>)>,
}

impl Endpoint {
    fn from_row(row: &webhook_subscription::Model) -> Self {
        Endpoint {
            id: row.id.clone(),
            workspace_id: row.workspace_id.clone(),
            url: row.url.clone(),
            patterns: serde_json::from_str(&row.event_types).unwrap_or_default(),
            enabled: row.enabled,
            secret: row.secret.clone(),
            previous_secret: row.previous_secret.clone().zip(row.previous_secret_expires_at),
        }
    }

    /// The secrets that sign a delivery at `now`: the current one, and the previous one while its
    /// rotation window lasts.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some((previous, until)) = &self.previous_secret
            && now < *until
        {
            secrets.push(previous);
        }
        secrets
    }
}

#[derive(Default)]
struct Entries {
    by_id: HashMap<String, Arc<Endpoint>>,
    by_workspace: HashMap<String, Vec<Arc<Endpoint>>>,
}

/// Subscriptions by id and by workspace.
#[derive(Default)]
pub struct SubscriptionDirectory {
    entries: RwLock<Entries>,
}

impl SubscriptionDirectory {
    /// Reads every subscription from the database, replacing what was known.
    pub async fn reload(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let rows = webhook_subscription::Entity::find().all(db).await?;
        let mut entries = Entries::default();
        for row in &rows {
            let endpoint = Arc::new(Endpoint::from_row(row));
            entries.by_workspace.entry(endpoint.workspace_id.clone()).or_default().push(endpoint.clone());
            entries.by_id.insert(endpoint.id.clone(), endpoint);
        }
        *self.entries.write().expect("directory lock") = entries;
        Ok(())
    }

    /// Reads one subscription again (it was created, changed or deleted).
    pub async fn refresh(&self, db: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
        let row = webhook_subscription::Entity::find_by_id(id.to_string()).one(db).await?;
        let mut entries = self.entries.write().expect("directory lock");
        if let Some(old) = entries.by_id.remove(id)
            && let Some(list) = entries.by_workspace.get_mut(&old.workspace_id)
        {
            list.retain(|e| e.id != id);
        }
        if let Some(row) = row {
            let endpoint = Arc::new(Endpoint::from_row(&row));
            entries.by_workspace.entry(endpoint.workspace_id.clone()).or_default().push(endpoint.clone());
            entries.by_id.insert(endpoint.id.clone(), endpoint);
        }
        Ok(())
    }

    /// Returns a subscription.
    pub fn get(&self, id: &str) -> Option<Arc<Endpoint>> {
        self.entries.read().expect("directory lock").by_id.get(id).cloned()
    }

    /// Returns the enabled subscriptions of a workspace that want `event_type`, with the name each
    /// receives it under.
    pub fn subscribers(&self, workspace_id: &str, event_type: &str) -> Vec<(Arc<Endpoint>, &'static str)> {
        let entries = self.entries.read().expect("directory lock");
        let Some(list) = entries.by_workspace.get(workspace_id) else { return Vec::new() };
        list.iter()
            .filter(|e| e.enabled)
            .filter_map(|e| events::delivered_name(&e.patterns, event_type).map(|name| (e.clone(), name)))
            .collect()
    }

    /// Returns the ids of every enabled subscription.
    pub fn enabled_ids(&self) -> Vec<String> {
        self.entries
            .read()
            .expect("directory lock")
            .by_id
            .values()
            .filter(|e| e.enabled)
            .map(|e| e.id.clone())
            .collect()
    }
}
