//! Identifiers and secrets: typed, prefixed ids (`call_…`, `usr_…`, `msg_…`) and masking of phone
//! numbers for responses and logs.
//!
//! Ids that key rows begin with the time they were made ([`time_ordered`]), then go on at
//! random. A table keyed by them takes each new row at the end of its key's index: with wholly
//! random ids every insert landed on a random page of the index, and a batch of 100 writes
//! rewrote about 100 pages (2 `pwrite`s each in SQLite's log) instead of a few (BENCHMARKS.md).
//! PostgreSQL's B-trees gain the same way.

use rand::Rng;
use rand::distr::Alphanumeric;

const LOWER_ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Returns `n` random characters from `[a-z0-9]`.
pub fn random_lower_alphanumeric(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| LOWER_ALPHANUMERIC[rng.random_range(0..LOWER_ALPHANUMERIC.len())] as char).collect()
}

/// Returns `n` random characters from `[A-Za-z0-9]`.
pub fn random_alphanumeric(n: usize) -> String {
    rand::rng().sample_iter(&Alphanumeric).take(n).map(char::from).collect()
}

/// How many leading characters of an id give the time it was made: the Unix time in
/// milliseconds in base 36, which 8 digits hold until the year 2059.
const TIME_DIGITS: usize = 8;

/// Returns `n` (at least [`TIME_DIGITS`]) characters from `[a-z0-9]` that sort by the
/// millisecond they were made in: that millisecond in base 36 (`0-9a-z`, in byte order), then
/// random characters (41 bits' worth for a call id, fresh for every id).
pub fn time_ordered(n: usize) -> String {
    let mut id = time_prefix(now_millis());
    id.push_str(&random_lower_alphanumeric(n.saturating_sub(TIME_DIGITS)));
    id
}

/// The Unix time in milliseconds.
fn now_millis() -> u64 {
    let millis = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// `millis` as [`TIME_DIGITS`] base-36 digits, most significant first (saturating).
fn time_prefix(millis: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut left = millis.min(36u64.pow(TIME_DIGITS as u32) - 1);
    let mut digits = [b'0'; TIME_DIGITS];
    for digit in digits.iter_mut().rev() {
        *digit = DIGITS[(left % 36) as usize];
        left /= 36;
    }
    digits.iter().map(|&d| d as char).collect()
}

/// Returns a new call id: `call_` + 16 lowercase alphanumerics, as seed 000 shows; they begin
/// with the time ([`time_ordered`]).
pub fn new_call_id() -> String {
    format!("call_{}", time_ordered(16))
}

/// Returns a new id with `prefix` (`usr`, `ws`, `msg`, `trn`): 24 characters after it, beginning
/// with the time ([`time_ordered`]).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}{}", time_prefix(now_millis()), random_alphanumeric(24 - TIME_DIGITS))
}

/// Returns a new webhook signing secret, `whsec_` + base64 of 32 random bytes.
pub fn new_signing_secret() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Returns `number` with all but its last 7 characters replaced by `x`, as the transcript endpoint
/// of seed 000 shows (`919999999999` → `xxxxx9999999`). Used in responses and logs alike.
pub fn mask_number(number: &str) -> String {
    let count = number.chars().count();
    let keep_from = count.saturating_sub(7);
    number.chars().enumerate().map(|(i, c)| if i < keep_from { 'x' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_have_the_seed_shape() {
        let id = new_call_id();
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("call_"));
        assert!(id[5..].chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        assert_ne!(new_call_id(), id);
    }

    /// An id made in a later millisecond sorts after one made earlier, whatever their random
    /// parts; the prefix keeps its width from 1970 to 2059.
    #[test]
    fn ids_sort_by_the_millisecond_they_were_made_in() {
        assert_eq!(time_prefix(0), "00000000");
        assert_eq!(time_prefix(35), "0000000z");
        assert_eq!(time_prefix(36), "00000010");
        assert_eq!(time_prefix(u64::MAX), "zzzzzzzz");
        let moments = [0, 1, 35, 36, 1_796_000_000_000, 1_796_000_000_001, 2_821_109_907_455];
        for pair in moments.windows(2) {
            let (earlier, later) = (time_prefix(pair[0]), time_prefix(pair[1]));
            assert!(earlier < later, "{earlier} < {later}");
            assert!(format!("{earlier}zzzzzzzz") < format!("{later}00000000"));
        }
        let now = time_ordered(16);
        assert_eq!(now.len(), 16);
        assert!(now.as_str() > "mi000000", "made after 2026: {now}");
        assert_ne!(time_ordered(16), now, "the rest is random");
        let id = new_id("msg");
        assert_eq!(id.len(), 28);
        assert!(id[4..].chars().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn masking_keeps_the_last_seven_characters() {
        assert_eq!(mask_number("919999999999"), "xxxxx9999999");
        assert_eq!(mask_number("918888888888"), "xxxxx8888888");
        assert_eq!(mask_number("1234567"), "1234567");
        assert_eq!(mask_number("AGT_sales_bot_1"), "xxxxxxxxs_bot_1");
    }

    #[test]
    fn secrets_are_standard_webhooks_secrets() {
        assert!(new_signing_secret().starts_with("whsec_"));
    }
}
