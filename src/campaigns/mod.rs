//! Campaigns: their [`settings`], storage and the actors' port ([`store`]), the port that creates
//! their calls ([`launcher`]), and [`Campaigns`], which starts the CampaignSupervisor and is how
//! the rest of the server reaches it.

pub mod launcher;
pub mod settings;
pub mod store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use dialplane_actors::{CampaignDeps, CampaignSupervisor, CampaignSupervisorMessage};
use ractor::{Actor, ActorRef};
use sea_orm::DatabaseConnection;

/// The campaign side of the server: the supervisor of campaign actors.
#[derive(Default)]
pub struct Campaigns {
    supervisor: RwLock<Option<ActorRef<CampaignSupervisorMessage>>>,
}

impl Campaigns {
    /// Starts the CampaignSupervisor with an actor per active campaign.
    pub async fn start(&self, db: &DatabaseConnection, deps: CampaignDeps) -> anyhow::Result<()> {
        let active = store::active(db).await?;
        let (supervisor, _) = Actor::spawn(None, CampaignSupervisor, (Arc::new(deps), active))
            .await
            .map_err(|e| anyhow::anyhow!("campaign supervisor did not start: {e}"))?;
        *self.supervisor.write().expect("supervisor lock") = Some(supervisor);
        Ok(())
    }

    /// A campaign became active: make sure its actor runs.
    pub fn ensure(&self, id: &str) {
        if let Some(supervisor) = self.supervisor.read().expect("supervisor lock").as_ref() {
            let _ = supervisor.send_message(CampaignSupervisorMessage::Ensure(id.to_string()));
        }
    }

    /// Stops the campaign actors; running campaigns resume at the next start.
    pub async fn shutdown(&self) {
        let supervisor = self.supervisor.write().expect("supervisor lock").take();
        if let Some(supervisor) = supervisor {
            let cell = supervisor.get_cell();
            cell.stop_children_and_wait(None, Some(Duration::from_secs(5))).await;
            let _ = cell.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        }
    }
}
