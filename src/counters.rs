//! Live-call counters behind the actors' `LiveCounters` port: an in-process implementation (the
//! embedded default) and a Redis one shared by every node. Both count *sets of call ids* per scope,
//! so counting a call twice (a duplicate callback, a retried effect) still counts it once.
//!
//! Scopes: `all`, `workspace:<id>`, `carrier:<name>`, `caller_id:<did>`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

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
}

impl RedisCounters {
    /// Connects to Redis at `url`; fails if it cannot be reached.
    pub async fn connect(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let connection =
            ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        Ok(RedisCounters { connection, prefix: prefix.to_string() })
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
