//! The load harness: starts Dialplane in-process on loopback (sandbox carrier at time scale 0) and
//! drives it with real HTTP, measuring in one run, beside a bare warp JSON route as the reference:
//! click2call creation at saturation and at a fixed rate, whole calls per second (creation to every
//! callback delivered), webhook deliveries per second with queue-to-arrival latency, campaign
//! admission over 100,000 contacts, RSS per live call, idle RSS and start-up time. SQLite always; PostgreSQL and
//! Redis too when `BENCH_DATABASE_URL` / `BENCH_REDIS_URL` are set. The reference is measured
//! again at the end, so a run shows how far the machine drifted while it ran. The load client runs
//! on a runtime of its own (threads named `load-client`), so each figure's CPU is told apart: the
//! server's (with the sandbox carrier and SQLite, in this process), the load client's, and on
//! PostgreSQL + Redis their own processes'.
//!
//! Run: `cargo bench --bench load` (`LOAD_QUICK=1` for a short run, `LOAD_LIVE_CALLS=10000,100000`
//! to choose the live-call counts, `LOAD_SKIP_LIVE` / `LOAD_SKIP_STORES` to run one half). Results
//! go to BENCHMARKS.md by hand; nothing here is asserted.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::oneshot;
use warp::Filter;

const CONNECTIONS: usize = 64;

/// The sum of the named fields of a `/proc` `status` file (0 for a field it lacks).
fn status_fields(path: &str, names: &[&str]) -> u64 {
    let status = std::fs::read_to_string(path).unwrap_or_default();
    status
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| names.contains(name))
        .filter_map(|(_, value)| value.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Returns the resident set size of process `pid`, in KiB.
fn process_rss_kib(pid: u32) -> u64 {
    status_fields(&format!("/proc/{pid}/status"), &["VmRSS"])
}

/// CPU time used so far, user and system: by the whole process (server and load client
/// together), by the load client's own threads, by the PostgreSQL and the Redis server (all
/// their processes on this machine, which nothing else uses during a run), and by the sandbox
/// carrier's own process when it runs apart ([`CARRIER_PID`]).
#[derive(Clone, Copy, Default)]
struct CpuUsed {
    process: Duration,
    load_client: Duration,
    postgres: Duration,
    redis: Duration,
    /// `None` when the sandbox carrier runs in this process.
    carrier: Option<Duration>,
    /// Context switches, voluntary or not, of this process and of its load client's threads: a
    /// count, so unlike CPU time it does not move when a shared machine's cores slow down.
    switches: u64,
    load_client_switches: u64,
}

/// The process of the sandbox carrier running apart from the engine (the `carrier` phase), or 0.
static CARRIER_PID: AtomicU32 = AtomicU32::new(0);

impl std::ops::Sub for CpuUsed {
    type Output = CpuUsed;
    fn sub(self, earlier: CpuUsed) -> CpuUsed {
        CpuUsed {
            process: self.process.saturating_sub(earlier.process),
            load_client: self.load_client.saturating_sub(earlier.load_client),
            postgres: self.postgres.saturating_sub(earlier.postgres),
            redis: self.redis.saturating_sub(earlier.redis),
            carrier: self.carrier.map(|now| now.saturating_sub(earlier.carrier.unwrap_or_default())),
            switches: self.switches.saturating_sub(earlier.switches),
            load_client_switches: self.load_client_switches.saturating_sub(earlier.load_client_switches),
        }
    }
}

/// The name of the load client's threads, by which their CPU is told from the server's.
const LOAD_CLIENT_THREAD: &str = "load-client";

/// Reads a `/proc` `stat` file: the command (thread name) and its user plus system CPU time.
fn stat_cpu(path: &str) -> (String, Duration) {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let (head, rest) = stat.rsplit_once(')').unwrap_or(("", ""));
    let comm = head.split_once('(').map_or("", |(_, comm)| comm).to_string();
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    let ticks = field(11) + field(12);
    // In USER_HZ ticks, which Linux fixes at 100 per second for user space.
    (comm, Duration::from_millis(ticks * 10))
}

/// This process's context switches, those of threads that have exited included.
fn process_switches() -> u64 {
    // SAFETY: `getrusage` only writes the `rusage` it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    u64::try_from(usage.ru_nvcsw).unwrap_or(0) + u64::try_from(usage.ru_nivcsw).unwrap_or(0)
}

fn cpu_used() -> CpuUsed {
    let process = stat_cpu("/proc/self/stat").1;
    let (mut load_client, mut load_client_switches) = (Duration::ZERO, 0);
    for task in std::fs::read_dir("/proc/self/task").into_iter().flatten().filter_map(Result::ok) {
        let path = task.path().display().to_string();
        let (comm, cpu) = stat_cpu(&format!("{path}/stat"));
        if comm == LOAD_CLIENT_THREAD {
            load_client += cpu;
            load_client_switches +=
                status_fields(&format!("{path}/status"), &["voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"]);
        }
    }
    let (mut postgres, mut redis) = (Duration::ZERO, Duration::ZERO);
    if let Ok(processes) = std::fs::read_dir("/proc") {
        for entry in processes.filter_map(Result::ok) {
            if !entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            // PostgreSQL's backends and helpers all keep the command name `postgres`.
            match stat_cpu(&format!("{}/stat", entry.path().display())) {
                (comm, cpu) if comm == "postgres" => postgres += cpu,
                (comm, cpu) if comm == "redis-server" => redis += cpu,
                _ => {}
            }
        }
    }
    let carrier = match CARRIER_PID.load(Ordering::Relaxed) {
        0 => None,
        pid => Some(stat_cpu(&format!("/proc/{pid}/stat")).1),
    };
    CpuUsed { process, load_client, postgres, redis, carrier, switches: process_switches(), load_client_switches }
}

impl CpuUsed {
    /// The CPU per `unit` (request, call) over `count` of them, split by who used it: "CPU N µs
    /// per request (S µs and W context switches `server`, C µs the load client's)", then
    /// PostgreSQL's and Redis's when they did any work to speak of (on SQLite they idle), then
    /// the sandbox carrier's process when it runs apart.
    fn per(&self, count: usize, unit: &str, server: &str) -> String {
        let count = count.max(1) as f64;
        let per_unit = |cpu: Duration| cpu.as_secs_f64() * 1e6 / count;
        let (process, load_client) = (per_unit(self.process), per_unit(self.load_client));
        let (postgres, redis) = (per_unit(self.postgres), per_unit(self.redis));
        let mut services = if postgres + redis < 5.0 {
            String::new()
        } else {
            format!(", and {postgres:.0} µs in PostgreSQL, {redis:.0} µs in Redis")
        };
        if let Some(carrier) = self.carrier {
            services.push_str(&format!(", and {:.0} µs in the sandbox carrier's process", per_unit(carrier)));
        }
        let server_switches = self.switches.saturating_sub(self.load_client_switches) as f64 / count;
        format!(
            "CPU {process:.0} µs per {unit} ({:.0} µs and {server_switches:.1} context switches {server}, {load_client:.0} µs the load client's){services}",
            process - load_client
        )
    }
}

/// The load client's own runtime, on threads of its own, so its CPU is measured apart from the
/// server's (which runs on the harness's main runtime with the reference route and receivers).
fn load_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(LOAD_CLIENT_THREAD)
            .enable_all()
            .build()
            .expect("the load client's runtime starts")
    })
}

/// The load client's HTTP client: its connections live on the load client's runtime.
fn load_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap())
}

/// Sends requests numbered `from..to` over `CONNECTIONS` connections, as fast as they are answered.
async fn send_range(client: &reqwest::Client, make: &MakeRequest, from: usize, to: usize) {
    let counter = Arc::new(AtomicUsize::new(from));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, make, counter) = (client.clone(), make.clone(), counter.clone());
        workers.push(load_runtime().spawn(async move {
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= to {
                    break;
                }
                let _ = make(&client).send().await;
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
}

/// Logs in as the bench user and returns the access token.
async fn login(client: &reqwest::Client, base: &str) -> String {
    let login: Value = client
        .post(format!("{base}/api/login"))
        .json(&json!({"email": "bench@example.com", "password": "bench-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["data"]["access_token"].as_str().unwrap().to_string()
}

#[derive(Default)]
struct Report {
    requests: usize,
    errors: usize,
    /// What the errors were, where counted: an HTTP status, or what failed on the way.
    failures: std::collections::BTreeMap<String, usize>,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    /// CPU time used meanwhile: by the process, the load client, PostgreSQL and Redis.
    cpu: CpuUsed,
}

impl Report {
    fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index] as f64 / 1000.0
    }
    fn line(&self, name: &str, reference: Option<f64>) -> String {
        let ratio =
            reference.map_or(String::new(), |r| format!(" ({:.1}% of reference)", 100.0 * self.per_second() / r));
        format!(
            "{name}: {:.0} req/s{ratio}, p50 {:.2} ms, p99 {:.2} ms, {} errors, {}",
            self.per_second(),
            self.percentile_ms(0.5),
            self.percentile_ms(0.99),
            self.errors,
            self.cpu_line()
        ) + &self.failure_kinds()
    }
    fn cpu_line(&self) -> String {
        self.cpu.per(self.requests, "request", "the server's")
    }
    fn failure_kinds(&self) -> String {
        if self.failures.is_empty() {
            return String::new();
        }
        let kinds: Vec<String> = self.failures.iter().map(|(kind, n)| format!("{kind}: {n}")).collect();
        format!(" (errors: {})", kinds.join(", "))
    }
}

/// A request as the load generator sends it at saturation and at a fixed rate: the whole HTTP/1.1
/// message, built once and written as is on every send, as wrk does. reqwest, which the rest of
/// the harness uses, costs two to three times the bare route's own server time per request (see
/// BENCHMARKS.md), so a load measured with it leaves the server less of the cores than the wrk
/// runs its targets were set against.
#[derive(Clone)]
struct RawRequest {
    address: std::net::SocketAddr,
    message: Arc<[u8]>,
}

impl RawRequest {
    /// `GET path` on `base` (`http://host:port`).
    fn get(base: &str, path: &str) -> RawRequest {
        RawRequest::new(base, format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", host_of(base)).into_bytes())
    }

    /// `POST path` on `base` with a JSON body and a bearer token.
    fn post_json(base: &str, path: &str, token: &str, body: &Value) -> RawRequest {
        let body = body.to_string();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            host_of(base),
            body.len()
        );
        RawRequest::new(base, [head.into_bytes(), body.into_bytes()].concat())
    }

    fn new(base: &str, message: Vec<u8>) -> RawRequest {
        let address = host_of(base).parse().expect("the base URL names an IP address and a port");
        RawRequest { address, message: message.into() }
    }
}

fn host_of(base: &str) -> &str {
    base.trim_start_matches("http://").trim_end_matches('/')
}

/// One keep-alive connection of the load generator. It reconnects after an error or when the
/// server closes.
#[derive(Default)]
struct RawConnection {
    stream: Option<tokio::net::TcpStream>,
    buffer: Vec<u8>,
}

impl RawConnection {
    /// Sends `request` and reads its response whole; returns its status code, or what failed.
    async fn exchange(&mut self, request: &RawRequest) -> Result<u16, String> {
        let result = self.try_exchange(request).await;
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    async fn try_exchange(&mut self, request: &RawRequest) -> Result<u16, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(request.address).await.map_err(|_| "could not connect")?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            self.stream = Some(stream);
            self.buffer.clear();
        }
        let stream = self.stream.as_mut().expect("connected above");
        stream.write_all(&request.message).await.map_err(|e| format!("send: {e}"))?;
        let (status, body_from, body_length, close) = loop {
            if let Some(head) = parse_response_head(&self.buffer)? {
                break head;
            }
            read_more(stream, &mut self.buffer).await?;
        };
        while self.buffer.len() < body_from + body_length {
            read_more(stream, &mut self.buffer).await?;
        }
        self.buffer.drain(..body_from + body_length);
        if close {
            self.stream = None;
        }
        return Ok(status);

        async fn read_more(stream: &mut tokio::net::TcpStream, buffer: &mut Vec<u8>) -> Result<(), String> {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) => Err("connection closed".to_string()),
                Ok(n) => {
                    buffer.extend_from_slice(&chunk[..n]);
                    Ok(())
                }
                Err(e) => Err(format!("receive: {e}")),
            }
        }
    }
}

/// Parses a response's head once it is all in `buffer`: its status, where its body starts, the
/// body's length and whether the server closes the connection after it. Only bodies with a
/// `Content-Length` are read, which is what warp sends for the routes measured.
fn parse_response_head(buffer: &[u8]) -> Result<Option<(u16, usize, usize, bool)>, String> {
    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&buffer[..end]).map_err(|_| "a response head that is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or("a response without an HTTP/1.1 status line")?;
    let (mut length, mut close) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        }
    }
    let length = length.ok_or("a response without a Content-Length")?;
    Ok(Some((status, end + 4, length, close)))
}

/// A request the reqwest-based load (whole calls, live calls) sends: method, path, body.
type MakeRequest = Arc<dyn Fn(&reqwest::Client) -> reqwest::RequestBuilder + Send + Sync>;

/// Closed loop: `CONNECTIONS` workers send back to back for `duration`.
async fn saturate(request: RawRequest, duration: Duration) -> Report {
    let (started, cpu_before) = (Instant::now(), cpu_used());
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let request = request.clone();
        workers.push(load_runtime().spawn(async move {
            let mut connection = RawConnection::default();
            let mut latencies = Vec::new();
            let mut errors = 0;
            while started.elapsed() < duration {
                let sent = Instant::now();
                match connection.exchange(&request).await {
                    Ok(status) if (200..300).contains(&status) => latencies.push(sent.elapsed().as_micros() as u64),
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut report = Report::default();
    for worker in workers {
        let (latencies, errors) = worker.await.unwrap();
        report.requests += latencies.len();
        report.errors += errors;
        report.latencies_us.extend(latencies);
    }
    report.elapsed = started.elapsed();
    report.cpu = cpu_used() - cpu_before;
    report
}

/// A fixed rate over `CONNECTIONS` connections, as wrk2 does it: request `n` is due at
/// `n / rate` seconds, each connection takes the next request due and waits for its time, and a
/// request's latency runs from when it was due, so a request held back because every connection
/// was still busy counts the wait (no coordinated omission). Above what the server sustains, the
/// rate answered falls short of the rate offered and the latencies grow; the load never grows
/// past the connections a real client keeps.
///
/// The first `warm_up` runs at the same rate but is not timed (its failures still count): it is the server's and the
/// client's start (64 connections opened at once, SQLite's connections and statements prepared
/// on first use), which at 5,000 req/s was one stall of tens of milliseconds, about 1 % of a
/// 5 s window and so its p99.
async fn fixed_rate(request: RawRequest, rate: u64, warm_up: Duration, duration: Duration) -> Report {
    let started = Instant::now();
    let measured_from = started + warm_up;
    let cpu_at_measure = tokio::spawn(async move {
        tokio::time::sleep_until(measured_from.into()).await;
        cpu_used()
    });
    let total = (rate as f64 * (warm_up + duration).as_secs_f64()) as usize;
    let counter = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (request, counter) = (request.clone(), counter.clone());
        workers.push(load_runtime().spawn(async move {
            let mut connection = RawConnection::default();
            let (mut latencies, mut failures) = (Vec::new(), Vec::new());
            loop {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let due = started + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                match connection.exchange(&request).await {
                    // Warming up: sent at the rate, not timed.
                    Ok(status) if (200..300).contains(&status) => {
                        if due >= measured_from {
                            latencies.push(due.elapsed().as_micros() as u64);
                        }
                    }
                    // A failure counts whenever it happens.
                    Ok(status) => failures.push(format!("HTTP {status}")),
                    Err(failed) => failures.push(failed),
                }
            }
            (latencies, failures)
        }));
    }
    let mut report = Report::default();
    for worker in workers {
        let (latencies, failures) = worker.await.unwrap();
        report.requests += latencies.len();
        report.latencies_us.extend(latencies);
        report.errors += failures.len();
        for kind in failures {
            *report.failures.entry(kind).or_default() += 1;
        }
    }
    report.elapsed = measured_from.elapsed();
    report.cpu = cpu_used() - cpu_at_measure.await.unwrap();
    report
}

/// The reference: a bare warp route returning a small JSON.
async fn reference_server() -> (String, oneshot::Sender<()>) {
    let route = warp::path!("ping").map(|| warp::reply::json(&json!({"status": "ok"})));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        warp::serve(route)
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            })
            .run(),
    );
    (base, stop)
}

/// A callback receiver counting deliveries per call.
async fn receiver() -> (String, Arc<std::sync::Mutex<HashMap<String, usize>>>) {
    let seen: Arc<std::sync::Mutex<HashMap<String, usize>>> = Arc::default();
    let s = seen.clone();
    let route = warp::post().and(warp::body::json()).map(move |body: Value| {
        let id = body["data"]["call_id"].as_str().unwrap_or_default().to_string();
        *s.lock().unwrap().entry(id).or_default() += 1;
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (url, seen)
}

struct Running {
    base: String,
    token: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    startup: Duration,
    idle_rss_kib: u64,
}

/// Starts Dialplane in this process on `database_url` (and `redis_url`), placing its sandbox
/// calls with the sandbox network at `sandbox_url`, or with its own.
async fn start_dialplane(
    client: &reqwest::Client,
    database_url: &str,
    redis_url: Option<&str>,
    sandbox_url: Option<&str>,
) -> Running {
    let mut values: HashMap<String, String> = [
        ("DATABASE_URL", database_url),
        ("DIALPLANE_ADMIN_EMAIL", "bench@example.com"),
        ("DIALPLANE_ADMIN_PASSWORD", "bench-password"),
        ("DIALPLANE_JWT_SECRET", "bench-secret-bench-secret-bench-secret"),
        ("DIALPLANE_SANDBOX_TIME_SCALE", "0"),
        ("DIALPLANE_ALLOW_PRIVATE_CALLBACKS", "true"),
        ("DIALPLANE_WATCHDOG_INTERVAL_MS", "5000"),
        ("DIALPLANE_DRAIN_TIMEOUT_S", "1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Some(url) = sandbox_url {
        values.insert("DIALPLANE_SANDBOX_URL".into(), url.to_string());
    }
    if let Some(url) = redis_url {
        values.insert("REDIS_URL".into(), url.to_string());
        values
            .insert("DIALPLANE_REDIS_PREFIX".into(), format!("bench_{}", dialplane::ids::random_lower_alphanumeric(8)));
    }
    let config = dialplane::config::Config::from_values(&values).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(dialplane::run(config, listener, async move {
        let _ = stopped.await;
    }));
    loop {
        if client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let startup = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss_kib = process_rss_kib(std::process::id());
    let token = login(client, &base).await;
    Running { base, token, stop, task, startup, idle_rss_kib }
}

fn click2call(base: &str, token: &str, customer_number: &'static str, callback_url: Option<String>) -> MakeRequest {
    let (url, token) = (format!("{base}/api/calls/click2call"), token.to_string());
    let body = click2call_body(customer_number, callback_url);
    Arc::new(move |client: &reqwest::Client| client.post(&url).bearer_auth(&token).json(&body))
}

/// The same click2call, as the raw load generator sends it.
fn raw_click2call(base: &str, token: &str, customer_number: &'static str) -> RawRequest {
    RawRequest::post_json(base, "/api/calls/click2call", token, &click2call_body(customer_number, None))
}

/// A click2call body; with a `callback_url`, the call is transcribed too.
fn click2call_body(customer_number: &str, callback_url: Option<String>) -> Value {
    let mut body = json!({"customer_number": customer_number, "agent_number": "918888888888", "did": "919484956750"});
    if let Some(callback) = callback_url {
        body["callback_url"] = json!(callback);
        body["transcript"] = json!(true);
    }
    body
}

/// Campaign admission on its own: 100,000 contacts added to a campaign, then leased, checked
/// against do-not-call and their calling window, and settled in batches as the CampaignActor does,
/// through the real store (no calls are placed: call creation is measured above).
async fn campaign_admission(name: &str, database_url: &str, contacts: usize) {
    use dialplane::campaigns::store::{self as campaigns, CampaignContactIn, Events, SeaCampaignStore};
    use dialplane_actors::campaign::planner;
    use dialplane_actors::ports::{CampaignStore, ContactUpdate};

    let db = dialplane::store::connect(database_url, Duration::from_secs(10)).await.unwrap();
    let user = dialplane::store::users::create(&db, "admission@example.com", "x", "member").await.unwrap();
    let settings = dialplane::campaigns::settings::Settings {
        agent_number: "918888888888".into(),
        caller_ids: vec!["+919484956750".into()],
        ..Default::default()
    };
    let campaign = campaigns::create(&db, &user.workspace_id, &user.id, "bench", &settings).await.unwrap();
    let zones = ["Asia/Kolkata", "Europe/London", "America/New_York", "UTC"];
    let rows: Vec<CampaignContactIn> = (0..contacts)
        .map(|n| CampaignContactIn {
            contact_id: None,
            phone: format!("+9198{n:08}"),
            name: None,
            timezone: Some(zones[n % zones.len()].to_string()),
            variables: serde_json::Map::new(),
        })
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(10_000) {
        campaigns::add_contacts(&db, &campaign, chunk).await.unwrap();
    }
    let added = started.elapsed();
    let (wake, _woken) = tokio::sync::mpsc::unbounded_channel();
    let events = Events { directory: Arc::new(dialplane::webhooks::SubscriptionDirectory::default()), wake };
    let store = SeaCampaignStore { db: db.clone(), events, workspace_max_concurrent: u32::MAX };
    let plan = store.load(&campaign.id).await.unwrap().unwrap();
    let schedule = planner::Schedule {
        window: planner::CallingWindow {
            start: chrono::NaiveTime::MIN,
            end: chrono::NaiveTime::from_hms_opt(23, 59, 59).unwrap(),
            ..Default::default()
        },
        ..plan.schedule.clone()
    };
    let started = Instant::now();
    let mut admitted = 0;
    loop {
        let now = chrono::Utc::now();
        let leased = store.lease(&campaign.id, 500, now).await.unwrap();
        if leased.is_empty() {
            break;
        }
        let phones: Vec<String> = leased.iter().map(|c| c.phone.clone()).collect();
        let blocked = store.blocked(&plan, &phones).await.unwrap();
        let updates: Vec<(i64, ContactUpdate)> = leased
            .iter()
            .map(|c| {
                let tz: chrono_tz::Tz = c.timezone.parse().unwrap_or(chrono_tz::UTC);
                let dnc = blocked.contains(&c.phone);
                match planner::eligibility(&schedule, tz, c.next_attempt_at, dnc, now) {
                    planner::Eligibility::Now => (c.id, ContactUpdate::Done { outcome: "completed".into() }),
                    planner::Eligibility::Later(at) => (c.id, ContactUpdate::Later(at)),
                    planner::Eligibility::Never(_) => (c.id, ContactUpdate::Never("expired".into())),
                }
            })
            .collect();
        admitted += updates.len();
        store.update_contacts(&campaign.id, &updates).await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "[{name}] campaign admission: {contacts} contacts added in {:.1} s ({:.0}/s); {admitted} leased, checked and settled in {:.1} s = {:.0} contacts/s",
        added.as_secs_f64(),
        contacts as f64 / added.as_secs_f64(),
        elapsed.as_secs_f64(),
        admitted as f64 / elapsed.as_secs_f64()
    );
    db.close().await.ok();
}

/// The store a run measures: its name in the output, its database and its Redis, if any, and
/// the sandbox network its calls go to when not the engine's own.
#[derive(Clone, Copy)]
struct Store<'a> {
    name: &'a str,
    database_url: &'a str,
    redis_url: Option<&'a str>,
    /// The sandbox network the engine places its calls with, when not its own.
    sandbox_url: Option<&'a str>,
}

async fn run_store(store: Store<'_>, client: &reqwest::Client, reference: f64, quick: bool) {
    let Store { name, database_url, redis_url, .. } = store;
    if phase("creation") {
        creation(store, client, reference, quick).await;
    }
    if phase("whole") {
        whole_calls(store, client, quick).await;
    }
    if phase("webhooks") {
        // 3. Webhook delivery: test events to several subscriptions on one local receiver, as fast
        //    as they can be queued; latency from the queuing request's answer to the receiver's arrival.
        let server = start_dialplane(client, &fresh(database_url, "d"), redis_url, None).await;
        webhook_delivery(name, client, &server, if quick { 2_000 } else { 10_000 }).await;
        stop(server).await;
    }
    if phase("admission") {
        // 4. Campaign admission over 100,000 contacts (the store side of the dialer).
        campaign_admission(name, &fresh(database_url, "e"), if quick { 20_000 } else { 100_000 }).await;
    }
    if phase("carrier") {
        // 5. Creation and whole calls again, with the sandbox carrier in a process of its own
        //    (the `dialplane` binary on SQLite, its own log): its CPU is then measured apart from
        //    the engine's, as a real carrier's would be, though it still runs on the same cores.
        let carrier_dir = tempfile::tempdir().unwrap();
        let (mut carrier, carrier_base, _) = spawn_server(client, carrier_dir.path(), "carrier.db").await;
        CARRIER_PID.store(carrier.id(), Ordering::Relaxed);
        let name = format!("{name}, carrier apart");
        let apart = Store { name: &name, sandbox_url: Some(&carrier_base), ..store };
        creation(apart, client, reference, quick).await;
        whole_calls(apart, client, quick).await;
        CARRIER_PID.store(0, Ordering::Relaxed);
        let _ = carrier.kill();
        let _ = carrier.wait();
    }
    if !database_url.starts_with("sqlite:") {
        drop_fresh_databases(database_url);
    }
}

/// Whether `LOAD_ONLY` (a comma-separated list of `creation`, `whole`, `webhooks`, `admission`,
/// `carrier`) selects this phase; without it every phase runs.
fn phase(name: &str) -> bool {
    std::env::var("LOAD_ONLY").map_or(true, |only| only.split(',').any(|p| p.trim() == name))
}

/// Creation (measurement 1) at saturation and at a fixed 5,000 req/s.
async fn creation(store: Store<'_>, client: &reqwest::Client, reference: f64, quick: bool) {
    let Store { name, database_url, redis_url, sandbox_url } = store;
    let window = Duration::from_secs(if quick { 3 } else { 10 });
    // Each measurement gets a fresh server, so no backlog of one spills into the next.
    // 1. Creation. Silent sandbox calls (0006: placed, then no callback) keep the rest of the
    //    engine's work out of the figure: each request is auth + the call's insert, then the
    //    actor's `dialing` commit and the sandbox's own insert.
    let server = start_dialplane(client, &fresh(database_url, "a"), redis_url, sandbox_url).await;
    println!(
        "[{name}] start-up {:.0} ms, RSS after start {:.1} MiB (harness included)",
        server.startup.as_secs_f64() * 1000.0,
        server.idle_rss_kib as f64 / 1024.0
    );
    let create = raw_click2call(&server.base, &server.token, "919999990006");
    let commits = GroupCommits::read(client, &server.base).await;
    let saturation = saturate(create, window).await;
    println!("[{name}] {}", saturation.line("click2call creation at saturation", Some(reference)));
    println!("[{name}]   {}", GroupCommits::read(client, &server.base).await.since(commits));
    stop(server).await;

    let server = start_dialplane(client, &fresh(database_url, "b"), redis_url, sandbox_url).await;
    let create = raw_click2call(&server.base, &server.token, "919999990006");
    let commits = GroupCommits::read(client, &server.base).await;
    let rate = fixed_rate(create, 5000, Duration::from_secs(1), Duration::from_secs(if quick { 2 } else { 5 })).await;
    println!("[{name}] {}", rate.line("click2call creation at 5,000 req/s offered", None));
    println!("[{name}]   {} (warm-up included)", GroupCommits::read(client, &server.base).await.since(commits));
    stop(server).await;
}

/// Whole calls (measurement 2): creation → callbacks → end → transcript → both callbacks
/// delivered. `LOAD_WHOLE_CALLS` sets how many (default 500 quick, 3,000 otherwise).
async fn whole_calls(store: Store<'_>, client: &reqwest::Client, quick: bool) {
    let Store { name, database_url, redis_url, sandbox_url } = store;
    let server = start_dialplane(client, &fresh(database_url, "c"), redis_url, sandbox_url).await;
    let (hook, seen) = receiver().await;
    let calls = match std::env::var("LOAD_WHOLE_CALLS") {
        Ok(n) => n.parse().expect("LOAD_WHOLE_CALLS is a number"),
        Err(_) if quick => 500,
        Err(_) => 3000,
    };
    let whole = click2call(&server.base, &server.token, "919999999999", Some(hook));
    let commits = GroupCommits::read(client, &server.base).await;
    let (started, cpu_before) = (Instant::now(), cpu_used());
    send_range(load_client(), &whole, 0, calls).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.lock().unwrap().values().filter(|n| **n >= 2).count() < calls && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = seen.lock().unwrap().values().filter(|n| **n >= 2).count();
    let cpu = cpu_used() - cpu_before;
    println!(
        "[{name}] whole calls: {done} of {calls} in {:.1} s = {:.0} calls/s, {}",
        started.elapsed().as_secs_f64(),
        done as f64 / started.elapsed().as_secs_f64(),
        cpu.per(done, "call", "the server's and the receiver's")
    );
    println!("[{name}]   {}", GroupCommits::read(client, &server.base).await.since(commits));
    stop(server).await;
}

/// A webhook receiver noting when each event (by its `evt_` id) arrived.
async fn event_receiver() -> (String, Arc<std::sync::Mutex<HashMap<String, Instant>>>) {
    let arrived: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let a = arrived.clone();
    let route = warp::post().and(warp::body::json()).map(move |body: Value| {
        let id = body["id"].as_str().unwrap_or_default().to_string();
        a.lock().unwrap().entry(id).or_insert_with(Instant::now);
        "ok"
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (url, arrived)
}

async fn webhook_delivery(name: &str, client: &reqwest::Client, server: &Running, events: usize) {
    const SUBSCRIPTIONS: usize = 4;
    let (url, arrived) = event_receiver().await;
    let mut ids = Vec::new();
    for _ in 0..SUBSCRIPTIONS {
        let created: Value = client
            .post(format!("{}/v1/webhooks", server.base))
            .bearer_auth(&server.token)
            .json(&json!({ "url": url, "event_types": ["*"] }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.push(created["id"].as_str().unwrap().to_string());
    }
    let queued: Arc<std::sync::Mutex<HashMap<String, Instant>>> = Arc::default();
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, next, queued, ids) = (client.clone(), next.clone(), queued.clone(), ids.clone());
        let (base, token) = (server.base.clone(), server.token.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= events {
                    break;
                }
                let url = format!("{base}/v1/webhooks/{}/test", ids[n % ids.len()]);
                if let Ok(response) = client.post(url).bearer_auth(&token).send().await
                    && let Ok(body) = response.json::<Value>().await
                    && let Some(id) = body["event_id"].as_str()
                {
                    queued.lock().unwrap().insert(id.to_string(), Instant::now());
                }
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let queuing = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrived.lock().unwrap().len() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (queued, arrived) = (queued.lock().unwrap().clone(), arrived.lock().unwrap().clone());
    let last = arrived.values().max().copied().unwrap_or(started);
    let mut latencies: Vec<Duration> =
        queued.iter().filter_map(|(id, at)| arrived.get(id).map(|got| got.saturating_duration_since(*at))).collect();
    latencies.sort();
    let quantile =
        |q: f64| latencies.get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)));
    let ms = |d: Option<&Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    println!(
        "[{name}] webhook delivery: {} of {events} events to {SUBSCRIPTIONS} subscriptions in {:.1} s = {:.0} deliveries/s \
         (queued at {:.0}/s); queue-to-arrival p50 {:.1} ms, p99 {:.1} ms",
        arrived.len(),
        last.duration_since(started).as_secs_f64(),
        arrived.len() as f64 / last.duration_since(started).as_secs_f64(),
        events as f64 / queuing.as_secs_f64(),
        ms(quantile(0.5)),
        ms(quantile(0.99)),
    );
}

async fn stop(server: Running) {
    let _ = server.stop.send(());
    let _ = server.task.await;
}

/// The writer's group commits so far (all but those gone write by write): how many, their
/// writes, their seconds. The metrics recorder is the process's, shared by every server the
/// harness starts, so a phase reports the difference between two reads.
#[derive(Clone, Copy, Default)]
struct GroupCommits {
    batches: f64,
    /// Of them, the batches written as one statement with no transaction around it (PostgreSQL).
    one_statement: f64,
    writes: f64,
    seconds: f64,
    /// Batches that took longer than 5 ms, and longer than 10 ms (the duration histogram's buckets).
    over_5ms: f64,
    over_10ms: f64,
}

impl GroupCommits {
    async fn read(client: &reqwest::Client, base: &str) -> GroupCommits {
        let text = client.get(format!("{base}/metrics")).send().await.unwrap().text().await.unwrap();
        let value = |series: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
                .unwrap_or(0.0)
        };
        let both = |metric: &str| {
            value(&format!("{metric}{{went=\"together\"}}")) + value(&format!("{metric}{{went=\"one_statement\"}}"))
        };
        let over = |le: &str| {
            both("dialplane_write_batch_duration_seconds_count")
                - value(&format!("dialplane_write_batch_duration_seconds_bucket{{went=\"together\",le=\"{le}\"}}"))
                - value(&format!("dialplane_write_batch_duration_seconds_bucket{{went=\"one_statement\",le=\"{le}\"}}"))
        };
        GroupCommits {
            over_5ms: over("0.005"),
            over_10ms: over("0.01"),
            batches: both("dialplane_write_batch_writes_count"),
            one_statement: value("dialplane_write_batch_writes_count{went=\"one_statement\"}"),
            writes: both("dialplane_write_batch_writes_sum"),
            seconds: both("dialplane_write_batch_duration_seconds_sum"),
        }
    }

    /// What happened since `before`, as a line.
    fn since(&self, before: GroupCommits) -> String {
        let batches = (self.batches - before.batches).max(1.0);
        format!(
            "{:.0} group commits ({:.0} as one statement), {:.1} writes and {:.2} ms each on average, {:.0} over 5 ms \
             and {:.0} over 10 ms",
            self.batches - before.batches,
            self.one_statement - before.one_statement,
            (self.writes - before.writes) / batches,
            (self.seconds - before.seconds) * 1000.0 / batches,
            self.over_5ms - before.over_5ms,
            self.over_10ms - before.over_10ms
        )
    }
}

/// The PostgreSQL databases [`fresh`] created, for [`drop_fresh_databases`].
static FRESH_DATABASES: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Runs `sql` on the PostgreSQL server of `admin`, from a thread of its own (the caller may be
/// inside the harness's runtime).
fn run_admin_sql(admin: &str, sql: String) {
    let admin = admin.to_string();
    let ran = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            let db = dialplane::store::open(&admin).await.unwrap();
            sea_orm::ConnectionTrait::execute_unprepared(&db, &sql).await.unwrap();
            db.close().await.unwrap();
        })
    });
    ran.join().unwrap();
}

/// Drops the PostgreSQL databases the run created, once its servers are stopped.
fn drop_fresh_databases(admin: &str) {
    for name in std::mem::take(&mut *FRESH_DATABASES.lock().unwrap()) {
        run_admin_sql(admin, format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

/// Returns a URL of a fresh database for one measurement: a new SQLite file next to the given
/// one, or a new PostgreSQL database created beside the given one (dropped at the end of the
/// store's run).
fn fresh(url: &str, tag: &str) -> String {
    if url.starts_with("sqlite:") {
        // Numbered too: a phase may measure the same kind twice (the `carrier` phase).
        static SQLITE_FILES: AtomicUsize = AtomicUsize::new(0);
        let n = SQLITE_FILES.fetch_add(1, Ordering::Relaxed);
        return url.replace(".db?", &format!("_{tag}{n}.db?"));
    }
    let name = format!("dp_bench_{tag}_{}", dialplane::ids::random_lower_alphanumeric(8));
    run_admin_sql(url, format!("CREATE DATABASE {name}"));
    FRESH_DATABASES.lock().unwrap().push(name.clone());
    let mut parsed = url::Url::parse(url).unwrap();
    parsed.set_path(&format!("/{name}"));
    parsed.to_string()
}

/// Runs the real `dialplane` binary on its own, so its RSS is the server's alone: start-up time, idle
/// RSS, then RSS per call held in progress at each of `counts`.
/// Starts the real `dialplane` binary on SQLite under `dir`, waits for it to serve and returns
/// it, its base URL and how long it took to answer `/health`.
async fn spawn_server(
    client: &reqwest::Client,
    dir: &std::path::Path,
    database: &str,
) -> (std::process::Child, String, Duration) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dialplane"))
        .arg("serve")
        .env("DIALPLANE_BIND", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", format!("sqlite://{}?mode=rwc", dir.join(database).display()))
        .env("DIALPLANE_ADMIN_EMAIL", "bench@example.com")
        .env("DIALPLANE_ADMIN_PASSWORD", "bench-password")
        .env("DIALPLANE_JWT_SECRET", "bench-secret-bench-secret-bench-secret")
        .env("DIALPLANE_SANDBOX_TIME_SCALE", "0")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the dialplane binary starts");
    while !client.get(format!("{base}/health")).send().await.is_ok_and(|r| r.status().is_success()) {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (child, base, started.elapsed())
}

async fn live_calls_rss(client: &reqwest::Client, dir: &std::path::Path, counts: &[usize]) {
    let (mut child, base, startup) = spawn_server(client, dir, "live.db").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = process_rss_kib(child.id());
    println!(
        "[server] start-up {:.0} ms (process spawn to /health), idle RSS {:.1} MiB",
        startup.as_secs_f64() * 1000.0,
        idle as f64 / 1024.0
    );
    let token = login(client, &base).await;
    let hold = click2call(&base, &token, "919999990007", None);
    let mut created = 0usize;
    for &target in counts {
        send_range(load_client(), &hold, created, target).await;
        created = target;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss = process_rss_kib(child.id());
        println!(
            "[live] {target} calls held in progress: server RSS {:.1} MiB, {:.1} KiB per live call above idle",
            rss as f64 / 1024.0,
            rss.saturating_sub(idle) as f64 / target as f64
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The server idles under its RSS target after load too: 5,000 whole calls (no `callback_url`),
/// then RSS once they have ended and the server has sat idle.
async fn idle_after_load(client: &reqwest::Client, dir: &std::path::Path) {
    let (mut child, base, _) = spawn_server(client, dir, "idle.db").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = process_rss_kib(child.id());
    let token = login(client, &base).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let logged_in = process_rss_kib(child.id());
    let calls = 5_000;
    // The load comes over its own connections, closed once it is done: an idle server has no
    // clients left.
    let closing_client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap();
    send_range(&closing_client, &click2call(&base, &token, "919999999999", None), 0, calls).await;
    drop(closing_client);
    let loaded = process_rss_kib(child.id());
    // The calls end within a few seconds at time scale 0; then the server has nothing to do.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after = process_rss_kib(child.id());
    tokio::time::sleep(Duration::from_secs(20)).await;
    let later = process_rss_kib(child.id());
    let mib = |kib: u64| kib as f64 / 1024.0;
    println!(
        "[server] RSS {:.1} MiB idle at start, {:.1} MiB after a login, {:.1} MiB once {calls} whole calls were \
         created, {:.1} MiB idle 10 s later, {:.1} MiB 30 s later",
        mib(idle),
        mib(logged_in),
        mib(loaded),
        mib(after),
        mib(later)
    );
    let sockets = std::fs::read_dir(format!("/proc/{}/fd", child.id()))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter(|fd| fd.path().read_link().is_ok_and(|l| l.to_string_lossy().starts_with("socket:")))
                .count()
        })
        .unwrap_or(0);
    println!("[server]   {sockets} sockets open");
    // What the idle server holds: its heap (anonymous) against mapped files (code, SQLite's).
    if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", child.id())) {
        let held = rollup.lines().filter(|l| l.starts_with("Anonymous") || l.starts_with("Private_Clean"));
        println!(
            "[server]   {}",
            held.map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join(", ")
        );
    }
    if let Some(hold) = std::env::var("LOAD_IDLE_HOLD_SECS").ok().and_then(|s| s.parse().ok()) {
        // Time to inspect the idle server by hand (gdb, /proc/<pid>/smaps) before it is stopped.
        println!("[server]   holding pid {} for {hold} s", child.id());
        tokio::time::sleep(Duration::from_secs(hold)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn main() {
    dialplane::allocator::return_freed_memory_promptly();
    dialplane::install_crypto_provider();
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var("LOAD_QUICK").is_ok();
    let runtime = dialplane::runtime().unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().pool_max_idle_per_host(CONNECTIONS).build().unwrap();
        let (reference_base, stop_reference) = reference_server().await;
        let ping = RawRequest::get(&reference_base, "/ping");
        let reference_window = Duration::from_secs(if quick { 3 } else { 10 });
        let reference = saturate(ping.clone(), reference_window).await;
        println!("[reference] {}", reference.line("bare warp JSON route", None));

        let dir = tempfile::tempdir().unwrap();
        // Live calls on the real binary in its own process, so RSS is the server's alone.
        let counts: &[usize] = match std::env::var("LOAD_LIVE_CALLS") {
            Ok(list) => {
                Box::leak(list.split(',').map(|n| n.trim().parse().unwrap()).collect::<Vec<usize>>().into_boxed_slice())
            }
            Err(_) if quick => &[2_000],
            Err(_) => &[10_000, 100_000],
        };
        if std::env::var("LOAD_SKIP_LIVE").is_err() {
            idle_after_load(&client, dir.path()).await;
            live_calls_rss(&client, dir.path(), counts).await;
        }
        if std::env::var("LOAD_SKIP_STORES").is_err() {
            let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
            let store = Store { name: "sqlite", database_url: &sqlite, redis_url: None, sandbox_url: None };
            run_store(store, &client, reference.per_second(), quick).await;
            if let Ok(pg) = std::env::var("BENCH_DATABASE_URL") {
                let redis = std::env::var("BENCH_REDIS_URL").ok();
                let store =
                    Store { name: "postgres+redis", database_url: &pg, redis_url: redis.as_deref(), sandbox_url: None };
                run_store(store, &client, reference.per_second(), quick).await;
            }
        }
        // The same route again: on a shared virtual machine the cores' speed drifts within a run,
        // and the ratios above are only as good as the reference is steady.
        let again = saturate(ping, reference_window).await;
        println!(
            "[reference] again at the end: {:.0} req/s, {:+.1}% against the first, {}",
            again.per_second(),
            100.0 * (again.per_second() / reference.per_second() - 1.0),
            again.cpu_line()
        );
        let _ = stop_reference.send(());
    });
}
