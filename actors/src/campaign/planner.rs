//! The campaign dialer's pure planner: how many calls a tick may admit (a calls-per-second limiter
//! over a sliding window, the campaign's and the workspace's concurrency left), whether a contact may be called at
//! a given instant (days of week and a calling window in the contact's own timezone, across DST;
//! the campaign's start and end; do-not-call), when a window next opens, and what an attempt's
//! outcome means for the contact (retry at a time, or done). No IO and no clock reads.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// An instant, always UTC.
pub type Timestamp = DateTime<Utc>;

/// A calls-per-second limiter. Two rules, both must allow a call:
/// - a sliding window: no window of one second (longer below one call per second) ever holds
///   more calls than the rate allows, however the ticks fall;
/// - pacing: calls are spread 10 % wider than the rate asks (a generic cell rate algorithm with
///   a burst of a tenth of a second's calls), so the carrier, which sees each call a few
///   milliseconds after its admission with some jitter, still never sees the rate exceeded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimiter {
    admitted: VecDeque<Timestamp>,
    /// When the next call is due under even pacing.
    next_slot: Option<Timestamp>,
}

impl RateLimiter {
    /// The window: one second, or longer for rates below one per second (0.5/s is 1 per 2 s).
    fn window(rate: f64) -> chrono::Duration {
        if rate >= 1.0 {
            chrono::Duration::seconds(1)
        } else {
            chrono::Duration::milliseconds((1000.0 / rate.max(0.001)).round() as i64)
        }
    }

    /// Calls allowed per window.
    fn allowance(rate: f64) -> u32 {
        if rate >= 1.0 { rate.floor().min(f64::from(u32::MAX)) as u32 } else { u32::from(rate > 0.0) }
    }

    /// Time between two calls under pacing: 10 % more than the rate asks.
    fn spacing(rate: f64) -> chrono::Duration {
        chrono::Duration::microseconds((1.1e6 / rate.max(0.001)).round() as i64)
    }

    /// Calls that may start together: a tenth of a second's worth.
    fn burst(rate: f64) -> i64 {
        (rate * 0.1).floor().max(0.0) as i64
    }

    /// Returns how many calls may start at `now`.
    pub fn available(&mut self, rate: f64, now: Timestamp) -> u32 {
        let since = now - Self::window(rate);
        while self.admitted.front().is_some_and(|at| *at <= since) {
            self.admitted.pop_front();
        }
        let in_window = Self::allowance(rate).saturating_sub(u32::try_from(self.admitted.len()).unwrap_or(u32::MAX));
        let spacing = Self::spacing(rate);
        let ahead = self.next_slot.map_or(chrono::Duration::zero(), |slot| (slot - now).max(chrono::Duration::zero()));
        let tolerance = spacing * i32::try_from(Self::burst(rate)).unwrap_or(i32::MAX);
        if ahead > tolerance {
            return 0;
        }
        let paced =
            ((tolerance - ahead).num_microseconds().unwrap_or(0) / spacing.num_microseconds().unwrap_or(1).max(1)) + 1;
        in_window.min(u32::try_from(paced).unwrap_or(u32::MAX))
    }

    /// Records `n` calls started at `now` under `rate`.
    pub fn record(&mut self, n: u32, rate: f64, now: Timestamp) {
        if n == 0 {
            return;
        }
        self.admitted.extend(std::iter::repeat_n(now, n as usize));
        let from = self.next_slot.map_or(now, |slot| slot.max(now));
        self.next_slot = Some(from + Self::spacing(rate) * i32::try_from(n).unwrap_or(i32::MAX));
    }
}

/// How fast a campaign may dial.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pacing {
    pub max_concurrent: u32,
    pub calls_per_second: f64,
}

/// Returns how many calls a tick admits: `min(calls-per-second allowance, campaign concurrency
/// left, workspace concurrency left)`, and records them with the limiter.
pub fn admissions(
    limiter: &mut RateLimiter,
    pacing: Pacing,
    campaign_live: u32,
    workspace_left: u32,
    now: Timestamp,
) -> u32 {
    let admitted = limiter
        .available(pacing.calls_per_second, now)
        .min(pacing.max_concurrent.saturating_sub(campaign_live))
        .min(workspace_left);
    limiter.record(admitted, pacing.calls_per_second, now);
    admitted
}

/// When contacts may be called, in each contact's local time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallingWindow {
    /// Local time the window opens (inclusive).
    pub start: NaiveTime,
    /// Local time the window closes (exclusive); before `start` means it runs past midnight.
    pub end: NaiveTime,
    /// Days it opens on (by the local date the window opens).
    pub days: Vec<Weekday>,
}

impl Default for CallingWindow {
    /// 09:00 to 21:00, every day.
    fn default() -> Self {
        CallingWindow {
            start: NaiveTime::from_hms_opt(9, 0, 0).expect("valid time"),
            end: NaiveTime::from_hms_opt(21, 0, 0).expect("valid time"),
            days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
                Weekday::Sat,
                Weekday::Sun,
            ],
        }
    }
}

impl CallingWindow {
    /// Returns true when the window is open at `at` in timezone `tz`.
    pub fn is_open(&self, tz: Tz, at: Timestamp) -> bool {
        let local = at.with_timezone(&tz);
        let (date, time) = (local.date_naive(), local.time());
        if self.start < self.end {
            self.days.contains(&date.weekday()) && time >= self.start && time < self.end
        } else {
            // Past midnight: open from `start` on an allowed day until `end` the next morning.
            let yesterday = date.pred_opt().map(|d| d.weekday());
            (self.days.contains(&date.weekday()) && time >= self.start)
                || (yesterday.is_some_and(|d| self.days.contains(&d)) && time < self.end)
        }
    }

    /// Returns the first instant at or after `at` when the window is open in `tz`, looking up to
    /// eight days ahead; `None` when it never opens (no days).
    pub fn next_open(&self, tz: Tz, at: Timestamp) -> Option<Timestamp> {
        if self.is_open(tz, at) {
            return Some(at);
        }
        let today = at.with_timezone(&tz).date_naive();
        (0..=8)
            .filter_map(|offset| today.checked_add_days(chrono::Days::new(offset)))
            .filter(|date| self.days.contains(&date.weekday()))
            .filter_map(|date| local_instant(tz, date, self.start))
            .find(|opens| *opens >= at)
    }
}

/// The instant a local date and time names in `tz`. In a DST gap (the local time does not exist)
/// it is the first instant after the gap; in an overlap, the earlier of the two.
fn local_instant(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<Timestamp> {
    let naive = date.and_time(time);
    if let Some(at) = tz.from_local_datetime(&naive).earliest() {
        return Some(at.with_timezone(&Utc));
    }
    // A gap is at most a few hours long: step forward a minute at a time until time exists.
    (1..=240).find_map(|minutes| {
        let later = naive + chrono::Duration::minutes(minutes);
        tz.from_local_datetime(&later).earliest().map(|at| at.with_timezone(&Utc))
    })
}

/// Which outcomes are retried, after how long, and how many attempts a contact gets in all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Delay before the next attempt, per outcome (`busy`, `no_answer`, `failed`, …). Outcomes not
    /// listed are not retried.
    pub delays: HashMap<String, Duration>,
}

impl Default for RetryPolicy {
    /// Three attempts: busy after 10 minutes, no answer after an hour, a failure after 30 minutes.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            delays: HashMap::from([
                ("busy".to_string(), Duration::from_secs(600)),
                ("no_answer".to_string(), Duration::from_secs(3600)),
                ("failed".to_string(), Duration::from_secs(1800)),
            ]),
        }
    }
}

/// What becomes of a contact after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    /// Due again at this instant (still subject to the window and do-not-call then).
    RetryAt(Timestamp),
    /// No more attempts: the outcome is final, or attempts ran out.
    Done,
}

/// Decides what follows attempt number `attempts` (1 for the first) that ended with `outcome`.
pub fn after_attempt(policy: &RetryPolicy, attempts: u32, outcome: &str, ended_at: Timestamp) -> AfterAttempt {
    if attempts >= policy.max_attempts {
        return AfterAttempt::Done;
    }
    match policy.delays.get(outcome) {
        Some(delay) => match chrono::Duration::from_std(*delay).ok().and_then(|d| ended_at.checked_add_signed(d)) {
            Some(at) => AfterAttempt::RetryAt(at),
            None => AfterAttempt::Done,
        },
        None => AfterAttempt::Done,
    }
}

/// A campaign's schedule: when it may dial at all, and the calling window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
    pub window: CallingWindow,
}

/// Whether a contact may be dialed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Eligibility {
    /// Dial now.
    Now,
    /// Not yet: look again at this instant.
    Later(Timestamp),
    /// Never again in this campaign (do-not-call, or the campaign's end has passed).
    Never(&'static str),
}

/// Decides whether a contact in `tz`, due at `due_at`, may be dialed at `now`.
pub fn eligibility(schedule: &Schedule, tz: Tz, due_at: Timestamp, do_not_call: bool, now: Timestamp) -> Eligibility {
    if do_not_call {
        return Eligibility::Never("do_not_call");
    }
    if schedule.ends_at.is_some_and(|end| now >= end) {
        return Eligibility::Never("campaign_ended");
    }
    let earliest = [Some(due_at), schedule.starts_at].into_iter().flatten().fold(now, Timestamp::max);
    match schedule.window.next_open(tz, earliest) {
        Some(at) if schedule.ends_at.is_some_and(|end| at >= end) => Eligibility::Never("campaign_ended"),
        Some(at) if at <= now => Eligibility::Now,
        Some(at) => Eligibility::Later(at),
        None => Eligibility::Never("no_calling_days"),
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::{America, Asia, Europe};
    use proptest::prelude::*;

    use super::*;

    fn utc(s: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn admissions_take_the_smallest_limit() {
        let now = utc("2026-11-25T10:00:00Z");
        // At 100/s a tick may start 11 calls (a tenth of a second's worth, plus one).
        let pacing = Pacing { max_concurrent: 10, calls_per_second: 100.0 };
        for (live, left, expected) in [(0, 100, 10), (8, 100, 2), (0, 3, 3), (10, 100, 0)] {
            let mut limiter = RateLimiter::default();
            assert_eq!(admissions(&mut limiter, pacing, live, left, now), expected, "{live} live, {left} left");
        }
        let wide = Pacing { max_concurrent: 1000, calls_per_second: 100.0 };
        let mut limiter = RateLimiter::default();
        assert_eq!(admissions(&mut limiter, wide, 0, 1000, now), 11);
        assert_eq!(admissions(&mut limiter, wide, 0, 1000, now), 0, "the burst is spent");
        assert_eq!(admissions(&mut limiter, wide, 0, 1000, now + chrono::Duration::milliseconds(100)), 9);
    }

    #[test]
    fn calls_are_spread_wider_than_the_rate() {
        let start = utc("2026-11-25T10:00:00Z");
        let pacing = Pacing { max_concurrent: 100, calls_per_second: 4.0 };
        let mut limiter = RateLimiter::default();
        let mut admitted_at = Vec::new();
        for tick in 0..40 {
            let now = start + chrono::Duration::milliseconds(tick * 100);
            for _ in 0..admissions(&mut limiter, pacing, 0, 100, now) {
                admitted_at.push(now);
            }
        }
        assert_eq!(admitted_at.len(), 14, "{admitted_at:?}");
        for pair in admitted_at.windows(2) {
            assert!(pair[1] - pair[0] >= chrono::Duration::milliseconds(275), "{pair:?}");
        }
    }

    #[test]
    fn a_slow_rate_admits_one_call_per_period() {
        let start = utc("2026-11-25T10:00:00Z");
        let mut limiter = RateLimiter::default();
        let pacing = Pacing { max_concurrent: 10, calls_per_second: 0.5 };
        let at = |ms: i64| start + chrono::Duration::milliseconds(ms);
        let admitted: Vec<u32> = [0, 1000, 2000, 2200, 3000, 4400]
            .iter()
            .map(|ms| admissions(&mut limiter, pacing, 0, 10, at(*ms)))
            .collect();
        assert_eq!(admitted, [1, 0, 0, 1, 0, 1]);
    }

    proptest! {
        /// Whatever the tick times, no one-second window admits more than the rate allows.
        #[test]
        fn no_second_admits_more_than_the_rate(rate in 1u32..50, gaps in proptest::collection::vec(1i64..1500, 1..200)) {
            let start = utc("2026-11-25T10:00:00Z");
            let mut limiter = RateLimiter::default();
            let pacing = Pacing { max_concurrent: u32::MAX, calls_per_second: f64::from(rate) };
            let mut now = start;
            let mut admitted: Vec<(Timestamp, u32)> = Vec::new();
            for gap in gaps {
                now += chrono::Duration::milliseconds(gap);
                let n = admissions(&mut limiter, pacing, 0, u32::MAX, now);
                admitted.push((now, n));
            }
            for (i, (at, _)) in admitted.iter().enumerate() {
                let in_window: u32 = admitted[i..].iter().take_while(|(t, _)| *t < *at + chrono::Duration::seconds(1)).map(|(_, n)| n).sum();
                prop_assert!(in_window <= rate, "{in_window} admitted within a second at {rate}/s");
            }
        }

        /// A window's next opening is open, and nothing before it (from the asked instant) is.
        #[test]
        fn next_open_is_the_first_open_instant(minutes in 0i64..(14 * 24 * 60), start_h in 0u32..24, len_h in 1u32..23) {
            let window = CallingWindow {
                start: hm(start_h, 0),
                end: hm((start_h + len_h) % 24, 0),
                days: vec![Weekday::Mon, Weekday::Wed, Weekday::Sat],
            };
            let at = utc("2026-03-01T00:00:00Z") + chrono::Duration::minutes(minutes);
            for tz in [America::New_York, Europe::London, Asia::Kolkata] {
                let opens = window.next_open(tz, at).unwrap();
                prop_assert!(window.is_open(tz, opens) || opens == at && window.is_open(tz, at));
                let mut probe = at;
                while probe < opens {
                    prop_assert!(!window.is_open(tz, probe), "open at {probe} before {opens}");
                    probe += chrono::Duration::minutes(30);
                }
            }
        }
    }

    #[test]
    fn windows_are_evaluated_in_the_contacts_timezone() {
        let window = CallingWindow::default();
        let at = utc("2026-11-25T14:00:00Z");
        // 19:30 in Kolkata, 09:00 in New York, 14:00 in London, 23:00 in Tokyo.
        assert!(window.is_open(Asia::Kolkata, at));
        assert!(window.is_open(America::New_York, at));
        assert!(window.is_open(Europe::London, at));
        assert!(!window.is_open(Asia::Tokyo, at));
        assert!(!window.is_open(America::Los_Angeles, at), "06:00 there");
        assert_eq!(window.next_open(America::Los_Angeles, at), Some(utc("2026-11-25T17:00:00Z")));
        assert_eq!(window.next_open(Asia::Tokyo, at), Some(utc("2026-11-26T00:00:00Z")));
    }

    #[test]
    fn windows_follow_daylight_saving_time() {
        let window = CallingWindow::default();
        // New York: 09:00 is 14:00 UTC in winter and 13:00 UTC in summer (DST began 2026-03-08).
        assert_eq!(window.next_open(America::New_York, utc("2026-03-07T12:00:00Z")), Some(utc("2026-03-07T14:00:00Z")));
        assert_eq!(window.next_open(America::New_York, utc("2026-03-09T12:00:00Z")), Some(utc("2026-03-09T13:00:00Z")));
        // An opening inside the spring-forward gap (02:30 does not exist) moves to 03:00.
        let night = CallingWindow { start: hm(2, 30), end: hm(5, 0), days: CallingWindow::default().days };
        assert_eq!(night.next_open(America::New_York, utc("2026-03-08T05:00:00Z")), Some(utc("2026-03-08T07:00:00Z")));
        // In the autumn overlap (01:30 happens twice) the window opens at the earlier one.
        let early = CallingWindow { start: hm(1, 30), end: hm(4, 0), days: CallingWindow::default().days };
        assert_eq!(early.next_open(America::New_York, utc("2026-11-01T04:00:00Z")), Some(utc("2026-11-01T05:30:00Z")));
    }

    #[test]
    fn days_of_week_and_overnight_windows() {
        let weekdays = CallingWindow {
            days: vec![Weekday::Mon, Weekday::Tue, Weekday::Wed, Weekday::Thu, Weekday::Fri],
            ..Default::default()
        };
        // Saturday 2026-11-28, 10:00 in London → Monday 09:00.
        assert!(!weekdays.is_open(Europe::London, utc("2026-11-28T10:00:00Z")));
        assert_eq!(weekdays.next_open(Europe::London, utc("2026-11-28T10:00:00Z")), Some(utc("2026-11-30T09:00:00Z")));
        let overnight = CallingWindow { start: hm(22, 0), end: hm(2, 0), days: vec![Weekday::Fri] };
        assert!(overnight.is_open(Europe::London, utc("2026-11-27T23:00:00Z")), "Friday 23:00");
        assert!(
            overnight.is_open(Europe::London, utc("2026-11-28T01:00:00Z")),
            "Saturday 01:00 belongs to Friday's window"
        );
        assert!(!overnight.is_open(Europe::London, utc("2026-11-29T01:00:00Z")), "Sunday 01:00 does not");
        let never = CallingWindow { days: vec![], ..Default::default() };
        assert_eq!(never.next_open(Europe::London, utc("2026-11-28T10:00:00Z")), None);
    }

    #[test]
    fn outcomes_are_retried_by_policy_until_attempts_run_out() {
        let policy = RetryPolicy::default();
        let ended = utc("2026-11-25T10:00:00Z");
        let table = [
            (1, "busy", AfterAttempt::RetryAt(utc("2026-11-25T10:10:00Z"))),
            (2, "no_answer", AfterAttempt::RetryAt(utc("2026-11-25T11:00:00Z"))),
            (3, "busy", AfterAttempt::Done),
            (1, "completed", AfterAttempt::Done),
            (1, "canceled", AfterAttempt::Done),
        ];
        for (attempts, outcome, expected) in table {
            assert_eq!(after_attempt(&policy, attempts, outcome, ended), expected, "{attempts} {outcome}");
        }
    }

    #[test]
    fn eligibility_checks_dnc_the_schedule_and_the_window() {
        let now = utc("2026-11-25T14:00:00Z");
        let schedule =
            Schedule { starts_at: None, ends_at: Some(utc("2026-11-30T00:00:00Z")), window: CallingWindow::default() };
        assert_eq!(eligibility(&schedule, Europe::London, now, false, now), Eligibility::Now);
        assert_eq!(eligibility(&schedule, Europe::London, now, true, now), Eligibility::Never("do_not_call"));
        assert_eq!(
            eligibility(&schedule, Asia::Tokyo, now, false, now),
            Eligibility::Later(utc("2026-11-26T00:00:00Z"))
        );
        let due_later = utc("2026-11-25T15:30:00Z");
        assert_eq!(eligibility(&schedule, Europe::London, due_later, false, now), Eligibility::Later(due_later));
        let ended = Schedule { ends_at: Some(utc("2026-11-25T15:00:00Z")), ..schedule.clone() };
        assert_eq!(eligibility(&ended, Asia::Tokyo, now, false, now), Eligibility::Never("campaign_ended"));
        let future = Schedule { starts_at: Some(utc("2026-11-27T00:00:00Z")), ..schedule };
        assert_eq!(
            eligibility(&future, Europe::London, now, false, now),
            Eligibility::Later(utc("2026-11-27T09:00:00Z"))
        );
    }
}
