//! Telemetry: structured logs (tracing) and Prometheus metrics. Every metric name lives here, with
//! the `dialplane_` prefix, unit suffixes and `_total` on counters; they are described once at
//! start-up. Nothing here ever sees a raw phone number or a token.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::watch;

pub const HTTP_REQUESTS_TOTAL: &str = "dialplane_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "dialplane_http_request_duration_seconds";
pub const CALLS_CREATED_TOTAL: &str = "dialplane_calls_created_total";
pub const CALLS_ENDED_TOTAL: &str = "dialplane_calls_ended_total";
pub const LIVE_CALLS: &str = "dialplane_live_calls";
pub const CARRIER_CALLBACKS_TOTAL: &str = "dialplane_carrier_callbacks_total";
pub const CALLBACK_DELIVERIES_TOTAL: &str = "dialplane_callback_deliveries_total";
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "dialplane_webhook_deliveries_total";
pub const WEBHOOK_ATTEMPT_DURATION_SECONDS: &str = "dialplane_webhook_attempt_duration_seconds";
pub const WEBHOOK_ENDPOINTS_DISABLED_TOTAL: &str = "dialplane_webhook_endpoints_disabled_total";
pub const WEBHOOK_OUTBOX_PENDING: &str = "dialplane_webhook_outbox_pending";
pub const WEBHOOK_OUTBOX_OLDEST_AGE_SECONDS: &str = "dialplane_webhook_outbox_oldest_age_seconds";
pub const CAMPAIGN_ATTEMPTS_TOTAL: &str = "dialplane_campaign_attempts_total";
pub const CAMPAIGN_OUTCOMES_TOTAL: &str = "dialplane_campaign_outcomes_total";
pub const CAMPAIGN_LIVE_CALLS: &str = "dialplane_campaign_live_calls";
pub const CAMPAIGN_CONTACTS_PENDING: &str = "dialplane_campaign_contacts_pending";
pub const CARRIER_QUEUE_WAIT_SECONDS: &str = "dialplane_carrier_queue_wait_seconds";
pub const LIVEKIT_ACTIVE_CALLS: &str = "dialplane_livekit_active_calls";
pub const WRITE_BATCH_WRITES: &str = "dialplane_write_batch_writes";
pub const WRITE_BATCH_DURATION_SECONDS: &str = "dialplane_write_batch_duration_seconds";

static PROMETHEUS: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls share it) and returns its handle.
pub fn metrics_handle() -> PrometheusHandle {
    PROMETHEUS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(HTTP_REQUEST_DURATION_SECONDS.to_string()),
                    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                )
                .expect("buckets are not empty")
                .set_buckets_for_metric(
                    Matcher::Full(WEBHOOK_ATTEMPT_DURATION_SECONDS.to_string()),
                    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .expect("buckets are not empty")
                .set_buckets_for_metric(
                    Matcher::Full(WRITE_BATCH_WRITES.to_string()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
                )
                .expect("buckets are not empty")
                .set_buckets_for_metric(
                    Matcher::Full(WRITE_BATCH_DURATION_SECONDS.to_string()),
                    &[0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
                )
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            handle
        })
        .clone()
}

/// How often the recorder's upkeep runs: the exporter's own default.
const METRICS_UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// How many upkeeps have run since the process started.
static METRICS_UPKEEPS: AtomicU64 = AtomicU64::new(0);

/// How many times [`keep_metrics_up`] has run the recorder's upkeep since the process started.
pub fn metrics_upkeeps() -> u64 {
    METRICS_UPKEEPS.load(Ordering::Relaxed)
}

/// Runs the recorder's upkeep every [`METRICS_UPKEEP_EVERY`] until `stopped` changes. The
/// recorder keeps every histogram sample until an upkeep or a scrape of `/metrics` folds it into
/// the buckets, and the recorder built by [`metrics_handle`] has no upkeep task of its own: a
/// server nobody scraped kept 8 bytes per sample, at least one per request served, for ever.
pub async fn keep_metrics_up(handle: PrometheusHandle, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(METRICS_UPKEEP_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stopped.changed() => return,
        }
        handle.run_upkeep();
        METRICS_UPKEEPS.fetch_add(1, Ordering::Relaxed);
    }
}

fn describe() {
    describe_counter!(HTTP_REQUESTS_TOTAL, "HTTP requests answered, by route template, method and status.");
    describe_histogram!(HTTP_REQUEST_DURATION_SECONDS, Unit::Seconds, "HTTP request latency by route template.");
    describe_counter!(CALLS_CREATED_TOTAL, "Calls created, by call type.");
    describe_counter!(CALLS_ENDED_TOTAL, "Calls that reached a terminal state, by call type and outcome.");
    describe_gauge!(LIVE_CALLS, "Calls currently live (dialing, ringing or in progress).");
    describe_counter!(CARRIER_CALLBACKS_TOTAL, "Carrier callbacks received, by carrier and result.");
    describe_histogram!(
        CARRIER_QUEUE_WAIT_SECONDS,
        Unit::Seconds,
        "How long placements waited for their carrier account's calls-per-second slot."
    );
    describe_gauge!(LIVEKIT_ACTIVE_CALLS, "LiveKit rooms started and not yet finished (Redis livekit:active_calls).");
    describe_counter!(CALLBACK_DELIVERIES_TOTAL, "Callback delivery attempts, by result.");
    describe_counter!(WEBHOOK_DELIVERIES_TOTAL, "Webhook subscription delivery attempts, by result.");
    describe_histogram!(WEBHOOK_ATTEMPT_DURATION_SECONDS, Unit::Seconds, "Webhook delivery attempt latency.");
    describe_counter!(WEBHOOK_ENDPOINTS_DISABLED_TOTAL, "Webhook endpoints disabled after failing continuously.");
    describe_counter!(CAMPAIGN_ATTEMPTS_TOTAL, "Campaign calls placed, by campaign (its rate is the dial rate).");
    describe_counter!(CAMPAIGN_OUTCOMES_TOTAL, "Outcomes of campaign calls, by campaign and outcome.");
    describe_gauge!(CAMPAIGN_LIVE_CALLS, "Calls in flight, by campaign.");
    describe_gauge!(CAMPAIGN_CONTACTS_PENDING, "Contacts waiting to be dialed, by campaign.");
    describe_histogram!(
        WRITE_BATCH_WRITES,
        "Writes per group commit of the writer, by how the batch went (together, one_statement, or each after a failure)."
    );
    describe_histogram!(
        WRITE_BATCH_DURATION_SECONDS,
        Unit::Seconds,
        "How long a group commit of the writer took, from its first statement to its commit."
    );
    describe_gauge!(WEBHOOK_OUTBOX_PENDING, "Messages waiting in the outbox, by subscription state.");
    describe_gauge!(
        WEBHOOK_OUTBOX_OLDEST_AGE_SECONDS,
        Unit::Seconds,
        "Age of the oldest message waiting in the outbox, by subscription state."
    );
}

/// Records a webhook delivery attempt by what became of its message (`delivered`, `retrying`,
/// `exhausted`, `abandoned`) and its latency.
pub fn webhook_attempt(result: &'static str, seconds: f64) {
    counter!(WEBHOOK_DELIVERIES_TOTAL, "result" => result).increment(1);
    histogram!(WEBHOOK_ATTEMPT_DURATION_SECONDS).record(seconds);
}

/// Records a group commit of the writer: how many writes it held, how long it took from its first
/// statement to its commit, and how they went: `together` in a transaction, as `one_statement`
/// (PostgreSQL), or one by one (`each`, after one of them failed).
pub fn write_batch(writes: usize, seconds: f64, went: &'static str) {
    histogram!(WRITE_BATCH_WRITES, "went" => went).record(writes as f64);
    histogram!(WRITE_BATCH_DURATION_SECONDS, "went" => went).record(seconds);
}

/// Records a campaign call placed (its dial rate is this counter's rate).
pub fn campaign_attempt(campaign_id: &str) {
    counter!(CAMPAIGN_ATTEMPTS_TOTAL, "campaign" => campaign_id.to_string()).increment(1);
}

/// Records the outcome of a campaign call.
pub fn campaign_outcome(campaign_id: &str, outcome: &str) {
    counter!(CAMPAIGN_OUTCOMES_TOTAL, "campaign" => campaign_id.to_string(), "outcome" => outcome.to_string())
        .increment(1);
}

/// Sets a campaign's live calls and pending contacts.
pub fn campaign_gauges(campaign_id: &str, live: u64, pending: u64) {
    gauge!(CAMPAIGN_LIVE_CALLS, "campaign" => campaign_id.to_string()).set(live as f64);
    gauge!(CAMPAIGN_CONTACTS_PENDING, "campaign" => campaign_id.to_string()).set(pending as f64);
}

/// Records an endpoint disabled for failing.
pub fn webhook_disabled() {
    counter!(WEBHOOK_ENDPOINTS_DISABLED_TOTAL).increment(1);
}

/// Sets the outbox gauges of one subscription state (`enabled`, `disabled`, `callback_url`).
pub fn set_outbox_depth(state: &'static str, pending: u64, oldest_age_seconds: f64) {
    gauge!(WEBHOOK_OUTBOX_PENDING, "subscription_state" => state).set(pending as f64);
    gauge!(WEBHOOK_OUTBOX_OLDEST_AGE_SECONDS, "subscription_state" => state).set(oldest_age_seconds);
}

/// Records one answered HTTP request.
pub fn http_request(route: &'static str, method: &str, status: u16, seconds: f64) {
    counter!(HTTP_REQUESTS_TOTAL, "route" => route, "method" => method.to_string(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route, "method" => method.to_string()).record(seconds);
}

/// Records a created call.
pub fn call_created(call_type: &'static str) {
    counter!(CALLS_CREATED_TOTAL, "call_type" => call_type).increment(1);
}

/// Records a call's terminal event.
pub fn call_ended(call_type: &'static str, outcome: &'static str) {
    counter!(CALLS_ENDED_TOTAL, "call_type" => call_type, "outcome" => outcome).increment(1);
}

/// Records a carrier callback and what became of it (`applied`, `unknown_call`, `bad_signature`, …).
pub fn carrier_callback(carrier: &'static str, result: &'static str) {
    counter!(CARRIER_CALLBACKS_TOTAL, "carrier" => carrier, "result" => result).increment(1);
}

/// Records a placement that waited for its carrier account's calls-per-second slot.
pub fn carrier_queued(wait: std::time::Duration) {
    histogram!(CARRIER_QUEUE_WAIT_SECONDS).record(wait.as_secs_f64());
}

/// Sets the LiveKit active rooms gauge.
pub fn set_livekit_active_calls(count: i64) {
    gauge!(LIVEKIT_ACTIVE_CALLS).set(count as f64);
}

/// Records a callback delivery attempt (`delivered`, `retrying`, `failed`).
pub fn callback_delivery(result: &'static str) {
    counter!(CALLBACK_DELIVERIES_TOTAL, "result" => result).increment(1);
}

/// Sets the live calls gauge.
pub fn set_live_calls(count: u64) {
    gauge!(LIVE_CALLS).set(count as f64);
}

/// Starts structured logging to stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,sea_orm=warn,hyper=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::sync::watch;

    /// The upkeep runs as soon as the task starts (and then every five seconds), and the task
    /// ends when told to stop.
    #[tokio::test]
    async fn metrics_upkeep_runs_until_stopped() {
        let (stop, stopped) = watch::channel(false);
        let before = super::metrics_upkeeps();
        let task = tokio::spawn(super::keep_metrics_up(super::metrics_handle(), stopped));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while super::metrics_upkeeps() == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(super::metrics_upkeeps() > before, "no upkeep ran");
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(1), task).await.expect("the task stops").unwrap();
    }
}
