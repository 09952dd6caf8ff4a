//! Backups: RocksDB's BackupEngine (incremental: unchanged table files are
//! shared between backups), verified after each one, plus the media files,
//! which are immutable and copied when missing.
//!
//! A backup is taken without a memtable flush, so it carries the WAL: every
//! map is restored to the same instant, and everything acknowledged before
//! the backup began is in it.

use crate::db::Db;
use crate::error::StoreError;
use crate::time::Timestamp;
use rocksdb::backup::{BackupEngine, BackupEngineOptions, RestoreOptions};
use std::path::{Path, PathBuf};

/// One backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupInfo {
    /// Id (increasing).
    pub id: u32,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Bytes of the files it references (shared files counted in each).
    pub size: u64,
    /// Files it references.
    pub files: u32,
}

/// The backups kept in one directory.
#[derive(Debug, Clone)]
pub struct Backups {
    dir: PathBuf,
}

fn engine_error(e: rocksdb::Error) -> StoreError {
    StoreError::Engine(e.into_string())
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Engine(format!("{what} {}: {e}", path.display()))
}

/// The erasure ledger's name in the backup directory: kept beside the
/// backups so that a restore of an older one can be erased again.
pub const LEDGER: &str = "erasures.jsonl";

/// Every file under `dir` (none when it does not exist), with its path
/// relative to `dir` in `/` form, sorted; files still being written
/// (`.tmp`, their record not committed yet) are left out.
pub(crate) fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    let mut stack = if dir.exists() { vec![dir.to_path_buf()] } else { Vec::new() };
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| io_error("cannot read", &d, e))? {
            let e = e.map_err(|e| io_error("cannot read", &d, e))?;
            let p = e.path();
            if e.file_type().map_err(|e| io_error("cannot read", &p, e))?.is_dir() {
                stack.push(p);
            } else if !e.file_name().to_string_lossy().ends_with(".tmp") {
                let rel: Vec<String> =
                    p.strip_prefix(dir).unwrap_or(&p).components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                out.push((rel.join("/"), p));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies the files under `from` into `to` that `to` lacks (or has with another size); returns how many.
fn copy_missing(from: &Path, to: &Path) -> Result<u64, StoreError> {
    let mut copied = 0;
    for (rel, src) in files_under(from)? {
        let dst = to.join(&rel);
        if std::fs::metadata(&dst).map(|m| Some(m.len()) != std::fs::metadata(&src).ok().map(|s| s.len())).unwrap_or(true) {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io_error("cannot create", parent, e))?;
            }
            std::fs::copy(&src, &dst).map_err(|e| io_error("cannot copy", &src, e))?;
            copied += 1;
        }
    }
    Ok(copied)
}

impl Backups {
    /// The backups in `dir` (created on first use).
    pub fn new(dir: impl Into<PathBuf>) -> Backups {
        Backups { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn engine(&self) -> Result<BackupEngine, StoreError> {
        std::fs::create_dir_all(self.dir.join("db")).map_err(|e| io_error("cannot create", &self.dir, e))?;
        let opts = BackupEngineOptions::new(self.dir.join("db")).map_err(engine_error)?;
        let env = rocksdb::Env::new().map_err(engine_error)?;
        BackupEngine::open(&opts, &env).map_err(engine_error)
    }

    /// Takes a backup of `db` and of the media under `media`, verifies it, and returns it.
    /// `progress` hears each step.
    pub fn create(&self, db: &Db, media: &Path, progress: &mut dyn FnMut(&str)) -> Result<BackupInfo, StoreError> {
        let mut engine = self.engine()?;
        progress("copying database files");
        engine.create_new_backup_flush(db.raw(), false).map_err(engine_error)?;
        let info = engine
            .get_backup_info()
            .into_iter()
            .max_by_key(|i| i.backup_id)
            .ok_or_else(|| StoreError::Engine("backup not listed".into()))?;
        progress("verifying");
        engine.verify_backup(info.backup_id).map_err(engine_error)?;
        progress("copying media files");
        let media_dir = self.dir.join("media");
        std::fs::create_dir_all(&media_dir).map_err(|e| io_error("cannot create", &media_dir, e))?;
        let copied = copy_missing(media, &media_dir)?;
        progress(&format!("copied {copied} new media files"));
        Ok(BackupInfo { id: info.backup_id, created_at: Timestamp(info.timestamp * 1000), size: info.size, files: info.num_files })
    }

    /// Every backup, oldest first.
    pub fn list(&self) -> Result<Vec<BackupInfo>, StoreError> {
        let mut v: Vec<BackupInfo> = self
            .engine()?
            .get_backup_info()
            .into_iter()
            .map(|i| BackupInfo { id: i.backup_id, created_at: Timestamp(i.timestamp * 1000), size: i.size, files: i.num_files })
            .collect();
        v.sort_by_key(|b| b.id);
        Ok(v)
    }

    /// Checks that backup `id`'s files are all there with their sizes and checksums.
    pub fn verify(&self, id: u32) -> Result<(), StoreError> {
        self.engine()?.verify_backup(id).map_err(engine_error)
    }

    /// Restores backup `id` (default: the latest) into `to`, which must not exist or be empty.
    pub fn restore(&self, id: Option<u32>, to: &Path, progress: &mut dyn FnMut(&str)) -> Result<u32, StoreError> {
        if to.exists() && std::fs::read_dir(to).map_err(|e| io_error("cannot read", to, e))?.next().is_some() {
            return Err(StoreError::Engine(format!("{} is not empty; restore into a new directory", to.display())));
        }
        let id = self.pick(id)?.id;
        progress("verifying, then restoring database files");
        self.restore_db(id, to)?;
        progress("restoring media files");
        let media = to.join("media");
        std::fs::create_dir_all(&media).map_err(|e| io_error("cannot create", &media, e))?;
        let copied = copy_missing(&self.dir.join("media"), &media)?;
        progress(&format!("restored {copied} media files"));
        Ok(id)
    }

    /// Backup `id`, or the latest when `None`.
    pub fn pick(&self, id: Option<u32>) -> Result<BackupInfo, StoreError> {
        let list = self.list()?;
        match id {
            Some(i) => {
                list.into_iter().find(|b| b.id == i).ok_or_else(|| StoreError::Engine(format!("no backup {i} in {}", self.dir.display())))
            }
            None => list.into_iter().last().ok_or_else(|| StoreError::Engine(format!("no backups in {}", self.dir.display()))),
        }
    }

    /// Verifies backup `id`, then restores its database files (no media)
    /// into `to`, created: a restore's first step, and what an off-machine
    /// archive is made from.
    pub fn restore_db(&self, id: u32, to: &Path) -> Result<(), StoreError> {
        let mut engine = self.engine()?;
        engine.verify_backup(id).map_err(engine_error)?;
        std::fs::create_dir_all(to).map_err(|e| io_error("cannot create", to, e))?;
        engine.restore_from_backup(to, to, &RestoreOptions::default(), id).map_err(engine_error)
    }

    /// Keeps the newest `keep` backups and removes the rest (their unshared files go).
    pub fn purge(&self, keep: usize) -> Result<(), StoreError> {
        self.engine()?.purge_old_backups(keep.max(1)).map_err(engine_error)
    }
}
