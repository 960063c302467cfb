//! The CampaignActor: one per scheduled, running or paused campaign. Every tick it reads the
//! campaign afresh (so pause and stop act at once), applies the outcomes of ended calls (retry by
//! policy, or done), starts a scheduled campaign once its `starts_at` has come, and, while running,
//! admits `min(calls-per-second allowance, campaign concurrency left, workspace
//! concurrency left)` calls: it leases that many due contacts, checks each against do-not-call and
//! its calling window at that moment, and launches the eligible ones. It completes the campaign
//! when no contact can be dialed again, and retires once a stopped or completed campaign has no
//! call in flight. Campaigns of one workspace take turns to admit ([`WorkspaceTurns`]), so together
//! they stay within the workspace's cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_tz::Tz;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use super::planner::{self, AfterAttempt, Eligibility, RateLimiter};
use crate::ports::{CallLauncher, CampaignPlan, CampaignStore, Clock, ContactUpdate, LiveCounters, StoreError};

/// Stop reason of an actor whose campaign is finished, deleted or no longer active.
pub const RETIRED: &str = "retired";

/// How long a contact whose launch failed waits before it is tried again.
const LAUNCH_RETRY: chrono::Duration = chrono::Duration::seconds(5);

/// What every campaign actor shares.
pub struct CampaignDeps {
    pub store: Arc<dyn CampaignStore>,
    pub launcher: Arc<dyn CallLauncher>,
    pub counters: Arc<dyn LiveCounters>,
    pub clock: Arc<dyn Clock>,
    pub tick_interval: Duration,
    pub workspace_turns: WorkspaceTurns,
}

/// Campaigns of one workspace admit calls one at a time. A campaign reads how many of the
/// workspace's calls are live and launches what fits while it holds its workspace's turn, and the
/// launcher counts each call live as it creates it, so the next campaign reads a count that
/// includes them: two campaigns can no longer both fill the same room under the cap. The turns
/// are this process's; nodes do not share them (README, Not real yet).
#[derive(Default)]
pub struct WorkspaceTurns {
    turns: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl WorkspaceTurns {
    /// Waits for the workspace's turn; it is held until the guard is dropped.
    pub async fn take(&self, workspace_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self.turns.lock().expect("workspace turns lock");
            // A turn nobody holds or waits for is only referenced here.
            turns.retain(|_, turn| Arc::strong_count(turn) > 1);
            turns.entry(workspace_id.to_string()).or_default().clone()
        };
        turn.lock_owned().await
    }
}

/// Messages of a campaign actor.
pub enum CampaignMessage {
    Tick,
}

/// State of a campaign actor.
pub struct CampaignActorState {
    campaign_id: String,
    deps: Arc<CampaignDeps>,
    limiter: RateLimiter,
    /// A tick failed part way: contacts it leased but did not launch must be released first.
    needs_recovery: bool,
}

/// One actor per active campaign.
pub struct CampaignActor;

impl Actor for CampaignActor {
    type Msg = CampaignMessage;
    type State = CampaignActorState;
    type Arguments = (String, Arc<CampaignDeps>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (campaign_id, deps): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let needs_recovery = deps.store.recover(&campaign_id).await.is_err();
        if needs_recovery {
            warn!(campaign.id = %campaign_id, "campaign could not be recovered; retrying on the next tick");
        }
        myself.send_interval(deps.tick_interval, || CampaignMessage::Tick);
        Ok(CampaignActorState { campaign_id, deps, limiter: RateLimiter::default(), needs_recovery })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        _message: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if s.needs_recovery {
            match s.deps.store.recover(&s.campaign_id).await {
                Ok(()) => s.needs_recovery = false,
                Err(e) => {
                    warn!(campaign.id = %s.campaign_id, error = %e, "campaign could not be recovered; retrying");
                    return Ok(());
                }
            }
        }
        match tick(s).await {
            Ok(true) => {}
            Ok(false) => myself.stop(Some(RETIRED.to_string())),
            Err(e) => {
                // Contacts this tick leased and did not launch go back to pending before anything else.
                s.needs_recovery = true;
                warn!(campaign.id = %s.campaign_id, error = %e, "campaign tick failed; retrying");
            }
        }
        Ok(())
    }
}

/// One tick. Returns false when the actor should retire.
async fn tick(s: &mut CampaignActorState) -> Result<bool, StoreError> {
    let deps = s.deps.clone();
    let Some(plan) = deps.store.load(&s.campaign_id).await? else { return Ok(false) };
    apply_outcomes(&deps, &plan).await?;
    let now = deps.clock.now();
    match plan.state.as_str() {
        "running" => {}
        "scheduled" => {
            // It runs from its `starts_at` on (or at once, if that was cleared meanwhile).
            if plan.schedule.starts_at.is_none_or(|at| at <= now) && deps.store.start_scheduled(&plan.id, now).await? {
                info!(campaign.id = %plan.id, "scheduled campaign started");
            }
            return Ok(true);
        }
        "paused" => return Ok(true),
        _ => return Ok(deps.store.in_flight(&plan.id).await? > 0),
    }
    let live = deps.store.in_flight(&plan.id).await?;
    let turn = deps.workspace_turns.take(&plan.workspace_id).await;
    let workspace_live = deps
        .counters
        .live_calls(&format!("workspace:{}", plan.workspace_id))
        .await
        .map_err(|e| StoreError(e.to_string()))?;
    let workspace_left =
        plan.workspace_max_concurrent.saturating_sub(u32::try_from(workspace_live).unwrap_or(u32::MAX));
    let room = s
        .limiter
        .available(plan.pacing.calls_per_second, now)
        .min(plan.pacing.max_concurrent.saturating_sub(live))
        .min(workspace_left);
    let leased = if room > 0 { deps.store.lease(&plan.id, room, now).await? } else { Vec::new() };
    if leased.is_empty() {
        if live == 0 && deps.store.complete_if_done(&plan.id, now).await? {
            info!(campaign.id = %plan.id, "campaign completed");
            return Ok(false);
        }
        return Ok(true);
    }
    let phones: Vec<String> = leased.iter().map(|c| c.phone.clone()).collect();
    let blocked = deps.store.blocked(&plan, &phones).await?;
    let mut updates = Vec::new();
    let mut launched = 0;
    for contact in &leased {
        let tz: Tz = contact.timezone.parse().unwrap_or(chrono_tz::UTC);
        match planner::eligibility(&plan.schedule, tz, contact.next_attempt_at, blocked.contains(&contact.phone), now) {
            Eligibility::Now => {
                let attempt = contact.attempts + 1;
                match deps.launcher.launch(&plan, contact, attempt).await {
                    Ok(call_id) => {
                        deps.store.launched(contact.id, attempt, &call_id).await?;
                        launched += 1;
                    }
                    Err(e) if e.permanent => {
                        warn!(campaign.id = %plan.id, contact.id = contact.id, error = %e, "campaign call cannot be launched; contact given up");
                        updates.push((contact.id, ContactUpdate::Never("failed".to_string())));
                    }
                    Err(e) => {
                        warn!(campaign.id = %plan.id, contact.id = contact.id, error = %e, "campaign call could not be launched; retrying");
                        updates.push((contact.id, ContactUpdate::Later(now + LAUNCH_RETRY)));
                    }
                }
            }
            Eligibility::Later(at) => updates.push((contact.id, ContactUpdate::Later(at))),
            Eligibility::Never(reason) => {
                let state = if reason == "do_not_call" { "dnc" } else { "expired" };
                updates.push((contact.id, ContactUpdate::Never(state.to_string())));
            }
        }
    }
    drop(turn);
    s.limiter.record(launched, plan.pacing.calls_per_second, now);
    if !updates.is_empty() {
        deps.store.update_contacts(&plan.id, &updates).await?;
    }
    Ok(true)
}

/// Applies the retry policy to every attempt whose call has ended.
async fn apply_outcomes(deps: &CampaignDeps, plan: &CampaignPlan) -> Result<(), StoreError> {
    let finished = deps.store.finished_attempts(&plan.id).await?;
    if finished.is_empty() {
        return Ok(());
    }
    let updates: Vec<(i64, ContactUpdate)> = finished
        .into_iter()
        .map(|f| {
            let update = match planner::after_attempt(&plan.retry, f.attempts, &f.outcome, f.ended_at) {
                AfterAttempt::RetryAt(at) => ContactUpdate::RetryAt { outcome: f.outcome, at },
                AfterAttempt::Done => ContactUpdate::Done { outcome: f.outcome },
            };
            (f.contact_id, update)
        })
        .collect();
    deps.store.update_contacts(&plan.id, &updates).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One workspace's campaigns wait for each other's turn; other workspaces do not wait.
    #[tokio::test]
    async fn campaigns_of_one_workspace_take_turns_and_others_do_not_wait() {
        let turns = WorkspaceTurns::default();
        let first = turns.take("ws_a").await;
        let patience = Duration::from_millis(50);
        assert!(tokio::time::timeout(patience, turns.take("ws_a")).await.is_err(), "a second turn waited");
        let other = tokio::time::timeout(patience, turns.take("ws_b")).await;
        assert!(other.is_ok(), "another workspace's turn did not wait");
        drop(first);
        assert!(tokio::time::timeout(patience, turns.take("ws_a")).await.is_ok(), "the turn was free again");
        drop(other);
        let _third = turns.take("ws_c").await;
        assert_eq!(turns.turns.lock().unwrap().len(), 1, "turns nobody holds are forgotten");
    }
}
