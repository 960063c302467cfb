//! Per-user rate limits of the `/v1` routes seed 003 limits (`POST /v1/webhooks` 20 a minute,
//! campaign `launch` and `stop` 5 a minute, contact writes 60 and bulk 10 a minute). Seed 003
//! counts per API key; Dialplane's `/v1` callers present a bearer token, so it counts per user.
//!
//! Requests are counted in fixed one-minute windows, in Redis when it is configured (shared by
//! every node, DESIGN §12) or in this process. Every answer of a limited route carries
//! `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset` (seconds until the window
//! ends); past the limit the answer is `429 {"detail": "Rate limit exceeded: 5/minute"}` with
//! `Retry-After`. If the counts cannot be read (Redis down), requests are let through: a limit
//! protects the service, and refusing everything would not.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tracing::warn;
use warp::http::{HeaderMap, HeaderValue};

use dialplane_actors::ports::CounterError;

/// How long a window lasts.
pub const WINDOW_S: u64 = 60;

/// A route's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteLimit {
    /// Names the route in the counters' keys.
    pub route: &'static str,
    pub per_minute: u64,
}

pub const WEBHOOK_CREATE: RouteLimit = RouteLimit { route: "webhooks.create", per_minute: 20 };
pub const CAMPAIGN_LAUNCH: RouteLimit = RouteLimit { route: "campaigns.launch", per_minute: 5 };
pub const CAMPAIGN_STOP: RouteLimit = RouteLimit { route: "campaigns.stop", per_minute: 5 };
pub const CONTACT_CREATE: RouteLimit = RouteLimit { route: "contacts.create", per_minute: 60 };
pub const CONTACT_UPDATE: RouteLimit = RouteLimit { route: "contacts.update", per_minute: 60 };
pub const CONTACT_BULK: RouteLimit = RouteLimit { route: "contacts.bulk", per_minute: 10 };

/// Where requests are counted: the count of `key` in window number `window`, after this one.
#[async_trait]
pub trait RequestCounts: Send + Sync + 'static {
    async fn count(&self, key: &str, window: u64) -> Result<u64, CounterError>;
}

/// Counts in this process: each key's current window only.
#[derive(Default)]
pub struct InProcessCounts {
    windows: Mutex<HashMap<String, (u64, u64)>>,
}

#[async_trait]
impl RequestCounts for InProcessCounts {
    async fn count(&self, key: &str, window: u64) -> Result<u64, CounterError> {
        let mut windows = self.windows.lock().expect("rate windows lock");
        if windows.len() >= 10_000 {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        entry.1 += 1;
        Ok(entry.1)
    }
}

/// Counts in Redis, under `<prefix>:rate:<key>:<window>`, each key kept two windows.
pub struct RedisCounts {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisCounts {
    pub fn new(connection: ConnectionManager, prefix: &str) -> Self {
        RedisCounts { connection, prefix: prefix.to_string() }
    }
}

#[async_trait]
impl RequestCounts for RedisCounts {
    async fn count(&self, key: &str, window: u64) -> Result<u64, CounterError> {
        let key = format!("{}:rate:{key}:{window}", self.prefix);
        let mut connection = self.connection.clone();
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .incr(&key, 1)
            .expire(&key, i64::try_from(2 * WINDOW_S).unwrap_or(i64::MAX))
            .ignore()
            .query_async(&mut connection)
            .await
            .map_err(|e| CounterError(e.to_string()))?;
        Ok(count)
    }
}

/// A request's standing against its route's limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub limit: u64,
    /// Requests of the window so far, this one included.
    pub count: u64,
    /// Seconds until the window ends.
    pub reset_s: u64,
}

impl Verdict {
    pub fn allowed(&self) -> bool {
        self.count <= self.limit
    }

    /// Sets the `X-RateLimit-*` headers (and `Retry-After` past the limit).
    pub fn set_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(self.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(self.limit.saturating_sub(self.count)));
        headers.insert("x-ratelimit-reset", HeaderValue::from(self.reset_s));
        if !self.allowed() {
            headers.insert("retry-after", HeaderValue::from(self.reset_s));
        }
    }
}

/// The rate limits of the `/v1` routes.
pub struct RateLimits {
    counts: Arc<dyn RequestCounts>,
}

impl RateLimits {
    pub fn new(counts: Arc<dyn RequestCounts>) -> Self {
        RateLimits { counts }
    }

    /// Counts a request of `user_id` to the route, and returns its verdict; `None` when the counts
    /// cannot be read (the request goes through).
    pub async fn check(&self, user_id: &str, limit: RouteLimit) -> Option<Verdict> {
        self.check_at(user_id, limit, SystemTime::now()).await
    }

    async fn check_at(&self, user_id: &str, limit: RouteLimit, now: SystemTime) -> Option<Verdict> {
        let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let window = seconds / WINDOW_S;
        let key = format!("{}:{user_id}", limit.route);
        match self.counts.count(&key, window).await {
            Ok(count) => Some(Verdict { limit: limit.per_minute, count, reset_s: WINDOW_S - seconds % WINDOW_S }),
            Err(e) => {
                warn!(error = %e, route = limit.route, "rate limit counts unavailable; request let through");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A user's requests beyond the limit are refused until the window ends; another user and
    /// another route count on their own; the next window starts afresh.
    #[tokio::test]
    async fn requests_are_counted_per_user_route_and_minute() {
        let limits = RateLimits::new(Arc::new(InProcessCounts::default()));
        let start = UNIX_EPOCH + Duration::from_secs(1_800_000_000 - 1_800_000_000 % WINDOW_S + 15);
        let mut verdicts = Vec::new();
        for _ in 0..6 {
            verdicts.push(limits.check_at("usr_1", CAMPAIGN_LAUNCH, start).await.unwrap());
        }
        assert!(verdicts[..5].iter().all(Verdict::allowed));
        assert!(!verdicts[5].allowed());
        assert_eq!((verdicts[4].limit, verdicts[4].count, verdicts[4].reset_s), (5, 5, 45));
        assert!(limits.check_at("usr_2", CAMPAIGN_LAUNCH, start).await.unwrap().allowed());
        assert!(limits.check_at("usr_1", CAMPAIGN_STOP, start).await.unwrap().allowed());
        let next = start + Duration::from_secs(WINDOW_S);
        assert_eq!(limits.check_at("usr_1", CAMPAIGN_LAUNCH, next).await.unwrap().count, 1);

        let mut headers = HeaderMap::new();
        verdicts[5].set_headers(&mut headers);
        let header = |name: &str| headers[name].to_str().unwrap().to_string();
        assert_eq!(
            [
                header("x-ratelimit-limit"),
                header("x-ratelimit-remaining"),
                header("x-ratelimit-reset"),
                header("retry-after")
            ],
            ["5", "0", "45", "45"]
        );
    }

    /// The same counts in Redis, when `TEST_REDIS_URL` names one (as in CI).
    #[tokio::test]
    async fn redis_counts_requests_per_key_and_window() {
        let Some(url) = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else { return };
        let client = redis::Client::open(url).unwrap();
        let connection = ConnectionManager::new(client).await.unwrap();
        let prefix = format!("dp_test_{}", crate::ids::random_lower_alphanumeric(12));
        let counts = RedisCounts::new(connection, &prefix);
        assert_eq!(counts.count("k", 7).await.unwrap(), 1);
        assert_eq!(counts.count("k", 7).await.unwrap(), 2);
        assert_eq!(counts.count("k", 8).await.unwrap(), 1);
        assert_eq!(counts.count("other", 7).await.unwrap(), 1);
    }
}
