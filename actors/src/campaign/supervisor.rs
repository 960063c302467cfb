//! The CampaignSupervisor: one [`CampaignActor`] per running or paused campaign. An actor that
//! fails is started again after a pause, from the database; one that retires is forgotten.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, warn};

use super::actor::{CampaignActor, CampaignDeps, CampaignMessage, RETIRED};

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
    actors: HashMap<String, ActorRef<CampaignMessage>>,
    ids: HashMap<ActorId, String>,
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
        Ok(CampaignSupervisorState { deps, actors: HashMap::new(), ids: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let CampaignSupervisorMessage::Ensure(id) = message;
        if s.actors.contains_key(&id) {
            return Ok(());
        }
        match Actor::spawn_linked(None, CampaignActor, (id.clone(), s.deps.clone()), myself.get_cell()).await {
            Ok((actor, _)) => {
                s.ids.insert(actor.get_id(), id.clone());
                s.actors.insert(id, actor);
            }
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
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(id) = s.ids.remove(&cell.get_id()) {
                    s.actors.remove(&id);
                    if reason.as_deref() != Some(RETIRED) {
                        warn!(campaign.id = %id, reason = ?reason, "campaign actor stopped");
                    }
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(id) = s.ids.remove(&cell.get_id()) {
                    s.actors.remove(&id);
                    error!(campaign.id = %id, error = %err, "campaign actor failed; restarting it from the database");
                    myself.send_after(RESTART_DELAY, move || CampaignSupervisorMessage::Ensure(id));
                }
            }
            _ => {}
        }
        Ok(())
    }
}
