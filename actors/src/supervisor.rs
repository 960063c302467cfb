//! Supervision: the RootSupervisor keeps the CallSupervisor alive; the CallSupervisor starts one
//! CallActor per live call and, when one dies, ends its call truthfully (`failed`,
//! `engine_error`) instead of restarting it. The [`CallRegistry`] finds live call actors by id.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{error, info, warn};

use crate::call::CallRecord;
use crate::call::actor::{CallActor, CallActorArgs, CallDeps, CallMessage};
use crate::call::fsm::{self, CallState, Effect, Event, Lifecycle};

/// Stop reason of a call actor whose call is finished.
pub const FINISHED: &str = "finished";
/// Stop reason of a call actor stopped by a graceful shutdown: its call stays live in the store
/// and is resumed at the next start.
pub const SHUTDOWN: &str = "shutdown";

/// Live call actors by call id.
#[derive(Default)]
pub struct CallRegistry {
    calls: RwLock<HashMap<String, LiveCall>>,
}

/// Removes `key` from `map` and, once the map is at most a quarter full, gives back most of its
/// table. A hash table keeps the capacity of its busiest moment: after 100,000 live calls the
/// registry's would hold about 9 MiB with no call in it. Each shrink rehashes what is left, no
/// more entries than were removed since the table last grew or shrank, so a removal stays O(1)
/// amortised.
fn remove_and_shrink<V>(map: &mut HashMap<String, V>, key: &str) -> Option<V> {
    let removed = map.remove(key);
    if map.capacity() > 64 && map.len() * 4 <= map.capacity() {
        map.shrink_to(map.len() * 2);
    }
    removed
}

/// A live call's actor, when its watchdog is next due, and whose the call is.
struct LiveCall {
    actor: ActorRef<CallMessage>,
    watchdog: Arc<WatchdogDue>,
    /// The call's workspace and carrier account, which never change: a carrier callback for a
    /// live call finds and checks its call here instead of reading the store.
    workspace_id: Box<str>,
    carrier: Box<str>,
}

/// Whose a live call is and which carrier account placed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveOwner {
    pub workspace_id: String,
    pub carrier: String,
}

/// When a call's watchdog is next due (from [`fsm::next_deadline`]), kept by the call's actor and
/// read by the beat without a lock. Until it is first set, the call is due at every beat.
#[derive(Default)]
pub struct WatchdogDue {
    /// Milliseconds since the Unix epoch; `i64::MAX` for never.
    at_ms: AtomicI64,
}

impl WatchdogDue {
    /// Records when the watchdog is next due; `None` for never.
    pub fn set(&self, at: Option<fsm::Timestamp>) {
        self.at_ms.store(at.map_or(i64::MAX, |at| at.timestamp_millis()), Ordering::Relaxed);
    }

    /// True when a tick at `now` could change the call.
    fn is_due(&self, now: fsm::Timestamp) -> bool {
        self.at_ms.load(Ordering::Relaxed) <= now.timestamp_millis()
    }
}

impl CallRegistry {
    /// Registers a live call's actor; returns where the actor records when its watchdog is due.
    pub fn insert(&self, record: &CallRecord, actor: ActorRef<CallMessage>) -> Arc<WatchdogDue> {
        let watchdog = Arc::new(WatchdogDue::default());
        let call = LiveCall {
            actor,
            watchdog: watchdog.clone(),
            workspace_id: record.workspace_id.as_str().into(),
            carrier: record.carrier.as_str().into(),
        };
        self.calls.write().expect("registry lock").insert(record.id.clone(), call);
        watchdog
    }

    /// Returns whose a live call is, or `None` when it has no actor (look in the store then).
    pub fn owner(&self, call_id: &str) -> Option<LiveOwner> {
        self.calls
            .read()
            .expect("registry lock")
            .get(call_id)
            .map(|call| LiveOwner { workspace_id: call.workspace_id.to_string(), carrier: call.carrier.to_string() })
    }

    /// Forgets a call's actor.
    pub fn remove(&self, call_id: &str) {
        remove_and_shrink(&mut self.calls.write().expect("registry lock"), call_id);
    }

    /// Returns the actor of a live call.
    pub fn get(&self, call_id: &str) -> Option<ActorRef<CallMessage>> {
        self.calls.read().expect("registry lock").get(call_id).map(|call| call.actor.clone())
    }

    /// Returns the number of live call actors.
    pub fn len(&self) -> usize {
        self.calls.read().expect("registry lock").len()
    }

    /// Returns true when no call actor is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sends a watchdog tick to every live call that is due. A call that is not due would find
    /// nothing to do, and with 100,000 live calls, visiting each one every beat was most of the
    /// engine's work.
    pub fn tick_due(&self, at: fsm::Timestamp) {
        for call in self.calls.read().expect("registry lock").values() {
            if call.watchdog.is_due(at) {
                let _ = call.actor.send_message(CallMessage::Apply(Event::Tick { at }));
            }
        }
    }

    /// Sends an event to a live call. Returns false when the call has no actor.
    pub fn deliver(&self, call_id: &str, event: Event) -> bool {
        match self.get(call_id) {
            Some(actor) => actor.send_message(CallMessage::Apply(event)).is_ok(),
            None => false,
        }
    }
}

/// Messages of the CallSupervisor.
pub enum CallSupervisorMessage {
    /// Start the actor of a committed call; it runs `effects` first (see [`CallActorArgs`]).
    Start { record: Box<CallRecord>, state: Box<CallState>, effects: Vec<Effect> },
    /// The watchdog's beat: every live call that is due gets a `Tick`.
    Tick,
}

/// State of the CallSupervisor: which child is which call.
pub struct CallSupervisorState {
    deps: Arc<CallDeps>,
    children: HashMap<ActorId, String>,
}

/// Starts and watches call actors.
pub struct CallSupervisor;

impl Actor for CallSupervisor {
    type Msg = CallSupervisorMessage;
    type State = CallSupervisorState;
    type Arguments = Arc<CallDeps>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        deps: Arc<CallDeps>,
    ) -> Result<Self::State, ActorProcessingErr> {
        // One ticker for all calls: a timer per call would cost a task per live call.
        myself.send_interval(deps.watchdog_interval, || CallSupervisorMessage::Tick);
        Ok(CallSupervisorState { deps, children: HashMap::new() })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            CallSupervisorMessage::Start { record, state, effects } => {
                let call_id = record.id.clone();
                let args = CallActorArgs { record: *record, state: *state, effects, deps: s.deps.clone() };
                match Actor::spawn_linked(None, CallActor, args, myself.get_cell()).await {
                    Ok((actor, _)) => {
                        s.children.insert(actor.get_id(), call_id);
                    }
                    Err(e) => {
                        error!(call.id = %call_id, error = %e, "call actor did not start");
                        end_lost_call(s.deps.clone(), call_id, "engine_error");
                    }
                }
            }
            CallSupervisorMessage::Tick => s.deps.registry.tick_due(s.deps.clock.now()),
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(call_id) = s.children.remove(&cell.get_id())
                    && !matches!(reason.as_deref(), Some(FINISHED | SHUTDOWN))
                {
                    warn!(call.id = %call_id, reason = ?reason, "call actor stopped before its call finished");
                    s.deps.registry.remove(&call_id);
                    end_lost_call(s.deps.clone(), call_id, "engine_error");
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some(call_id) = s.children.remove(&cell.get_id()) {
                    error!(call.id = %call_id, error = %err, "call actor failed");
                    s.deps.registry.remove(&call_id);
                    end_lost_call(s.deps.clone(), call_id, "engine_error");
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Ends a call whose actor is gone: the call still gets its one terminal event.
fn end_lost_call(deps: Arc<CallDeps>, call_id: String, reason: &'static str) {
    tokio::spawn(async move {
        let Ok(Some((record, state))) = deps.store.load_state(&call_id).await else {
            error!(call.id = %call_id, "lost call could not be loaded");
            return;
        };
        let event = Event::EngineFailed { reason: reason.to_string(), at: deps.clock.now() };
        let Ok(transition) = fsm::apply(&state, event, &deps.policy) else { return };
        if transition.next == state {
            return;
        }
        let published: Vec<Lifecycle> = transition.published().cloned().collect();
        if let Err(e) = deps.store.commit(&record, &transition.next, &published).await {
            error!(call.id = %call_id, error = %e, "lost call could not be ended");
            return;
        }
        if state.status >= fsm::CallStatus::Dialing && !state.is_ended() {
            let _ = deps.counters.call_ended(&record).await;
        }
    });
}

/// A handle to the current CallSupervisor, which the RootSupervisor may replace after a failure.
#[derive(Default)]
pub struct CallSupervisorHandle {
    current: RwLock<Option<ActorRef<CallSupervisorMessage>>>,
}

impl CallSupervisorHandle {
    /// Starts the actor of a committed call. Returns false when the engine is shutting down.
    pub fn start_call(&self, record: CallRecord, state: CallState) -> bool {
        self.start_call_with(record, state, Vec::new())
    }

    /// Starts the actor of a call committed together with its first transition (see
    /// [`fsm::create`]); the actor begins by running that transition's
    /// `effects`. Returns false when the engine is shutting down.
    pub fn start_call_with(&self, record: CallRecord, state: CallState, effects: Vec<Effect>) -> bool {
        let current = self.current.read().expect("supervisor handle lock").clone();
        match current {
            Some(supervisor) => supervisor
                .send_message(CallSupervisorMessage::Start {
                    record: Box::new(record),
                    state: Box::new(state),
                    effects,
                })
                .is_ok(),
            None => false,
        }
    }

    fn set(&self, supervisor: Option<ActorRef<CallSupervisorMessage>>) {
        *self.current.write().expect("supervisor handle lock") = supervisor;
    }
}

/// State of the RootSupervisor.
pub struct RootState {
    deps: Arc<CallDeps>,
    handle: Arc<CallSupervisorHandle>,
    call_supervisor: Option<ActorCell>,
}

/// The top of the actor tree: restarts the CallSupervisor if it dies.
pub struct RootSupervisor;

impl RootSupervisor {
    /// Stops the actor tree gracefully: call actors stop without ending their calls, which stay
    /// live in the store for the next start to resume.
    pub async fn shutdown(root: ActorRef<()>, handle: &CallSupervisorHandle) {
        let current = handle.current.write().expect("supervisor handle lock").take();
        if let Some(supervisor) = current {
            let cell = supervisor.get_cell();
            cell.stop_children_and_wait(Some(SHUTDOWN.to_string()), Some(std::time::Duration::from_secs(10))).await;
            let _ = cell.stop_and_wait(Some(SHUTDOWN.to_string()), Some(std::time::Duration::from_secs(5))).await;
        }
        let _ = root.stop_and_wait(Some(SHUTDOWN.to_string()), Some(std::time::Duration::from_secs(5))).await;
    }

    /// Starts the actor tree. Returns the root and a handle to start calls with.
    pub async fn start(deps: Arc<CallDeps>) -> Result<(ActorRef<()>, Arc<CallSupervisorHandle>), ActorProcessingErr> {
        let handle = Arc::new(CallSupervisorHandle::default());
        let (root, _) = Actor::spawn(None, RootSupervisor, (deps, handle.clone())).await?;
        Ok((root, handle))
    }

    async fn start_call_supervisor(root: &ActorRef<()>, s: &mut RootState) -> Result<(), ActorProcessingErr> {
        let (supervisor, _) = Actor::spawn_linked(None, CallSupervisor, s.deps.clone(), root.get_cell()).await?;
        s.call_supervisor = Some(supervisor.get_cell());
        s.handle.set(Some(supervisor));
        Ok(())
    }
}

impl Actor for RootSupervisor {
    type Msg = ();
    type State = RootState;
    type Arguments = (Arc<CallDeps>, Arc<CallSupervisorHandle>);

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        (deps, handle): Self::Arguments,
    ) -> Result<RootState, ActorProcessingErr> {
        let mut state = RootState { deps, handle, call_supervisor: None };
        RootSupervisor::start_call_supervisor(&myself, &mut state).await?;
        Ok(state)
    }

    async fn post_stop(&self, _myself: ActorRef<()>, s: &mut RootState) -> Result<(), ActorProcessingErr> {
        s.handle.set(None);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        event: SupervisionEvent,
        s: &mut RootState,
    ) -> Result<(), ActorProcessingErr> {
        let dead = match &event {
            SupervisionEvent::ActorTerminated(cell, ..) | SupervisionEvent::ActorFailed(cell, ..) => {
                Some(cell.get_id())
            }
            _ => None,
        };
        if dead.is_some() && dead == s.call_supervisor.as_ref().map(|cell| cell.get_id()) {
            s.handle.set(None);
            if let SupervisionEvent::ActorTerminated(..) = event {
                info!("call supervisor stopped");
                return Ok(());
            }
            warn!("call supervisor failed; restarting it");
            if let Err(e) = RootSupervisor::start_call_supervisor(&myself, s).await {
                error!(error = %e, "call supervisor could not be restarted");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
