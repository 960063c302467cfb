//! Subscription actors under paused tokio time, with an in-memory outbox and a scripted endpoint:
//! the attempts follow the retry schedule, a dead endpoint never delays a healthy one, messages of
//! one call stay in order, and an endpoint failing for the whole period is disabled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use ractor::Actor;

use super::actor::WebhookDeps;
use super::fsm::{AttemptResult, DeliveryPolicy, EndpointHealth, MessageFate};
use super::supervisor::{WebhookSupervisor, WebhookSupervisorMessage};
use crate::ports::*;

/// Time as the paused tokio clock tells it.
struct PausedClock {
    start: tokio::time::Instant,
}

impl PausedClock {
    fn new() -> Arc<Self> {
        Arc::new(PausedClock { start: tokio::time::Instant::now() })
    }
}

fn epoch() -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap()
}

impl Clock for PausedClock {
    fn now(&self) -> DateTime<Utc> {
        epoch() + chrono::Duration::from_std(self.start.elapsed()).unwrap()
    }
}

#[derive(Default)]
struct Memory {
    messages: Vec<(OutboundMessage, Option<MessageFate>)>,
    health: HashMap<String, EndpointHealth>,
    disabled_reasons: Vec<String>,
    /// (message id, attempt time) in the order attempts were recorded.
    attempts: Vec<(String, DateTime<Utc>)>,
}

#[derive(Default)]
struct FakeOutbox(Mutex<Memory>);

impl FakeOutbox {
    fn add(&self, subscription: &str, line: &str, id: &str, at: DateTime<Utc>) {
        let mut memory = self.0.lock().unwrap();
        memory.health.entry(subscription.to_string()).or_default();
        let row_id = memory.messages.len() as i64 + 1;
        memory.messages.push((
            OutboundMessage {
                row_id,
                message_id: id.to_string(),
                subscription_id: subscription.to_string(),
                line: line.to_string(),
                event_type: "call.ended".to_string(),
                attempts: 0,
                next_attempt_at: at,
                body: "{}".to_string(),
            },
            None,
        ));
    }

    fn fate(&self, id: &str) -> Option<MessageFate> {
        let memory = self.0.lock().unwrap();
        memory.messages.iter().find(|(m, _)| m.message_id == id).and_then(|(_, fate)| fate.clone())
    }

    fn attempt_times(&self, id: &str) -> Vec<DateTime<Utc>> {
        self.0.lock().unwrap().attempts.iter().filter(|(m, _)| m == id).map(|(_, at)| *at).collect()
    }
}

#[async_trait]
impl WebhookOutbox for FakeOutbox {
    async fn health(&self, subscription_id: &str) -> Result<Option<EndpointHealth>, StoreError> {
        Ok(self.0.lock().unwrap().health.get(subscription_id).cloned())
    }

    async fn pending(&self, subscription_id: &str, limit: u64) -> Result<Vec<OutboundMessage>, StoreError> {
        let memory = self.0.lock().unwrap();
        Ok(memory
            .messages
            .iter()
            .filter(|(m, fate)| {
                m.subscription_id == subscription_id && matches!(fate, None | Some(MessageFate::RetryAt(_)))
            })
            .map(|(m, _)| m.clone())
            .take(limit as usize)
            .collect())
    }

    async fn record_attempt(
        &self,
        message: &OutboundMessage,
        _report: &AttemptReport,
        fate: &MessageFate,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut memory = self.0.lock().unwrap();
        memory.attempts.push((message.message_id.clone(), at));
        let (row, stored_fate) = memory.messages.iter_mut().find(|(m, _)| m.row_id == message.row_id).unwrap();
        row.attempts += 1;
        if let MessageFate::RetryAt(next) = fate {
            row.next_attempt_at = *next;
        }
        *stored_fate = Some(fate.clone());
        Ok(())
    }

    async fn save_health(
        &self,
        subscription_id: &str,
        health: &EndpointHealth,
        disabled_reason: Option<&str>,
        _at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut memory = self.0.lock().unwrap();
        memory.health.insert(subscription_id.to_string(), health.clone());
        memory.disabled_reasons.extend(disabled_reason.map(str::to_string));
        Ok(())
    }
}

/// An endpoint per subscription: `dead` hangs until the attempt times out, `flaky` fails each
/// message's first attempt, anything else answers 2xx. Counts requests open at once.
#[derive(Default)]
struct ScriptedEndpoints {
    open: Mutex<HashMap<String, usize>>,
    most_open: Mutex<HashMap<String, usize>>,
    seen: Mutex<HashMap<String, u32>>,
    /// Message ids in the order their attempts started.
    started: Mutex<Vec<String>>,
}

#[async_trait]
impl WebhookSender for ScriptedEndpoints {
    async fn send(&self, message: &OutboundMessage) -> AttemptReport {
        let sub = message.subscription_id.clone();
        self.started.lock().unwrap().push(message.message_id.clone());
        {
            let mut open = self.open.lock().unwrap();
            let now_open = open.entry(sub.clone()).or_default();
            *now_open += 1;
            let mut most = self.most_open.lock().unwrap();
            let most = most.entry(sub.clone()).or_default();
            *most = (*most).max(*now_open);
        }
        let seen = {
            let mut seen = self.seen.lock().unwrap();
            let n = seen.entry(message.message_id.clone()).or_default();
            *n += 1;
            *n
        };
        let result = match sub.as_str() {
            "dead" => {
                tokio::time::sleep(Duration::from_secs(15)).await;
                AttemptResult::Failed { retry_after: None }
            }
            "flaky" if seen == 1 => AttemptResult::Failed { retry_after: None },
            _ => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                AttemptResult::Delivered
            }
        };
        *self.open.lock().unwrap().get_mut(&sub).unwrap() -= 1;
        AttemptReport { result, status_code: None, latency: Duration::ZERO, error: None, response_excerpt: None }
    }
}

async fn start(
    outbox: Arc<dyn WebhookOutbox>,
    endpoints: Arc<ScriptedEndpoints>,
    policy: DeliveryPolicy,
    subscriptions: &[&str],
) -> ractor::ActorRef<WebhookSupervisorMessage> {
    let deps = Arc::new(WebhookDeps {
        outbox,
        sender: endpoints,
        clock: PausedClock::new(),
        policy,
        max_in_flight: 4,
        poll_interval: Duration::from_secs(30),
    });
    let ids = subscriptions.iter().map(|s| s.to_string()).collect();
    let (supervisor, _) = Actor::spawn(None, WebhookSupervisor, (deps, ids)).await.unwrap();
    supervisor
}

/// Svix's schedule, without jitter, with a year before a failing endpoint is disabled.
fn patient_policy() -> DeliveryPolicy {
    DeliveryPolicy::svix(1.0, Duration::from_secs(365 * 86_400))
}

/// Sleeps in paused time, a minute at a time, until `done` or `limit` passes.
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_follow_the_schedule_with_jitter_until_exhausted() {
    let outbox = Arc::new(FakeOutbox::default());
    outbox.add("dead", "call_1", "msg_1", epoch());
    let policy = patient_policy();
    let supervisor = start(outbox.clone(), Arc::new(ScriptedEndpoints::default()), policy.clone(), &["dead"]).await;
    wait_until(Duration::from_secs(40 * 3600), || outbox.fate("msg_1") == Some(MessageFate::Exhausted)).await;
    assert_eq!(outbox.fate("msg_1"), Some(MessageFate::Exhausted));
    // Each attempt is recorded when it ends, 15 s (the hanging endpoint) after it started.
    let recorded = outbox.attempt_times("msg_1");
    assert_eq!(recorded.len(), 8, "eight attempts in all");
    let started: Vec<_> = recorded.iter().map(|at| *at - chrono::Duration::seconds(15)).collect();
    assert_eq!(started[0], epoch(), "the first attempt is immediate");
    for n in 1..8 {
        let gap = (started[n] - recorded[n - 1]).to_std().unwrap();
        let expected = policy.retry_delay(n as u32).unwrap().mul_f64(super::fsm::jitter("msg_1", n as u32));
        let off = gap.abs_diff(expected);
        assert!(off <= Duration::from_secs(1), "retry {n}: waited {gap:?}, schedule says {expected:?}");
    }
    supervisor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn a_dead_endpoint_never_delays_a_healthy_one() {
    let outbox = Arc::new(FakeOutbox::default());
    for n in 0..40 {
        outbox.add("dead", &format!("call_d{n}"), &format!("msg_d{n}"), epoch());
        outbox.add("healthy", &format!("call_h{n}"), &format!("msg_h{n}"), epoch());
    }
    let endpoints = Arc::new(ScriptedEndpoints::default());
    let policy = patient_policy();
    let supervisor = start(outbox.clone(), endpoints.clone(), policy, &["dead", "healthy"]).await;
    let started = tokio::time::Instant::now();
    let all_healthy_delivered = || (0..40).all(|n| outbox.fate(&format!("msg_h{n}")) == Some(MessageFate::Delivered));
    wait_until(Duration::from_secs(60), all_healthy_delivered).await;
    assert!(all_healthy_delivered());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "healthy deliveries finished before one dead attempt timed out"
    );
    let most_open = endpoints.most_open.lock().unwrap().clone();
    assert_eq!(most_open["dead"], 4, "at most max_in_flight requests to one endpoint");
    assert!(most_open["healthy"] <= 4);
    supervisor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn messages_of_one_call_are_delivered_in_order_even_across_retries() {
    let outbox = Arc::new(FakeOutbox::default());
    for n in 0..3 {
        outbox.add("flaky", "call_1", &format!("msg_{n}"), epoch());
    }
    let endpoints = Arc::new(ScriptedEndpoints::default());
    let policy = patient_policy();
    let supervisor = start(outbox.clone(), endpoints.clone(), policy, &["flaky"]).await;
    wait_until(Duration::from_secs(60), || outbox.fate("msg_2") == Some(MessageFate::Delivered)).await;
    let started = endpoints.started.lock().unwrap().clone();
    assert_eq!(started, ["msg_0", "msg_0", "msg_1", "msg_1", "msg_2", "msg_2"]);
    supervisor.stop(None);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_failing_for_the_whole_period_is_disabled_once_and_its_actor_retires() {
    let outbox = Arc::new(FakeOutbox::default());
    for n in 0..10 {
        outbox.add("dead", &format!("call_{n}"), &format!("msg_{n}"), epoch());
    }
    let policy = DeliveryPolicy::svix(1.0, Duration::from_secs(3600));
    let supervisor = start(outbox.clone(), Arc::new(ScriptedEndpoints::default()), policy, &["dead"]).await;
    let disabled = || outbox.0.lock().unwrap().health["dead"].disabled;
    wait_until(Duration::from_secs(6 * 3600), disabled).await;
    assert!(disabled());
    let attempts_then = outbox.0.lock().unwrap().attempts.len();
    tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    let memory = outbox.0.lock().unwrap();
    assert_eq!(memory.disabled_reasons.len(), 1, "disabled once: {:?}", memory.disabled_reasons);
    assert!(memory.attempts.len() <= attempts_then + 4, "a disabled endpoint gets no new attempts");
    assert!(
        memory.messages.iter().any(|(_, fate)| matches!(fate, Some(MessageFate::RetryAt(_)))),
        "messages stay pending"
    );
    drop(memory);
    supervisor.stop(None);
}

/// An outbox whose records take `delay` each, counting how many are being written at once.
struct SlowRecords {
    outbox: Arc<FakeOutbox>,
    delay: Duration,
    writing: Mutex<(usize, usize)>,
}

impl SlowRecords {
    fn new(outbox: Arc<FakeOutbox>, delay: Duration) -> Arc<Self> {
        Arc::new(SlowRecords { outbox, delay, writing: Mutex::new((0, 0)) })
    }
}

#[async_trait]
impl WebhookOutbox for SlowRecords {
    async fn health(&self, subscription_id: &str) -> Result<Option<EndpointHealth>, StoreError> {
        self.outbox.health(subscription_id).await
    }

    async fn pending(&self, subscription_id: &str, limit: u64) -> Result<Vec<OutboundMessage>, StoreError> {
        self.outbox.pending(subscription_id, limit).await
    }

    async fn record_attempt(
        &self,
        message: &OutboundMessage,
        report: &AttemptReport,
        fate: &MessageFate,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        {
            let mut writing = self.writing.lock().unwrap();
            writing.0 += 1;
            writing.1 = writing.1.max(writing.0);
        }
        tokio::time::sleep(self.delay).await;
        self.writing.lock().unwrap().0 -= 1;
        self.outbox.record_attempt(message, report, fate, at).await
    }

    async fn save_health(
        &self,
        subscription_id: &str,
        health: &EndpointHealth,
        disabled_reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.outbox.save_health(subscription_id, health, disabled_reason, at).await
    }
}

/// The results of attempts to one endpoint are recorded side by side, and a result being recorded
/// does not hold a request slot: a record is a group commit, and written one after another in the
/// actor's turn they held each subscription to one delivery per commit (about 280 a second); held
/// in the slots, to `max_in_flight` deliveries per commit (BENCHMARKS.md).
#[tokio::test(start_paused = true)]
async fn records_under_way_leave_the_endpoints_slots_free() {
    let outbox = Arc::new(FakeOutbox::default());
    for n in 0..20 {
        outbox.add("healthy", &format!("call_{n}"), &format!("msg_{n}"), epoch());
    }
    let slow = SlowRecords::new(outbox.clone(), Duration::from_millis(100));
    let endpoints = Arc::new(ScriptedEndpoints::default());
    let supervisor = start(slow.clone(), endpoints.clone(), patient_policy(), &["healthy"]).await;
    let all_delivered = || (0..20).all(|n| outbox.fate(&format!("msg_{n}")) == Some(MessageFate::Delivered));
    wait_until(Duration::from_secs(60), all_delivered).await;
    assert!(all_delivered());
    // The endpoint answers in 20 ms and a record takes 100 ms: with the slots free once answered,
    // about five rounds of four are recorded at once; held until recorded, only four.
    let most_at_once = slow.writing.lock().unwrap().1;
    assert!(most_at_once > 4, "records written at once: {most_at_once}");
    assert!(endpoints.most_open.lock().unwrap()["healthy"] <= 4, "at most max_in_flight requests open");
    supervisor.stop(None);
}

/// When records stall, a subscription stops starting attempts once `max_in_flight` ×
/// `UNSETTLED_PER_SLOT` messages await theirs, instead of piling up unrecorded results.
#[tokio::test(start_paused = true)]
async fn stalled_records_bound_the_attempts_started() {
    let outbox = Arc::new(FakeOutbox::default());
    for n in 0..100 {
        outbox.add("healthy", &format!("call_{n}"), &format!("msg_{n}"), epoch());
    }
    let stalled = SlowRecords::new(outbox.clone(), Duration::from_secs(3600));
    let endpoints = Arc::new(ScriptedEndpoints::default());
    let supervisor = start(stalled.clone(), endpoints.clone(), patient_policy(), &["healthy"]).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(endpoints.started.lock().unwrap().len(), 32, "4 slots × 8 unsettled per slot");
    assert_eq!(stalled.writing.lock().unwrap().0, 32);
    supervisor.stop(None);
}

/// A call's messages stay in order when the outbox is read again while a failed attempt's record
/// is still being written: new messages keep waking the actor, and each wake may read the outbox,
/// which then leaves out the message in flight.
#[tokio::test(start_paused = true)]
async fn a_retried_message_keeps_its_place_while_its_record_is_written() {
    let outbox = Arc::new(FakeOutbox::default());
    for n in 0..3 {
        outbox.add("flaky", "call_1", &format!("msg_{n}"), epoch());
    }
    let slow = SlowRecords::new(outbox.clone(), Duration::from_millis(100));
    let endpoints = Arc::new(ScriptedEndpoints::default());
    let supervisor = start(slow, endpoints.clone(), patient_policy(), &["flaky"]).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while outbox.fate("msg_2") != Some(MessageFate::Delivered) && tokio::time::Instant::now() < deadline {
        supervisor.cast(WebhookSupervisorMessage::Wake(vec!["flaky".to_string()])).unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = endpoints.started.lock().unwrap().clone();
    assert_eq!(started, ["msg_0", "msg_0", "msg_1", "msg_1", "msg_2", "msg_2"]);
    supervisor.stop(None);
}
