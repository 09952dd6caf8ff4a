//! Authentication: users, passwords, access and refresh tokens, widget tokens.

pub mod keys;
pub mod limiter;
pub mod principal;
pub mod verifier;

use crate::config::{AuthConfig, Secret};
use crate::http::error::ApiError;
use crate::services::accounts::{self, password};
use crate::services::api_keys::{self, KeysInUse};
use base64::Engine;
use keys::{Claims, Keyring, TokenError, TokenType};
use limiter::{Limiter, Refused};
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use utalk_actors::durability::Journal;
use utalk_actors::{Authenticated, Authenticator, Identity};
use utalk_storage::model::{RefreshToken, User};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

pub use principal::Principal;

/// A fresh pair of tokens after login or refresh.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenPair {
    /// JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque token for `/auth/refresh`; single use.
    pub refresh_token: String,
    /// Seconds the access token lives.
    pub expires_in: u64,
    /// Who logged in.
    pub user: UserView,
}

/// A user as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    /// Id.
    pub id: Uuid,
    /// Email.
    pub email: String,
    /// Role: admin, operator, agent, readonly.
    pub role: String,
    /// Display name.
    pub name: Option<String>,
    /// A disabled user cannot log in, refresh or keep a socket open.
    pub disabled: bool,
    /// Created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id,
            email: u.email.clone(),
            role: u.role.as_str().into(),
            name: u.name.clone(),
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// Issues and checks tokens; holds the login throttles.
pub struct AuthService {
    db: Db,
    journal: Journal,
    /// Swapped whole when the generated keys rotate (on any node of a cluster).
    keys: std::sync::RwLock<Arc<Keyring>>,
    /// The secret the configuration sets, if it does: then nothing rotates it here.
    configured: Option<Secret>,
    config: AuthConfig,
    account_failures: Limiter,
    ip_failures: Limiter,
    widget_sessions: Limiter,
    verifier: verifier::Verifier,
    /// Serialises refreshes so that one refresh token is exchanged once.
    refresh_lock: tokio::sync::Mutex<()>,
    /// API keys checked, and when each last had its use recorded.
    keys_in_use: KeysInUse,
}

/// The rotated-out secrets the configuration lists.
fn configured_previous(config: &AuthConfig) -> Vec<(Secret, Timestamp)> {
    config.previous_jwt_secrets.iter().filter_map(|p| Timestamp::parse_rfc3339(&p.valid_until).map(|t| (p.secret.clone(), t))).collect()
}

/// The keyring of the generated keys, also verifying the configured previous secrets.
fn generated_keyring(k: &crate::services::secrets::Keys, config: &AuthConfig) -> Keyring {
    let mut previous = configured_previous(config);
    previous.extend(k.previous.iter().cloned());
    Keyring::new(&k.current, &previous)
}

fn now_secs() -> i64 {
    Timestamp::now().millis() / 1000
}

fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl AuthService {
    /// Builds the service; without a configured secret, one is generated once and kept in the database.
    pub async fn new(db: Db, journal: Journal, secret: Option<Secret>, config: AuthConfig) -> Result<AuthService, anyhow::Error> {
        let keyring = match &secret {
            Some(s) => Keyring::new(s, &configured_previous(&config)),
            None => generated_keyring(&crate::services::secrets::signing_keys(&db, &journal).await?, &config),
        };
        let window = Duration::from_secs(config.failure_window_secs);
        Ok(AuthService {
            keys: std::sync::RwLock::new(Arc::new(keyring)),
            configured: secret,
            account_failures: Limiter::new(window, config.max_throttled_keys),
            ip_failures: Limiter::new(window, config.max_throttled_keys),
            widget_sessions: Limiter::new(Duration::from_secs(60), config.max_throttled_keys),
            verifier: verifier::Verifier::start(
                config.password_check_threads,
                config.password_check_queue,
                Duration::from_millis(config.password_check_wait_ms),
            )?,
            refresh_lock: tokio::sync::Mutex::new(()),
            keys_in_use: KeysInUse::new(config.max_api_keys),
            db,
            journal,
            config,
        })
    }

    /// The keyring in force.
    fn keys(&self) -> Arc<Keyring> {
        // A poisoned lock still holds a whole keyring: it is only ever replaced.
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes the generated signing keys as the store holds them now, if
    /// they changed (a rotation, made on this node or another): tokens are
    /// signed with the new key at once, and the old one verifies through
    /// its grace. Nothing to do when the configuration sets the secret.
    pub fn reload_keys(&self) -> Result<(), anyhow::Error> {
        if self.configured.is_some() {
            return Ok(());
        }
        if let Some(k) = crate::services::secrets::stored_keys(&self.db)? {
            let next = generated_keyring(&k, &self.config);
            if next.kid() != self.keys().kid() || next.verifying() != self.keys().verifying() {
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(next);
            }
        }
        Ok(())
    }

    /// Live API keys allowed at once.
    pub fn max_api_keys(&self) -> usize {
        self.config.max_api_keys
    }

    /// Who a token belongs to, or the error code that refuses it
    /// (`missing_token`, `invalid_token`, `token_expired`, `token_revoked`).
    pub fn identity(&self, token: Option<&str>) -> Result<Identity, &'static str> {
        self.identity_until(token).map(|(identity, _)| identity)
    }

    /// Like [`identity`](Self::identity), with when the credential expires
    /// (seconds since the epoch; an API key may never).
    ///
    /// A staff token is checked against the user as stored now, so a
    /// disabled user, a changed role or a password set elsewhere takes
    /// effect at once on every node that has applied the change.
    fn identity_until(&self, token: Option<&str>) -> Result<(Identity, Option<i64>), &'static str> {
        let token = token.map(str::trim).filter(|t| !t.is_empty()).ok_or("missing_token")?;
        if token.starts_with(api_keys::KEY_PREFIX) {
            let key = self.keys_in_use.check(&self.db, &self.journal, token)?;
            return Ok((Identity::Staff { user_id: key.id, role: key.role }, key.expires_at.map(|t| t.millis() / 1000)));
        }
        let claims = self.keys().verify(token).map_err(|e| match e {
            TokenError::Expired => "token_expired",
            TokenError::Invalid => "invalid_token",
        })?;
        match claims.typ {
            TokenType::Access => {
                let u = accounts::user(&self.db, claims.sub).map_err(|_| "invalid_token")?.ok_or("invalid_token")?;
                if !u.accepts_token_issued(claims.ims.unwrap_or(claims.iat * 1000)) {
                    return Err("token_revoked");
                }
                Ok((Identity::Staff { user_id: claims.sub, role: u.role }, Some(claims.exp)))
            }
            TokenType::Widget => Ok((Identity::Widget { conversation_id: claims.cnv.ok_or("invalid_token")? }, Some(claims.exp))),
        }
    }

    /// Whether `identity`, established earlier, may still act: its user is
    /// still enabled with the same role and not signed out since `since_ms`,
    /// or its API key is still live. Open sockets ask this every few seconds.
    pub fn still_allowed(&self, identity: &Identity, since_ms: i64) -> bool {
        match *identity {
            Identity::Widget { .. } => true,
            Identity::Staff { user_id, role } => match accounts::user(&self.db, user_id) {
                Ok(Some(u)) => u.role == role && u.accepts_token_issued(since_ms),
                Ok(None) => api_keys::key(&self.db, user_id).ok().flatten().is_some_and(|k| k.role == role && k.usable(Timestamp::now())),
                // A read that fails says nothing about the user: keep the socket.
                Err(_) => true,
            },
        }
    }

    fn access_token(&self, u: &User) -> Result<String, ApiError> {
        let now_ms = Timestamp::now().millis();
        let now = now_ms / 1000;
        let claims = Claims {
            sub: u.id,
            typ: TokenType::Access,
            role: Some(u.role.as_str().into()),
            cnv: None,
            iat: now,
            ims: Some(now_ms),
            exp: now + self.config.access_ttl_secs as i64,
        };
        self.keys().sign(&claims).map_err(ApiError::internal)
    }

    /// A token for a web chat customer of `conversation`.
    pub fn widget_token(&self, conversation: Uuid) -> Result<(String, u64), ApiError> {
        let now = now_secs();
        let claims = Claims {
            sub: conversation,
            typ: TokenType::Widget,
            role: None,
            cnv: Some(conversation),
            iat: now,
            ims: None,
            exp: now + self.config.widget_ttl_secs as i64,
        };
        Ok((self.keys().sign(&claims).map_err(ApiError::internal)?, self.config.widget_ttl_secs))
    }

    /// Counts a widget session for `ip`; refuses past the per-minute limit.
    pub fn admit_widget_session(&self, ip: &str) -> Result<(), ApiError> {
        let limit = self.config.widget_sessions_per_ip_per_minute;
        self.widget_sessions
            .try_hit(ip, limit)
            .map(drop)
            .map_err(|r| ApiError::rate_limited("rate_limited", "too many widget sessions from this address", r.wait_secs()))
    }

    async fn issue_pair(&self, u: &User, family: Uuid, replacing: Option<([u8; 32], RefreshToken)>) -> Result<TokenPair, ApiError> {
        let mut raw = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut raw);
        let refresh = format!("rt_{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw));
        let hash = hash_token(&refresh);
        let record = RefreshToken {
            user_id: u.id,
            family,
            expires_at: Timestamp::now().plus_secs(self.config.refresh_ttl_secs as i64),
            replaced_by: None,
            issued_at: Some(Timestamp::now()),
        };
        // A refresh token is exchanged once cluster-wide: another node may have just done it.
        if !accounts::keep_refresh_token(&self.journal, hash, &record, replacing).await? {
            tracing::warn!(user = %u.id, "refresh token exchanged twice at once on two nodes; the second is refused");
            return Err(ApiError::unauthorized("refresh_token_reused", "refresh token was already used; log in again"));
        }
        Ok(TokenPair {
            access_token: self.access_token(u)?,
            refresh_token: refresh,
            expires_in: self.config.access_ttl_secs,
            user: u.into(),
        })
    }

    /// Checks a password login, throttled per account and per client address.
    ///
    /// Each attempt is counted before its password is checked, so concurrent
    /// attempts cannot all slip under the limit; an attempt refused before its
    /// check (throttled, or no checking thread free) is taken back.
    pub async fn login(&self, email: &str, password: &str, ip: &str) -> Result<TokenPair, ApiError> {
        // Refused before any work: argon2's cost grows with the input, and a key of
        // any length would be held by the throttle.
        if email.len() > accounts::MAX_EMAIL_BYTES || password.len() > password::MAX_LEN {
            return Err(ApiError::invalid(
                "validation_failed",
                format!("email must have at most {} bytes and password at most {} bytes", accounts::MAX_EMAIL_BYTES, password::MAX_LEN),
            ));
        }
        let account = accounts::normalize_email(email);
        let ip_key = format!("ip:{ip}");
        let acct_key = format!("acct:{account}");
        let refused = |r: Refused, whom: &str| match r {
            Refused::Limit(wait) => {
                ApiError::rate_limited("too_many_attempts", format!("too many failed logins for this {whom}; wait and retry"), wait)
            }
            Refused::Full(wait) => ApiError::rate_limited("too_many_attempts", "too many login attempts; wait and retry", wait),
        };
        self.ip_failures.try_hit(&ip_key, self.config.max_failures_per_ip).map_err(|r| refused(r, "address"))?;
        if let Err(r) = self.account_failures.try_hit(&acct_key, self.config.max_failures_per_account) {
            self.ip_failures.refund(&ip_key);
            return Err(refused(r, "account"));
        }
        let unchecked = || {
            self.ip_failures.refund(&ip_key);
            self.account_failures.refund(&acct_key);
        };
        let found = match accounts::user_by_email(&self.db, &account) {
            Ok(found) => found,
            Err(e) => {
                unchecked();
                return Err(e.into());
            }
        };
        let phc = found.as_ref().map(|u| u.password_hash.as_str()).unwrap_or_else(|| password::dummy_hash());
        let ok = match self.verifier.verify(password, phc).await {
            Ok(ok) => ok,
            Err(verifier::Busy) => {
                unchecked();
                metrics::counter!("login_busy_total").increment(1);
                return Err(ApiError::rate_limited("server_busy", "too many logins in progress; retry in a moment", 1));
            }
        };
        match found {
            Some(u) if ok && !u.disabled => {
                self.account_failures.clear(&acct_key);
                self.ip_failures.refund(&ip_key);
                let pair = self.issue_pair(&u, Uuid::new_v4(), None).await;
                if pair.is_ok() {
                    metrics::counter!("user_sessions_total", "role" => u.role.as_str()).increment(1);
                }
                pair
            }
            _ => {
                metrics::counter!("login_failures_total").increment(1);
                tracing::warn!(ip, "failed login");
                Err(ApiError::unauthorized("invalid_credentials", "email or password is wrong"))
            }
        }
    }

    /// Changes the caller's own password after checking the current one; every
    /// other session ends, and the caller gets a new pair.
    pub async fn change_own_password(&self, user_id: Uuid, current: &str, new: &str) -> Result<TokenPair, ApiError> {
        if current.len() > password::MAX_LEN || new.len() > password::MAX_LEN {
            return Err(ApiError::invalid("validation_failed", format!("passwords have at most {} bytes", password::MAX_LEN)));
        }
        let u = accounts::user(&self.db, user_id)?
            .ok_or_else(|| ApiError::forbidden("only a user's own login may change its password (not an API key)"))?;
        // Counted like a login, so a stolen access token cannot guess the password at will.
        let key = format!("acct:{}", u.email);
        self.account_failures.try_hit(&key, self.config.max_failures_per_account).map_err(|r| {
            ApiError::rate_limited("too_many_attempts", "too many wrong passwords for this account; wait and retry", r.wait_secs())
        })?;
        let ok = self.verifier.verify(current, &u.password_hash).await.map_err(|verifier::Busy| {
            ApiError::rate_limited("server_busy", "too many password checks in progress; retry in a moment", 1)
        })?;
        if !ok {
            return Err(ApiError::unauthorized("invalid_credentials", "the current password is wrong"));
        }
        self.account_failures.clear(&key);
        let u = accounts::set_password(&self.db, &self.journal, accounts::ChangedBy::Staff(user_id), user_id, new, "user.password_change")
            .await?;
        // Issued after the sign-out, so it survives it.
        self.issue_pair(&u, Uuid::new_v4(), None).await
    }

    /// Exchanges a refresh token for a new pair; the old one stops working.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ApiError> {
        let invalid = || ApiError::unauthorized("invalid_refresh_token", "refresh token is unknown, used or expired");
        let _guard = self.refresh_lock.lock().await;
        let hash = hash_token(refresh_token);
        let record = accounts::refresh_token(&self.db, &hash)?.ok_or_else(invalid)?;
        if record.expires_at < Timestamp::now() {
            return Err(invalid());
        }
        if record.replaced_by.is_some() {
            let user_id = record.user_id;
            accounts::revoke_chain(&self.db, &self.journal, hash, record).await?;
            tracing::warn!(user = %user_id, "refresh token reused; its family is revoked");
            return Err(ApiError::unauthorized("refresh_token_reused", "refresh token was already used; log in again"));
        }
        // Tokens kept before `issued_at` was: their lifetime tells when they were issued.
        let issued = record.issued_at.unwrap_or(Timestamp(record.expires_at.millis() - self.config.refresh_ttl_secs as i64 * 1000));
        let u = accounts::user(&self.db, record.user_id)?.filter(|u| u.accepts_token_issued(issued.millis())).ok_or_else(invalid)?;
        let family = record.family;
        self.issue_pair(&u, family, Some((hash, record))).await
    }
}

impl Authenticator for AuthService {
    fn authenticate(&self, token: Option<&str>) -> Result<Authenticated, &'static str> {
        let (identity, expires_at) = self.identity_until(token)?;
        Ok(Authenticated { identity, expires_at })
    }

    fn still_allowed(&self, identity: &Identity, since_ms: i64) -> bool {
        AuthService::still_allowed(self, identity, since_ms)
    }
}
