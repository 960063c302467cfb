//! Test support: a [`TestServer`] running the whole engine on `127.0.0.1:0` (its own SQLite file,
//! or its own PostgreSQL database and Redis key prefix when `TEST_DATABASE_URL` / `TEST_REDIS_URL`
//! are set), a [`WebhookReceiver`] that records callbacks and can be told to fail, and helpers.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use dialplane::config::Config;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;

pub const EMAIL: &str = "user@example.com";
pub const PASSWORD: &str = "your_password";

/// How long a test waits for something asynchronous before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

/// A log sink shared by every server of this test binary.
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl Write for LogSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures the logs of every server in this process, at debug level for Dialplane's own crates.
fn capture_logs() {
    LOGS.get_or_init(|| {
        let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
        let sink = buffer.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("warn,dialplane=debug,dialplane_actors=debug")
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        buffer
    });
}

/// Returns everything logged so far by any server of this test binary.
pub fn captured_logs() -> String {
    LOGS.get().map(|buffer| String::from_utf8_lossy(&buffer.lock().unwrap()).into_owned()).unwrap_or_default()
}

/// Options of a test server.
pub struct ServerOptions {
    pub allow_private_callbacks: bool,
    pub sandbox_time_scale: f64,
    /// Extra configuration values (they win over the defaults above).
    pub extra: Vec<(&'static str, String)>,
    /// Use this database instead of a fresh one.
    pub database_url: Option<String>,
    /// Use this Redis instead of `TEST_REDIS_URL` (a proxy in front of it, say).
    pub redis_url: Option<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            allow_private_callbacks: true,
            sandbox_time_scale: 0.0,
            extra: vec![("DIALPLANE_DRAIN_TIMEOUT_S", "0.5".to_string())],
            database_url: None,
            redis_url: None,
        }
    }
}

/// The whole engine, serving on an ephemeral port.
pub struct TestServer {
    pub base: String,
    pub http: reqwest::Client,
    pub db: DatabaseConnection,
    pub redis: Option<(String, String)>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Returns a database URL of a fresh database: a SQLite file in `dir`, or a new PostgreSQL
/// database next to `TEST_DATABASE_URL`.
pub async fn fresh_database(dir: &tempfile::TempDir) -> String {
    match std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()) {
        None => format!("sqlite://{}?mode=rwc", dir.path().join("dialplane.db").display()),
        Some(admin_url) => {
            let name = format!("dp_test_{}", dialplane::ids::random_lower_alphanumeric(12));
            let admin = dialplane::store::open(&admin_url).await.expect("TEST_DATABASE_URL reachable");
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("create test database");
            admin.close().await.ok();
            let mut url = url::Url::parse(&admin_url).expect("TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(ServerOptions::default()).await
    }

    pub async fn start_with(options: ServerOptions) -> TestServer {
        dialplane::install_crypto_provider();
        capture_logs();
        let dir = tempfile::tempdir().unwrap();
        let database_url = match options.database_url.clone() {
            Some(url) => url,
            None => fresh_database(&dir).await,
        };
        let redis = options
            .redis_url
            .clone()
            .or_else(|| std::env::var("TEST_REDIS_URL").ok())
            .filter(|u| !u.is_empty())
            .map(|url| (url, format!("dp_test_{}", dialplane::ids::random_lower_alphanumeric(12))));
        let mut values: HashMap<String, String> = [
            ("DATABASE_URL", database_url.as_str()),
            ("DIALPLANE_ADMIN_EMAIL", EMAIL),
            ("DIALPLANE_ADMIN_PASSWORD", PASSWORD),
            ("DIALPLANE_JWT_SECRET", JWT_SECRET),
            ("DIALPLANE_DELIVERY_BACKOFF_SCALE", "0.001"),
            ("DIALPLANE_WATCHDOG_INTERVAL_MS", "50"),
            ("DIALPLANE_COUNTER_RECONCILE_S", "0.2"),
            ("DIALPLANE_DB_ACQUIRE_TIMEOUT_S", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        values.insert("DIALPLANE_SANDBOX_TIME_SCALE".into(), options.sandbox_time_scale.to_string());
        values.insert("DIALPLANE_ALLOW_PRIVATE_CALLBACKS".into(), options.allow_private_callbacks.to_string());
        if let Some((url, prefix)) = &redis {
            values.insert("REDIS_URL".into(), url.clone());
            values.insert("DIALPLANE_REDIS_PREFIX".into(), prefix.clone());
        }
        for (key, value) in &options.extra {
            values.insert(key.to_string(), value.clone());
        }
        let config = Config::from_values(&values).expect("test config is valid");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(dialplane::run(config, listener, async move {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        // Ready once the server answers (migrations and bootstrap run before it serves).
        let started = tokio::time::Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{base}/health")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(!task.is_finished(), "server stopped during start-up");
            assert!(started.elapsed() < PATIENCE, "server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let db = dialplane::store::open(&database_url).await.unwrap();
        TestServer { base, http, db, redis, shutdown: Some(shutdown), task: Some(task), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Logs in and returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.post_json("/api/login", None, &json!({ "email": email, "password": password })).await;
        assert_eq!(response.0, 200, "login failed: {}", response.1);
        response.1["data"]["access_token"].as_str().unwrap().to_string()
    }

    pub async fn token(&self) -> String {
        self.login(EMAIL, PASSWORD).await
    }

    /// POSTs JSON; returns the status and the JSON body.
    pub async fn post_json(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        self.post_raw(path, token, body.to_string()).await
    }

    pub async fn post_raw(&self, path: &str, token: Option<&str>, body: String) -> (u16, Value) {
        let mut request = self.http.post(self.url(path)).header("content-type", "application/json").body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a request with any method, an optional bearer token and an optional JSON body;
    /// returns the status and the JSON body (`null` when there is none).
    pub async fn send(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// GETs JSON; returns the status and the JSON body.
    pub async fn get_json(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates an AI agent (seed 001) with a minimal config and returns its `AGT_` id.
    pub async fn create_agent(&self, token: &str, name: &str) -> String {
        let body = json!({ "agent_in": { "agent_name": name }, "agent_config": { "system_prompt": "You are a helpful agent." } });
        let (status, agent) = self.post_json("/api/agents/create", Some(token), &body).await;
        assert_eq!(status, 200, "agent creation failed: {agent}");
        agent["agent_id"].as_str().unwrap().to_string()
    }

    /// Creates a click2call and returns its call id.
    pub async fn click2call(&self, token: &str, body: Value) -> String {
        let (status, response) = self.post_json("/api/calls/click2call", Some(token), &body).await;
        assert_eq!(status, 200, "click2call failed: {response}");
        response["data"]["call_id"].as_str().unwrap().to_string()
    }

    /// Waits until the call's transcript endpoint shows a settled call (ended, stages done).
    pub async fn wait_until_settled(&self, token: &str, call_id: &str) -> Value {
        let started = tokio::time::Instant::now();
        loop {
            let (_, body) = self.get_json("/api/calls/recent?limit=200", Some(token)).await;
            let call = body["data"]["calls"]
                .as_array()
                .and_then(|calls| calls.iter().find(|c| c["call_id"] == call_id).cloned());
            if let Some(call) = call {
                let transcript = call["transcript_status"].as_str().unwrap_or_default();
                if matches!(transcript, "ready" | "failed" | "disabled") && call["duration"].is_string() {
                    return call;
                }
            }
            assert!(started.elapsed() < PATIENCE, "call {call_id} did not settle");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Returns the signing secret of a user's workspace.
    pub async fn signing_secret(&self, email: &str) -> String {
        let user = dialplane::store::users::find_by_email(&self.db, email).await.unwrap().unwrap();
        dialplane::store::users::find_workspace(&self.db, &user.workspace_id).await.unwrap().unwrap().signing_secret
    }

    /// Starts a graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        self.begin_shutdown();
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(PATIENCE, task).await.expect("server stopped in time").unwrap();
            result.expect("server ran without error");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub headers: HashMap<String, String>,
    pub raw: Bytes,
    pub body: Value,
    /// What the receiver answered.
    pub status: u16,
}

/// A webhook receiver on an ephemeral port that records every request.
pub struct WebhookReceiver {
    pub url: String,
    received: Arc<Mutex<Vec<Delivery>>>,
    fail_first: Arc<AtomicUsize>,
    _shutdown: oneshot::Sender<()>,
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        WebhookReceiver::start_answering_after(Duration::ZERO).await
    }

    /// A receiver that notes each delivery as it arrives and answers it `delay` later.
    pub async fn start_answering_after(delay: Duration) -> WebhookReceiver {
        let received: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let fail_first = Arc::new(AtomicUsize::new(0));
        let (r, f) = (received.clone(), fail_first.clone());
        let route = warp::post().and(warp::header::headers_cloned()).and(warp::body::bytes()).then(
            move |headers: warp::http::HeaderMap, raw: Bytes| {
                let fail = f.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
                let status = if fail { 500 } else { 200 };
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
                    .collect();
                let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                r.lock().unwrap().push(Delivery { headers, raw, body, status });
                async move {
                    tokio::time::sleep(delay).await;
                    warp::reply::with_status("ok", warp::http::StatusCode::from_u16(status).unwrap())
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/indus/click2call", listener.local_addr().unwrap());
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(route)
                .incoming(listener)
                .graceful(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        WebhookReceiver { url, received, fail_first, _shutdown: shutdown }
    }

    /// Makes the next `n` requests fail with 500.
    pub fn fail_next(&self, n: usize) {
        self.fail_first.store(n, Ordering::SeqCst);
    }

    /// Returns every request received so far.
    pub fn all(&self) -> Vec<Delivery> {
        self.received.lock().unwrap().clone()
    }

    /// Returns the accepted (2xx) deliveries about a call.
    pub fn accepted_for(&self, call_id: &str) -> Vec<Delivery> {
        self.all().into_iter().filter(|d| d.status == 200 && d.body["data"]["call_id"] == call_id).collect()
    }

    /// Waits until `n` deliveries about a call were accepted and returns them in arrival order.
    pub async fn wait_for(&self, call_id: &str, n: usize) -> Vec<Delivery> {
        let started = tokio::time::Instant::now();
        loop {
            let got = self.accepted_for(call_id);
            if got.len() >= n {
                return got;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "expected {n} callbacks for {call_id}, got {}: {:?}",
                got.len(),
                got.iter().map(|d| &d.body["event"]).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Returns the events of deliveries, in order.
pub fn events(deliveries: &[Delivery]) -> Vec<String> {
    deliveries.iter().map(|d| d.body["event"].as_str().unwrap_or_default().to_string()).collect()
}

/// Returns the seed's click2call request with `customer_number` and `callback_url`.
pub fn seed_request(customer_number: &str, callback_url: &str) -> Value {
    json!({
        "customer_number": customer_number,
        "agent_number": "918888888888",
        "did": "919484956750",
        "callback_url": callback_url,
        "transcript": true,
        "transcript_language": "hi"
    })
}

/// A TCP proxy the test can cut (every connection dropped, new ones refused) and restore, to
/// take PostgreSQL or Redis away from a server without touching the real service.
pub struct CuttableProxy {
    pub port: u16,
    cut: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl CuttableProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> CuttableProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (c, conns) = (cut.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if c.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = outbound.set_nodelay(true);
                        let _ = inbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(task);
            }
        });
        CuttableProxy { port, cut, connections }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Waits until `check` passes, polling.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = tokio::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < PATIENCE * 3, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JWT secret test servers use; the sandbox callback key derives from it.
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";
