//! The bookkeeping shared by supervisors that run one child per key (a webhook subscription, a
//! campaign): which actor is which key, and what a supervision event means for it.

use std::collections::HashMap;

use ractor::{ActorId, ActorRef, SupervisionEvent};
use tracing::{error, warn};

/// Children by key, and keys by actor id.
pub struct KeyedChildren<M> {
    actors: HashMap<String, ActorRef<M>>,
    keys: HashMap<ActorId, String>,
    /// What a child is, for logs: `campaign`, `webhook subscription`.
    kind: &'static str,
    /// The stop reason of a child that ended normally.
    retired: &'static str,
}

impl<M> KeyedChildren<M> {
    /// No children yet.
    pub fn new(kind: &'static str, retired: &'static str) -> Self {
        KeyedChildren { actors: HashMap::new(), keys: HashMap::new(), kind, retired }
    }

    /// Returns the child of a key.
    pub fn get(&self, key: &str) -> Option<&ActorRef<M>> {
        self.actors.get(key)
    }

    /// Records a started child.
    pub fn insert(&mut self, key: String, actor: ActorRef<M>) {
        self.keys.insert(actor.get_id(), key.clone());
        self.actors.insert(key, actor);
    }

    /// Forgets a child that stopped or failed. Returns the key of one that failed, to be
    /// restarted; a child that stopped is only forgotten (and logged unless it retired).
    pub fn on_event(&mut self, event: SupervisionEvent) -> Option<String> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let key = self.keys.remove(&cell.get_id())?;
                self.actors.remove(&key);
                if reason.as_deref() != Some(self.retired) {
                    warn!(key = %key, reason = ?reason, "{} actor stopped", self.kind);
                }
                None
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                let key = self.keys.remove(&cell.get_id())?;
                self.actors.remove(&key);
                error!(key = %key, error = %err, "{} actor failed; restarting it", self.kind);
                Some(key)
            }
            _ => None,
        }
    }
}
