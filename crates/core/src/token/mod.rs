//! Reconnect tokens: how a client that lost its session proves it held it.
//!
//! A token is a JWT (HS256) naming the session, a token id, when it was
//! issued and when it expires, and the principal it was issued to. The store
//! keeps only its SHA-256 hash and expiry, so a leaked database yields no
//! usable token. Only a session's newest token is valid: issuing or using one
//! rotates it. Expiry is checked against the [`crate::Clock`], not the wall
//! clock, so tests drive it. What the store keeps of a token — its hash
//! and expiry — is in [`hash`], which the session record holds.

pub mod hash;

use std::fmt;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::SessionId;
use crate::session::DisconnectReason;
pub use hash::{TokenGrant, TokenHash};

/// A session's reconnect fields as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReconnectState {
    pub current: Option<TokenGrant>,
    /// The hash of the token used last, to tell a replay from a stale token.
    pub used: Option<TokenHash>,
    pub count: u64,
}

/// One use of a token, applied by the store only if `expected` is still the
/// session's current token (compare-and-swap, so two uses of one token
/// cannot both succeed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redemption {
    pub session_id: SessionId,
    pub expected: TokenHash,
    pub next: TokenGrant,
    /// Set when the session was disconnected: it becomes active again, with
    /// this as its last activity.
    pub revive_at: Option<Timestamp>,
}

/// A freshly issued token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub grant: TokenGrant,
}

impl IssuedToken {
    pub fn expires_at(&self) -> Timestamp {
        self.grant.expires_at
    }
}

/// The claims of a reconnect token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The session.
    pub sid: String,
    /// The token's own id.
    pub jti: String,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// The principal the session belongs to, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
}

/// Why a reconnect attempt was refused. Every variant is a 401 with its
/// message as the `detail`; nothing is changed by a refused attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("reconnect token is malformed")]
    Malformed,
    #[error("reconnect token signature is invalid")]
    BadSignature,
    #[error("reconnect token uses a disallowed algorithm (only HS256 is accepted)")]
    WrongAlgorithm,
    #[error("reconnect token has expired")]
    Expired,
    #[error("reconnect token was issued for another session")]
    WrongSession,
    #[error("reconnect token was superseded by a newer one")]
    Superseded,
    #[error("reconnect token was already used")]
    Replayed,
    #[error("session cannot be reconnected: it ended with {0}")]
    Ended(DisconnectReason),
    #[error("reconnect token belongs to another principal")]
    PrincipalMismatch,
    #[error("session not found")]
    UnknownSession,
}

/// The HMAC key reconnect tokens are signed with. Its `Debug` shows no bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    /// 32 bytes from the OS CSPRNG.
    pub fn generate() -> Self {
        SigningKey(rand::random::<[u8; 32]>().to_vec())
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        SigningKey(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// Signs and verifies reconnect tokens.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

impl fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSigner")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    pub fn new(key: &SigningKey, ttl: Duration) -> Self {
        TokenSigner {
            encoding: EncodingKey::from_secret(key.as_bytes()),
            decoding: DecodingKey::from_secret(key.as_bytes()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `session`, valid from `now` for the configured ttl.
    pub fn issue(
        &self,
        session: SessionId,
        principal: Option<&str>,
        now: Timestamp,
    ) -> IssuedToken {
        // Whole seconds, as JWT has them, so the claim and the store agree.
        let exp = now.saturating_add(self.ttl).as_millis().div_euclid(1000);
        let expires_at = Timestamp::from_millis(exp.saturating_mul(1000));
        let claims = Claims {
            sid: session.to_string(),
            jti: hex::encode(rand::random::<[u8; 16]>()),
            iat: now.as_millis().div_euclid(1000),
            exp,
            principal: principal.map(str::to_string),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an in-memory key cannot fail");
        IssuedToken {
            grant: TokenGrant {
                hash: TokenHash::of(&token),
                expires_at,
            },
            token,
        }
    }

    /// Checks signature, algorithm and expiry; the caller checks the rest
    /// against the store.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<Claims, Refusal> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked below against our clock.
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::InvalidSignature => Refusal::BadSignature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    Refusal::WrongAlgorithm
                }
                _ if names_other_algorithm(token) => Refusal::WrongAlgorithm,
                _ => Refusal::Malformed,
            },
        )?;
        if data.claims.exp.saturating_mul(1000) <= now.as_millis() {
            return Err(Refusal::Expired);
        }
        Ok(data.claims)
    }
}

/// True when a token's header names an algorithm other than HS256 (such as
/// `none`), which the JWT library reports as an undecodable header.
fn names_other_algorithm(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(|a| a != "HS256"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TokenSigner {
        TokenSigner::new(
            &SigningKey::from_bytes(b"0123456789abcdef0123456789abcdef".to_vec()),
            Duration::from_secs(900),
        )
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let s = signer();
        let id = SessionId::generate();
        let now = Timestamp::from_millis(1_700_000_000_000);
        let t = s.issue(id, Some("alice"), now);
        assert_eq!(t.grant.hash, TokenHash::of(&t.token));
        let claims = s.verify(&t.token, now).unwrap();
        assert_eq!(claims.sid, id.to_string());
        assert_eq!(claims.principal.as_deref(), Some("alice"));
        assert_eq!(
            s.verify(&t.token, now.saturating_add(Duration::from_secs(900))),
            Err(Refusal::Expired)
        );
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused_with_their_reason() {
        use base64::Engine;
        let s = signer();
        let now = Timestamp::from_millis(1_700_000_000_000);
        let t = s.issue(SessionId::generate(), None, now);
        let other = TokenSigner::new(&SigningKey::generate(), Duration::from_secs(900));
        assert_eq!(other.verify(&t.token, now), Err(Refusal::BadSignature));
        assert_eq!(s.verify("not a token", now), Err(Refusal::Malformed));

        let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let payload = t.token.split('.').nth(1).unwrap();
        let none = format!("{}.{payload}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(s.verify(&none, now), Err(Refusal::WrongAlgorithm));
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &s.verify(&t.token, now).unwrap(),
            &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        )
        .unwrap();
        assert_eq!(s.verify(&hs512, now), Err(Refusal::WrongAlgorithm));
    }
}
