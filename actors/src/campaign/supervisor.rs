//! The CampaignSupervisor: one [`CampaignActor`] per running or paused campaign. An actor that
//! fails is started again after a pause, from the database; one that retires is forgotten.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::error;

use super::actor::{CampaignActor, CampaignDeps, CampaignMessage, RETIRED};
use crate::keyed::KeyedChildren;

/// Pause before a failed campaign actor is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Messages of the CampaignSupervisor.
pub enum CampaignSupervisorMessage {
    /// A campaign became active (launched, resumed, or found running at start): make sure its
    /// actor runs.
    Ensure(String),
}

/// State of the CampaignSupervisor.
pub struct CampaignSupervisorState {
    deps: Arc<CampaignDeps>,
    children: KeyedChildren<CampaignMessage>,
}

/// Starts and watches campaign actors.
pub struct CampaignSupervisor;

impl Actor for CampaignSupervisor {
    type Msg = CampaignSupervisorMessage;
    type State = CampaignSupervisorState;
    /// The shared dependencies and the campaigns active at start.
    type Arguments = (Arc<CampaignDeps>, Vec<String>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (deps, active): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        for id in active {
            myself.send_message(CampaignSupervisorMessage::Ensure(id))?;
        }
        Ok(CampaignSupervisorState { deps, children: KeyedChildren::new("campaign", RETIRED) })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let CampaignSupervisorMessage::Ensure(id) = message;
        if s.children.get(&id).is_some() {
            return Ok(());
        }
        match Actor::spawn_linked(None, CampaignActor, (id.clone(), s.deps.clone()), myself.get_cell()).await {
            Ok((actor, _)) => s.children.insert(id, actor),
            Err(e) => error!(campaign.id = %id, error = %e, "campaign actor did not start"),
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
            // After a pause, from the database, so a failure that repeats cannot spin.
            myself.send_after(RESTART_DELAY, move || CampaignSupervisorMessage::Ensure(id));
        }
        Ok(())
    }
}
