//! The media store: files under `<data dir>/media`, named by media id, and
//! the signed, expiring URLs they are served through. In a cluster each file
//! is also kept in the cluster, so any node can serve it: a node that lacks a
//! file takes it from there and keeps a local copy.

use crate::cluster::{Blobs, ClusterError};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use utalk_storage::Timestamp;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Limits and URL settings of the media store.
#[derive(Debug, Clone)]
pub struct MediaLimits {
    /// Largest file, bytes.
    pub max_bytes: u64,
    /// Accepted MIME types; `type/*` accepts a whole family.
    pub allowed_types: Vec<String>,
    /// Lifetime of a signed URL.
    pub url_ttl: Duration,
}

/// Why a signed URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The signature does not match.
    #[error("the media URL's signature is not valid")]
    BadSignature,
    /// The URL's time is over.
    #[error("the media URL has expired; ask for a new one")]
    Expired,
}

/// Why a file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaRefused {
    /// Larger than the limit.
    #[error("media of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size seen so far.
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// Not an accepted type.
    #[error("media type {0} is not accepted")]
    TypeNotAllowed(String),
}

/// Why a media file could not be kept or read.
#[derive(Debug, thiserror::Error)]
pub enum MediaFileError {
    /// The local disk failed.
    #[error("media file: {0}")]
    Io(#[from] std::io::Error),
    /// The cluster's copy could not be written or read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// A signed URL and when it stops working.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SignedUrl {
    /// Media id.
    pub id: Uuid,
    /// The URL (absolute when a public URL is configured).
    pub url: String,
    /// When it expires.
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

/// Files and URLs of media.
pub struct MediaStore {
    root: PathBuf,
    key: Vec<u8>,
    /// What a media URL starts with, before the id: where the HTTP layer serves media.
    url_prefix: String,
    /// Where the cluster keeps files (none on one node alone); `None` until set.
    blobs: Option<Arc<dyn Blobs>>,
    /// Limits.
    pub limits: MediaLimits,
}

impl std::fmt::Debug for MediaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaStore").field("root", &self.root).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl MediaStore {
    /// A store in `data_dir/media`, signing URLs with `secret`; a URL is
    /// `url_prefix` (say `https://chat.example.com/api/v1/media/`, chosen by
    /// the HTTP layer that serves them) followed by the id and its signature.
    pub fn new(data_dir: &Path, secret: &[u8], url_prefix: String, limits: MediaLimits) -> std::io::Result<MediaStore> {
        let root = data_dir.join("media");
        std::fs::create_dir_all(&root)?;
        Ok(MediaStore { root, key: secret.to_vec(), url_prefix, blobs: None, limits })
    }

    /// The same store, keeping every file in the cluster's `blobs` as well
    /// (on one node alone there are none to keep: its files are only its own).
    pub fn with_blobs(mut self, blobs: Arc<dyn Blobs>) -> MediaStore {
        self.blobs = Some(blobs);
        self
    }

    /// The file's name in the cluster.
    fn blob_name(id: Uuid) -> String {
        format!("media-{}", id.simple())
    }

    /// Writes the file of `id` durably here and, in a cluster, where every
    /// node can read it; returns its SHA-256. Done only when both copies are.
    pub async fn save(self: &Arc<Self>, id: Uuid, bytes: Bytes) -> Result<String, MediaFileError> {
        let sha = self.write_blocking(id, bytes.clone()).await?;
        if let Some(c) = &self.blobs {
            if let Err(e) = c.put_blob(&Self::blob_name(id), bytes).await {
                // Nothing will point to the local copy: do not leave it behind.
                let _ = std::fs::remove_file(self.path(id));
                return Err(e.into());
            }
        }
        Ok(sha)
    }

    /// The bytes of the file of `id`: the local copy, else the cluster's
    /// (kept here from then on); `None` when neither has it.
    pub async fn load(self: &Arc<Self>, id: Uuid) -> Result<Option<Bytes>, MediaFileError> {
        let path = self.path(id);
        let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await.map_err(|e| std::io::Error::other(e.to_string()))?;
        match read {
            Ok(b) => return Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        let Some(c) = &self.blobs else { return Ok(None) };
        let Some(bytes) = c.get_blob(&Self::blob_name(id)).await? else { return Ok(None) };
        // A failed local copy only costs the next read another trip to the cluster.
        if let Err(e) = self.write_blocking(id, bytes.clone()).await {
            tracing::warn!(media = %id, error = %e, "could not keep a local copy of a media file");
        }
        Ok(Some(bytes))
    }

    /// [`MediaStore::write`] on a blocking thread.
    async fn write_blocking(self: &Arc<Self>, id: Uuid, bytes: Bytes) -> std::io::Result<String> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(id, &bytes)).await.map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// Removes the file of `id` here and from the cluster (a best effort: for
    /// files no record points to).
    pub async fn remove(&self, id: Uuid) {
        let _ = std::fs::remove_file(self.path(id));
        if let Some(c) = &self.blobs {
            if let Err(e) = c.delete_blob(&Self::blob_name(id)).await {
                tracing::warn!(media = %id, error = %e, "could not remove a media file from the cluster");
            }
        }
    }

    /// The directory holding the files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the file of `id` lives: fanned out by the id's last byte so no directory grows huge.
    pub fn path(&self, id: Uuid) -> PathBuf {
        let hex = id.simple().to_string();
        self.root.join(&hex[30..]).join(hex)
    }

    /// Whether `content_type` may be stored (parameters such as `; charset` are ignored).
    pub fn check_type(&self, content_type: &str) -> Result<String, MediaRefused> {
        let essence = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        let family = essence.split('/').next().unwrap_or("");
        let ok = !essence.is_empty()
            && self.limits.allowed_types.iter().any(|a| a == &essence || a.strip_suffix("/*").is_some_and(|f| f == family));
        if ok {
            Ok(essence)
        } else {
            Err(MediaRefused::TypeNotAllowed(if essence.is_empty() { "(none)".into() } else { essence }))
        }
    }

    /// Refuses a size over the limit.
    pub fn check_size(&self, size: u64) -> Result<(), MediaRefused> {
        if size > self.limits.max_bytes {
            Err(MediaRefused::TooLarge { size, limit: self.limits.max_bytes })
        } else {
            Ok(())
        }
    }

    /// Writes the file of `id` durably (temp file, fsync, rename, fsync of the
    /// directory) and returns its SHA-256. Blocking: call from a blocking thread.
    pub fn write(&self, id: Uuid, bytes: &[u8]) -> std::io::Result<String> {
        let path = self.path(id);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{}.tmp", id.simple()));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(&dir)?.sync_all()?;
        Ok(hex::encode(Sha256::digest(bytes)))
    }

    fn mac(&self, subject: &[u8], expires: i64) -> HmacSha256 {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut m = HmacSha256::new_from_slice(&self.key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        m.update(subject);
        m.update(&expires.to_be_bytes());
        m
    }

    fn sign(&self, id: Uuid, expires: i64) -> HmacSha256 {
        self.mac(id.as_bytes(), expires)
    }

    /// Paths are signed under their own prefix so that no path's signature is a media id's.
    fn path_subject(path: &str) -> Vec<u8> {
        [b"path:".as_slice(), path.as_bytes()].concat()
    }

    /// A query (`expires=…&sig=…`) that opens `path` (another file served to staff, such as a report) without a token until `ttl` has passed.
    pub fn sign_path(&self, path: &str, ttl: Duration) -> (String, Timestamp) {
        let expires = Timestamp::now().millis() / 1000 + ttl.as_secs().max(1) as i64;
        let sig = hex::encode(self.mac(&Self::path_subject(path), expires).finalize().into_bytes());
        (format!("expires={expires}&sig={sig}"), Timestamp(expires * 1000))
    }

    /// Checks a signed path's `expires` (Unix seconds) and `sig` at `now`.
    pub fn verify_path(&self, path: &str, expires: i64, sig: &str, now: Timestamp) -> Result<(), UrlError> {
        check(self.mac(&Self::path_subject(path), expires), expires, sig, now)
    }

    /// A URL for `id` that works without a token until `ttl` (default: the configured lifetime) has passed.
    pub fn signed_url(&self, id: Uuid, ttl: Option<Duration>) -> SignedUrl {
        let ttl = ttl.unwrap_or(self.limits.url_ttl);
        let expires = Timestamp::now().millis() / 1000 + ttl.as_secs().max(1) as i64;
        let sig = hex::encode(self.sign(id, expires).finalize().into_bytes());
        let prefix = &self.url_prefix;
        SignedUrl { id, url: format!("{prefix}{id}?expires={expires}&sig={sig}"), expires_at: Timestamp(expires * 1000) }
    }

    /// Checks a URL's `expires` (Unix seconds) and `sig` for `id` at `now`.
    pub fn verify(&self, id: Uuid, expires: i64, sig: &str, now: Timestamp) -> Result<(), UrlError> {
        check(self.sign(id, expires), expires, sig, now)
    }
}

/// Checks `sig` against `mac`, then the expiry.
fn check(mac: HmacSha256, expires: i64, sig: &str, now: Timestamp) -> Result<(), UrlError> {
    let given = hex::decode(sig).map_err(|_| UrlError::BadSignature)?;
    mac.verify_slice(&given).map_err(|_| UrlError::BadSignature)?;
    if now.millis() / 1000 >= expires {
        return Err(UrlError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> MediaStore {
        let limits = MediaLimits {
            max_bytes: 10,
            allowed_types: vec!["image/*".into(), "application/pdf".into()],
            url_ttl: Duration::from_secs(60),
        };
        MediaStore::new(dir, b"secret", "https://chat.example.com/api/v1/media/".into(), limits).expect("store")
    }

    #[test]
    fn signed_urls_verify_until_they_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        let id = Uuid::new_v4();
        let u = s.signed_url(id, None);
        assert!(u.url.starts_with(&format!("https://chat.example.com/api/v1/media/{id}?expires=")));
        let q = u.url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let expires: i64 = q.split('&').find_map(|p| p.strip_prefix("expires=")).and_then(|v| v.parse().ok()).unwrap_or(0);
        let sig = q.split('&').find_map(|p| p.strip_prefix("sig=")).unwrap_or_default();
        assert_eq!(s.verify(id, expires, sig, Timestamp::now()), Ok(()));
        assert_eq!(s.verify(id, expires, sig, Timestamp((expires + 1) * 1000)), Err(UrlError::Expired));
        assert_eq!(s.verify(id, expires + 3600, sig, Timestamp::now()), Err(UrlError::BadSignature), "a stretched expiry");
        assert_eq!(s.verify(Uuid::new_v4(), expires, sig, Timestamp::now()), Err(UrlError::BadSignature), "another id");
        assert_eq!(s.verify(id, expires, "zz", Timestamp::now()), Err(UrlError::BadSignature));
    }

    #[test]
    fn signed_paths_verify_for_their_path_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        let (q, _) = s.sign_path("/reports/daily-2026-11-02.html", Duration::from_secs(60));
        let expires: i64 = q.split('&').find_map(|p| p.strip_prefix("expires=")).and_then(|v| v.parse().ok()).unwrap_or(0);
        let sig = q.split('&').find_map(|p| p.strip_prefix("sig=")).unwrap_or_default();
        let now = Timestamp::now();
        assert_eq!(s.verify_path("/reports/daily-2026-11-02.html", expires, sig, now), Ok(()));
        assert_eq!(s.verify_path("/reports/daily-2026-11-03.html", expires, sig, now), Err(UrlError::BadSignature));
        assert_eq!(s.verify_path("/reports/daily-2026-11-02.html", expires, sig, Timestamp((expires + 1) * 1000)), Err(UrlError::Expired));
    }

    #[test]
    fn types_and_sizes_are_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        assert_eq!(s.check_type("image/JPEG; q=1"), Ok("image/jpeg".into()));
        assert_eq!(s.check_type("application/pdf"), Ok("application/pdf".into()));
        assert!(s.check_type("application/x-msdownload").is_err());
        assert!(s.check_type("").is_err());
        assert!(s.check_size(10).is_ok());
        assert_eq!(s.check_size(11), Err(MediaRefused::TooLarge { size: 11, limit: 10 }));
    }

    #[test]
    fn files_are_written_where_path_says() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = store(dir.path());
        let id = Uuid::new_v4();
        let sha = s.write(id, b"abc").expect("write");
        assert_eq!(sha, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(std::fs::read(s.path(id)).expect("read"), b"abc");
    }
}
