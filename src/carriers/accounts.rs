//! Carrier accounts and phone numbers: the per-provider settings (validated from the API's
//! `config` and write-only `credentials`) and their storage. A phone number belongs to at most one
//! account; a call placed from it goes out through that account.

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::store::entities::{carrier_account, phone_number};

/// A carrier provider Dialplane has an adapter for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Twilio,
    Exotel,
    Livekit,
}

impl Provider {
    /// Parses the API's `provider` field.
    pub fn parse(raw: &str) -> Option<Provider> {
        match raw {
            "twilio" => Some(Provider::Twilio),
            "exotel" => Some(Provider::Exotel),
            "livekit" => Some(Provider::Livekit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Exotel => "exotel",
            Provider::Livekit => "livekit",
        }
    }

    /// Calls per second an account gets unless told otherwise: Twilio's default account limit,
    /// Exotel's 200 requests a minute, and a modest pace for a LiveKit SIP trunk.
    pub fn default_calls_per_second(self) -> f64 {
        match self {
            Provider::Twilio => 1.0,
            Provider::Exotel => 3.0,
            Provider::Livekit => 10.0,
        }
    }
}

/// Twilio Programmable Voice settings.
#[derive(Clone, Debug, PartialEq)]
pub struct TwilioSettings {
    pub account_sid: String,
    pub api_base: String,
    pub record: bool,
    pub machine_detection: bool,
    pub ring_timeout_s: u32,
    pub auth_token: String,
}

/// Exotel voice v1 settings.
#[derive(Clone, Debug, PartialEq)]
pub struct ExotelSettings {
    pub account_sid: String,
    pub api_base: String,
    pub record: bool,
    pub ring_timeout_s: u32,
    pub api_key: String,
    pub api_token: String,
}

/// LiveKit SIP settings.
#[derive(Clone, Debug, PartialEq)]
pub struct LivekitSettings {
    pub url: String,
    pub sip_trunk_id: String,
    pub ring_timeout_s: u32,
    pub api_key: String,
    pub api_secret: String,
}

/// One account's validated settings, secrets included.
#[derive(Clone, Debug, PartialEq)]
pub enum AccountSettings {
    Twilio(TwilioSettings),
    Exotel(ExotelSettings),
    Livekit(LivekitSettings),
}

impl AccountSettings {
    pub fn provider(&self) -> Provider {
        match self {
            AccountSettings::Twilio(_) => Provider::Twilio,
            AccountSettings::Exotel(_) => Provider::Exotel,
            AccountSettings::Livekit(_) => Provider::Livekit,
        }
    }

    /// Returns the public settings as the API shows them (defaults filled in, no secrets).
    pub fn public_config(&self) -> Value {
        match self {
            AccountSettings::Twilio(s) => json!({
                "account_sid": s.account_sid, "api_base": s.api_base, "record": s.record,
                "machine_detection": s.machine_detection, "ring_timeout_s": s.ring_timeout_s,
            }),
            AccountSettings::Exotel(s) => json!({
                "account_sid": s.account_sid, "api_base": s.api_base, "record": s.record,
                "ring_timeout_s": s.ring_timeout_s,
            }),
            AccountSettings::Livekit(s) => json!({
                "url": s.url, "sip_trunk_id": s.sip_trunk_id, "ring_timeout_s": s.ring_timeout_s,
            }),
        }
    }

    /// Returns the carrier API's base URL and the config field that named it.
    pub fn api_base(&self) -> (&str, &'static str) {
        match self {
            AccountSettings::Twilio(s) => (&s.api_base, "config.api_base"),
            AccountSettings::Exotel(s) => (&s.api_base, "config.api_base"),
            AccountSettings::Livekit(s) => (&s.url, "config.url"),
        }
    }

    /// Refuses a carrier API on a private or loopback address unless `allow_private`.
    pub fn check_reachable(&self, allow_private: bool) -> Result<(), ApiError> {
        let (base, field) = self.api_base();
        crate::netguard::check_callback_url(base, allow_private)
            .map(|_| ())
            .map_err(|e| ApiError::field("body", field, e.to_string(), "value_error"))
    }

    /// Returns the credentials as stored.
    pub fn credentials(&self) -> Value {
        match self {
            AccountSettings::Twilio(s) => json!({ "auth_token": s.auth_token }),
            AccountSettings::Exotel(s) => json!({ "api_key": s.api_key, "api_token": s.api_token }),
            AccountSettings::Livekit(s) => json!({ "api_key": s.api_key, "api_secret": s.api_secret }),
        }
    }

    /// Validates a provider's `config` and `credentials`; errors name the field.
    pub fn parse(provider: Provider, config: &Value, credentials: &Value) -> Result<AccountSettings, ApiError> {
        let config = Fields::new("config", config)?;
        let credentials = Fields::new("credentials", credentials)?;
        Ok(match provider {
            Provider::Twilio => {
                let account_sid = config.required("account_sid")?;
                if !(account_sid.len() == 34
                    && account_sid.starts_with("AC")
                    && account_sid[2..].chars().all(|c| c.is_ascii_hexdigit()))
                {
                    return Err(config.error("account_sid", "must be AC followed by 32 hexadecimal digits"));
                }
                AccountSettings::Twilio(TwilioSettings {
                    account_sid,
                    api_base: config.base_url("api_base", "https://api.twilio.com")?,
                    record: config.flag("record", true)?,
                    machine_detection: config.flag("machine_detection", false)?,
                    ring_timeout_s: config.seconds("ring_timeout_s", 30, 600)?,
                    auth_token: credentials.required("auth_token")?,
                })
            }
            Provider::Exotel => AccountSettings::Exotel(ExotelSettings {
                account_sid: config.required("account_sid")?,
                api_base: config.base_url("api_base", "https://api.exotel.com")?,
                record: config.flag("record", true)?,
                ring_timeout_s: config.seconds("ring_timeout_s", 30, 600)?,
                api_key: credentials.required("api_key")?,
                api_token: credentials.required("api_token")?,
            }),
            Provider::Livekit => {
                let sip_trunk_id = config.required("sip_trunk_id")?;
                if !sip_trunk_id.starts_with("ST_") {
                    return Err(config.error("sip_trunk_id", "must be a LiveKit outbound trunk id (ST_…)"));
                }
                AccountSettings::Livekit(LivekitSettings {
                    url: config.base_url("url", "")?,
                    sip_trunk_id,
                    ring_timeout_s: config.seconds("ring_timeout_s", 30, 600)?,
                    api_key: credentials.required("api_key")?,
                    api_secret: credentials.required("api_secret")?,
                })
            }
        })
    }

    /// Rebuilds the settings of a stored account.
    pub fn of_row(row: &carrier_account::Model) -> Result<AccountSettings, ApiError> {
        let provider = Provider::parse(&row.provider)
            .ok_or_else(|| ApiError::Internal(format!("carrier account {} has an unknown provider", row.id)))?;
        let config: Value = serde_json::from_str(&row.config).map_err(|e| ApiError::Internal(e.to_string()))?;
        let credentials: Value =
            serde_json::from_str(&row.credentials).map_err(|e| ApiError::Internal(e.to_string()))?;
        AccountSettings::parse(provider, &config, &credentials)
    }
}

/// Reads the fields of one JSON object of the request, naming `object.field` in errors.
struct Fields<'a> {
    object: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(object: &'static str, value: &'a Value) -> Result<Self, ApiError> {
        let map = value.as_object().ok_or_else(|| ApiError::field("body", object, "must be an object", "dict_type"))?;
        Ok(Fields { object, map })
    }

    fn error(&self, field: &str, message: &str) -> ApiError {
        ApiError::field("body", &format!("{}.{field}", self.object), message, "value_error")
    }

    fn required(&self, field: &str) -> Result<String, ApiError> {
        match self.map.get(field) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 512 => Ok(s.trim().to_string()),
            Some(Value::String(_)) => Err(self.error(field, "must be 1 to 512 characters")),
            Some(_) => Err(self.error(field, "must be a string")),
            None => Err(ApiError::field("body", &format!("{}.{field}", self.object), "Field required", "missing")),
        }
    }

    fn flag(&self, field: &str, default: bool) -> Result<bool, ApiError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.error(field, "must be true or false")),
        }
    }

    fn seconds(&self, field: &str, default: u32, max: u32) -> Result<u32, ApiError> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|n| (5..=u64::from(max)).contains(n))
                .map(|n| n as u32)
                .ok_or_else(|| self.error(field, &format!("must be a whole number of seconds from 5 to {max}"))),
        }
    }

    /// An `http(s)` base URL without a trailing slash; `default` when absent (none if empty).
    fn base_url(&self, field: &str, default: &str) -> Result<String, ApiError> {
        let raw = match self.map.get(field) {
            None | Some(Value::Null) if !default.is_empty() => return Ok(default.to_string()),
            None | Some(Value::Null) => return self.required(field),
            Some(_) => self.required(field)?,
        };
        match url::Url::parse(&raw) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() && url.query().is_none() => {
                Ok(raw.trim_end_matches('/').to_string())
            }
            _ => Err(self.error(field, "must be an http(s) URL without a query")),
        }
    }
}

/// Reads `calls_per_second`: a number above 0 and at most 1,000.
pub fn calls_per_second(value: Option<&Value>, provider: Provider) -> Result<f64, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(provider.default_calls_per_second()),
        Some(v) => v.as_f64().filter(|n| *n > 0.0 && *n <= 1000.0).ok_or_else(|| {
            ApiError::field("body", "calls_per_second", "must be a number above 0 and at most 1000", "value_error")
        }),
    }
}

/// Returns an account as the API shows it: never its credentials.
pub fn account_view(row: &carrier_account::Model) -> Value {
    let config: Value = serde_json::from_str(&row.config).unwrap_or(Value::Null);
    let public = Provider::parse(&row.provider)
        .and_then(|provider| {
            let credentials: Value = serde_json::from_str(&row.credentials).ok()?;
            AccountSettings::parse(provider, &config, &credentials).ok()
        })
        .map(|settings| settings.public_config())
        .unwrap_or(Value::Null);
    json!({
        "id": row.id,
        "name": row.name,
        "provider": row.provider,
        "config": public,
        "calls_per_second": row.calls_per_second,
        "has_credentials": true,
        "created_at": crate::call_view::iso(row.created_at),
        "updated_at": crate::call_view::iso(row.updated_at),
    })
}

/// Returns a phone number as the API shows it.
pub fn number_view(row: &phone_number::Model, provider: &str) -> Value {
    json!({
        "id": row.id,
        "phone_number": row.phone_number,
        "carrier_id": row.carrier_id,
        "provider": provider,
        "agent_id": row.agent_id,
        "label": row.label,
        "created_at": crate::call_view::iso(row.created_at),
        "updated_at": crate::call_view::iso(row.updated_at),
    })
}

pub async fn list_accounts(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    page: u64,
    page_size: u64,
) -> Result<(Vec<carrier_account::Model>, u64), DbErr> {
    let query = carrier_account::Entity::find()
        .filter(carrier_account::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(carrier_account::Column::CreatedAt)
        .order_by_asc(carrier_account::Column::Id);
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

pub async fn all_accounts(db: &impl ConnectionTrait) -> Result<Vec<carrier_account::Model>, DbErr> {
    carrier_account::Entity::find().all(db).await
}

pub async fn find_account(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    id: &str,
) -> Result<Option<carrier_account::Model>, DbErr> {
    carrier_account::Entity::find_by_id(id.to_string())
        .filter(carrier_account::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
}

pub async fn insert_account(db: &impl ConnectionTrait, row: carrier_account::Model) -> Result<(), DbErr> {
    carrier_account::Entity::insert(row.into_active_model()).exec(db).await.map(|_| ())
}

/// Writes an account's name, settings and pace (only those columns).
pub async fn update_account(db: &impl ConnectionTrait, row: &carrier_account::Model) -> Result<(), DbErr> {
    carrier_account::Entity::update_many()
        .col_expr(carrier_account::Column::Name, Expr::value(row.name.clone()))
        .col_expr(carrier_account::Column::Config, Expr::value(row.config.clone()))
        .col_expr(carrier_account::Column::Credentials, Expr::value(row.credentials.clone()))
        .col_expr(carrier_account::Column::CallsPerSecond, Expr::value(row.calls_per_second))
        .col_expr(carrier_account::Column::UpdatedAt, Expr::value(Utc::now()))
        .filter(carrier_account::Column::Id.eq(row.id.clone()))
        .exec(db)
        .await
        .map(|_| ())
}

pub async fn delete_account(db: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    carrier_account::Entity::delete_by_id(id.to_string()).exec(db).await.map(|_| ())
}

/// Counts the calls through an account that are not finished (their recording may still be
/// fetched from it).
pub async fn count_unfinished_calls_of(db: &impl ConnectionTrait, carrier_id: &str) -> Result<u64, DbErr> {
    use crate::store::entities::call;
    call::Entity::find()
        .filter(call::Column::Carrier.eq(carrier_id))
        .filter(call::Column::IsLive.eq(true))
        .count(db)
        .await
}

pub async fn count_numbers_of(db: &impl ConnectionTrait, carrier_id: &str) -> Result<u64, DbErr> {
    phone_number::Entity::find().filter(phone_number::Column::CarrierId.eq(carrier_id)).count(db).await
}

pub async fn list_numbers(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    carrier_id: Option<&str>,
    page: u64,
    page_size: u64,
) -> Result<(Vec<phone_number::Model>, u64), DbErr> {
    let mut query = phone_number::Entity::find()
        .filter(phone_number::Column::WorkspaceId.eq(workspace_id))
        .order_by_asc(phone_number::Column::PhoneNumber);
    if let Some(carrier_id) = carrier_id {
        query = query.filter(phone_number::Column::CarrierId.eq(carrier_id));
    }
    let total = query.clone().count(db).await?;
    let rows = query.offset((page - 1) * page_size).limit(page_size).all(db).await?;
    Ok((rows, total))
}

pub async fn all_numbers(db: &impl ConnectionTrait) -> Result<Vec<phone_number::Model>, DbErr> {
    phone_number::Entity::find().all(db).await
}

pub async fn find_number(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    id: &str,
) -> Result<Option<phone_number::Model>, DbErr> {
    phone_number::Entity::find_by_id(id.to_string())
        .filter(phone_number::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await
}

pub async fn find_number_by_value(
    db: &impl ConnectionTrait,
    workspace_id: &str,
    number: &str,
) -> Result<Option<phone_number::Model>, DbErr> {
    phone_number::Entity::find()
        .filter(phone_number::Column::WorkspaceId.eq(workspace_id))
        .filter(phone_number::Column::PhoneNumber.eq(number))
        .one(db)
        .await
}

pub async fn insert_number(db: &impl ConnectionTrait, row: phone_number::Model) -> Result<(), DbErr> {
    phone_number::Entity::insert(row.into_active_model()).exec(db).await.map(|_| ())
}

pub async fn save_number(db: &impl ConnectionTrait, row: phone_number::Model) -> Result<(), DbErr> {
    row.into_active_model().reset_all().update(db).await.map(|_| ())
}

pub async fn delete_number(db: &impl ConnectionTrait, id: &str) -> Result<(), DbErr> {
    phone_number::Entity::delete_by_id(id.to_string()).exec(db).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_field_by_field() {
        let sid = format!("AC{}", "a".repeat(32));
        let ok =
            AccountSettings::parse(Provider::Twilio, &json!({"account_sid": sid}), &json!({"auth_token": "t0ken"}))
                .unwrap();
        assert_eq!(ok.public_config()["api_base"], "https://api.twilio.com");
        assert!(!ok.public_config().to_string().contains("t0ken"), "no secret in the public config");
        let err =
            |provider, config: Value, credentials: Value| match AccountSettings::parse(provider, &config, &credentials)
                .unwrap_err()
            {
                ApiError::Validation(errors) => errors[0].loc.last().cloned().unwrap_or_default(),
                other => panic!("expected a validation error, got {other:?}"),
            };
        assert_eq!(err(Provider::Twilio, json!({}), json!({"auth_token": "x"})), "config.account_sid");
        assert_eq!(err(Provider::Twilio, json!({"account_sid": "ACnope"}), json!({})), "config.account_sid");
        assert_eq!(err(Provider::Twilio, json!({"account_sid": sid}), json!({})), "credentials.auth_token");
        assert_eq!(
            err(Provider::Exotel, json!({"account_sid": "x", "api_base": "ftp://x"}), json!({})),
            "config.api_base"
        );
        assert_eq!(
            err(Provider::Livekit, json!({"url": "http://lk", "sip_trunk_id": "nope"}), json!({})),
            "config.sip_trunk_id"
        );
    }

    #[test]
    fn carrier_apis_on_internal_addresses_are_refused_unless_allowed() {
        let sid = format!("AC{}", "a".repeat(32));
        let internal = AccountSettings::parse(
            Provider::Twilio,
            &json!({"account_sid": sid, "api_base": "http://169.254.169.254"}),
            &json!({"auth_token": "t"}),
        )
        .unwrap();
        match internal.check_reachable(false).unwrap_err() {
            ApiError::Validation(errors) => assert_eq!(errors[0].loc.last().unwrap(), "config.api_base"),
            other => panic!("expected a validation error, got {other:?}"),
        }
        assert!(internal.check_reachable(true).is_ok());
        let public =
            AccountSettings::parse(Provider::Twilio, &json!({"account_sid": sid}), &json!({"auth_token": "t"}))
                .unwrap();
        assert!(public.check_reachable(false).is_ok());
    }
}
