//! Webhook subscriptions as a product: which events exist and who wants them ([`events`]), the
//! in-memory directory of subscriptions the hot path fans events out with ([`directory`]), their
//! storage and the actors' `WebhookOutbox` port ([`store`]), and the signed HTTP request every
//! delivery attempt makes ([`sender`]). [`Webhooks`] starts the WebhookSupervisor and is how the
//! rest of the server reaches it.

pub mod directory;
pub mod events;
pub mod sender;
pub mod store;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use dialplane_actors::ports::SystemClock;
use dialplane_actors::webhook::fsm::DeliveryPolicy;
use dialplane_actors::{WebhookDeps, WebhookSupervisor, WebhookSupervisorMessage};
use ractor::{Actor, ActorRef};
use sea_orm::DatabaseConnection;
use tokio::sync::mpsc;

pub use directory::SubscriptionDirectory;
use sender::{HttpWebhookSender, SignedPost};
use store::{SeaWebhookOutbox, WakeSender};

use crate::store::writer::Writer;

/// How often an idle subscription actor looks at its outbox anyway (changes made by other nodes).
const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The webhook side of the server: the directory and the supervisor of subscription actors.
pub struct Webhooks {
    pub directory: Arc<SubscriptionDirectory>,
    wake: WakeSender,
    supervisor: RwLock<Option<ActorRef<WebhookSupervisorMessage>>>,
}

impl Webhooks {
    /// Loads the directory and returns the handle with the channel commits announce new messages
    /// on; call [`Webhooks::start`] to start delivering.
    pub async fn load(
        db: &DatabaseConnection,
    ) -> anyhow::Result<(Arc<Webhooks>, mpsc::UnboundedReceiver<Vec<String>>)> {
        let directory = Arc::new(SubscriptionDirectory::default());
        directory.reload(db).await?;
        let (wake, woken) = mpsc::unbounded_channel();
        Ok((Arc::new(Webhooks { directory, wake, supervisor: RwLock::new(None) }), woken))
    }

    /// Returns the sender commits announce new messages on.
    pub fn wake_sender(&self) -> WakeSender {
        self.wake.clone()
    }

    /// Starts the WebhookSupervisor with an actor per enabled subscription, and forwards every
    /// announcement of new messages to it.
    pub async fn start(
        self: &Arc<Self>,
        db: DatabaseConnection,
        writer: Writer,
        mut woken: mpsc::UnboundedReceiver<Vec<String>>,
        post: Arc<SignedPost>,
        policy: DeliveryPolicy,
        max_in_flight: usize,
    ) -> anyhow::Result<()> {
        let deps = Arc::new(WebhookDeps {
            outbox: Arc::new(SeaWebhookOutbox {
                db,
                writer,
                directory: self.directory.clone(),
                wake: self.wake.clone(),
            }),
            sender: Arc::new(HttpWebhookSender { post, directory: self.directory.clone() }),
            clock: Arc::new(SystemClock),
            policy,
            max_in_flight,
            poll_interval: POLL_INTERVAL,
        });
        let (supervisor, _) = Actor::spawn(None, WebhookSupervisor, (deps, self.directory.enabled_ids()))
            .await
            .map_err(|e| anyhow::anyhow!("webhook supervisor did not start: {e}"))?;
        *self.supervisor.write().expect("supervisor lock") = Some(supervisor.clone());
        tokio::spawn(async move {
            while let Some(ids) = woken.recv().await {
                if supervisor.send_message(WebhookSupervisorMessage::Wake(ids)).is_err() {
                    return;
                }
            }
        });
        Ok(())
    }

    fn send(&self, message: WebhookSupervisorMessage) {
        if let Some(supervisor) = self.supervisor.read().expect("supervisor lock").as_ref() {
            let _ = supervisor.send_message(message);
        }
    }

    /// A subscription was created or changed: start its actor or have it re-read its state.
    pub fn ensure(&self, id: &str) {
        self.send(WebhookSupervisorMessage::Ensure(id.to_string()));
    }

    /// A subscription has new messages.
    pub fn wake(&self, id: String) {
        self.send(WebhookSupervisorMessage::Wake(vec![id]));
    }

    /// Stops the subscription actors (their messages stay in the outbox for the next start).
    pub async fn shutdown(&self) {
        let supervisor = self.supervisor.write().expect("supervisor lock").take();
        if let Some(supervisor) = supervisor {
            let cell = supervisor.get_cell();
            cell.stop_children_and_wait(None, Some(Duration::from_secs(5))).await;
            let _ = cell.stop_and_wait(None, Some(Duration::from_secs(5))).await;
        }
    }
}
