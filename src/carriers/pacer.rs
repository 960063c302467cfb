//! Calls-per-second pacing per carrier account: each placement reserves the next free slot
//! (GCRA: slots `1 / calls_per_second` apart) and waits for it, so calls over the cap queue in
//! reservation order instead of failing. The queue is bounded in time ([`LONGEST_QUEUE_WAIT`]):
//! a call that would wait longer is refused at once, because a call dialled minutes after its
//! watchdog gave it up would ring someone untracked. With Redis the slots are shared by every node (the
//! reservation is one script run on Redis's clock); without it, or while it is unreachable, they
//! are kept in process.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::time::Instant;
use tracing::warn;

/// The longest a placement waits for its slot (well under the call's dial timeout).
pub const LONGEST_QUEUE_WAIT: Duration = Duration::from_secs(60);

/// Reserves a slot on Redis's clock, in microseconds; returns how long to wait for it, or -1
/// (reserving nothing) when that is longer than ARGV[2].
const RESERVE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
local start = math.max(tat, now)
if start - now > tonumber(ARGV[2]) then
  return -1
end
local next_free = start + interval
redis.call('SET', KEYS[1], string.format('%.0f', next_free), 'PX', math.floor((next_free - now) / 1000) + 1000)
return math.floor(start - now)
";

/// Returns how long a reservation made at `now` waits, and moves the account's next free slot;
/// `None`, reserving nothing, when the wait would be longer than `longest`.
pub fn reserve_slot(
    next_free: &mut Option<Instant>,
    now: Instant,
    interval: Duration,
    longest: Duration,
) -> Option<Duration> {
    let start = next_free.map_or(now, |t| t.max(now));
    if start - now > longest {
        return None;
    }
    *next_free = Some(start + interval);
    Some(start - now)
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

    /// Reserves the account's next slot and returns how long to wait for it; `None` when the
    /// queue is longer than [`LONGEST_QUEUE_WAIT`].
    pub async fn reserve(&self, account: &str, interval: Duration) -> Option<Duration> {
        if let Some((connection, prefix)) = &self.redis {
            let mut connection = connection.clone();
            let reserved: Result<i64, _> = redis::cmd("EVAL")
                .arg(RESERVE_SCRIPT)
                .arg(1)
                .arg(format!("{prefix}:cps:{account}"))
                .arg(interval.as_micros() as u64)
                .arg(LONGEST_QUEUE_WAIT.as_micros() as u64)
                .query_async(&mut connection)
                .await;
            match reserved {
                Ok(wait) if wait < 0 => return None,
                Ok(wait) => return Some(Duration::from_micros(wait as u64)),
                Err(e) => warn!(error = %e, "Redis unavailable for call pacing; pacing in process"),
            }
        }
        let mut local = self.local.lock().expect("pacer lock");
        reserve_slot(local.entry(account.to_string()).or_default(), Instant::now(), interval, LONGEST_QUEUE_WAIT)
    }

    /// Waits for the account's next slot; false when the queue is too long to join.
    pub async fn wait_turn(&self, account: &str, calls_per_second: f64) -> bool {
        let interval = Duration::from_secs_f64(1.0 / calls_per_second.clamp(0.001, 1000.0));
        let Some(wait) = self.reserve(account, interval).await else {
            return false;
        };
        if !wait.is_zero() {
            crate::telemetry::carrier_queued(wait);
            tokio::time::sleep(wait).await;
        }
        true
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
        let longest = Duration::from_secs(1);
        let waits: Vec<_> = (0..4).map(|_| reserve_slot(&mut next_free, start, interval, longest)).collect();
        assert_eq!(waits, [Some(0), Some(500), Some(1000), None].map(|w| w.map(Duration::from_millis)));
        // The refused reservation took no slot.
        assert_eq!(
            reserve_slot(&mut next_free, start + interval, interval, longest),
            Some(Duration::from_millis(1000))
        );
        // After a long idle spell the next call goes at once, and only one.
        let later = start + Duration::from_secs(60);
        assert_eq!(reserve_slot(&mut next_free, later, interval, longest), Some(Duration::ZERO));
        assert_eq!(reserve_slot(&mut next_free, later, interval, longest), Some(interval));
    }
}
