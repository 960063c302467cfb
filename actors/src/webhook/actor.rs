//! The WebhookSubscriptionActor: drains one subscription's outbox. It keeps at most
//! `max_in_flight` requests open to its endpoint (so a slow or dead endpoint only ever ties up its
//! own actor), delivers the messages of one call in order, and applies [`fsm::decide`] to every
//! attempt. An attempt's request slot is free as soon as the endpoint has answered, but its message
//! holds its call's line until the result is recorded, so the next message of that call waits for
//! the record while other calls' messages go out. Records are written side by side, not one after
//! the other in the actor's turn (each is a group commit, milliseconds long). It wakes when told
//! new messages were committed, when the earliest retry falls due, and on a slow poll as a safety
//! net.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::fsm::{self, DeliveryPolicy, EndpointHealth};
use crate::call::fsm::Timestamp;
use crate::ports::{AttemptReport, Clock, OutboundMessage, WebhookOutbox, WebhookSender};

/// Stop reason of an actor whose subscription was disabled or deleted.
pub const RETIRED: &str = "retired";

/// How many messages per request slot may be unsettled at once (in flight, or answered with the
/// result still being recorded): bounds the records under way when the store is slow.
const UNSETTLED_PER_SLOT: usize = 8;

/// What every subscription actor shares.
pub struct WebhookDeps {
    pub outbox: Arc<dyn WebhookOutbox>,
    pub sender: Arc<dyn WebhookSender>,
    pub clock: Arc<dyn Clock>,
    pub policy: DeliveryPolicy,
    /// Most requests open to one endpoint at a time.
    pub max_in_flight: usize,
    /// How often an idle actor looks at its outbox anyway.
    pub poll_interval: Duration,
}

/// Messages of a subscription actor.
pub enum WebhookMessage {
    /// New messages may be due.
    Wake,
    /// The subscription changed (enabled, disabled, deleted): read its health again.
    Reload,
    /// An attempt finished.
    Attempted { message: Box<OutboundMessage>, report: Box<AttemptReport> },
    /// An attempt's result was recorded (`recorded`), or could not be: its message no longer
    /// holds its call's line. `delivered` says whether the attempt delivered the message; if not,
    /// it is still in line.
    Recorded { row_id: i64, recorded: bool, delivered: bool },
}

/// State of a subscription actor.
pub struct WebhookState {
    subscription_id: String,
    deps: Arc<WebhookDeps>,
    health: EndpointHealth,
    /// Requests open to the endpoint.
    open: usize,
    /// Outbox rows with an attempt in flight or its result being recorded, and their lines.
    unsettled: HashMap<i64, String>,
    /// Pending messages read from the outbox and not started yet, oldest first.
    buffer: Vec<OutboundMessage>,
    /// The outbox may hold messages the buffer lacks (new ones were committed, or the last read
    /// was cut at its limit).
    more: bool,
    /// The buffer no longer tells the truth (an attempt failed, so its message is due again later
    /// and must keep its place in line): read the outbox before starting anything.
    stale: bool,
    /// When the next timed wake is set for, so retries do not pile up timers.
    wake_at: Option<Timestamp>,
}

/// One actor per webhook subscription.
pub struct WebhookSubscriptionActor;

impl Actor for WebhookSubscriptionActor {
    type Msg = WebhookMessage;
    type State = WebhookState;
    type Arguments = (String, Arc<WebhookDeps>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (subscription_id, deps): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(deps.poll_interval, || WebhookMessage::Wake);
        Ok(WebhookState {
            subscription_id,
            deps,
            health: EndpointHealth::default(),
            open: 0,
            unsettled: HashMap::new(),
            buffer: Vec::new(),
            more: true,
            stale: true,
            wake_at: None,
        })
    }

    async fn post_start(&self, myself: ActorRef<Self::Msg>, s: &mut Self::State) -> Result<(), ActorProcessingErr> {
        reload(&myself, s).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WebhookMessage::Wake => {
                s.more = true;
                drain(&myself, s).await
            }
            WebhookMessage::Reload => reload(&myself, s).await,
            WebhookMessage::Attempted { message, report } => attempted(&myself, s, *message, *report).await,
            WebhookMessage::Recorded { row_id, recorded, delivered } => {
                s.unsettled.remove(&row_id);
                if !recorded || !delivered {
                    // The message is still in line (to be retried, or pending as it was), and a
                    // read of the outbox made while it was in flight left it out of the buffer:
                    // read again before its call's next message can start.
                    s.stale = true;
                }
                drain(&myself, s).await;
            }
        }
        Ok(())
    }
}

/// Reads the subscription's health; retires the actor when it is gone or disabled.
async fn reload(myself: &ActorRef<WebhookMessage>, s: &mut WebhookState) {
    match s.deps.outbox.health(&s.subscription_id).await {
        Ok(Some(health)) if !health.disabled => {
            s.health = health;
            s.stale = true;
            drain(myself, s).await;
        }
        Ok(_) => {
            info!(subscription.id = %s.subscription_id, "webhook subscription is disabled or gone; its actor stops");
            myself.stop(Some(RETIRED.to_string()));
        }
        Err(e) => warn!(subscription.id = %s.subscription_id, error = %e, "webhook subscription could not be read"),
    }
}

/// Starts an attempt for every due message that is first in line for its call, up to the
/// in-flight limit, and sets a wake for the earliest message not yet due. The outbox is read only
/// when the buffer cannot fill the free slots (or no longer tells the truth), so a backlog costs
/// one query per few hundred attempts rather than one per attempt.
async fn drain(myself: &ActorRef<WebhookMessage>, s: &mut WebhookState) {
    let room = s
        .deps
        .max_in_flight
        .saturating_sub(s.open)
        .min((s.deps.max_in_flight * UNSETTLED_PER_SLOT).saturating_sub(s.unsettled.len()));
    if s.health.disabled || room == 0 {
        return;
    }
    let now = s.deps.clock.now();
    if s.stale || (s.more && startable(s, now) < room) {
        let limit = s.deps.max_in_flight * 32 + s.unsettled.len();
        match s.deps.outbox.pending(&s.subscription_id, limit as u64).await {
            Ok(pending) => {
                s.more = pending.len() >= limit;
                s.stale = false;
                s.buffer = pending.into_iter().filter(|m| !s.unsettled.contains_key(&m.row_id)).collect();
            }
            Err(e) => {
                warn!(subscription.id = %s.subscription_id, error = %e, "webhook outbox could not be read");
                return;
            }
        }
    }
    let mut lines: HashSet<String> = s.unsettled.values().cloned().collect();
    let mut next_due: Option<Timestamp> = None;
    let mut started = 0;
    let mut waiting = Vec::with_capacity(s.buffer.len());
    for message in std::mem::take(&mut s.buffer) {
        if !lines.insert(message.line.clone()) || started == room {
            waiting.push(message);
            continue;
        }
        if message.next_attempt_at > now {
            next_due = Some(next_due.map_or(message.next_attempt_at, |at| at.min(message.next_attempt_at)));
            waiting.push(message);
            continue;
        }
        started += 1;
        s.open += 1;
        s.unsettled.insert(message.row_id, message.line.clone());
        let sender = s.deps.sender.clone();
        let actor = myself.clone();
        tokio::spawn(async move {
            let report = sender.send(&message).await;
            let _ =
                actor.send_message(WebhookMessage::Attempted { message: Box::new(message), report: Box::new(report) });
        });
    }
    s.buffer = waiting;
    if let Some(due) = next_due
        && s.wake_at.is_none_or(|at| due < at || at <= now)
    {
        s.wake_at = Some(due);
        let wait = (due - now).to_std().unwrap_or_default();
        myself.send_after(wait, || WebhookMessage::Wake);
    }
}

/// Counts the buffered messages that could start now: due, and first in line.
fn startable(s: &WebhookState, now: Timestamp) -> usize {
    let mut lines: HashSet<&str> = s.unsettled.values().map(String::as_str).collect();
    s.buffer.iter().filter(|m| lines.insert(m.line.as_str()) && m.next_attempt_at <= now).count()
}

/// Applies the rules to a finished attempt, frees its request slot, and records the result in a
/// task of its own, which lets the message's call go on ([`WebhookMessage::Recorded`]) once the
/// record is written.
async fn attempted(
    myself: &ActorRef<WebhookMessage>,
    s: &mut WebhookState,
    message: OutboundMessage,
    report: AttemptReport,
) {
    s.open = s.open.saturating_sub(1);
    let now = s.deps.clock.now();
    let attempts = message.attempts + 1;
    let decision = fsm::decide(
        &s.deps.policy,
        &s.health,
        attempts,
        &report.result,
        now,
        fsm::jitter(&message.message_id, attempts),
    );
    // A message not delivered stays in line (retried later, or given up): the buffer is read
    // again once its record is written ([`WebhookMessage::Recorded`]).
    let delivered = decision.fate == fsm::MessageFate::Delivered;
    let (outbox, actor, fate, subscription_id) =
        (s.deps.outbox.clone(), myself.clone(), decision.fate.clone(), s.subscription_id.clone());
    tokio::spawn(async move {
        let recorded = match outbox.record_attempt(&message, &report, &fate, now).await {
            Ok(()) => true,
            Err(e) => {
                warn!(subscription.id = %subscription_id, message.id = %message.message_id, error = %e, "delivery attempt could not be recorded");
                false
            }
        };
        let _ = actor.send_message(WebhookMessage::Recorded { row_id: message.row_id, recorded, delivered });
    });
    if decision.health != s.health {
        match s
            .deps
            .outbox
            .save_health(&s.subscription_id, &decision.health, decision.disabled_reason.as_deref(), now)
            .await
        {
            Ok(()) => s.health = decision.health,
            Err(e) => warn!(subscription.id = %s.subscription_id, error = %e, "webhook health could not be saved"),
        }
    }
    if s.health.disabled {
        warn!(subscription.id = %s.subscription_id, reason = ?decision.disabled_reason, "webhook endpoint disabled");
        myself.stop(Some(RETIRED.to_string()));
        return;
    }
    // The endpoint has a free slot: other calls' messages can go while this one is recorded.
    drain(myself, s).await;
}
