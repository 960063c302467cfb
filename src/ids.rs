//! Identifiers and secrets: typed, prefixed random ids (`call_…`, `usr_…`, `msg_…`) and masking
//! of phone numbers for responses and logs.

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

/// Returns a new call id: `call_` + 16 lowercase alphanumerics, as seed 000 shows.
pub fn new_call_id() -> String {
    format!("call_{}", random_lower_alphanumeric(16))
}

/// Returns a new id with `prefix` (`usr`, `ws`, `msg`, `trn`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", random_alphanumeric(24))
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
