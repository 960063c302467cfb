//! Live-call counters behind the actors' `LiveCounters` port: an in-process implementation (the
//! embedded default) and a Redis one shared by every node. Both count *sets of call ids* per scope,
//! so counting a call twice (a duplicate callback, a retried effect) still counts it once.
//!
//! Scopes: `all`, `workspace:<id>`, `carrier:<name>`, `caller_id:<did>`.
//!
//! A rebuild from the database ([`LiveCounters::reconcile`]) removes only the calls that were
//! counted before it read the database and were not live there, so a call counted while it read
//! is never lost.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use dialplane_actors::CallRecord;
use dialplane_actors::ports::{CountedCalls, CounterError, LiveCounters};
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

/// The live calls' ids by scope.
fn by_scope(live: &[CallRecord]) -> CountedCalls {
    let mut sets = CountedCalls::new();
    for call in live {
        for scope in scopes_of(call) {
            sets.entry(scope).or_default().insert(call.id.clone());
        }
    }
    sets
}

/// The calls of `before` that the database no longer has live, by scope.
fn ended_since<'a>(
    before: &'a CountedCalls,
    live: &'a CountedCalls,
) -> impl Iterator<Item = (&'a String, Vec<&'a String>)> {
    before.iter().filter_map(|(scope, ids)| {
        let still = live.get(scope);
        let ended: Vec<&String> = ids.iter().filter(|id| still.is_none_or(|live| !live.contains(*id))).collect();
        (!ended.is_empty()).then_some((scope, ended))
    })
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

    async fn counted(&self) -> Result<CountedCalls, CounterError> {
        Ok(self.live.lock().expect("counters lock").clone())
    }

    async fn reconcile(&self, before: &CountedCalls, live: &[CallRecord]) -> Result<(), CounterError> {
        let live = by_scope(live);
        let mut counted = self.live.lock().expect("counters lock");
        for (scope, ended) in ended_since(before, &live) {
            if let Some(calls) = counted.get_mut(scope) {
                for id in ended {
                    calls.remove(id);
                }
                if calls.is_empty() {
                    counted.remove(scope);
                }
            }
        }
        for (scope, ids) in live {
            counted.entry(scope).or_default().extend(ids);
        }
        Ok(())
    }
}

/// Counters in Redis: one set of call ids per scope, under `<prefix>:live:<scope>`.
pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: String,
}

impl RedisCounters {
    /// Connects to Redis at `url`; fails if it cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let connection =
            ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        Ok(RedisCounters { connection, prefix: prefix.to_string() })
    }

    /// The connection, for the rate limits kept in the same Redis.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
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
        pipe.query_async::<()>(&mut connection).await.map_err(|e| CounterError(e.to_string()))
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
        redis::cmd("SCARD")
            .arg(self.key(scope))
            .query_async(&mut connection)
            .await
            .map_err(|e| CounterError(e.to_string()))
    }

    async fn counted(&self) -> Result<CountedCalls, CounterError> {
        let mut connection = self.connection.clone();
        let pattern = format!("{}:live:*", self.prefix);
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, found): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut connection)
                .await
                .map_err(|e| CounterError(e.to_string()))?;
            keys.extend(found);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.smembers(key);
        }
        let members: Vec<HashSet<String>> =
            pipe.query_async(&mut connection).await.map_err(|e| CounterError(e.to_string()))?;
        let live_prefix = format!("{}:live:", self.prefix);
        Ok(keys.iter().filter_map(|key| key.strip_prefix(&live_prefix).map(str::to_string)).zip(members).collect())
    }

    async fn reconcile(&self, before: &CountedCalls, live: &[CallRecord]) -> Result<(), CounterError> {
        let live = by_scope(live);
        // One transaction: readers never see the counts half rebuilt.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (scope, ended) in ended_since(before, &live) {
            pipe.srem(self.key(scope), ended).ignore();
        }
        for (scope, ids) in &live {
            pipe.sadd(self.key(scope), ids).ignore();
        }
        let mut connection = self.connection.clone();
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

    /// A rebuild forgets the calls counted before it read the database and no longer live there,
    /// counts every live call, and keeps the calls counted while it read. With the counters
    /// replaced by what the database had, a call counted meanwhile was lost until the next rebuild
    /// (a campaign admitting then overshot its workspace's cap).
    async fn a_rebuild_keeps_what_was_counted_while_it_read(counters: &dyn LiveCounters) {
        let (ended, live, lost, started) = (call("ended"), call("live"), call("lost"), call("started"));
        counters.call_started(&ended).await.unwrap();
        counters.call_started(&live).await.unwrap();
        // `ended` ended while the counters' store was away: its end was never counted.
        let before = counters.counted().await.unwrap();
        assert_eq!(before["workspace:ws_1"], HashSet::from(["ended".to_string(), "live".to_string()]));
        // The database is read: `live` and `lost` (live, but never counted) are live. Then
        // `started` starts, before the rebuild writes.
        counters.call_started(&started).await.unwrap();
        counters.reconcile(&before, &[live.clone(), lost.clone()]).await.unwrap();
        let now = counters.counted().await.unwrap();
        let ids = |scope: &str| {
            let mut ids: Vec<String> = now.get(scope).into_iter().flatten().cloned().collect();
            ids.sort();
            ids
        };
        for scope in ["all", "workspace:ws_1", "carrier:sandbox", "caller_id:919484956750"] {
            assert_eq!(ids(scope), ["live", "lost", "started"], "{scope}");
        }
        assert_eq!(counters.live_calls("all").await.unwrap(), 3);
        for call in [live, lost, started] {
            counters.call_ended(&call).await.unwrap();
        }
        assert_eq!(counters.live_calls("all").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn an_in_process_rebuild_keeps_what_was_counted_while_it_read() {
        a_rebuild_keeps_what_was_counted_while_it_read(&InProcessCounters::default()).await;
    }

    /// The same against Redis, when `TEST_REDIS_URL` names one (as in CI).
    #[tokio::test]
    async fn a_redis_rebuild_keeps_what_was_counted_while_it_read() {
        let Some(url) = std::env::var("TEST_REDIS_URL").ok().filter(|u| !u.is_empty()) else { return };
        let prefix = format!("dp_test_{}", crate::ids::random_lower_alphanumeric(12));
        let counters = RedisCounters::connect(&url, &prefix).await.unwrap();
        a_rebuild_keeps_what_was_counted_while_it_read(&counters).await;
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
