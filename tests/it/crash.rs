//! The real `dialplane` binary, killed with SIGKILL three times while 500 calls are created, ring,
//! end and deliver their callbacks: every call ends exactly once, nothing is dialed twice, every
//! event reaches the receiver (duplicates keep their `webhook-id`) and the live counters agree with
//! the database. Runs on PostgreSQL and Redis when the test variables are set, else on SQLite.

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use dialplane::store::entities::{call, call_event, outbox, sandbox_call};

use crate::support::*;

const CALLS: usize = 500;

struct Engine {
    env: Vec<(String, String)>,
    log: std::path::PathBuf,
    base: String,
    child: Option<Child>,
}

impl Engine {
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_dialplane"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    async fn wait_ready(&self, http: &reqwest::Client) {
        eventually("the engine to be ready", || async {
            http.get(format!("{}/readiness", self.base)).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

/// Creates call `i`, retrying through crashes with the same Idempotency-Key until it is stored.
async fn create_call(http: &reqwest::Client, base: &str, token: &str, callback_url: &str, i: usize) -> String {
    let customer_number = match i % 10 {
        0 => "919999990001".to_string(),
        1 => "919999990002".to_string(),
        2 => "919999990003".to_string(),
        3 => "919999990004".to_string(),
        4 => "919999990005".to_string(),
        _ => format!("9177{:04}{:04}", i, 7000 + i % 1000),
    };
    let body = json!({
        "customer_number": customer_number,
        "agent_number": "918888888888",
        "did": "919484956750",
        "callback_url": callback_url,
        "transcript": true,
    });
    loop {
        let sent = http
            .post(format!("{base}/api/calls/click2call"))
            .bearer_auth(token)
            .header("idempotency-key", format!("crash-{i}"))
            .json(&body)
            .send()
            .await;
        if let Ok(response) = sent
            && response.status() == 200
            && let Ok(created) = response.json::<Value>().await
        {
            return created["data"]["call_id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count_where(db: &sea_orm::DatabaseConnection, live: bool) -> u64 {
    call::Entity::find().filter(call::Column::IsLive.eq(live)).count(db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sigkills_lose_nothing_and_double_nothing() {
    dialplane::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database(&dir).await;
    let receiver = WebhookReceiver::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let redis = std::env::var("TEST_REDIS_URL")
        .ok()
        .map(|url| (url, format!("dp_test_{}", dialplane::ids::random_lower_alphanumeric(12))));
    let mut env: Vec<(String, String)> = [
        ("DIALPLANE_BIND", format!("127.0.0.1:{port}")),
        ("DATABASE_URL", database_url.clone()),
        ("DIALPLANE_ADMIN_EMAIL", EMAIL.to_string()),
        ("DIALPLANE_ADMIN_PASSWORD", PASSWORD.to_string()),
        ("DIALPLANE_JWT_SECRET", JWT_SECRET.to_string()),
        ("DIALPLANE_SANDBOX_TIME_SCALE", "0.02".to_string()),
        ("DIALPLANE_ALLOW_PRIVATE_CALLBACKS", "true".to_string()),
        ("DIALPLANE_DELIVERY_BACKOFF_SCALE", "0.001".to_string()),
        ("DIALPLANE_WATCHDOG_INTERVAL_MS", "100".to_string()),
        ("DIALPLANE_COUNTER_RECONCILE_S", "0.5".to_string()),
        ("DIALPLANE_DIAL_TIMEOUT_S", "10".to_string()),
        ("DIALPLANE_RING_TIMEOUT_S", "10".to_string()),
        ("DIALPLANE_DRAIN_TIMEOUT_S", "5".to_string()),
        ("RUST_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some((url, prefix)) = &redis {
        env.push(("REDIS_URL".into(), url.clone()));
        env.push(("DIALPLANE_REDIS_PREFIX".into(), prefix.clone()));
    }
    let mut engine = Engine { env, log: dir.path().join("engine.log"), base: base.clone(), child: None };
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    engine.start();
    engine.wait_ready(&http).await;
    let db = dialplane::store::open(&database_url).await.unwrap();

    let login: Value = http
        .post(format!("{base}/api/login"))
        .json(&json!({"email": EMAIL, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["data"]["access_token"].as_str().unwrap().to_string();

    // Creation runs on, retrying through the crashes.
    let created = Arc::new(AtomicUsize::new(0));
    let creator = {
        let (http, base, token, url, created) =
            (http.clone(), base.clone(), token.clone(), receiver.url.clone(), created.clone());
        tokio::spawn(async move {
            futures::stream::iter(0..CALLS)
                .map(|i| {
                    let (http, base, token, url, created) =
                        (http.clone(), base.clone(), token.clone(), url.clone(), created.clone());
                    async move {
                        let id = create_call(&http, &base, &token, &url, i).await;
                        created.fetch_add(1, Ordering::SeqCst);
                        id
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<String>>()
                .await
        })
    };

    // Kill 1: in the middle of creation.
    eventually("a third of the calls created", || async { created.load(Ordering::SeqCst) >= CALLS / 3 }).await;
    engine.kill();
    eprintln!("kill 1: {} created, {} settled", created.load(Ordering::SeqCst), count_where(&db, false).await);
    engine.start();
    engine.wait_ready(&http).await;

    // Kill 2: every call created, many of them ringing or talking.
    let call_ids: Vec<String> = creator.await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.kill();
    let (live_at_2, settled_at_2) = (count_where(&db, true).await, count_where(&db, false).await);
    eprintln!("kill 2: {live_at_2} live, {settled_at_2} settled");
    engine.start();
    engine.wait_ready(&http).await;

    // Kill 3: half of the calls live at kill 2 settled since; recordings, transcripts and callbacks
    // in flight.
    let target = settled_at_2 + live_at_2 / 2;
    eventually("more calls settled", || async { count_where(&db, false).await >= target }).await;
    engine.kill();
    let pending = outbox::Entity::find().filter(outbox::Column::Status.eq("pending")).count(&db).await.unwrap();
    eprintln!(
        "kill 3: {} live, {} settled, {pending} callbacks pending",
        count_where(&db, true).await,
        count_where(&db, false).await
    );
    engine.start();
    engine.wait_ready(&http).await;

    let settled = tokio::time::timeout(Duration::from_secs(240), async {
        loop {
            let pending_outbox =
                outbox::Entity::find().filter(outbox::Column::Status.eq("pending")).count(&db).await.unwrap();
            if count_where(&db, true).await == 0 && pending_outbox == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(settled.is_ok(), "calls did not settle; engine log:\n{}", engine.log_tail());

    // A graceful stop exits 0.
    let mut child = engine.child.take().unwrap();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");

    // Every call exists once and ended once.
    let unique: HashSet<&String> = call_ids.iter().collect();
    assert_eq!(unique.len(), CALLS);
    assert_eq!(call::Entity::find().count(&db).await.unwrap() as usize, CALLS, "no call created twice");
    let rows = call::Entity::find().all(&db).await.unwrap();
    let ended_events: Vec<call_event::Model> =
        call_event::Entity::find().filter(call_event::Column::Kind.eq("call.ended")).all(&db).await.unwrap();
    let mut ended_count: HashMap<&str, usize> = HashMap::new();
    for event in &ended_events {
        *ended_count.entry(event.call_id.as_str()).or_default() += 1;
    }
    for row in &rows {
        assert!(row.ended_at.is_some() && !row.is_live, "{} never ended", row.id);
        assert_eq!(ended_count.get(row.id.as_str()), Some(&1), "{} has one terminal event", row.id);
    }

    // The sandbox carrier's own log: nothing placed twice.
    let placed: Vec<sandbox_call::Model> = sandbox_call::Entity::find().all(&db).await.unwrap();
    let mut placements: HashMap<&str, usize> = HashMap::new();
    for p in &placed {
        *placements.entry(p.reference.as_str()).or_default() += 1;
    }
    assert!(placements.values().all(|n| *n == 1), "a call was placed twice");
    for row in &rows {
        let reason = row.reason.as_deref().unwrap_or_default();
        let expected = usize::from(!matches!(reason, "not_placed" | "carrier_rejected"));
        assert_eq!(placements.get(row.id.as_str()).copied().unwrap_or(0), expected, "{} ({reason})", row.id);
    }
    let not_placed = rows.iter().filter(|r| r.reason.as_deref() == Some("not_placed")).count();
    let completed = rows.iter().filter(|r| r.status == "completed").count();
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        *reasons.entry(format!("{}/{}", row.status, row.reason.as_deref().unwrap_or("-"))).or_default() += 1;
    }
    eprintln!("outcomes: {reasons:?}; deliveries received: {}", receiver.all().len());
    assert!(completed >= CALLS / 3, "most answerable calls completed ({completed}, {not_placed} not placed)");

    // Every event reached the receiver; duplicates share their webhook-id.
    let mut ids_by_event: HashMap<(String, String), HashSet<String>> = HashMap::new();
    for delivery in receiver.all().into_iter().filter(|d| d.status == 200) {
        let call_id = delivery.body["data"]["call_id"].as_str().unwrap_or_default().to_string();
        let event = delivery.body["event"].as_str().unwrap_or_default().to_string();
        let kind = event.split('.').next().unwrap_or_default().to_string();
        ids_by_event.entry((call_id, kind)).or_default().insert(delivery.headers["webhook-id"].clone());
    }
    for row in &rows {
        for kind in ["call", "transcript"] {
            let ids = ids_by_event.get(&(row.id.clone(), kind.to_string()));
            assert_eq!(
                ids.map(HashSet::len),
                Some(1),
                "{}: one {kind}.* event, delivered, under one webhook-id",
                row.id
            );
        }
    }

    // The live counters agree with the database.
    if let Some((url, prefix)) = &redis {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        let live: u64 =
            redis::cmd("SCARD").arg(format!("{prefix}:live:all")).query_async(&mut connection).await.unwrap();
        assert_eq!(live, dialplane::store::calls::counted_live(&db).await.unwrap().len() as u64);
        assert_eq!(live, 0);
    }
}
