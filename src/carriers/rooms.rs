//! The count of active LiveKit rooms (seed 002's Redis key `livekit:active_calls`, a plain
//! counter), kept exact under duplicated and reordered webhooks: a room counts once between its
//! `room_started` and `room_finished`, and a `room_started` arriving after its `room_finished`
//! does not count it again. Rooms are kept per carrier account (`<account>/<room>`), so one
//! workspace's webhooks never move another's rooms. With Redis the set (`<key>:rooms`), the
//! tombstones (`<key>:finished:<account>/<room>`) and the counter move together in one script;
//! without it they live in process.

use std::collections::HashSet;
use std::sync::Mutex;

use redis::aio::ConnectionManager;

/// Marks a room started unless it already finished; returns the count.
const STARTED_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[3] .. ARGV[1]) == 0 and redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('INCR', KEYS[1])
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
";

/// Marks a room finished (remembered for a day); returns the count.
const FINISHED_SCRIPT: &str = r"
redis.call('SET', KEYS[3] .. ARGV[1], '1', 'EX', 86400)
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('DECR', KEYS[1])
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
";

/// Active LiveKit rooms.
pub struct ActiveRooms {
    redis: Option<ConnectionManager>,
    /// The counter's key (`livekit:active_calls` by default).
    key: String,
    local: Mutex<(HashSet<String>, HashSet<String>)>,
}

impl ActiveRooms {
    pub fn in_process(key: &str) -> ActiveRooms {
        ActiveRooms { redis: None, key: key.to_string(), local: Mutex::default() }
    }

    pub async fn with_redis(url: &str, key: &str) -> anyhow::Result<ActiveRooms> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?;
        let connection =
            ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("REDIS_URL: cannot connect: {e}"))?;
        Ok(ActiveRooms { redis: Some(connection), key: key.to_string(), local: Mutex::default() })
    }

    /// Records a `room_started` of an account's room; returns the count of active rooms.
    pub async fn started(&self, account: &str, room: &str) -> anyhow::Result<i64> {
        self.apply(STARTED_SCRIPT, &format!("{account}/{room}"), true).await
    }

    /// Records a `room_finished` of an account's room; returns the count of active rooms.
    pub async fn finished(&self, account: &str, room: &str) -> anyhow::Result<i64> {
        self.apply(FINISHED_SCRIPT, &format!("{account}/{room}"), false).await
    }

    async fn apply(&self, script: &str, room: &str, started: bool) -> anyhow::Result<i64> {
        if let Some(connection) = &self.redis {
            let mut connection = connection.clone();
            let count: i64 = redis::cmd("EVAL")
                .arg(script)
                .arg(3)
                .arg(&self.key)
                .arg(format!("{}:rooms", self.key))
                .arg(format!("{}:finished:", self.key))
                .arg(room)
                .query_async(&mut connection)
                .await?;
            return Ok(count);
        }
        let mut guard = self.local.lock().expect("rooms lock");
        let (active, finished) = &mut *guard;
        if started {
            if !finished.contains(room) {
                active.insert(room.to_string());
            }
        } else {
            finished.insert(room.to_string());
            active.remove(room);
        }
        Ok(active.len() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn duplicates_and_reordering_keep_the_count_exact() {
        let rooms = ActiveRooms::in_process("livekit:active_calls");
        assert_eq!(rooms.started("car_1", "a").await.unwrap(), 1);
        assert_eq!(rooms.started("car_1", "a").await.unwrap(), 1, "a duplicate start counts once");
        assert_eq!(rooms.started("car_1", "b").await.unwrap(), 2);
        assert_eq!(rooms.finished("car_1", "a").await.unwrap(), 1);
        assert_eq!(rooms.finished("car_1", "a").await.unwrap(), 1, "a duplicate finish uncounts once");
        assert_eq!(rooms.finished("car_1", "c").await.unwrap(), 1, "an unknown room changes nothing");
        assert_eq!(rooms.started("car_1", "c").await.unwrap(), 1, "a start after its finish does not count");
        assert_eq!(rooms.finished("car_2", "b").await.unwrap(), 1, "another account cannot finish a room");
    }
}
