//! The secrets utalk generates for itself when the operator sets none, kept
//! in the data directory's meta map: the token signing keys, shared by
//! every node of a cluster (written through the log) and rotated by the
//! `secret_rotation` job; the media URL secret, shared the same way.

use crate::config::Secret;
use base64::Engine;
use rand::RngCore;
use utalk_actors::durability::JournalError;
use utalk_actors::Journal;
use utalk_storage::{Batch, Db, Map, StoreError, Timestamp};

const META_JWT_SECRET: &[u8] = b"jwt_secret";
const META_JWT_PREVIOUS: &[u8] = b"jwt_previous";
const META_MEDIA_SECRET: &[u8] = b"media_url_secret";

/// Why a stored secret could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Reading the meta map failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The write did not reach storage.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A stored value is damaged.
    #[error("the stored {0} is damaged (not UTF-8 or not the expected JSON)")]
    Damaged(&'static str),
}

/// The media URL signing secret generated for this data directory.
pub async fn media_url_secret(db: &Db, journal: &Journal) -> Result<Secret, SecretError> {
    stored_or_generated(db, journal, META_MEDIA_SECRET, "a media URL signing secret", "UTALK_MEDIA__URL_SECRET").await
}

/// The secret kept under `key`, generated (48 random bytes) and stored on
/// first use. `what` and `setting` name it in the log line that says so.
async fn stored_or_generated(db: &Db, journal: &Journal, key: &[u8], what: &'static str, setting: &str) -> Result<Secret, SecretError> {
    if let Some(v) = db.get_raw(Map::Meta, key)? {
        return Ok(Secret::new(String::from_utf8(v).map_err(|_| SecretError::Damaged(what))?));
    }
    let mut b = Batch::new();
    b.put_raw(Map::Meta, key.to_vec(), random_secret().into_bytes());
    // Through the log: in a cluster the first node to start makes it, and every node signs alike.
    if journal.commit_first("generated_secret", &String::from_utf8_lossy(key), b).await? {
        tracing::info!("generated {what} and stored it in the data directory (set {setting} to manage it yourself)");
    } else {
        journal.sync_log().await?;
    }
    let v = db.get_raw(Map::Meta, key)?.ok_or(SecretError::Damaged(what))?;
    Ok(Secret::new(String::from_utf8(v).map_err(|_| SecretError::Damaged(what))?))
}

fn random_secret() -> String {
    let mut bytes = [0u8; 48];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing secret rotated out, kept so that tokens it signed verify until they expire.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct PreviousKey {
    secret: String,
    valid_until_ms: i64,
}

/// The generated token signing keys, shared by every node of a cluster
/// (written through the log): the current one, when it was made, and the
/// ones rotated out while their grace lasts.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct SigningKeys {
    current: String,
    created_ms: i64,
    #[serde(default)]
    previous: Vec<PreviousKey>,
}

/// The signing keys in force: the current secret, when it was made, and
/// the rotated-out ones still verifying, with when they stop.
pub struct Keys {
    /// Signs new tokens.
    pub current: Secret,
    /// When the current one was made (for its age).
    pub created_at: Timestamp,
    /// Still verify until their time.
    pub previous: Vec<(Secret, Timestamp)>,
}

const META_SIGNING_KEYS: &[u8] = b"signing_keys";

fn read_keys(db: &Db) -> Result<Option<SigningKeys>, SecretError> {
    match db.get_raw(Map::Meta, META_SIGNING_KEYS)? {
        Some(v) => serde_json::from_slice(&v).map(Some).map_err(|_| SecretError::Damaged("token signing keys")),
        None => Ok(None),
    }
}

fn keys_batch(k: &SigningKeys) -> Result<Batch, SecretError> {
    let mut b = Batch::new();
    b.put_raw(Map::Meta, META_SIGNING_KEYS.to_vec(), serde_json::to_vec(k).map_err(|_| SecretError::Damaged("token signing keys"))?);
    Ok(b)
}

fn view(k: SigningKeys) -> Keys {
    let now = Timestamp::now().millis();
    Keys {
        current: Secret::new(k.current),
        created_at: Timestamp(k.created_ms),
        previous: k
            .previous
            .into_iter()
            .filter(|p| p.valid_until_ms > now)
            .map(|p| (Secret::new(p.secret), Timestamp(p.valid_until_ms)))
            .collect(),
    }
}

/// The generated signing keys as this node's store holds them now, if any.
pub fn stored_keys(db: &Db) -> Result<Option<Keys>, SecretError> {
    Ok(read_keys(db)?.map(view))
}

/// The generated signing keys, made on first use: through the log, so that
/// in a cluster the first node to start makes them and every node signs
/// and verifies with the same. A data directory from before shared keys
/// keeps its own secret (and the ones rotated out), counted as new today.
pub async fn signing_keys(db: &Db, journal: &Journal) -> Result<Keys, SecretError> {
    if let Some(k) = read_keys(db)? {
        return Ok(view(k));
    }
    let inherited = match db.get_raw(Map::Meta, META_JWT_SECRET)? {
        Some(v) => Some(String::from_utf8(v).map_err(|_| SecretError::Damaged("token signing secret"))?),
        None => None,
    };
    let previous = match db.get_raw(Map::Meta, META_JWT_PREVIOUS)? {
        Some(v) => serde_json::from_slice(&v).map_err(|_| SecretError::Damaged("list of rotated signing secrets"))?,
        None => Vec::new(),
    };
    let made = inherited.is_none();
    let keys = SigningKeys { current: inherited.unwrap_or_else(random_secret), created_ms: Timestamp::now().millis(), previous };
    // The first writer wins; the others wait for its keys to reach them.
    if !journal.commit_first("signing_keys", "initial", keys_batch(&keys)?).await? {
        journal.sync_log().await?;
    }
    if made {
        tracing::info!("generated the token signing key (set UTALK_JWT_SECRET to manage it yourself); the secret_rotation job replaces it every auth.jwt_rotate_days");
    }
    read_keys(db)?.map(view).ok_or(SecretError::Damaged("token signing keys (written, then not found)"))
}

/// Replaces the generated signing key with a new one, through the log so
/// that every node of a cluster takes it; the old one keeps verifying
/// tokens for `grace`. Returns when the grace ends.
pub async fn rotate_jwt(db: &Db, journal: &Journal, grace: std::time::Duration) -> Result<Timestamp, SecretError> {
    let now = Timestamp::now();
    let until = Timestamp(now.millis().saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX)));
    let old = match read_keys(db)? {
        Some(k) => k,
        None => {
            signing_keys(db, journal).await?;
            read_keys(db)?.ok_or(SecretError::Damaged("token signing keys (written, then not found)"))?
        }
    };
    let mut previous: Vec<PreviousKey> = old.previous.into_iter().filter(|k| k.valid_until_ms > now.millis()).collect();
    previous.push(PreviousKey { secret: old.current, valid_until_ms: until.millis() });
    let replaced = old.created_ms.to_string();
    let keys = SigningKeys { current: random_secret(), created_ms: now.millis(), previous };
    // Fenced on the key it replaces: of two rotations of one key (two
    // runners, or a retry), the first wins and the second takes its keys.
    if !journal.commit_first("signing_keys_rotation", &replaced, keys_batch(&keys)?).await? {
        journal.sync_log().await?;
    }
    Ok(until)
}

/// How old the signing key in force is (the configured one's age only when
/// `auth.jwt_secret_set_at` says when it was set), and the age it must not reach.
pub fn signing_key_age(db: &Db, config: &crate::config::Config) -> (Option<std::time::Duration>, std::time::Duration) {
    let limit = std::time::Duration::from_secs(config.auth.jwt_rotate_days.saturating_mul(86_400));
    let since = if config.jwt_secret.is_some() {
        config.auth.jwt_secret_set_at.as_deref().and_then(Timestamp::parse_rfc3339)
    } else {
        stored_keys(db).ok().flatten().map(|k| k.created_at)
    };
    let age =
        since.map(|t| std::time::Duration::from_millis(u64::try_from(Timestamp::now().millis().saturating_sub(t.millis())).unwrap_or(0)));
    (age, limit)
}

/// The `secret_rotation` job: replaces the generated signing key once it is
/// `max_age` old (nothing to do when the operator sets the secret).
pub struct RotationTask {
    /// Reads.
    pub db: Db,
    /// Writes, through the log.
    pub journal: Journal,
    /// Whether the secret is configured (then the operator rotates it).
    pub configured: bool,
    /// Age at which the key is replaced.
    pub max_age: std::time::Duration,
    /// How long the replaced key keeps verifying.
    pub grace: std::time::Duration,
}

impl utalk_schedules::Task for RotationTask {
    fn run(&self) -> futures_util::future::BoxFuture<'static, utalk_schedules::scheduler::Figures> {
        let (db, journal, configured, max_age, grace) = (self.db.clone(), self.journal.clone(), self.configured, self.max_age, self.grace);
        Box::pin(async move {
            let mut f = std::collections::BTreeMap::new();
            if configured {
                f.insert("configured".into(), 1.0);
                return Ok(f);
            }
            let keys = signing_keys(&db, &journal).await.map_err(utalk_schedules::scheduler::JobError::step)?;
            let age_ms = Timestamp::now().millis().saturating_sub(keys.created_at.millis());
            f.insert("ageDays".into(), age_ms as f64 / 86_400_000.0);
            let due = u128::try_from(age_ms).unwrap_or(0) >= max_age.as_millis();
            if due {
                let until = rotate_jwt(&db, &journal, grace).await.map_err(utalk_schedules::scheduler::JobError::step)?;
                tracing::info!(valid_until = %until.to_rfc3339(), "rotated the token signing key; the old one verifies until then");
            }
            f.insert("rotated".into(), f64::from(u8::from(due)));
            Ok(f)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_actors::durability::Durability;
    use utalk_actors::StoreWriter;
    use utalk_schedules::Task;

    const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

    fn task(db: &Db, journal: &Journal) -> RotationTask {
        RotationTask { db: db.clone(), journal: journal.clone(), configured: false, max_age: DAY * 90, grace: DAY * 7 }
    }

    #[actix_web::test]
    async fn the_generated_key_is_replaced_once_it_is_old_and_the_old_one_verifies_through_its_grace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &utalk_storage::DbOptions::default()).expect("open");
        let writer = StoreWriter::start(db.clone(), Durability::Sync).expect("writer");
        let journal = Journal::standalone(&db, writer.clone(), "test");

        // A data directory from before shared keys keeps its secret.
        let mut b = Batch::new();
        b.put_raw(Map::Meta, META_JWT_SECRET.to_vec(), b"an-old-per-node-secret-of-enough-length".to_vec());
        journal.commit_node(b).await.expect("write");
        let first = signing_keys(&db, &journal).await.expect("keys");
        assert_eq!(first.current.expose(), "an-old-per-node-secret-of-enough-length");

        // Young: nothing happens.
        let figures = task(&db, &journal).run().await.expect("run");
        assert_eq!(figures.get("rotated"), Some(&0.0));
        assert_eq!(stored_keys(&db).expect("read").expect("keys").current.expose(), first.current.expose());

        // 91 days old: replaced; the old one verifies for 7 days more.
        let mut old = read_keys(&db).expect("read").expect("keys");
        old.created_ms -= 91 * 86_400_000;
        journal.commit(keys_batch(&old).expect("encode")).await.expect("write");
        let figures = task(&db, &journal).run().await.expect("run");
        assert_eq!(figures.get("rotated"), Some(&1.0));
        let now = stored_keys(&db).expect("read").expect("keys");
        assert_ne!(now.current.expose(), first.current.expose());
        assert!(Timestamp::now().millis() - now.created_at.millis() < 60_000);
        let (previous, until) = now.previous.first().expect("the old key");
        assert_eq!(previous.expose(), first.current.expose());
        let grace = until.millis() - Timestamp::now().millis();
        assert!((6 * 86_400_000..=7 * 86_400_000).contains(&grace), "{grace}");

        // A configured secret is the operator's to rotate.
        let figures = RotationTask { configured: true, ..task(&db, &journal) }.run().await.expect("run");
        assert_eq!(figures.get("configured"), Some(&1.0));
        writer.shutdown();
    }
}
