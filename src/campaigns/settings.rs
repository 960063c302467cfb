//! A campaign's settings: target, caller-ID pool, schedule and calling window, pacing, retry policy,
//! callback URL. Read from a request with every problem named by its field, stored as JSON, and
//! turned into the planner's types.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use dialplane_actors::campaign::planner::{CallingWindow, Pacing, RetryPolicy, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::contacts::phone;
use crate::http::validate;
use crate::netguard;

/// Outcomes a retry policy may name.
const OUTCOMES: [&str; 4] = ["busy", "no_answer", "failed", "canceled"];
const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

/// Everything a campaign is configured with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The click-to-call agent's number, or an `AGT_` voice agent.
    pub agent_number: String,
    /// Caller IDs (DIDs) rotated over the calls; empty for agent calls.
    pub caller_ids: Vec<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    /// `HH:MM`, in each contact's local time.
    pub window_start: String,
    pub window_end: String,
    /// `mon` … `sun`.
    pub days_of_week: Vec<String>,
    pub max_concurrent_calls: u32,
    pub calls_per_second: f64,
    pub max_attempts: u32,
    /// Seconds before a retry, per outcome; outcomes not listed are final.
    pub retry_delays: HashMap<String, u64>,
    pub callback_url: Option<String>,
    pub transcript: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            agent_number: String::new(),
            caller_ids: Vec::new(),
            starts_at: None,
            ends_at: None,
            window_start: "09:00".to_string(),
            window_end: "21:00".to_string(),
            days_of_week: DAYS.iter().map(|(d, _)| d.to_string()).collect(),
            max_concurrent_calls: 5,
            calls_per_second: 1.0,
            max_attempts: 3,
            retry_delays: HashMap::from([("busy".into(), 600), ("no_answer".into(), 3600), ("failed".into(), 1800)]),
            callback_url: None,
            transcript: false,
        }
    }
}

fn time_of(text: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(text, "%H:%M").ok()
}

impl Settings {
    /// Returns the planner's schedule.
    pub fn schedule(&self) -> Schedule {
        let default = CallingWindow::default();
        Schedule {
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            window: CallingWindow {
                start: time_of(&self.window_start).unwrap_or(default.start),
                end: time_of(&self.window_end).unwrap_or(default.end),
                days: DAYS.iter().filter(|(d, _)| self.days_of_week.iter().any(|x| x == d)).map(|(_, w)| *w).collect(),
            },
        }
    }

    /// Returns the planner's pacing.
    pub fn pacing(&self) -> Pacing {
        Pacing { max_concurrent: self.max_concurrent_calls, calls_per_second: self.calls_per_second }
    }

    /// Returns the planner's retry policy.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts,
            delays: self.retry_delays.iter().map(|(k, v)| (k.clone(), Duration::from_secs(*v))).collect(),
        }
    }

    /// Returns true for a voice-agent campaign.
    pub fn is_agent(&self) -> bool {
        self.agent_number.starts_with("AGT_")
    }

    /// The settings as the API shows them.
    pub fn view(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

fn timestamp(object: &Map<String, Value>, key: &str, problems: &mut Vec<String>) -> Option<Option<DateTime<Utc>>> {
    match object.get(key)? {
        Value::Null => Some(None),
        Value::String(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(at) => Some(Some(at.with_timezone(&Utc))),
            Err(_) => {
                problems.push(format!("{key}: must be an RFC 3339 timestamp"));
                None
            }
        },
        _ => {
            problems.push(format!("{key}: must be an RFC 3339 timestamp"));
            None
        }
    }
}

/// Reads settings from a create (`base` = defaults) or update (`base` = the stored ones) request;
/// fields left out keep the base's values. `allow_private` lets `callback_url` reach private hosts.
pub fn read(object: &Map<String, Value>, base: &Settings, allow_private: bool) -> Result<Settings, Vec<String>> {
    let mut s = base.clone();
    let mut problems = Vec::new();
    if let Some(value) = object.get("agent_number") {
        match value.as_str() {
            Some(a) if validate::is_agent_id(a) || validate::is_phone_number(a.trim_start_matches('+')) => {
                s.agent_number = a.to_string()
            }
            _ => problems.push("agent_number: must be a phone number or an AGT_ voice-agent id".to_string()),
        }
    }
    if s.agent_number.is_empty() {
        problems.push("agent_number: field required".to_string());
    }
    if let Some(value) = object.get("caller_ids") {
        match value.as_array() {
            Some(items) if items.len() <= 100 => {
                let numbers: Vec<Option<String>> =
                    items.iter().map(|i| i.as_str().and_then(|n| phone::normalise(n, "US").ok())).collect();
                if numbers.iter().any(Option::is_none) {
                    problems.push("caller_ids: every caller ID must be a phone number in E.164 format".to_string());
                } else {
                    s.caller_ids = numbers.into_iter().flatten().collect();
                }
            }
            _ => problems.push("caller_ids: must be a list of at most 100 phone numbers".to_string()),
        }
    }
    if !s.is_agent() && s.caller_ids.is_empty() && !problems.iter().any(|p| p.starts_with("agent_number")) {
        problems.push("caller_ids: at least one caller ID (DID) is required for click-to-call campaigns".to_string());
    }
    if let Some(at) = timestamp(object, "starts_at", &mut problems) {
        s.starts_at = at;
    }
    if let Some(at) = timestamp(object, "ends_at", &mut problems) {
        s.ends_at = at;
    }
    if let (Some(start), Some(end)) = (s.starts_at, s.ends_at)
        && end <= start
    {
        problems.push("ends_at: must be after starts_at".to_string());
    }
    if let Some(window) = object.get("calling_window") {
        let start = window.get("start").and_then(Value::as_str).filter(|t| time_of(t).is_some());
        let end = window.get("end").and_then(Value::as_str).filter(|t| time_of(t).is_some());
        match (start, end) {
            (Some(start), Some(end)) if start != end => {
                s.window_start = start.to_string();
                s.window_end = end.to_string();
            }
            _ => problems.push(
                "calling_window: must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\"} with different times".to_string(),
            ),
        }
    }
    if let Some(value) = object.get("days_of_week") {
        let days: Option<Vec<String>> = value.as_array().map(|items| {
            items.iter().filter_map(|d| d.as_str().map(|d| d.to_ascii_lowercase().chars().take(3).collect())).collect()
        });
        match days {
            Some(days) if !days.is_empty() && days.iter().all(|d: &String| DAYS.iter().any(|(x, _)| x == d)) => {
                s.days_of_week = days
            }
            _ => {
                problems.push("days_of_week: must be a non-empty list of mon, tue, wed, thu, fri, sat, sun".to_string())
            }
        }
    }
    if let Some(value) = object.get("max_concurrent_calls") {
        match value.as_u64().filter(|n| (1..=1000).contains(n)) {
            Some(n) => s.max_concurrent_calls = n as u32,
            None => problems.push("max_concurrent_calls: must be a whole number from 1 to 1000".to_string()),
        }
    }
    if let Some(value) = object.get("calls_per_second") {
        match value.as_f64().filter(|n| (0.01..=100.0).contains(n)) {
            Some(n) => s.calls_per_second = n,
            None => problems.push("calls_per_second: must be a number from 0.01 to 100".to_string()),
        }
    }
    if let Some(policy) = object.get("retry_policy") {
        match policy.as_object() {
            Some(policy) => {
                if let Some(value) = policy.get("max_attempts") {
                    match value.as_u64().filter(|n| (1..=10).contains(n)) {
                        Some(n) => s.max_attempts = n as u32,
                        None => {
                            problems.push("retry_policy.max_attempts: must be a whole number from 1 to 10".to_string())
                        }
                    }
                }
                if let Some(value) = policy.get("delays") {
                    match value.as_object() {
                        Some(delays) => {
                            let mut parsed = HashMap::new();
                            for (outcome, seconds) in delays {
                                match (OUTCOMES.contains(&outcome.as_str()), seconds.as_u64().filter(|s| *s <= 30 * 86_400)) {
                                    (true, Some(seconds)) => {
                                        parsed.insert(outcome.clone(), seconds);
                                    }
                                    (false, _) => problems.push(format!(
                                        "retry_policy.delays: unknown outcome {outcome:?}; expected one of {}",
                                        OUTCOMES.join(", ")
                                    )),
                                    (true, None) => problems.push(format!(
                                        "retry_policy.delays.{outcome}: must be a whole number of seconds, at most 30 days"
                                    )),
                                }
                            }
                            s.retry_delays = parsed;
                        }
                        None => {
                            problems.push("retry_policy.delays: must be an object of outcome → seconds".to_string())
                        }
                    }
                }
            }
            None => problems.push("retry_policy: must be an object".to_string()),
        }
    }
    if let Some(value) = object.get("callback_url") {
        match value {
            Value::Null => s.callback_url = None,
            Value::String(url) => match netguard::check_callback_url(url, allow_private) {
                Ok(_) => s.callback_url = Some(url.clone()),
                Err(e) => problems.push(format!("callback_url: {e}")),
            },
            _ => problems.push("callback_url: must be a URL".to_string()),
        }
    }
    if let Some(value) = object.get("transcript") {
        match value.as_bool() {
            Some(b) => s.transcript = b,
            None => problems.push("transcript: must be a boolean".to_string()),
        }
    }
    if problems.is_empty() { Ok(s) } else { Err(problems) }
}
