//! Live-call counters behind the actors' `LiveCounters` port: an in-process implementation (the
//! embedded default) and a Redis one shared by every node. Both count *sets of call ids* per scope,
//! so counting a call twice (a duplicate callback, a retried effect) still counts it once.
//!
//! Scopes: `all`, `workspace:<id>`, `carrier:<name>`, `caller_id:<did>`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use dialplane_actors::CallRecord;
use dialplane_actors::ports::{CounterError, LiveCounters};
use redis::aio::ConnectionManager;

/// Returns the scopes a call is counted in.
pub fn scopes_of(call: &CallRecord) -> Vec<String> {
    let mut scopes =
        vec!["all".to_string(), format!("workspace:{}", call.workspace_id), format!("carrier:{}", call.carrier)];
    if let Some(did) = &call.did {
        scopes.push(format!("caller_id:{did}"));
    }
    scopes
}

/// Counters held in this process.
#[derive(Default)]
pub struct InProcessCounters {
    live: Mutex<HashMap<String, HashSet<String>>>,
}

#[async_trait]
impl LiveCounters for InProcessCounters {
    async fn call_started(&self, call: &CallRecord) -> Result<(), CounterError> {
        let mut live = self.live.lock().expect("counters lock");
        for scope in scopes_of(call) {
            live.entry(scope).or_default().insert(call.id.clone());
        }
        Ok(())
    }

    async fn call_ended(&self, call: &CallRecord) -> Result<(), CounterError> {
        let mut live = self.live.lock().expect("counters lock");
        for scope in scopes_of(call) {
            if let Some(calls) = live.get_mut(&scope) {
                calls.remove(&call.id);
                if calls.is_empty() {
                    live.remove(&scope);
                }
            }
        }
        Ok(())
    }

    async fn live_calls(&self, scope: &str) -> Result<u64, CounterError> {
        Ok(self.live.lock().expect("counters lock").get(scope).map_or(0, |calls| calls.len() as u64))
    }

    async fn reconcile(&self, live: &[CallRecord]) -> Result<(), CounterError> {
        let mut sets: HashMap<String, HashSet<String>> = HashMap::new();
        for call in live {
            for scope in scopes_of(call) {
                sets.entry(scope).or_default().insert(call.id.clone());
            }
        }
        *self.live.lock().expect("counters lock") = sets;
        Ok(())
    }
}

/// Counters in Redis: one set of call ids per scope, under `<prefix>:live:<scope>`.
pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: String,
    /// When Redis last answered: admission asks Redis itself only when it has been quiet.
    answered: RecentAnswer,
}

/// How long an answer from Redis vouches for it. Under load calls start and end all the time,
/// so admission seldom needs a round trip of its own; after a failure it always asks.
const ANSWER_VOUCHES_FOR: Duration = Duration::from_millis(100);

/// When a server last answered, cleared when it fails.
#[derive(Default)]
struct RecentAnswer {
    /// Milliseconds since the Unix epoch; 0 for not since the last failure.
    at_ms: AtomicI64,
}

impl RecentAnswer {
    fn record<T, E>(&self, result: &Result<T, E>, now_ms: i64) {
        self.at_ms.store(if result.is_ok() { now_ms } else { 0 }, Ordering::Relaxed);
    }

    fn vouches_at(&self, now_ms: i64) -> bool {
        let at = self.at_ms.load(Ordering::Relaxed);
        at != 0 && (at..at + ANSWER_VOUCHES_FOR.as_millis() as i64).contains(&now_ms)
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl RedisCounters {
    /// Connects to Redis at `url`; fails if it cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let connection =
            ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        Ok(RedisCounters { connection, prefix: prefix.to_string(), answered: RecentAnswer::default() })
    }

    fn key(&self, scope: &str) -> String {
        format!("{}:live:{scope}", self.prefix)
    }

    async fn update(&self, call: &CallRecord, add: bool) -> Result<(), CounterError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        for scope in scopes_of(call) {
            if add {
                pipe.sadd(self.key(&scope), &call.id).ignore();
            } else {
                pipe.srem(self.key(&scope), &call.id).ignore();
            }
        }
        let mut connection = self.connection.clone();
        let result = pipe.query_async::<()>(&mut connection).await;
        self.answered.record(&result, now_ms());
        result.map_err(|e| CounterError(e.to_string()))
    }
}

#[async_trait]
impl LiveCounters for RedisCounters {
    async fn call_started(&self, call: &CallRecord) -> Result<(), CounterError> {
        self.update(call, true).await
    }

    async fn call_ended(&self, call: &CallRecord) -> Result<(), CounterError> {
        self.update(call, false).await
    }

    async fn live_calls(&self, scope: &str) -> Result<u64, CounterError> {
        let mut connection = self.connection.clone();
        let result = redis::cmd("SCARD").arg(self.key(scope)).query_async(&mut connection).await;
        self.answered.record(&result, now_ms());
        result.map_err(|e| CounterError(e.to_string()))
    }

    async fn available(&self) -> Result<(), CounterError> {
        if self.answered.vouches_at(now_ms()) {
            return Ok(());
        }
        self.live_calls("all").await.map(|_| ())
    }

    async fn reconcile(&self, live: &[CallRecord]) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}:live:*", self.prefix);
        let mut existing: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(|e| CounterError(e.to_string()))?;
            existing.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // One transaction: readers never see the counts half rebuilt.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in existing {
            pipe.del(key).ignore();
        }
        for call in live {
            for scope in scopes_of(call) {
                pipe.sadd(self.key(&scope), &call.id).ignore();
            }
        }
        pipe.query_async::<()>(&mut connection).await.map_err(|e| CounterError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialplane_actors::CallType;

    fn call(id: &str) -> CallRecord {
        CallRecord {
            id: id.into(),
            workspace_id: "ws_1".into(),
            user_id: "usr_1".into(),
            call_type: CallType::ClickToCall,
            customer_number: "919999999999".into(),
            agent_number: "918888888888".into(),
            did: Some("919484956750".into()),
            carrier: "sandbox".into(),
            transcript_enabled: false,
            transcript_language: None,
            agent_config: serde_json::json!({}),
        }
    }

    #[test]
    fn an_answer_vouches_for_redis_briefly_and_a_failure_at_once() {
        let answered = RecentAnswer::default();
        assert!(!answered.vouches_at(1_000), "nothing answered yet");
        answered.record(&Ok::<(), ()>(()), 1_000);
        assert!(answered.vouches_at(1_000));
        assert!(answered.vouches_at(1_099));
        assert!(!answered.vouches_at(1_100), "an old answer must be asked again");
        assert!(!answered.vouches_at(999), "a clock stepped back must not extend it");
        answered.record(&Err::<(), ()>(()), 1_050);
        assert!(!answered.vouches_at(1_060), "a failure withdraws it at once");
    }

    /// Against the Redis of `TEST_REDIS_URL` (CI sets it): the counters are available while
    /// Redis answers, through the vouching answer and through a round trip of their own.
    #[tokio::test]
    async fn redis_counters_are_available_while_redis_answers() {
        let Ok(url) = std::env::var("TEST_REDIS_URL") else { return };
        let prefix = format!("test_{}", crate::ids::random_lower_alphanumeric(8));
        let counters = RedisCounters::connect(&url, &prefix).await.unwrap();
        counters.available().await.unwrap();
        counters.call_started(&call("a")).await.unwrap();
        assert!(counters.answered.vouches_at(now_ms()));
        counters.available().await.unwrap();
        assert_eq!(counters.live_calls("all").await.unwrap(), 1);
        counters.call_ended(&call("a")).await.unwrap();
    }

    #[tokio::test]
    async fn in_process_counts_are_idempotent_per_call() {
        let counters = InProcessCounters::default();
        counters.call_started(&call("a")).await.unwrap();
        counters.call_started(&call("a")).await.unwrap();
        counters.call_started(&call("b")).await.unwrap();
        assert_eq!(counters.live_calls("all").await.unwrap(), 2);
        assert_eq!(counters.live_calls("workspace:ws_1").await.unwrap(), 2);
        assert_eq!(counters.live_calls("caller_id:919484956750").await.unwrap(), 2);
        counters.call_ended(&call("a")).await.unwrap();
        counters.call_ended(&call("a")).await.unwrap();
        assert_eq!(counters.live_calls("all").await.unwrap(), 1);
        assert_eq!(counters.live_calls("workspace:other").await.unwrap(), 0);
    }
}
