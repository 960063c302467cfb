//! Calls-per-second pacing per carrier account: each placement reserves the next free slot
//! (GCRA: slots `1 / calls_per_second` apart) and waits for it, so calls over the cap queue in
//! reservation order instead of failing. With Redis the slots are shared by every node (the
//! reservation is one script run on Redis's clock); without it, or while it is unreachable, they
//! are kept in process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;
use tracing::warn;

/// Reserves a slot on Redis's clock, in microseconds; returns how long to wait for it.
const RESERVE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
local next_free = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_free), 'PX', math.floor((next_free - now) / 1000) + 1000)
return math.floor(start - now)
";

/// Returns how long a reservation made at `now` waits, and moves the account's next free slot.
pub fn reserve_slot(next_free: &mut Option<Instant>, now: Instant, interval: Duration) -> Duration {
    let start = next_free.map_or(now, |t| t.max(now));
    *next_free = Some(start + interval);
    start - now
}

/// Per-account pacing of call placements.
pub struct Pacer {
    redis: Option<(ConnectionManager, String)>,
    local: Mutex<HashMap<String, Option<Instant>>>,
}

impl Pacer {
    /// Paces in process only.
    pub fn in_process() -> Pacer {
        Pacer { redis: None, local: Mutex::new(HashMap::new()) }
    }

    /// Paces through Redis, keys under `<prefix>:cps:<account>`.
    pub async fn with_redis(url: &str, prefix: &str) -> anyhow::Result<Pacer> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let connection =
            ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        Ok(Pacer { redis: Some((connection, prefix.to_string())), local: Mutex::new(HashMap::new()) })
    }

    /// Reserves the account's next slot and returns how long to wait for it.
    pub async fn reserve(&self, account: &str, interval: Duration) -> Duration {
        if let Some((connection, prefix)) = &self.redis {
            let mut connection = connection.clone();
            let reserved: Result<i64, _> = redis::cmd("EVAL")
                .arg(RESERVE_SCRIPT)
                .arg(1)
                .arg(format!("{prefix}:cps:{account}"))
                .arg(interval.as_micros() as u64)
                .query_async(&mut connection)
                .await;
            match reserved {
                Ok(wait) => return Duration::from_micros(wait.max(0) as u64),
                Err(e) => warn!(error = %e, "Redis unavailable for call pacing; pacing in process"),
            }
        }
        let mut local = self.local.lock().expect("pacer lock");
        reserve_slot(local.entry(account.to_string()).or_default(), Instant::now(), interval)
    }

    /// Waits for the account's next slot.
    pub async fn wait_turn(&self, account: &str, calls_per_second: f64) {
        let interval = Duration::from_secs_f64(1.0 / calls_per_second.max(0.001));
        let wait = self.reserve(account, interval).await;
        if !wait.is_zero() {
            crate::telemetry::carrier_queued(wait);
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_by_the_interval_and_idle_time_is_not_banked() {
        let start = Instant::now();
        let interval = Duration::from_millis(500);
        let mut next_free = None;
        let waits: Vec<Duration> = (0..4).map(|_| reserve_slot(&mut next_free, start, interval)).collect();
        assert_eq!(waits, [0, 500, 1000, 1500].map(Duration::from_millis));
        // After a long idle spell the next call goes at once, and only one.
        let later = start + Duration::from_secs(60);
        assert_eq!(reserve_slot(&mut next_free, later, interval), Duration::ZERO);
        assert_eq!(reserve_slot(&mut next_free, later, interval), interval);
    }
}
