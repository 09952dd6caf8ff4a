use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a staff user may do; see docs/auth.md for the route × role matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including users and settings.
    Admin,
    /// Runs the operation: conversations, stock, reports, jobs.
    Operator,
    /// Answers conversations.
    Agent,
    /// Reads, changes nothing.
    Readonly,
    /// An integrator's key: opens `api` conversations and speaks in them as
    /// the customer; reaches nothing else. Only API keys have it.
    Integration,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Operator, Role::Agent, Role::Readonly];
    /// The role's name as used in the API and tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Agent => "agent",
            Role::Readonly => "readonly",
            Role::Integration => "integration",
        }
    }
    /// Parses the role of an API key: a user's role, or `integration`.
    pub fn parse_for_key(s: &str) -> Option<Role> {
        Role::parse(s).or((s == "integration").then_some(Role::Integration))
    }
    /// Parses a role name (users' roles; not `integration`).
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A staff account.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// User id.
    pub id: Uuid,
    /// Login email, lowercased.
    pub email: String,
    /// Role.
    pub role: Role,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// When the user was created.
    pub created_at: Timestamp,
    /// A disabled user cannot log in or refresh.
    #[serde(default)]
    pub disabled: bool,
    /// Language and time zone (schema version 2).
    #[serde(default)]
    pub preferences: Preferences,
    /// Display name; absent in records written before it existed, and left
    /// out when unset so those records keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tokens issued before this (a password set, the user disabled) no
    /// longer work; absent, like `name`, until it is first set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_out_at: Option<Timestamp>,
}

impl User {
    /// Whether a token issued at `issued_ms` (ms since the epoch) still speaks for the user.
    pub fn accepts_token_issued(&self, issued_ms: i64) -> bool {
        !self.disabled && self.signed_out_at.is_none_or(|t| issued_ms >= t.millis())
    }
}

/// A user's preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    /// Language, `es` or `en`.
    pub language: String,
    /// IANA time zone.
    pub timezone: String,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences { language: "es".into(), timezone: "America/Mexico_City".into() }
    }
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User").field("id", &self.id).field("email", &self.email).field("role", &self.role).finish_non_exhaustive()
    }
}

impl Record for User {
    const KIND: &'static str = "user";
}

/// Longest email address accepted (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Lowercases and trims an email for lookup.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Reads a user by id.
pub fn get(db: &Db, id: Uuid) -> Result<Option<User>, StoreError> {
    db.get(Map::Users, Key::new().uuid(id))
}

/// Reads a user by email.
pub fn by_email(db: &Db, email: &str) -> Result<Option<User>, StoreError> {
    // A string a key cannot hold (a NUL in it) is no stored user's email.
    let Ok(key) = Key::new().str(&normalize_email(email)) else { return Ok(None) };
    match db.get_raw(Map::EmailUserid, key)? {
        Some(id) => {
            let id = KeyReader::new(&id).uuid()?;
            get(db, id)
        }
        None => Ok(None),
    }
}

/// Users in id order after `after`, at most `limit`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<User>, StoreError> {
    let start = after.map(|a| Key::new().uuid(a).u8(0).into_bytes()).unwrap_or_default();
    Ok(db.scan::<User>(Map::Users, &[], &start, limit)?.into_iter().map(|(_, u)| u).collect())
}

/// Adds the new version of an existing `user` (its email, and so its index, unchanged).
pub fn put(batch: &mut Batch, user: &User) -> Result<(), CodecError> {
    batch.put(Map::Users, Key::new().uuid(user.id), user)?;
    Ok(())
}

/// The writes that create `user` with its email index.
pub fn create_batch(user: &User) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put(Map::Users, Key::new().uuid(user.id), user)?;
    b.put_raw(Map::EmailUserid, Key::new().str(&user.email)?.into_bytes(), user.id.as_bytes().to_vec());
    Ok(b)
}
