//! sea-orm entities: one module per table of the `migration` crate. Rows only; the queries that use
//! them live in the store services beside this file.

/// Key/value settings the server keeps for itself (the generated JWT secret).
pub mod setting {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Tenants. Every tenant-owned row carries a workspace id.
pub mod workspace {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "workspaces")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        /// `whsec_…` secret that signs this workspace's callbacks (Standard Webhooks).
        pub signing_secret: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// People who log in.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        #[sea_orm(unique)]
        pub email: String,
        /// argon2id PHC string.
        pub password_hash: String,
        pub role: String,
        pub is_active: bool,
        pub is_verified: bool,
        pub created_at: DateTimeUtc,
        /// SHA-256 (hex) of the user's legacy developer API key (seed 001's `POST /api/agents`).
        pub api_key_hash: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Calls: the searchable columns plus the full state machine state as JSON.
pub mod call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub user_id: String,
        pub call_type: String,
        /// The API status (`queued`, `ringing`, `completed`, `busy`, …).
        pub status: String,
        pub reason: Option<String>,
        pub customer_number: String,
        pub agent_number: String,
        pub did: Option<String>,
        pub callback_url: Option<String>,
        pub carrier: String,
        pub provider_call_id: Option<String>,
        pub transcript_enabled: bool,
        pub transcript_language: Option<String>,
        pub transcript_status: String,
        pub recording_status: String,
        pub duration_s: Option<i32>,
        pub answer_duration_s: Option<i32>,
        /// JSON object (voice-agent configuration of `AGT_` calls).
        pub agent_config: String,
        /// JSON of the actors crate's `CallState`.
        pub state: String,
        /// True until the call has ended and its post-call stages are settled (recovery looks here).
        pub is_live: bool,
        /// Lifecycle events published so far: the `sequence` of the next webhook event.
        pub event_seq: i32,
        /// The campaign that placed the call.
        pub campaign_id: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub ended_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The append-only log of everything that happened to a call (carrier callbacks first of all).
pub mod call_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "call_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub call_id: String,
        pub workspace_id: String,
        /// `carrier:sandbox`, `engine`, …
        pub source: String,
        pub kind: String,
        pub payload: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Outgoing deliveries, written in the same transaction as the change that caused them.
pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        /// `msg_…`: the `webhook-id` header, stable across retries.
        #[sea_orm(unique)]
        pub message_id: String,
        pub workspace_id: String,
        pub call_id: Option<String>,
        pub event_type: String,
        pub target_url: String,
        pub body: String,
        /// `pending`, `delivered` or `failed`.
        pub status: String,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        pub last_status_code: Option<i32>,
        pub last_error: Option<String>,
        pub created_at: DateTimeUtc,
        pub delivered_at: Option<DateTimeUtc>,
        /// The webhook subscription it is for; `None` for a call's own `callback_url`.
        pub subscription_id: Option<String>,
        /// `evt_…`: the event's id, shared by the messages of every subscription it went to.
        pub event_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Recordings Dialplane fetched from the carrier and keeps itself.
pub mod recording {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recordings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub call_id: String,
        pub workspace_id: String,
        pub content_type: String,
        pub bytes: Vec<u8>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Transcripts with their analysis.
pub mod transcript {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "transcripts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub call_id: String,
        pub transcript_id: String,
        pub workspace_id: String,
        pub language: String,
        pub summary: String,
        pub call_outcome: String,
        /// JSON object: one value per visible call outcome of an agent call's config.
        pub outcomes: Option<String>,
        /// JSON array of turns.
        pub history: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The sandbox carrier's log of the calls it accepted.
pub mod sandbox_call {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sandbox_calls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub sid: String,
        /// Dialplane's call id, as the engine sent it.
        pub reference: String,
        pub kind: String,
        pub customer_number: String,
        pub status_callback: String,
        pub placed_at: DateTimeUtc,
        /// The time scale the timeline plays at.
        pub time_scale: f64,
        /// Sequence of the last callback the engine acknowledged.
        pub acked_sequence: i32,
        /// Every callback was acknowledged (or given up on).
        pub finished: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Idempotency-Key records of call-creating requests, kept at least 24 hours.
pub mod idempotency_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "idempotency_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub workspace_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        /// SHA-256 of the request's canonical JSON.
        pub request_hash: String,
        pub call_id: String,
        pub response_status: i32,
        pub response_body: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Webhook subscriptions: where a workspace's lifecycle events go.
pub mod webhook_subscription {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_subscriptions")]
    pub struct Model {
        /// `wh_…`
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub url: String,
        pub description: String,
        /// JSON array of event type patterns (`call.*`, `call.ended`, `*`).
        pub event_types: String,
        pub enabled: bool,
        /// Why the engine disabled it (`None` when the user did, or it is enabled).
        pub disabled_reason: Option<String>,
        pub disabled_at: Option<DateTimeUtc>,
        /// Since when every attempt has failed.
        pub failing_since: Option<DateTimeUtc>,
        /// `whsec_…`
        pub secret: String,
        /// The secret before the last rotation; also signs until `previous_secret_expires_at`.
        pub previous_secret: Option<String>,
        pub previous_secret_expires_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every delivery attempt to a webhook subscription.
pub mod webhook_attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub subscription_id: String,
        pub workspace_id: String,
        pub message_id: String,
        pub event_type: String,
        /// 1 for the first attempt of the message.
        pub attempt: i32,
        pub attempted_at: DateTimeUtc,
        pub status_code: Option<i32>,
        pub latency_ms: i32,
        /// `delivered`, `retrying`, `exhausted` or `abandoned`.
        pub result: String,
        pub error: Option<String>,
        pub response_excerpt: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// AI voice agents (seed 001), owned by one user.
pub mod agent {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agents")]
    pub struct Model {
        /// `AGT_` + 8 characters.
        #[sea_orm(primary_key, auto_increment = false)]
        pub agent_id: String,
        /// The internal id seed 001 shows as `id`.
        #[sea_orm(unique)]
        pub id: String,
        pub workspace_id: String,
        pub user_id: String,
        pub agent_name: String,
        pub agent_description: String,
        /// JSON array of team members.
        pub team: String,
        pub is_active: bool,
        /// `INBOUND` or `OUTBOUND`.
        pub agent_type: String,
        pub whatsapp_enabled: bool,
        pub is_auto: bool,
        pub agent_cost: f64,
        pub livekit_api_key: Option<String>,
        pub livekit_host_url: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Versions of an agent's config: `draft`, `published` or `archived`; at most one is current.
pub mod agent_config {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "agent_configs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub agent_id: String,
        pub version: i32,
        pub status: String,
        pub is_current: bool,
        /// JSON object: prompts, metadata schema, examples, guidelines, call outcomes and infields,
        /// notes and the four service configs.
        pub document: String,
        pub created_by: String,
        pub updated_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Contacts of a workspace's contact book.
pub mod contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        /// `con_…`
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        /// E.164, unique per workspace.
        pub phone: String,
        pub name: Option<String>,
        /// IANA name; `None` when neither given nor inferable.
        pub timezone: Option<String>,
        /// JSON object of the contact's other fields.
        pub variables: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Do-not-call entries: per workspace (`campaign_id` empty) or per campaign.
pub mod dnc_entry {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "dnc_entries")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub workspace_id: String,
        /// `""` for the whole workspace.
        pub campaign_id: String,
        pub phone: String,
        pub reason: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Campaigns: a dialer over a list of contacts.
pub mod campaign {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaigns")]
    pub struct Model {
        /// `cmp_…`
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub user_id: String,
        pub name: String,
        /// `draft`, `scheduled`, `running`, `paused`, `completed` or `stopped`.
        pub state: String,
        /// JSON of the campaign's settings.
        pub settings: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
        pub launched_at: Option<DateTimeUtc>,
        pub finished_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A campaign's contacts and where each stands.
pub mod campaign_contact {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "campaign_contacts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub campaign_id: String,
        pub workspace_id: String,
        pub contact_id: Option<String>,
        pub phone: String,
        pub name: Option<String>,
        /// IANA timezone its calling window is evaluated in.
        pub timezone: String,
        pub variables: String,
        /// `pending`, `dialing`, `done`, `dnc`, `canceled` or `expired`.
        pub state: String,
        /// Attempts launched so far.
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
        /// The call of the latest attempt.
        pub call_id: Option<String>,
        pub last_outcome: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod carrier_account {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "carrier_accounts")]
    pub struct Model {
        /// `car_…`
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        pub name: String,
        /// `twilio`, `exotel` or `livekit`.
        pub provider: String,
        /// JSON object of the provider's settings (never secret).
        pub config: String,
        /// JSON object of the provider's credentials: write-only, never returned or logged.
        pub credentials: String,
        pub calls_per_second: f64,
        /// Unguessable token in callback URLs of carriers that do not sign their callbacks.
        pub callback_token: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod phone_number {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "phone_numbers")]
    pub struct Model {
        /// `pn_…`
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub workspace_id: String,
        /// E.164, unique per workspace.
        pub phone_number: String,
        /// The carrier account calls from this number go through; `None` is the sandbox.
        pub carrier_id: Option<String>,
        /// The voice agent mapped to this number (its calls use it as caller ID).
        pub agent_id: Option<String>,
        pub label: Option<String>,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Refresh tokens issued: each is used once, rotated for a new one of the same family.
pub mod refresh_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        /// The token's `jti`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// The tokens rotated from one login share it.
        pub family_id: String,
        pub user_id: String,
        pub expires_at: DateTimeUtc,
        /// When it was exchanged for a new token; a token is exchanged once.
        pub rotated_at: Option<DateTimeUtc>,
        /// When its family was revoked (a rotated token was presented again).
        pub revoked_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
