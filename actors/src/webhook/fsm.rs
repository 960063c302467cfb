//! The pure rules of webhook delivery: what becomes of a message after an attempt (delivered, retried
//! at a time, exhausted, abandoned) and of its endpoint's health (failing since when, disabled).
//! No IO and no clock reads: the time and the jitter arrive as arguments.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::call::fsm::Timestamp;

/// Svix's retry schedule: the delay before each retry after 1, 2, … failed attempts. With the first
/// attempt that makes eight attempts over about 27.6 hours.
pub const SVIX_SCHEDULE_S: [u64; 7] = [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600];

/// How deliveries are retried and when an endpoint is given up on.
#[derive(Clone, Debug, PartialEq)]
pub struct DeliveryPolicy {
    /// Delay before retry `n` (after `n` failed attempts); when exhausted the message fails.
    pub retry_schedule: Vec<Duration>,
    /// A receiver's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
    /// An endpoint failing without a single success for this long is disabled.
    pub disable_after: Duration,
}

impl DeliveryPolicy {
    /// Svix's schedule, every delay multiplied by `scale` (tests and load runs shrink it).
    pub fn svix(scale: f64, disable_after: Duration) -> Self {
        DeliveryPolicy {
            retry_schedule: SVIX_SCHEDULE_S.iter().map(|s| Duration::from_secs_f64(*s as f64 * scale)).collect(),
            max_retry_after: Duration::from_secs_f64(3600.0 * scale.max(f64::EPSILON)).max(Duration::from_secs(1)),
            disable_after,
        }
    }

    /// Returns the delay after `failed_attempts` failures, or `None` when attempts ran out.
    pub fn retry_delay(&self, failed_attempts: u32) -> Option<Duration> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        self.retry_schedule.get(index).copied()
    }
}

/// What one attempt came to, as far as the rules care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// 2xx.
    Delivered,
    /// Anything else worth retrying: a timeout, a refused connection, 3xx (redirects are not
    /// followed), 4xx, 5xx; with the receiver's `Retry-After` when it sent one.
    Failed { retry_after: Option<Duration> },
    /// `410 Gone`: the receiver says the endpoint no longer exists.
    Gone,
    /// The receiver answered `webhook-delivery: abort-message`: stop retrying this message.
    Aborted,
}

/// What becomes of a message after an attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "fate", content = "at")]
pub enum MessageFate {
    Delivered,
    /// Attempt again at this time.
    RetryAt(Timestamp),
    /// Every attempt of the schedule failed.
    Exhausted,
    /// The receiver asked not to be sent this message again (or the endpoint is gone).
    Abandoned,
}

impl MessageFate {
    /// Returns the label used in metrics and the attempt log.
    pub fn label(&self) -> &'static str {
        match self {
            MessageFate::Delivered => "delivered",
            MessageFate::RetryAt(_) => "retrying",
            MessageFate::Exhausted => "exhausted",
            MessageFate::Abandoned => "abandoned",
        }
    }
}

/// An endpoint's health: since when it has failed without a success, and whether it is disabled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointHealth {
    pub failing_since: Option<Timestamp>,
    pub disabled: bool,
}

/// The outcome of [`decide`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub fate: MessageFate,
    pub health: EndpointHealth,
    /// Set once, on the attempt that disables the endpoint.
    pub disabled_reason: Option<String>,
}

/// Decides what follows attempt number `attempts` (1 for the first) of a message. `jitter` is a
/// factor near 1 (0.9–1.1) applied to the scheduled delay, never to a receiver's `Retry-After`.
pub fn decide(
    policy: &DeliveryPolicy,
    health: &EndpointHealth,
    attempts: u32,
    result: &AttemptResult,
    now: Timestamp,
    jitter: f64,
) -> Decision {
    let failing_since = health.failing_since.unwrap_or(now);
    let mut next = EndpointHealth { failing_since: Some(failing_since), disabled: health.disabled };
    let fate = match result {
        AttemptResult::Delivered => {
            return Decision {
                fate: MessageFate::Delivered,
                health: EndpointHealth { failing_since: None, disabled: health.disabled },
                disabled_reason: None,
            };
        }
        AttemptResult::Gone | AttemptResult::Aborted => MessageFate::Abandoned,
        AttemptResult::Failed { retry_after } => match policy.retry_delay(attempts) {
            Some(delay) => {
                let scheduled = delay.mul_f64(jitter.clamp(0.5, 1.5));
                let asked = retry_after.map(|d| d.min(policy.max_retry_after)).unwrap_or_default();
                let wait = chrono::Duration::from_std(scheduled.max(asked)).unwrap_or(chrono::Duration::MAX);
                MessageFate::RetryAt(now.checked_add_signed(wait).unwrap_or(now))
            }
            None => MessageFate::Exhausted,
        },
    };
    let failing_for = (now - failing_since).to_std().unwrap_or_default();
    let disabled_reason = if health.disabled {
        None
    } else if *result == AttemptResult::Gone {
        Some("the endpoint answered 410 Gone".to_string())
    } else if failing_for >= policy.disable_after {
        Some(format!("every attempt failed for {} s", failing_for.as_secs()))
    } else {
        None
    };
    if disabled_reason.is_some() {
        next.disabled = true;
    }
    Decision { fate, health: next, disabled_reason }
}

/// A deterministic jitter factor in 0.9..1.1 for attempt `attempts` of a message, so retries of
/// many messages failing together spread out, and a test can predict them.
pub fn jitter(message_id: &str, attempts: u32) -> f64 {
    // FNV-1a: tiny, stable across runs and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in message_id.bytes().chain(attempts.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    0.9 + 0.2 * ((hash % 10_000) as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    fn t(s: i64) -> Timestamp {
        Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
    }

    fn policy() -> DeliveryPolicy {
        DeliveryPolicy::svix(1.0, Duration::from_secs(5 * 86_400))
    }

    #[test]
    fn failures_follow_the_schedule_then_exhaust() {
        let healthy = EndpointHealth::default();
        let failed = AttemptResult::Failed { retry_after: None };
        let expected = [5, 300, 1800, 7200, 18_000, 36_000, 36_000];
        for (i, delay) in expected.iter().enumerate() {
            let d = decide(&policy(), &healthy, i as u32 + 1, &failed, t(0), 1.0);
            assert_eq!(d.fate, MessageFate::RetryAt(t(*delay)), "after attempt {}", i + 1);
        }
        assert_eq!(decide(&policy(), &healthy, 8, &failed, t(0), 1.0).fate, MessageFate::Exhausted);
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap_and_jitter_only_moves_the_schedule() {
        let healthy = EndpointHealth::default();
        let asked = AttemptResult::Failed { retry_after: Some(Duration::from_secs(120)) };
        assert_eq!(decide(&policy(), &healthy, 1, &asked, t(0), 1.0).fate, MessageFate::RetryAt(t(120)));
        let greedy = AttemptResult::Failed { retry_after: Some(Duration::from_secs(86_400)) };
        assert_eq!(decide(&policy(), &healthy, 1, &greedy, t(0), 1.0).fate, MessageFate::RetryAt(t(3600)));
        let failed = AttemptResult::Failed { retry_after: None };
        assert_eq!(decide(&policy(), &healthy, 2, &failed, t(0), 1.1).fate, MessageFate::RetryAt(t(330)));
    }

    #[test]
    fn a_success_clears_the_failing_clock() {
        let failing = EndpointHealth { failing_since: Some(t(0)), disabled: false };
        let d = decide(&policy(), &failing, 3, &AttemptResult::Delivered, t(100), 1.0);
        assert_eq!(d.fate, MessageFate::Delivered);
        assert_eq!(d.health, EndpointHealth::default());
    }

    #[test]
    fn an_endpoint_failing_for_the_whole_period_is_disabled_once() {
        let failed = AttemptResult::Failed { retry_after: None };
        let first = decide(&policy(), &EndpointHealth::default(), 1, &failed, t(0), 1.0);
        assert_eq!(first.health.failing_since, Some(t(0)));
        assert_eq!(first.disabled_reason, None);
        let almost = decide(&policy(), &first.health, 2, &failed, t(5 * 86_400 - 1), 1.0);
        assert!(!almost.health.disabled);
        let after = decide(&policy(), &almost.health, 3, &failed, t(5 * 86_400), 1.0);
        assert!(after.health.disabled);
        assert!(after.disabled_reason.is_some());
        let again = decide(&policy(), &after.health, 4, &failed, t(6 * 86_400), 1.0);
        assert!(again.health.disabled);
        assert_eq!(again.disabled_reason, None, "disabled once");
    }

    #[test]
    fn gone_disables_and_abort_only_drops_the_message() {
        let healthy = EndpointHealth::default();
        let gone = decide(&policy(), &healthy, 1, &AttemptResult::Gone, t(0), 1.0);
        assert_eq!(gone.fate, MessageFate::Abandoned);
        assert!(gone.health.disabled);
        let aborted = decide(&policy(), &healthy, 1, &AttemptResult::Aborted, t(0), 1.0);
        assert_eq!(aborted.fate, MessageFate::Abandoned);
        assert!(!aborted.health.disabled);
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let factors: Vec<f64> = (1..50).map(|n| jitter("msg_abc", n)).collect();
        assert!(factors.iter().all(|f| (0.9..1.1).contains(f)));
        assert!(factors.windows(2).any(|w| w[0] != w[1]));
        assert_eq!(jitter("msg_abc", 3), jitter("msg_abc", 3));
    }
}
