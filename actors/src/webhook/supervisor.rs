//! The WebhookSupervisor: one [`WebhookSubscriptionActor`] per enabled subscription. A subscription
//! actor that fails is restarted (its state is all in the outbox, so nothing is lost); one that
//! retires (its subscription was disabled or deleted) is forgotten.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::error;

use crate::keyed::KeyedChildren;

use super::actor::{RETIRED, WebhookDeps, WebhookMessage, WebhookSubscriptionActor};

/// Pause before a failed subscription actor is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Messages of the WebhookSupervisor.
pub enum WebhookSupervisorMessage {
    /// A subscription was created or changed: start its actor, or have it read its state again.
    Ensure(String),
    /// New messages were committed for these subscriptions.
    Wake(Vec<String>),
}

/// State of the WebhookSupervisor.
pub struct WebhookSupervisorState {
    deps: Arc<WebhookDeps>,
    children: KeyedChildren<WebhookMessage>,
}

/// Starts and watches subscription actors.
pub struct WebhookSupervisor;

impl WebhookSupervisor {
    async fn start_child(myself: &ActorRef<WebhookSupervisorMessage>, s: &mut WebhookSupervisorState, id: String) {
        match Actor::spawn_linked(None, WebhookSubscriptionActor, (id.clone(), s.deps.clone()), myself.get_cell()).await
        {
            Ok((actor, _)) => s.children.insert(id, actor),
            Err(e) => error!(subscription.id = %id, error = %e, "webhook subscription actor did not start"),
        }
    }
}

impl Actor for WebhookSupervisor {
    type Msg = WebhookSupervisorMessage;
    type State = WebhookSupervisorState;
    /// The shared dependencies and the subscriptions enabled at start.
    type Arguments = (Arc<WebhookDeps>, Vec<String>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, enabled): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        for id in enabled {
            myself.send_message(WebhookSupervisorMessage::Ensure(id))?;
        }
        Ok(WebhookSupervisorState { deps, children: KeyedChildren::new("webhook subscription", RETIRED) })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WebhookSupervisorMessage::Ensure(id) => match s.children.get(&id) {
                Some(actor) => {
                    let _ = actor.send_message(WebhookMessage::Reload);
                }
                None => WebhookSupervisor::start_child(&myself, s, id).await,
            },
            WebhookSupervisorMessage::Wake(ids) => {
                for id in ids {
                    if let Some(actor) = s.children.get(&id) {
                        let _ = actor.send_message(WebhookMessage::Wake);
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(id) = s.children.on_event(event) {
            // After a pause, so a failure that repeats cannot spin.
            myself.send_after(RESTART_DELAY, move || WebhookSupervisorMessage::Ensure(id));
        }
        Ok(())
    }
}
