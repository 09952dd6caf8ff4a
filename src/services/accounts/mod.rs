//! Staff users and their refresh tokens as stored: creating a user (from
//! the API, or the command line on one node or into a cluster), reading
//! users, and keeping, exchanging and revoking refresh tokens.

pub mod password;

pub use utalk_storage::model::user::{normalize_email, MAX_EMAIL_BYTES};

use super::ServiceError;
use utalk_actors::cluster::Cluster;
use utalk_actors::durability::{Journal, JournalError};
use utalk_storage::model::{token, user, AuditEvent, RefreshToken, Role, User};
use utalk_storage::{Batch, Db, StoreError, Timestamp};
use uuid::Uuid;

/// Why a user could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    /// Email malformed.
    #[error("email `{0}` is not valid")]
    BadEmail(String),
    /// Password too weak or long.
    #[error(transparent)]
    BadPassword(#[from] password::WeakPassword),
    /// Already taken.
    #[error("a user with email {0} already exists")]
    Exists(String),
    /// Storage.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writer or cluster log.
    #[error(transparent)]
    Write(#[from] JournalError),
    /// Hashing.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The log key kind under which each email address is taken once, cluster-wide.
const EMAIL_KEY: &str = "email";

/// Checks and stores a new user; used by the CLI and the admin API.
///
/// In a cluster the address is also claimed in the log, so that two nodes
/// (or the command line) adding the same address at once make one user.
pub async fn create_user(
    db: &Db,
    journal: &Journal,
    email: &str,
    role: Role,
    password: &str,
    actor: &str,
) -> Result<User, CreateUserError> {
    let (u, batch) = new_user(email, role, password, actor).await?;
    if user::by_email(db, &u.email)?.is_some() {
        return Err(CreateUserError::Exists(u.email));
    }
    if !journal.commit_first(EMAIL_KEY, &u.email, batch).await? {
        return Err(CreateUserError::Exists(u.email));
    }
    Ok(u)
}

/// A user checked and ready to store, not written yet.
pub struct NewUser {
    user: User,
    batch: Batch,
}

impl NewUser {
    /// Checks the address and the password policy and hashes the password.
    pub async fn check(email: &str, role: Role, password: &str, actor: &str) -> Result<NewUser, CreateUserError> {
        let (user, batch) = new_user(email, role, password, actor).await?;
        Ok(NewUser { user, batch })
    }

    /// Adds the user straight to a cluster's log, which every node applies
    /// (the command line, which runs no node): the log position, or `None`
    /// when the address is taken.
    pub async fn add_to_log(self, cluster: &dyn Cluster) -> Result<(User, Option<u64>), CreateUserError> {
        let position =
            utalk_actors::durability::append_first(cluster, EMAIL_KEY, &self.user.email, self.batch).await.map_err(JournalError::from)?;
        Ok((self.user, position))
    }
}

/// A checked new user and the batch that stores it (with its audit event), not written yet.
async fn new_user(email: &str, role: Role, password: &str, actor: &str) -> Result<(User, Batch), CreateUserError> {
    let email = user::normalize_email(email);
    let valid = email.len() <= user::MAX_EMAIL_BYTES
        && email.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.'))
        && !email.contains(char::is_whitespace)
        && !email.contains('\0');
    if !valid {
        return Err(CreateUserError::BadEmail(email));
    }
    password::check_policy(password)?;
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash(&pw))
        .await
        .map_err(|e| CreateUserError::Hash(e.to_string()))?
        .map_err(|e| CreateUserError::Hash(e.to_string()))?;
    let u = User {
        id: Uuid::now_v7(),
        email,
        role,
        password_hash: hash,
        created_at: Timestamp::now(),
        disabled: false,
        preferences: Default::default(),
    };
    let mut batch = user::create_batch(&u).map_err(StoreError::from)?;
    AuditEvent::new(actor, "user.create", format!("{} ({})", u.email, u.role.as_str())).add_to(&mut batch).map_err(StoreError::from)?;
    Ok((u, batch))
}

/// One user.
pub fn user(db: &Db, id: Uuid) -> Result<Option<User>, ServiceError> {
    Ok(user::get(db, id)?)
}

/// The user with this (normalised) address.
pub fn user_by_email(db: &Db, email: &str) -> Result<Option<User>, ServiceError> {
    Ok(user::by_email(db, email)?)
}

/// A page of users by id.
pub fn users(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<User>, ServiceError> {
    Ok(user::list(db, after, limit)?)
}

/// The refresh token with this hash.
pub fn refresh_token(db: &Db, hash: &[u8; 32]) -> Result<Option<RefreshToken>, ServiceError> {
    Ok(token::get(db, hash)?)
}

/// Keeps a new refresh token. When it replaces a used one, the used one is
/// kept marked (so that presenting it again is detected as reuse), and the
/// exchange happens once cluster-wide: `false` when another node just did it.
pub async fn keep_refresh_token(
    journal: &Journal,
    hash: [u8; 32],
    record: &RefreshToken,
    replacing: Option<([u8; 32], RefreshToken)>,
) -> Result<bool, ServiceError> {
    let mut b = Batch::new();
    token::put(&mut b, &hash, record)?;
    match replacing {
        Some((old_hash, mut old)) => {
            old.replaced_by = Some(hash);
            token::put(&mut b, &old_hash, &old)?;
            Ok(journal.commit_first("refresh", &hex::encode(old_hash), b).await?)
        }
        None => {
            journal.commit(b).await?;
            Ok(true)
        }
    }
}

/// Deletes a refresh token and every token that descends from it.
pub async fn revoke_chain(db: &Db, journal: &Journal, start: [u8; 32], first: RefreshToken) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    let mut next = first.replaced_by;
    token::delete(&mut b, &start);
    // A chain is as long as the refreshes of one login; the bound only
    // guards against a cycle in damaged records.
    let mut guard = 0;
    while let Some(h) = next {
        guard += 1;
        if guard > 10_000 {
            break;
        }
        next = token::get(db, &h)?.and_then(|t| t.replaced_by);
        token::delete(&mut b, &h);
    }
    Ok(journal.commit(b).await?)
}
