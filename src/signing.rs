//! Signatures: Standard Webhooks signing of outgoing callbacks, expiring signed recording URLs,
//! and the HMAC the sandbox carrier puts on its status callbacks. All HMAC-SHA256; comparisons
//! are constant-time.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Returns HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Returns true when `signature` is HMAC-SHA256 of `message` under `key`, in constant time.
pub fn verify_hmac_sha256(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
    mac.update(message);
    mac.verify_slice(signature).is_ok()
}

/// Compares two secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Derives a sub-key for one purpose from the server's master secret.
pub fn derive_key(master: &[u8], purpose: &str) -> Vec<u8> {
    hmac_sha256(master, purpose.as_bytes())
}

/// Returns the `webhook-signature` header value for a Standard Webhooks message.
///
/// `secret` is `whsec_` + base64(key); the signed content is `"{id}.{timestamp}.{body}"`.
pub fn standard_webhook_signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> anyhow::Result<String> {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|e| anyhow::anyhow!("signing secret is not base64: {e}"))?;
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    Ok(format!("v1,{}", STANDARD.encode(hmac_sha256(&key, &content))))
}

/// Signs and checks expiring recording URLs: `/recordings/{call_id}?expires=…&signature=…`.
#[derive(Clone)]
pub struct RecordingUrlSigner {
    key: Vec<u8>,
    base_url: String,
    /// How long a signed URL stays valid.
    pub ttl: chrono::Duration,
}

impl RecordingUrlSigner {
    /// Builds a signer for URLs under `base_url` (the public URL of this server).
    pub fn new(key: Vec<u8>, base_url: &str) -> Self {
        RecordingUrlSigner {
            key,
            base_url: base_url.trim_end_matches('/').to_string(),
            ttl: chrono::Duration::hours(24),
        }
    }

    /// Returns a signed URL for a call's recording, valid for [`Self::ttl`] from `now`.
    pub fn sign(&self, call_id: &str, now: DateTime<Utc>) -> String {
        let expires = (now + self.ttl).timestamp();
        format!(
            "{}/recordings/{call_id}?expires={expires}&signature={}",
            self.base_url,
            self.signature(call_id, expires)
        )
    }

    fn signature(&self, call_id: &str, expires: i64) -> String {
        hex::encode(hmac_sha256(&self.key, format!("{call_id}:{expires}").as_bytes()))
    }

    /// Returns true when `signature` was made by [`Self::sign`] for this call and has not expired.
    pub fn verify(&self, call_id: &str, expires: i64, signature: &str, now: DateTime<Utc>) -> bool {
        let Ok(signature) = hex::decode(signature) else { return false };
        now.timestamp() <= expires
            && verify_hmac_sha256(&self.key, format!("{call_id}:{expires}").as_bytes(), &signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_official_standard_webhooks_vector() {
        let signature = standard_webhook_signature(
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn recording_urls_expire_and_cannot_be_moved_to_another_call() {
        let signer = RecordingUrlSigner::new(b"key".to_vec(), "http://127.0.0.1:8080/");
        let now = Utc::now();
        let url = url::Url::parse(&signer.sign("call_a", now)).unwrap();
        assert_eq!(url.path(), "/recordings/call_a");
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        let expires: i64 = query["expires"].parse().unwrap();
        let signature = &query["signature"];
        assert!(signer.verify("call_a", expires, signature, now));
        assert!(!signer.verify("call_b", expires, signature, now));
        assert!(!signer.verify("call_a", expires + 1, signature, now));
        assert!(!signer.verify("call_a", expires, signature, now + chrono::Duration::hours(25)));
    }
}
