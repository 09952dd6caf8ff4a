//! Access-token signing keys. Each key has a `kid` (derived from the secret)
//! written in the token header; rotated-out keys keep verifying until their
//! `valid_until`, so tokens issued just before a rotation stay good.

use crate::config::Secret;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utalk_storage::Timestamp;
use uuid::Uuid;

/// What a token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    /// A staff user's access token.
    Access,
    /// A web chat customer's token, scoped to one conversation.
    Widget,
}

/// Claims of utalk's tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// User id, or the conversation id for widget tokens.
    pub sub: Uuid,
    /// Token type.
    pub typ: TokenType,
    /// Role name, for access tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Conversation, for widget tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnv: Option<Uuid>,
    /// Issued at, seconds.
    pub iat: i64,
    /// Issued at, milliseconds: told apart from a sign-out in the same second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ims: Option<i64>,
    /// Expires at, seconds.
    pub exp: i64,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    valid_until: Option<Timestamp>,
}

impl Key {
    fn new(secret: &str, valid_until: Option<Timestamp>) -> Key {
        Key {
            kid: kid_of(secret),
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            valid_until,
        }
    }
}

/// The `kid` of a secret: the first 12 hex digits of its SHA-256.
pub fn kid_of(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))[..12].to_string()
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Past its `exp`.
    Expired,
    /// Bad signature, unknown or retired key, malformed.
    Invalid,
}

/// The current signing key and the previous ones still verifying.
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl Keyring {
    /// A keyring signing with `current` and also verifying `previous` until their times.
    pub fn new(current: &Secret, previous: &[(Secret, Timestamp)]) -> Keyring {
        Keyring {
            current: Key::new(current.expose(), None),
            previous: previous.iter().map(|(s, t)| Key::new(s.expose(), Some(*t))).collect(),
        }
    }

    /// The current key's id.
    pub fn kid(&self) -> &str {
        &self.current.kid
    }

    /// The ids of the keys that verify, with when each stops.
    pub fn verifying(&self) -> Vec<(&str, Option<Timestamp>)> {
        std::iter::once(&self.current).chain(&self.previous).map(|k| (k.kid.as_str(), k.valid_until)).collect()
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.kid.clone());
        encode(&header, claims, &self.current.encoding)
    }

    /// Verifies a token and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = std::iter::once(&self.current).chain(&self.previous).find(|k| k.kid == kid).ok_or(TokenError::Invalid)?;
        if key.valid_until.is_some_and(|t| Timestamp::now() > t) {
            return Err(TokenError::Invalid);
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = 5;
        v.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, &key.decoding, &v).map(|d| d.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp_in: i64) -> Claims {
        let now = Timestamp::now().millis() / 1000;
        Claims {
            sub: Uuid::new_v4(),
            typ: TokenType::Access,
            role: Some("agent".into()),
            cnv: None,
            iat: now,
            ims: None,
            exp: now + exp_in,
        }
    }

    const OLD: &str = "old-secret-old-secret-old-secret-0000";
    const NEW: &str = "new-secret-new-secret-new-secret-1111";

    #[test]
    fn tokens_carry_the_kid_and_verify() {
        let k = Keyring::new(&Secret::new(NEW), &[]);
        let t = k.sign(&claims(60)).unwrap();
        assert_eq!(decode_header(&t).unwrap().kid.as_deref(), Some(kid_of(NEW).as_str()));
        assert_eq!(k.verify(&t).unwrap().role.as_deref(), Some("agent"));
    }

    #[test]
    fn a_rotated_key_verifies_during_its_grace_period_only() {
        let old = Keyring::new(&Secret::new(OLD), &[]);
        let token = old.sign(&claims(600)).unwrap();
        let in_grace = Keyring::new(&Secret::new(NEW), &[(Secret::new(OLD), Timestamp::now().plus_secs(60))]);
        assert!(in_grace.verify(&token).is_ok());
        let past_grace = Keyring::new(&Secret::new(NEW), &[(Secret::new(OLD), Timestamp::now().plus_secs(-1))]);
        assert_eq!(past_grace.verify(&token).unwrap_err(), TokenError::Invalid);
        let forgotten = Keyring::new(&Secret::new(NEW), &[]);
        assert_eq!(forgotten.verify(&token).unwrap_err(), TokenError::Invalid);
    }

    #[test]
    fn expired_and_tampered_tokens_are_refused() {
        let k = Keyring::new(&Secret::new(NEW), &[]);
        assert_eq!(k.verify(&k.sign(&claims(-60)).unwrap()).unwrap_err(), TokenError::Expired);
        let t = k.sign(&claims(60)).unwrap();
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[1] = parts[1].chars().rev().collect();
        assert_eq!(k.verify(&parts.join(".")).unwrap_err(), TokenError::Invalid);
        assert_eq!(k.verify("garbage").unwrap_err(), TokenError::Invalid);
    }
}
