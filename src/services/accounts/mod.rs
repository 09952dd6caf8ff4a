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
        name: None,
        signed_out_at: None,
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

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// What an admin changes of a user; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// New role.
    pub role: Option<Role>,
    /// New display name; an empty one removes it.
    pub name: Option<String>,
    /// Disable (lock out) or enable again.
    pub disabled: Option<bool>,
}

/// Changes of one node's users one at a time; in a cluster the user's own
/// log subject fences writes of several nodes.
static USER_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Reads user `id`, lets `edit` make the new version and its audit line, and
/// stores both unless another node changed the user meanwhile (then reads
/// again). `edit` returning `Ok(None)` means nothing changes.
async fn rewrite_user<F>(db: &Db, journal: &Journal, actor: &str, id: Uuid, action: &str, mut edit: F) -> Result<User, ServiceError>
where
    F: FnMut(&User) -> Result<Option<(User, String)>, ServiceError>,
{
    let subject = utalk_actors::durability::unique_subject("user", &id.to_string());
    let _one_at_a_time = USER_WRITES.lock().await;
    for _ in 0..10 {
        let expected = journal.sync_subject(&subject).await?;
        let current = user::get(db, id)?.ok_or(ServiceError::NotFound("user"))?;
        let Some((new, what)) = edit(&current)? else { return Ok(current) };
        let mut b = Batch::new();
        user::put(&mut b, &new)?;
        AuditEvent::new(actor, action, format!("{} {what}", new.email)).add_to(&mut b)?;
        if journal.commit_fenced(&subject, expected, b).await? {
            return Ok(new);
        }
    }
    Err(ServiceError::Conflict { code: "concurrent_change", message: "the user keeps changing on other nodes; retry".into() })
}

/// Who changes a user: an admin through the API, or the operator at the
/// command line (who runs the data directory and may change anyone).
#[derive(Debug, Clone, Copy)]
pub enum ChangedBy {
    /// A staff user (or API key) with this id.
    Staff(Uuid),
    /// `utalk user …`.
    CommandLine,
}

impl ChangedBy {
    fn actor(self) -> String {
        match self {
            ChangedBy::Staff(id) => id.to_string(),
            ChangedBy::CommandLine => "cli".into(),
        }
    }
}

/// Applies an admin's change to user `id`. An admin may not change their
/// own role or disable themselves, so the last admin cannot lock everyone
/// out. A disabled user's access tokens, refresh tokens and open sockets
/// stop working (see `docs/auth.md`).
pub async fn change_user(db: &Db, journal: &Journal, by: ChangedBy, id: Uuid, change: UserChange) -> Result<User, ServiceError> {
    if matches!(by, ChangedBy::Staff(actor) if actor == id)
        && (change.role.is_some_and(|r| r != Role::Admin) || change.disabled == Some(true))
    {
        return Err(ServiceError::Conflict { code: "cannot_change_self", message: "admins may not demote or disable themselves".into() });
    }
    let name = match change.name.as_deref().map(str::trim) {
        Some(n) if n.chars().count() > MAX_NAME_CHARS || n.chars().any(char::is_control) => {
            return Err(ServiceError::Invalid {
                code: "validation_failed",
                message: format!("name must have at most {MAX_NAME_CHARS} characters and no control characters"),
            })
        }
        Some("") => Some(None),
        Some(n) => Some(Some(n.to_string())),
        None => None,
    };
    rewrite_user(db, journal, &by.actor(), id, "user.update", |u| {
        let mut new = u.clone();
        let mut what = Vec::new();
        if let Some(role) = change.role.filter(|r| *r != u.role) {
            what.push(format!("role {}→{}", u.role.as_str(), role.as_str()));
            new.role = role;
        }
        if let Some(name) = name.clone().filter(|n| *n != u.name) {
            what.push("name changed".to_string());
            new.name = name;
        }
        if let Some(disabled) = change.disabled.filter(|d| *d != u.disabled) {
            what.push(if disabled { "disabled" } else { "enabled" }.to_string());
            new.disabled = disabled;
            if disabled {
                new.signed_out_at = Some(Timestamp::now());
            }
        }
        Ok((!what.is_empty()).then(|| (new, what.join(", "))))
    })
    .await
}

/// Sets user `id`'s password: an admin's reset (`action` `user.password_reset`)
/// or the user's own change (`user.password_change`), checked against the policy.
pub async fn set_password(
    db: &Db,
    journal: &Journal,
    by: ChangedBy,
    id: Uuid,
    new_password: &str,
    action: &str,
) -> Result<User, ServiceError> {
    password::check_policy(new_password).map_err(|e| ServiceError::Invalid { code: "weak_password", message: e.to_string() })?;
    let pw = new_password.to_owned();
    let hash =
        super::blocking(move || password::hash(&pw).map_err(|e| ServiceError::Internal(format!("password hashing failed: {e}")))).await?;
    rewrite_user(db, journal, &by.actor(), id, action, |u| {
        let mut new = u.clone();
        new.password_hash = hash.clone();
        // Every session of the old password ends (the caller's own change
        // hands it a new pair, issued after this).
        new.signed_out_at = Some(Timestamp::now());
        Ok(Some((new, "password set; signed out everywhere".to_string())))
    })
    .await
}
