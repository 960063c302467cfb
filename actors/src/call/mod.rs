//! Calls: the static description of a call ([`CallRecord`]), its pure state machine ([`fsm`]) and
//! the actor that drives one live call ([`actor`]).
//!
//! | state         | reached when                                                    |
//! |---------------|-----------------------------------------------------------------|
//! | `queued`      | the call row is committed; nothing was sent to the carrier yet  |
//! | `dialing`     | the carrier request is under way                                |
//! | `ringing`     | the carrier reports a leg ringing (agent first for click-to-call)|
//! | `in_progress` | the customer answered (the legs are bridged)                    |
//! | `ended`       | a terminal outcome: completed, busy, no_answer, failed, canceled |
//!
//! After `ended`, two post-call stages run: the recording (`pending → ready | none | failed`) and
//! the transcript (`disabled | pending → processing → ready | failed`). The actor stops once the
//! call has ended and both stages are settled.

pub mod actor;
pub mod fsm;

use serde::{Deserialize, Serialize};

/// What kind of call this is; decides which legs the carrier reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallType {
    /// Click-to-call: ring the agent's phone first, then the customer, then bridge them.
    ClickToCall,
    /// An AI voice agent (`AGT_…`) calls the customer: only the customer leg rings.
    AgentTelephony,
}

impl CallType {
    /// Returns the name used by the `/api` surface (`C2C`, `agent_telephony`).
    pub fn as_api_str(self) -> &'static str {
        match self {
            CallType::ClickToCall => "C2C",
            CallType::AgentTelephony => "agent_telephony",
        }
    }

    /// Parses the `/api` name back.
    pub fn from_api_str(s: &str) -> Option<Self> {
        match s {
            "C2C" => Some(CallType::ClickToCall),
            "agent_telephony" => Some(CallType::AgentTelephony),
            _ => None,
        }
    }
}

/// The parts of a call that never change after creation: who, where, and what to do after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    /// `call_` + 16 lowercase alphanumerics.
    pub id: String,
    /// Tenant that owns the call; every query filters by it.
    pub workspace_id: String,
    /// User that created the call (the `/api` surface shows a user only their own calls).
    pub user_id: String,
    pub call_type: CallType,
    /// E.164-ish digits of the customer (never logged raw).
    pub customer_number: String,
    /// The agent's phone number, or an `AGT_` voice-agent id.
    pub agent_number: String,
    /// Caller ID presented to both legs.
    pub did: Option<String>,
    /// Name of the carrier adapter that places the call.
    pub carrier: String,
    /// Whether the recording is transcribed after the call.
    pub transcript_enabled: bool,
    pub transcript_language: Option<String>,
    /// Voice-agent configuration kept for `AGT_` calls.
    pub agent_config: serde_json::Value,
}
