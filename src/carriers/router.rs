//! The carrier every call actor talks to: it routes each call to the adapter of its carrier
//! account (`CallRecord::carrier` is `sandbox` or an account id), paces placements per account,
//! and knows which account a DID belongs to. Accounts and numbers are read from the database
//! into an in-memory directory, reloaded on every change made here and periodically for changes
//! made by other nodes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use dialplane_actors::CallRecord;
use dialplane_actors::fsm::StatusAnswer;
use dialplane_actors::ports::{Carrier, CarrierError, PlacedCall, Recording};
use sea_orm::{ConnectionTrait, DbErr};
use tracing::warn;

use super::accounts::{self, AccountSettings};
use super::exotel::ExotelCarrier;
use super::livekit::LivekitCarrier;
use super::pacer::Pacer;
use super::twilio::TwilioCarrier;

/// The carrier key of calls that go through the built-in sandbox.
pub const SANDBOX: &str = "sandbox";

/// One carrier account, ready to place calls.
pub struct AccountEntry {
    pub id: String,
    pub workspace_id: String,
    pub settings: AccountSettings,
    pub callback_token: String,
    pub calls_per_second: f64,
    pub adapter: Arc<dyn Carrier>,
}

/// Where a new call goes: its carrier key and caller ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub carrier: String,
    pub did: Option<String>,
}

#[derive(Default)]
struct Directory {
    accounts: HashMap<String, Arc<AccountEntry>>,
    /// `(workspace, number digits)` → the number's account (`None`: the sandbox).
    numbers: HashMap<(String, String), Option<String>>,
    /// `(workspace, agent id)` → the digits of the number mapped to the agent.
    agent_numbers: HashMap<(String, String), String>,
}

/// Routes calls to their carrier accounts' adapters.
pub struct CarrierRouter {
    sandbox: Arc<dyn Carrier>,
    pacer: Pacer,
    public_url: String,
    /// Whether carrier APIs may be on private addresses (development and tests).
    allow_private: bool,
    directory: RwLock<Arc<Directory>>,
    /// Serialises reloads, so an older read never replaces a newer one.
    reloading: tokio::sync::Mutex<()>,
    /// When a look-up miss last caused a reload (misses reload at most once a second, so
    /// requests naming unknown accounts cannot turn into a reload each).
    last_miss_reload: std::sync::Mutex<Option<std::time::Instant>>,
}

fn digits(number: &str) -> String {
    number.trim_start_matches('+').to_string()
}

impl CarrierRouter {
    pub fn new(sandbox: Arc<dyn Carrier>, pacer: Pacer, public_url: &str, allow_private: bool) -> CarrierRouter {
        CarrierRouter {
            sandbox,
            pacer,
            public_url: public_url.to_string(),
            allow_private,
            directory: RwLock::new(Arc::new(Directory::default())),
            reloading: tokio::sync::Mutex::new(()),
            last_miss_reload: std::sync::Mutex::new(None),
        }
    }

    /// Builds the adapter of an account.
    fn entry_of(&self, row: &crate::store::entities::carrier_account::Model) -> anyhow::Result<AccountEntry> {
        let settings = AccountSettings::of_row(row).map_err(|e| anyhow::anyhow!("{e}"))?;
        let adapter: Arc<dyn Carrier> = match &settings {
            AccountSettings::Twilio(s) => {
                Arc::new(TwilioCarrier::new(s.clone(), &self.public_url, &row.id, self.allow_private)?)
            }
            AccountSettings::Exotel(s) => Arc::new(ExotelCarrier::new(
                s.clone(),
                &self.public_url,
                &row.id,
                &row.callback_token,
                self.allow_private,
            )?),
            AccountSettings::Livekit(s) => Arc::new(LivekitCarrier::new(s.clone(), self.allow_private)?),
        };
        Ok(AccountEntry {
            id: row.id.clone(),
            workspace_id: row.workspace_id.clone(),
            settings,
            callback_token: row.callback_token.clone(),
            calls_per_second: row.calls_per_second,
            adapter,
        })
    }

    /// Reads every account and number again.
    pub async fn reload(&self, db: &impl ConnectionTrait) -> Result<(), DbErr> {
        let _one_at_a_time = self.reloading.lock().await;
        let mut directory = Directory::default();
        for row in accounts::all_accounts(db).await? {
            match self.entry_of(&row) {
                Ok(entry) => {
                    directory.accounts.insert(row.id.clone(), Arc::new(entry));
                }
                Err(e) => warn!(carrier.id = %row.id, error = %e, "carrier account could not be loaded"),
            }
        }
        for number in accounts::all_numbers(db).await? {
            let key = digits(&number.phone_number);
            if let Some(agent) = &number.agent_id {
                directory.agent_numbers.insert((number.workspace_id.clone(), agent.clone()), key.clone());
            }
            directory.numbers.insert((number.workspace_id.clone(), key), number.carrier_id.clone());
        }
        *self.directory.write().expect("directory lock") = Arc::new(directory);
        Ok(())
    }

    fn snapshot(&self) -> Arc<Directory> {
        self.directory.read().expect("directory lock").clone()
    }

    /// Returns where a new call of a workspace goes: the account of its DID, or for an agent call
    /// without one, the account and number mapped to the agent; the sandbox otherwise.
    pub fn route(&self, workspace_id: &str, did: Option<&str>, agent_number: &str) -> Route {
        let directory = self.snapshot();
        let did = did
            .map(digits)
            .or_else(|| directory.agent_numbers.get(&(workspace_id.to_string(), agent_number.to_string())).cloned());
        let carrier = did
            .as_ref()
            .and_then(|d| directory.numbers.get(&(workspace_id.to_string(), d.clone())).cloned().flatten())
            .unwrap_or_else(|| SANDBOX.to_string());
        Route { carrier, did }
    }

    /// Returns an account by id.
    pub fn account(&self, id: &str) -> Option<Arc<AccountEntry>> {
        self.snapshot().accounts.get(id).cloned()
    }

    /// Returns an account by id, reading the database again when it is not known yet (another
    /// node may have just created it).
    pub async fn account_or_reload(
        &self,
        db: &impl ConnectionTrait,
        id: &str,
    ) -> Result<Option<Arc<AccountEntry>>, DbErr> {
        if let Some(entry) = self.account(id) {
            return Ok(Some(entry));
        }
        let due = {
            let mut last = self.last_miss_reload.lock().expect("miss lock");
            let due = last.is_none_or(|at| at.elapsed() >= std::time::Duration::from_secs(1));
            if due {
                *last = Some(std::time::Instant::now());
            }
            due
        };
        if due && id.starts_with("car_") {
            self.reload(db).await?;
        }
        Ok(self.account(id))
    }

    /// Returns the LiveKit accounts whose API key is `api_key`.
    pub fn livekit_accounts(&self, api_key: &str) -> Vec<Arc<AccountEntry>> {
        self.snapshot()
            .accounts
            .values()
            .filter(|a| matches!(&a.settings, AccountSettings::Livekit(s) if s.api_key == api_key))
            .cloned()
            .collect()
    }

    /// Returns the provider name of a carrier key.
    pub fn provider_of(&self, carrier: &str) -> &'static str {
        if carrier == SANDBOX {
            return SANDBOX;
        }
        self.account(carrier).map_or("unknown", |a| a.settings.provider().as_str())
    }

    /// Returns the account a call goes through (`None`: the sandbox).
    fn entry(&self, call: &CallRecord) -> Result<Option<Arc<AccountEntry>>, CarrierError> {
        if call.carrier == SANDBOX {
            return Ok(None);
        }
        self.account(&call.carrier).map(Some).ok_or_else(|| CarrierError::Refused {
            reason: "carrier_account_missing",
            detail: format!("carrier account {} no longer exists", call.carrier),
        })
    }

    fn adapter(&self, call: &CallRecord) -> Result<Arc<dyn Carrier>, CarrierError> {
        Ok(self.entry(call)?.map_or_else(|| self.sandbox.clone(), |entry| entry.adapter.clone()))
    }
}

#[async_trait]
impl Carrier for CarrierRouter {
    fn name(&self) -> &'static str {
        "router"
    }

    async fn place_call(&self, call: &CallRecord) -> Result<PlacedCall, CarrierError> {
        let Some(entry) = self.entry(call)? else {
            return self.sandbox.place_call(call).await;
        };
        if !self.pacer.wait_turn(&entry.id, entry.calls_per_second).await {
            return Err(CarrierError::Refused {
                reason: "carrier_queue_full",
                detail: format!(
                    "more than {} s of calls are queued for this carrier account's {} calls per second",
                    super::pacer::LONGEST_QUEUE_WAIT.as_secs(),
                    entry.calls_per_second
                ),
            });
        }
        entry.adapter.place_call(call).await
    }

    async fn fetch_recording(&self, call: &CallRecord, url: &str) -> Result<Recording, CarrierError> {
        self.adapter(call)?.fetch_recording(call, url).await
    }

    async fn fetch_status(
        &self,
        call: &CallRecord,
        provider_call_id: Option<&str>,
    ) -> Result<StatusAnswer, CarrierError> {
        self.adapter(call)?.fetch_status(call, provider_call_id).await
    }

    async fn hang_up(&self, call: &CallRecord, provider_call_id: &str, answered: bool) -> Result<(), CarrierError> {
        self.adapter(call)?.hang_up(call, provider_call_id, answered).await
    }

    async fn transfer(&self, call: &CallRecord, provider_call_id: &str, to: &str) -> Result<(), CarrierError> {
        self.adapter(call)?.transfer(call, provider_call_id, to).await
    }
}
