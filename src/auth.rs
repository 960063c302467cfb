//! Authentication: argon2id password hashes and HS256 JWTs (a short-lived access token and a
//! longer refresh token, which carries its family: the tokens rotated from one login, see
//! [`crate::store::refresh_tokens`]). Handlers call [`Authenticator::authenticate`] with the `Authorization`
//! header; it answers with the user or [`ApiError::Unauthenticated`]. Users read for a token are
//! kept for [`USER_CACHE_TTL`], so a busy client does not cost a database read per request, and
//! access tokens once verified are remembered until they expire, so it does not cost an HMAC
//! and two JSON parses per request either.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::store::{entities::user, users};

/// Lifetime of an access token.
pub const ACCESS_TTL_S: i64 = 30 * 60;
/// Lifetime of a refresh token.
pub const REFRESH_TTL_S: i64 = 7 * 24 * 60 * 60;
/// How long a user read for a token is trusted before it is read again: a user deactivated or
/// moved meanwhile keeps access for at most this long.
pub const USER_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// Most users kept at once (the cache starts over when full).
const USER_CACHE_CAPACITY: usize = 10_000;
/// Most verified access tokens kept at once (the cache starts over when full).
const TOKEN_CACHE_CAPACITY: usize = 10_000;

/// Returns the argon2id PHC string of `password`.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))?;
    Ok(hash.to_string())
}

/// Returns true when `password` matches the PHC string `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), hash).is_ok()
}

/// Returns the token of an `Authorization: Bearer …` header.
pub fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// Returns true for something shaped like an email address.
pub fn is_valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else { return false };
    !local.is_empty()
        && email.len() <= 254
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace())
        && !domain.contains('@')
}

/// What a token says.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's workspace.
    pub wid: String,
    /// `access` or `refresh`.
    pub typ: String,
    pub iat: i64,
    pub exp: i64,
    /// Unique per token (a refresh token's record is kept under it).
    pub jti: String,
    /// A refresh token's family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
}

/// A pair of freshly issued tokens, and what the refresh token's record needs.
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// The refresh token's `jti`.
    pub refresh_id: String,
    pub family_id: String,
    pub refresh_expires_at: DateTime<Utc>,
}

/// Issues and checks tokens.
pub struct Authenticator {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Users recently read, by id, with when they were read.
    users: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, user::Model)>>,
    /// Access tokens verified, with their claims: only a token this key signed gets in, and
    /// each is checked against its `exp` again at every use.
    verified: std::sync::Mutex<std::collections::HashMap<String, Arc<Claims>>>,
}

impl Authenticator {
    /// Builds an authenticator that signs with `secret`.
    pub fn new(secret: &[u8]) -> Self {
        Authenticator {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            users: std::sync::Mutex::new(std::collections::HashMap::new()),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Issues an access and a refresh token for `user`; the refresh token starts a family of its
    /// own (a login), or joins `family` (an exchange).
    pub fn issue(&self, user: &user::Model, family: Option<&str>) -> anyhow::Result<TokenPair> {
        let family_id = family.map_or_else(|| crate::ids::random_alphanumeric(20), str::to_string);
        let (access_token, _) = self.token(user, "access", ACCESS_TTL_S, None)?;
        let (refresh_token, refresh) = self.token(user, "refresh", REFRESH_TTL_S, Some(&family_id))?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            refresh_id: refresh.jti,
            family_id,
            refresh_expires_at: DateTime::from_timestamp(refresh.exp, 0).unwrap_or_else(Utc::now),
        })
    }

    fn token(
        &self,
        user: &user::Model,
        typ: &str,
        ttl_s: i64,
        family: Option<&str>,
    ) -> anyhow::Result<(String, Claims)> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user.id.clone(),
            wid: user.workspace_id.clone(),
            typ: typ.to_string(),
            iat: now,
            exp: now + ttl_s,
            jti: crate::ids::random_alphanumeric(20),
            fam: family.map(str::to_string),
        };
        Ok((jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?, claims))
    }

    /// Returns the claims of a refresh token this key signed that has not expired (whether it
    /// is still current is its record's business).
    pub fn verify_refresh(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?.claims;
        (claims.typ == "refresh" && claims.fam.is_some()).then_some(claims)
    }

    /// Returns the claims of a valid, unexpired access token.
    pub fn verify_access(&self, token: &str) -> Option<Arc<Claims>> {
        self.verify_access_at(token, Utc::now().timestamp())
    }

    /// [`Self::verify_access`] at `now` (Unix seconds): a token verified before is taken from
    /// the cache while `now` has not passed its `exp`.
    fn verify_access_at(&self, token: &str, now: i64) -> Option<Arc<Claims>> {
        if let Some(claims) = self.verified.lock().expect("token cache lock").get(token) {
            return (now <= claims.exp).then(|| claims.clone());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).ok()?.claims;
        if claims.typ != "access" || now > claims.exp {
            return None;
        }
        let claims = Arc::new(claims);
        let mut cache = self.verified.lock().expect("token cache lock");
        if cache.len() >= TOKEN_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(token.to_string(), claims.clone());
        Some(claims)
    }

    /// Returns a user by id: from the cache while fresh, else from the database.
    async fn user(&self, db: &DatabaseConnection, id: &str) -> Result<user::Model, ApiError> {
        if let Some((read_at, user)) = self.users.lock().expect("user cache lock").get(id)
            && read_at.elapsed() < USER_CACHE_TTL
        {
            return Ok(user.clone());
        }
        let user = users::find_by_id(db, id).await?.ok_or(ApiError::Unauthenticated)?;
        let mut cache = self.users.lock().expect("user cache lock");
        if cache.len() >= USER_CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(id.to_string(), (std::time::Instant::now(), user.clone()));
        Ok(user)
    }

    /// Returns the user behind an `Authorization: Bearer …` header.
    ///
    /// A missing, malformed, expired or foreign token, or one whose user is gone, is
    /// `Unauthenticated`; an inactive user is a 400 as in seed 000.
    pub async fn authenticate(
        &self,
        db: &DatabaseConnection,
        authorization: Option<&str>,
    ) -> Result<user::Model, ApiError> {
        let token = bearer_token(authorization).ok_or(ApiError::Unauthenticated)?;
        let claims = self.verify_access(token).ok_or(ApiError::Unauthenticated)?;
        let user = self.user(db, &claims.sub).await?;
        if user.workspace_id != claims.wid {
            return Err(ApiError::Unauthenticated);
        }
        if !user.is_active {
            return Err(ApiError::BadRequest("Inactive user".to_string()));
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> user::Model {
        user::Model {
            id: "usr_1".into(),
            workspace_id: "ws_1".into(),
            email: "a@b.co".into(),
            password_hash: String::new(),
            role: "member".into(),
            is_active: true,
            is_verified: true,
            created_at: Utc::now(),
            api_key_hash: None,
        }
    }

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong horse", &hash));
    }

    #[test]
    fn only_access_tokens_signed_with_our_secret_pass() {
        let auth = Authenticator::new(b"0123456789abcdef0123456789abcdef");
        let tokens = auth.issue(&user(), None).unwrap();
        assert_eq!(auth.verify_access(&tokens.access_token).unwrap().sub, "usr_1");
        assert!(auth.verify_access(&tokens.refresh_token).is_none());
        let other = Authenticator::new(b"another secret another secret 00");
        assert!(other.verify_access(&tokens.access_token).is_none());
    }

    /// A token verified once is remembered, but still expires, and a token that was never
    /// valid is not remembered as one: tampering with a cached token's text fails.
    #[test]
    fn a_remembered_access_token_still_expires() {
        let auth = Authenticator::new(b"0123456789abcdef0123456789abcdef");
        let token = auth.issue(&user(), None).unwrap().access_token;
        let claims = auth.verify_access(&token).unwrap();
        assert_eq!(auth.verify_access_at(&token, claims.exp).unwrap().sub, "usr_1");
        assert!(auth.verify_access_at(&token, claims.exp + 1).is_none(), "expired though cached");
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        // One character of the signature changed.
        let at = token.len() - 10;
        let swapped = if &token[at..=at] == "A" { "B" } else { "A" };
        let forged = format!("{}{swapped}{}", &token[..at], &token[at + 1..]);
        assert!(auth.verify_access(&forged).is_none());
        assert!(auth.verify_access(&auth.issue(&user(), None).unwrap().refresh_token).is_none());
        assert_eq!(auth.verified.lock().unwrap().len(), 1, "only the valid access token is kept");
    }

    /// A refresh token passes only as one, signed with our secret, unexpired and with a family;
    /// an exchange keeps the family.
    #[test]
    fn only_unexpired_refresh_tokens_of_a_family_pass_as_refresh_tokens() {
        let auth = Authenticator::new(b"0123456789abcdef0123456789abcdef");
        let tokens = auth.issue(&user(), None).unwrap();
        let claims = auth.verify_refresh(&tokens.refresh_token).unwrap();
        assert_eq!((claims.sub.as_str(), claims.jti.as_str()), ("usr_1", tokens.refresh_id.as_str()));
        assert_eq!(claims.fam.as_deref(), Some(tokens.family_id.as_str()));
        assert_eq!(tokens.refresh_expires_at.timestamp(), claims.exp);
        let exchanged = auth.issue(&user(), Some(&tokens.family_id)).unwrap();
        assert_eq!(exchanged.family_id, tokens.family_id);
        assert_ne!(exchanged.refresh_id, tokens.refresh_id);
        assert!(auth.verify_refresh(&tokens.access_token).is_none(), "an access token");
        let other = Authenticator::new(b"another secret another secret 00");
        assert!(other.verify_refresh(&tokens.refresh_token).is_none(), "another secret");
        let (expired, _) = auth.token(&user(), "refresh", -1, Some("fam")).unwrap();
        assert!(auth.verify_refresh(&expired).is_none(), "expired");
        let (familyless, _) = auth.token(&user(), "refresh", 60, None).unwrap();
        assert!(auth.verify_refresh(&familyless).is_none(), "issued before families");
    }

    #[test]
    fn emails_are_checked_for_shape() {
        assert!(is_valid_email("user@example.com"));
        assert!(is_valid_email("admin@localhost"));
        assert!(!is_valid_email("user"));
        assert!(!is_valid_email("@example.com"));
        assert!(!is_valid_email("a b@example.com"));
    }
}
