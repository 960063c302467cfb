//! Configuration: embedded defaults, then an optional TOML file (`--config`), then the process
//! environment. Loading takes the environment as a map so tests never touch the process env, and
//! validates everything up front: bad configuration fails at start with the key and what was wrong.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use url::Url;

/// Everything the server reads from its configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP server listens on.
    pub bind: SocketAddr,
    /// `sqlite://…` (embedded default) or `postgres://…`.
    pub database_url: String,
    /// Redis for live counters shared by all nodes; `None` keeps them in process.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    pub redis_prefix: String,
    /// Base URL carriers call back; `None` means `http://` + the bound address.
    pub public_url: Option<Url>,
    /// Base URL of the sandbox network that places sandbox calls; `None` means the one this
    /// server serves itself, at its public URL.
    pub sandbox_url: Option<Url>,
    /// HS256 secret for access and refresh tokens; `None` means generate one and persist it.
    pub jwt_secret: Option<String>,
    /// A superuser created at start if missing.
    pub admin: Option<AdminAccount>,
    /// Multiplier of the sandbox carrier's timings: 1 real time, 0 no delays.
    pub sandbox_time_scale: f64,
    /// Lets callback URLs reach loopback and private addresses (local development and tests).
    pub allow_private_callbacks: bool,
    /// Multiplier of the callback retry schedule (tests shrink hours to milliseconds).
    pub delivery_backoff_scale: f64,
    /// How often each live call's watchdog looks at it, in milliseconds.
    pub watchdog_interval_ms: u64,
    /// Silence allowed while a call is queued or dialing before the carrier is asked about it.
    pub dial_timeout: Duration,
    /// Silence allowed while a call rings before the carrier is asked about it.
    pub ring_timeout: Duration,
    /// Longest a bridged call may last without an end report.
    pub max_call_duration: Duration,
    /// How long the carrier may take to answer a status request.
    pub status_check_timeout: Duration,
    /// How long a graceful shutdown waits for live calls to finish.
    pub drain_timeout: Duration,
    /// How often live counters are rebuilt from the database.
    pub counter_reconcile_interval: Duration,
    /// How long a request waits for a database connection before answering 503.
    pub db_acquire_timeout: Duration,
    /// Per-attempt timeout of a webhook or callback delivery.
    pub webhook_timeout: Duration,
    /// A webhook endpoint failing without a success for this long is disabled.
    pub webhook_disable_after: Duration,
    /// Most requests open to one webhook endpoint at a time.
    pub webhook_max_in_flight: usize,
    /// Most live calls one workspace's campaigns may reach together.
    pub workspace_max_concurrent: u32,
    /// How often each campaign actor admits calls, in milliseconds.
    pub campaign_tick_ms: u64,
    /// Redis key counting active LiveKit rooms (seed 002: `livekit:active_calls`).
    pub livekit_active_calls_key: String,
    /// ISO country of national (non-E.164) contact numbers, unless a request names one.
    pub default_country: String,
    /// The OpenAI-compatible chat API that enhances agent prompts; `None`: enhance locally.
    pub llm: Option<crate::agents::llm::LlmConfig>,
}

/// Credentials of the superuser to create at start.
#[derive(Clone)]
pub struct AdminAccount {
    pub email: String,
    pub password: String,
}

impl std::fmt::Debug for AdminAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccount").field("email", &self.email).field("password", &"<redacted>").finish()
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    /// The key at fault (`DATABASE_URL`, …).
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigError {
    fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError { key: key.to_string(), message: message.into() }
    }
}

/// Every key the server reads, for the file and the environment alike.
pub const KEYS: &[&str] = &[
    "DIALPLANE_BIND",
    "DATABASE_URL",
    "REDIS_URL",
    "DIALPLANE_REDIS_PREFIX",
    "DIALPLANE_PUBLIC_URL",
    "DIALPLANE_SANDBOX_URL",
    "DIALPLANE_JWT_SECRET",
    "DIALPLANE_ADMIN_EMAIL",
    "DIALPLANE_ADMIN_PASSWORD",
    "DIALPLANE_SANDBOX_TIME_SCALE",
    "DIALPLANE_ALLOW_PRIVATE_CALLBACKS",
    "DIALPLANE_DELIVERY_BACKOFF_SCALE",
    "DIALPLANE_WATCHDOG_INTERVAL_MS",
    "DIALPLANE_DIAL_TIMEOUT_S",
    "DIALPLANE_RING_TIMEOUT_S",
    "DIALPLANE_MAX_CALL_DURATION_S",
    "DIALPLANE_STATUS_CHECK_TIMEOUT_S",
    "DIALPLANE_DRAIN_TIMEOUT_S",
    "DIALPLANE_COUNTER_RECONCILE_S",
    "DIALPLANE_DB_ACQUIRE_TIMEOUT_S",
    "DIALPLANE_WEBHOOK_TIMEOUT_S",
    "DIALPLANE_WEBHOOK_DISABLE_AFTER_S",
    "DIALPLANE_WEBHOOK_MAX_IN_FLIGHT",
    "DIALPLANE_DEFAULT_COUNTRY",
    "DIALPLANE_WORKSPACE_MAX_CONCURRENT",
    "DIALPLANE_CAMPAIGN_TICK_MS",
    "DIALPLANE_LLM_BASE_URL",
    "DIALPLANE_LLM_MODEL",
    "DIALPLANE_LLM_API_KEY",
];

impl Config {
    /// Returns the webhook delivery policy (also used for per-call callbacks).
    pub fn delivery_policy(&self) -> dialplane_actors::webhook::fsm::DeliveryPolicy {
        dialplane_actors::webhook::fsm::DeliveryPolicy::svix(self.delivery_backoff_scale, self.webhook_disable_after)
    }

    /// Returns the call state machine's policy.
    pub fn call_policy(&self) -> dialplane_actors::fsm::Policy {
        let chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        dialplane_actors::fsm::Policy {
            dial_timeout: chrono(self.dial_timeout),
            ring_timeout: chrono(self.ring_timeout),
            max_call_duration: chrono(self.max_call_duration),
            status_check_timeout: chrono(self.status_check_timeout),
            ..Default::default()
        }
    }

    /// Loads the configuration from an optional TOML file overlaid by `env`.
    pub fn load(env: &HashMap<String, String>, file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut values = HashMap::new();
        if let Some(path) = file {
            values = read_file(path)?;
        }
        for key in KEYS {
            if let Some(value) = env.get(*key) {
                values.insert(key.to_string(), value.clone());
            }
        }
        Config::from_values(&values)
    }

    /// Builds a configuration from already merged string values; unset keys take their defaults.
    pub fn from_values(values: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |key: &str| values.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let bind_raw = get("DIALPLANE_BIND").unwrap_or("127.0.0.1:8080");
        let bind: SocketAddr = bind_raw.parse().map_err(|_| {
            ConfigError::new("DIALPLANE_BIND", format!("expected an address such as 127.0.0.1:8080, got {bind_raw:?}"))
        })?;

        let database_url = get("DATABASE_URL").unwrap_or("sqlite://dialplane.db?mode=rwc").to_string();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::new("DATABASE_URL", "expected a sqlite://… or postgres://… URL"));
        }

        let redis_url = get("REDIS_URL").map(str::to_string);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://"))
        {
            return Err(ConfigError::new("REDIS_URL", "expected a redis://… URL"));
        }
        let redis_prefix = get("DIALPLANE_REDIS_PREFIX").unwrap_or("dialplane").to_string();
        if !redis_prefix.chars().all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c)) {
            return Err(ConfigError::new("DIALPLANE_REDIS_PREFIX", "use letters, digits, '_', '-', ':' or '.'"));
        }

        let livekit_active_calls_key =
            get("DIALPLANE_LIVEKIT_ACTIVE_CALLS_KEY").unwrap_or("livekit:active_calls").to_string();
        if livekit_active_calls_key.is_empty()
            || !livekit_active_calls_key.chars().all(|c| c.is_ascii_alphanumeric() || "_-:.".contains(c))
        {
            return Err(ConfigError::new(
                "DIALPLANE_LIVEKIT_ACTIVE_CALLS_KEY",
                "use letters, digits, '_', '-', ':' or '.'",
            ));
        }

        let public_url = get("DIALPLANE_PUBLIC_URL").map(|raw| http_url(raw, "DIALPLANE_PUBLIC_URL")).transpose()?;
        let sandbox_url = get("DIALPLANE_SANDBOX_URL").map(|raw| http_url(raw, "DIALPLANE_SANDBOX_URL")).transpose()?;

        let jwt_secret = get("DIALPLANE_JWT_SECRET").map(str::to_string);
        if jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::new("DIALPLANE_JWT_SECRET", "must be at least 32 characters long"));
        }

        let admin = match (get("DIALPLANE_ADMIN_EMAIL"), get("DIALPLANE_ADMIN_PASSWORD")) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new("DIALPLANE_ADMIN_PASSWORD", "must be set when DIALPLANE_ADMIN_EMAIL is"));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new("DIALPLANE_ADMIN_EMAIL", "must be set when DIALPLANE_ADMIN_PASSWORD is"));
            }
            (Some(email), Some(password)) => {
                if !crate::auth::is_valid_email(email) {
                    return Err(ConfigError::new("DIALPLANE_ADMIN_EMAIL", "not an email address"));
                }
                if password.len() < 8 {
                    return Err(ConfigError::new("DIALPLANE_ADMIN_PASSWORD", "must be at least 8 characters long"));
                }
                Some(AdminAccount { email: email.to_lowercase(), password: password.to_string() })
            }
        };

        let sandbox_time_scale =
            non_negative(get("DIALPLANE_SANDBOX_TIME_SCALE"), "DIALPLANE_SANDBOX_TIME_SCALE", 1.0)?;
        let delivery_backoff_scale =
            non_negative(get("DIALPLANE_DELIVERY_BACKOFF_SCALE"), "DIALPLANE_DELIVERY_BACKOFF_SCALE", 1.0)?;
        let allow_private_callbacks = match get("DIALPLANE_ALLOW_PRIVATE_CALLBACKS") {
            None => false,
            Some(raw) => parse_bool(raw).ok_or_else(|| {
                ConfigError::new("DIALPLANE_ALLOW_PRIVATE_CALLBACKS", format!("expected true or false, got {raw:?}"))
            })?,
        };
        let watchdog_interval_ms = match get("DIALPLANE_WATCHDOG_INTERVAL_MS") {
            None => 1000,
            Some(raw) => raw.parse::<u64>().ok().filter(|ms| (10..=60_000).contains(ms)).ok_or_else(|| {
                ConfigError::new("DIALPLANE_WATCHDOG_INTERVAL_MS", "expected milliseconds between 10 and 60000")
            })?,
        };

        let seconds = |key: &str, default: f64| -> Result<Duration, ConfigError> {
            let value = non_negative(get(key), key, default)?;
            if value <= 0.0 || value > 30.0 * 24.0 * 3600.0 {
                return Err(ConfigError::new(key, "expected a number of seconds above 0 (at most 30 days)"));
            }
            Ok(Duration::from_secs_f64(value))
        };
        let dial_timeout = seconds("DIALPLANE_DIAL_TIMEOUT_S", 120.0)?;
        let ring_timeout = seconds("DIALPLANE_RING_TIMEOUT_S", 180.0)?;
        let max_call_duration = seconds("DIALPLANE_MAX_CALL_DURATION_S", 4.0 * 3600.0)?;
        let status_check_timeout = seconds("DIALPLANE_STATUS_CHECK_TIMEOUT_S", 30.0)?;
        let drain_timeout = seconds("DIALPLANE_DRAIN_TIMEOUT_S", 30.0)?;
        let counter_reconcile_interval = seconds("DIALPLANE_COUNTER_RECONCILE_S", 30.0)?;
        let db_acquire_timeout = seconds("DIALPLANE_DB_ACQUIRE_TIMEOUT_S", 5.0)?;
        let webhook_timeout = seconds("DIALPLANE_WEBHOOK_TIMEOUT_S", 15.0)?;
        let webhook_disable_after = seconds("DIALPLANE_WEBHOOK_DISABLE_AFTER_S", 5.0 * 24.0 * 3600.0)?;
        let webhook_max_in_flight = match get("DIALPLANE_WEBHOOK_MAX_IN_FLIGHT") {
            None => 8,
            Some(raw) => raw.parse::<usize>().ok().filter(|n| (1..=256).contains(n)).ok_or_else(|| {
                ConfigError::new("DIALPLANE_WEBHOOK_MAX_IN_FLIGHT", "expected a whole number between 1 and 256")
            })?,
        };
        let llm = match get("DIALPLANE_LLM_BASE_URL") {
            None => None,
            Some(raw) => {
                let url = Url::parse(raw).ok().filter(|u| matches!(u.scheme(), "http" | "https")).ok_or_else(|| {
                    ConfigError::new(
                        "DIALPLANE_LLM_BASE_URL",
                        "expected an http(s) URL such as https://api.openai.com/v1",
                    )
                })?;
                Some(crate::agents::llm::LlmConfig {
                    base_url: url.as_str().trim_end_matches('/').to_string(),
                    model: get("DIALPLANE_LLM_MODEL").unwrap_or("gpt-4o-mini").to_string(),
                    api_key: get("DIALPLANE_LLM_API_KEY").map(str::to_string),
                })
            }
        };

        let default_country = get("DIALPLANE_DEFAULT_COUNTRY").unwrap_or("IN").to_uppercase();
        if !crate::contacts::phone::is_known_country(&default_country) {
            return Err(ConfigError::new("DIALPLANE_DEFAULT_COUNTRY", format!("unknown country {default_country:?}")));
        }

        let workspace_max_concurrent = match get("DIALPLANE_WORKSPACE_MAX_CONCURRENT") {
            None => 100,
            Some(raw) => raw.parse::<u32>().ok().filter(|n| (1..=100_000).contains(n)).ok_or_else(|| {
                ConfigError::new("DIALPLANE_WORKSPACE_MAX_CONCURRENT", "expected a whole number from 1 to 100000")
            })?,
        };
        let campaign_tick_ms = match get("DIALPLANE_CAMPAIGN_TICK_MS") {
            None => 100,
            Some(raw) => raw.parse::<u64>().ok().filter(|n| (10..=10_000).contains(n)).ok_or_else(|| {
                ConfigError::new("DIALPLANE_CAMPAIGN_TICK_MS", "expected milliseconds from 10 to 10000")
            })?,
        };

        Ok(Config {
            workspace_max_concurrent,
            campaign_tick_ms,
            livekit_active_calls_key,
            default_country,
            llm,
            dial_timeout,
            ring_timeout,
            max_call_duration,
            status_check_timeout,
            drain_timeout,
            counter_reconcile_interval,
            db_acquire_timeout,
            webhook_timeout,
            webhook_disable_after,
            webhook_max_in_flight,
            bind,
            database_url,
            redis_url,
            redis_prefix,
            public_url,
            sandbox_url,
            jwt_secret,
            admin,
            sandbox_time_scale,
            allow_private_callbacks,
            delivery_backoff_scale,
            watchdog_interval_ms,
        })
    }
}

/// Parses a base URL: `http://` or `https://`, with a host.
fn http_url(raw: &str, key: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim_end_matches('/')).map_err(|e| ConfigError::new(key, format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(key, "expected an http:// or https:// URL"));
    }
    Ok(url)
}

fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = toml::from_str(&text)
        .map_err(|e| ConfigError::new("--config", format!("{} is not valid TOML: {e}", path.display())))?;
    let mut values = HashMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            return Err(ConfigError::new(&key, format!("unknown key in {}", path.display())));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => return Err(ConfigError::new(&key, "expected a string, number or boolean")),
        };
        values.insert(key, value);
    }
    Ok(values)
}

fn non_negative(raw: Option<&str>, key: &str, default: f64) -> Result<f64, ConfigError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| ConfigError::new(key, format!("expected a number of 0 or more, got {raw:?}"))),
    }
}

fn parse_bool(raw: &str) -> Option<bool> {
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let config = Config::load(&HashMap::new(), None).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(config.database_url, "sqlite://dialplane.db?mode=rwc");
        assert!(config.redis_url.is_none());
        assert!(config.public_url.is_none());
        assert!(config.sandbox_url.is_none());
        assert!(!config.allow_private_callbacks);
        assert_eq!(config.sandbox_time_scale, 1.0);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("DIALPLANE_BIND", "nowhere"),
            ("DATABASE_URL", "mysql://x"),
            ("REDIS_URL", "http://x"),
            ("DIALPLANE_PUBLIC_URL", "ftp://x"),
            ("DIALPLANE_SANDBOX_URL", "not a url"),
            ("DIALPLANE_SANDBOX_URL", "file:///tmp"),
            ("DIALPLANE_JWT_SECRET", "short"),
            ("DIALPLANE_SANDBOX_TIME_SCALE", "-1"),
            ("DIALPLANE_SANDBOX_TIME_SCALE", "fast"),
            ("DIALPLANE_ALLOW_PRIVATE_CALLBACKS", "maybe"),
            ("DIALPLANE_RING_TIMEOUT_S", "0"),
            ("DIALPLANE_DRAIN_TIMEOUT_S", "soon"),
        ];
        for (key, value) in cases {
            let err = Config::load(&env(&[(key, value)]), None).unwrap_err();
            assert_eq!(err.key, key, "{value}");
            assert!(err.to_string().contains(key));
        }
        let err = Config::load(&env(&[("DIALPLANE_ADMIN_EMAIL", "a@b.co")]), None).unwrap_err();
        assert_eq!(err.key, "DIALPLANE_ADMIN_PASSWORD");
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dialplane.toml");
        std::fs::write(&path, "DIALPLANE_BIND = \"0.0.0.0:9000\"\nDIALPLANE_SANDBOX_TIME_SCALE = 0.5\n").unwrap();
        let config = Config::load(&env(&[("DIALPLANE_BIND", "127.0.0.1:9001")]), Some(&path)).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:9001");
        assert_eq!(config.sandbox_time_scale, 0.5);
        std::fs::write(&path, "NOT_A_KEY = 1\n").unwrap();
        assert_eq!(Config::load(&HashMap::new(), Some(&path)).unwrap_err().key, "NOT_A_KEY");
    }
}
