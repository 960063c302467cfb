//! [`CampaignCallLauncher`], the campaign actors' `CallLauncher` port: creates the call of a
//! contact's attempt through the group-commit writer with the idempotency key
//! `campaign contact {contact} attempt {attempt}` (so an attempt launched before a crash finds its
//! call instead of dialing again), already dialing as an API call is (its row and its first
//! transition are one write), counts it live, then starts its call actor.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use dialplane_actors::fsm::{self, Policy};
use dialplane_actors::ports::{CallLauncher, CampaignPlan, LaunchError, LeasedContact, LiveCounters};
use dialplane_actors::{CallRecord, CallSupervisorHandle, CallType};
use sea_orm::{DatabaseConnection, EntityTrait};
use serde_json::{Value, json};
use tracing::warn;

use super::store::settings_of;
use crate::store::calls::{self, Creation, IdempotentRequest};
use crate::store::entities::{campaign, campaign_contact};
use crate::store::writer::{WriteOp, WriteOutcome, Writer};
use crate::{ids, telemetry};

/// Creates campaign calls.
pub struct CampaignCallLauncher {
    pub db: DatabaseConnection,
    pub writer: Writer,
    pub calls: Arc<CallSupervisorHandle>,
    /// Picks each call's carrier account from its caller ID.
    pub carriers: Arc<crate::carriers::router::CarrierRouter>,
    /// The live counters the campaigns' workspace cap is read from.
    pub counters: Arc<dyn LiveCounters>,
    /// The call state machine's policy, for each call's first transition.
    pub call_policy: Policy,
}

#[async_trait]
impl CallLauncher for CampaignCallLauncher {
    async fn launch(&self, plan: &CampaignPlan, contact: &LeasedContact, attempt: u32) -> Result<String, LaunchError> {
        let transient = |e: sea_orm::DbErr| LaunchError { message: e.to_string(), permanent: false };
        let permanent = |message: String| LaunchError { message, permanent: true };
        let row = campaign::Entity::find_by_id(plan.id.clone()).one(&self.db).await.map_err(transient)?;
        let row = row.ok_or_else(|| permanent("the campaign was deleted".to_string()))?;
        let settings = settings_of(&row);
        let stored = campaign_contact::Entity::find_by_id(contact.id).one(&self.db).await.map_err(transient)?;
        let variables: Value =
            stored.and_then(|c| serde_json::from_str(&c.variables).ok()).unwrap_or_else(|| json!({}));
        let (call_type, agent_config) = if settings.is_agent() {
            let config = crate::http::agents::call_config(
                &self.db,
                &row.user_id,
                &settings.agent_number,
                &json!({ "metadata": variables }),
            )
            .await
            .map_err(|e| LaunchError {
                permanent: !matches!(e, crate::error::ApiError::Unavailable(_) | crate::error::ApiError::Internal(_)),
                message: e.to_string(),
            })?;
            (CallType::AgentTelephony, config)
        } else {
            (CallType::ClickToCall, json!({}))
        };
        // Caller IDs rotate over the campaign's contacts.
        let did = (!settings.caller_ids.is_empty())
            .then(|| settings.caller_ids[(contact.id.unsigned_abs() as usize) % settings.caller_ids.len()].clone());
        let agent_number = settings.agent_number.trim_start_matches('+').to_string();
        let route = self.carriers.route(&row.workspace_id, did.as_deref(), &agent_number);
        let record = CallRecord {
            id: ids::new_call_id(),
            workspace_id: row.workspace_id.clone(),
            user_id: row.user_id.clone(),
            call_type,
            customer_number: contact.phone.trim_start_matches('+').to_string(),
            agent_number,
            did: route.did,
            carrier: route.carrier,
            transcript_enabled: settings.transcript,
            transcript_language: None,
            agent_config,
        };
        // Stored dialing, as the live counters' rebuild counts it: a call stored queued and counted
        // here was forgotten by the next rebuild until its actor dialed it.
        let created = fsm::create(call_type, record.transcript_enabled, Utc::now(), &self.call_policy);
        let mut call_row = calls::new_row(&record, settings.callback_url.clone(), &created.next);
        call_row.campaign_id = Some(row.id.clone());
        // Spaces keep it apart from every client's Idempotency-Key (visible characters only).
        let key = format!("campaign contact {} attempt {attempt}", contact.id);
        let idempotency = IdempotentRequest {
            request_hash: key.clone(),
            key,
            response_status: 200,
            response_body: json!({ "call_id": record.id }).to_string(),
        };
        match self.writer.write(WriteOp::InsertCall { row: call_row, idempotency: Some(idempotency) }).await {
            Ok(WriteOutcome::Created(Creation::Created) | WriteOutcome::Done) => {
                telemetry::call_created(call_type.as_api_str());
                telemetry::campaign_attempt(&row.id);
                let call_id = record.id.clone();
                // Counted before its actor starts (which counts it again, to no effect), so the
                // next campaign of the workspace to admit sees it (`WorkspaceTurns`).
                if let Err(e) = self.counters.call_started(&record).await {
                    warn!(call.id = %call_id, error = %e, "campaign call not counted live yet; its actor will count it");
                }
                // During a shutdown the call stays dialing and is resumed at the next start.
                self.calls.start_call_with(record, created.next, created.effects);
                Ok(call_id)
            }
            Ok(WriteOutcome::Created(Creation::Replay { call_id, .. })) => Ok(call_id),
            Ok(WriteOutcome::Created(Creation::KeyReused)) => Err(permanent("idempotency key reused".to_string())),
            Err(e) => Err(transient(e)),
        }
    }
}
