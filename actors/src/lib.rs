//! Dialplane's actor system: the per-call and per-webhook-subscription actors, their supervisors and the pure state machines
//! they apply.
//!
//! This crate knows nothing of HTTP or SQL. It talks to the outside world only through the traits
//! in [`ports`] (carrier, store, live counters, transcriber, clock), which the server crate
//! implements. Every actor follows the same shape: a pure `apply(&state, event, &policy)` decides,
//! the actor persists the decision through a port and then runs the effects it asked for.

pub mod call;
pub mod campaign;
pub mod keyed;
pub mod ports;
pub mod supervisor;
pub mod webhook;

pub use call::actor::{CallActor, CallActorArgs, CallDeps, CallMessage};
pub use call::fsm;
pub use call::{CallRecord, CallType};
pub use campaign::actor::{CampaignActor, CampaignDeps, CampaignMessage};
pub use campaign::supervisor::{CampaignSupervisor, CampaignSupervisorMessage};
pub use supervisor::{CallRegistry, CallSupervisor, CallSupervisorHandle, CallSupervisorMessage, RootSupervisor};
pub use webhook::actor::{WebhookDeps, WebhookMessage, WebhookSubscriptionActor};
pub use webhook::supervisor::{WebhookSupervisor, WebhookSupervisorMessage};
