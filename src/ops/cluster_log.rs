//! Backup and restore of a cluster's replicated log and its files
//! (`utalk cluster backup|restore`).
//!
//! The log is the truth of a cluster: with it, any node can be rebuilt from
//! an empty data directory. Media files are kept beside it in the cluster,
//! so a backup holds both: a header line, then every log entry from
//! position 1 to the log's end when the backup started (its position,
//! subject and payload, each length prefixed), then every file the cluster
//! keeps (as entries at position 0 whose subject is `file:<name>`), then a
//! trailer with the count of entries and a SHA-256 of everything before it.
//! A restore refuses a log that is not empty and checks that each entry
//! lands at its old position, so that nodes' applied positions stay true.
//! Backups of the first format (the log alone) are still read.

use anyhow::{bail, Context};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use utalk_actors::cluster::{Blobs, ClusterError, LogEntry, LogStream, LOG_FILTER};

const MAGIC: &[u8] = b"utalk-cluster-log 2\n";
/// The first format: the log without files.
const MAGIC_V1: &[u8] = b"utalk-cluster-log 1\n";
/// Files are entries at this position, which no log entry has.
const FILE_POSITION: u64 = 0;
const FILE_PREFIX: &str = "file:";

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackupSummary {
    /// Log entries.
    pub entries: u64,
    /// The position of the last log entry.
    pub last: u64,
    /// Files.
    pub files: u64,
}

/// Writes every entry of the log up to its current end, then every file the
/// cluster keeps, into `to`.
pub async fn backup(cluster: &(impl LogStream + Blobs), to: &Path, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<BackupSummary> {
    if to.exists() {
        bail!("{} exists; pick a new file", to.display());
    }
    let end = cluster.log_end().await.context("cannot read the log's end")?;
    let tmp = to.with_extension("partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = Hashing { inner: BufWriter::new(file), hash: Sha256::new() };
    out.write_all(MAGIC)?;
    let mut summary = BackupSummary { entries: 0, last: 0, files: 0 };
    if end > 0 {
        let mut entries = cluster.follow(LOG_FILTER, 0).await.context("cannot read the log")?;
        while let Some(entry) = entries.next().await {
            let entry = entry.context("reading the log broke off; run the backup again")?;
            if entry.position > end {
                break;
            }
            write_entry(&mut out, &entry)?;
            summary.entries += 1;
            summary.last = entry.position;
            if summary.entries.is_multiple_of(10_000) {
                progress(entry.position, end);
            }
            if entry.position == end {
                break;
            }
        }
    }
    progress(end, end);
    // Listed after the log was read: a file is kept before the record that names it is logged.
    let names = cluster.list_blobs().await.context("cannot list the cluster's files")?;
    for name in &names {
        let Some(payload) = cluster.get_blob(name).await.with_context(|| format!("cannot read the file {name}"))? else {
            // Removed since it was listed: nothing names it any more.
            continue;
        };
        write_entry(&mut out, &LogEntry { subject: format!("{FILE_PREFIX}{name}"), position: FILE_POSITION, payload })?;
        summary.files += 1;
        if summary.files.is_multiple_of(100) {
            eprintln!("  file {} of {}", summary.files, names.len());
        }
    }
    let digest = out.hash.clone().finalize();
    let mut file = out.inner;
    file.write_all(&(summary.entries + summary.files).to_be_bytes())?;
    file.write_all(&digest)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, to)?;
    Ok(summary)
}

/// Runs `op` again for up to 15 s while the cluster is unavailable: a NATS
/// cluster made moments ago may not have its stream or object store ready
/// on every server yet ("no stream found"). Both callers are safe to repeat:
/// putting the same file twice keeps one, and an append is deduplicated by
/// its id.
async fn while_unavailable<T, F, Fut>(what: &str, mut op: F) -> Result<T, ClusterError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClusterError>>,
{
    let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        match op().await {
            Err(ClusterError::Unavailable(e)) if std::time::Instant::now() < until => {
                tracing::debug!(what, error = %e, "the cluster is not ready; asking again");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            other => return other,
        }
    }
}

/// Appends every entry of the backup `from` to an empty log, each at its
/// old position, and puts its files back.
pub async fn restore(cluster: &(impl LogStream + Blobs), from: &Path, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<BackupSummary> {
    let summary = verify(from)?;
    let end = cluster.log_end().await.context("cannot read the log's end")?;
    if end != 0 {
        bail!("the cluster's log is not empty (it ends at position {end}); restore only into a new NATS cluster");
    }
    let mut r = BackupReader::open(from)?;
    let mut done = 0u64;
    while let Some(e) = r.next_entry()? {
        if let Some(name) = e.subject.strip_prefix(FILE_PREFIX).filter(|_| e.position == FILE_POSITION) {
            while_unavailable(name, || cluster.put_blob(name, e.payload.clone()))
                .await
                .with_context(|| format!("putting back the file {name} failed; run the restore again"))?;
            continue;
        }
        let id = format!("restore.{}", e.position);
        let at = while_unavailable(&id, || cluster.append(&e.subject, None, &id, e.payload.clone()))
            .await
            .with_context(|| format!("appending entry {} failed; restore into a new NATS cluster again", e.position))?;
        if at != e.position {
            bail!("entry {} landed at position {at}: the log was not empty or the backup has gaps", e.position);
        }
        done += 1;
        if done.is_multiple_of(10_000) {
            progress(e.position, summary.last);
        }
    }
    progress(summary.last, summary.last);
    Ok(summary)
}

/// Reads a backup entry by entry, hashing as it goes.
struct BackupReader {
    r: BufReader<std::fs::File>,
    hash: Sha256,
    /// Bytes left before the trailer.
    left: u64,
}

impl BackupReader {
    fn open(from: &Path) -> anyhow::Result<BackupReader> {
        let file = std::fs::File::open(from).with_context(|| format!("cannot open {}", from.display()))?;
        let len = file.metadata()?.len();
        let mut r = BufReader::new(file);
        let mut magic = vec![0u8; MAGIC.len()];
        r.read_exact(&mut magic).context("the file is too short to be a log backup")?;
        if (magic != MAGIC && magic != MAGIC_V1) || len < (MAGIC.len() + TRAILER) as u64 {
            bail!("{} is not a utalk cluster log backup", from.display());
        }
        let mut hash = Sha256::new();
        hash.update(&magic);
        Ok(BackupReader { r, hash, left: len - (MAGIC.len() + TRAILER) as u64 })
    }

    fn take(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        if (n as u64) > self.left {
            bail!("the backup is truncated or damaged");
        }
        let mut buf = vec![0u8; n];
        self.r.read_exact(&mut buf).context("the backup is truncated")?;
        self.hash.update(&buf);
        self.left -= n as u64;
        Ok(buf)
    }

    fn chunk(&mut self) -> anyhow::Result<Vec<u8>> {
        let len = u32::from_be_bytes(self.take(4)?.try_into().map_err(|_| anyhow::anyhow!("truncated"))?);
        self.take(len as usize)
    }

    /// The next entry; `None` at the trailer.
    fn next_entry(&mut self) -> anyhow::Result<Option<LogEntry>> {
        if self.left == 0 {
            return Ok(None);
        }
        let position = u64::from_be_bytes(self.take(8)?.try_into().map_err(|_| anyhow::anyhow!("truncated"))?);
        let subject = String::from_utf8(self.chunk()?).context("a subject is not UTF-8")?;
        let payload = self.chunk()?;
        Ok(Some(LogEntry { subject, position, payload: payload.into() }))
    }

    /// Checks the trailer against what was read: the count and the checksum.
    fn finish(mut self, count: u64) -> anyhow::Result<()> {
        let mut tail = [0u8; TRAILER];
        self.r.read_exact(&mut tail).context("the backup is truncated (no trailer)")?;
        let stored = u64::from_be_bytes(tail[..8].try_into().map_err(|_| anyhow::anyhow!("truncated"))?);
        if stored != count || self.hash.finalize().as_slice() != &tail[8..] {
            bail!("the backup is damaged: its checksum or entry count does not match");
        }
        Ok(())
    }
}

const TRAILER: usize = 8 + 32;

/// Checks a backup file whole: its checksum, that log positions increase
/// and that files come after the log.
pub fn verify(from: &Path) -> anyhow::Result<BackupSummary> {
    let mut r = BackupReader::open(from)?;
    let mut s = BackupSummary { entries: 0, last: 0, files: 0 };
    while let Some(e) = r.next_entry()? {
        if e.position == FILE_POSITION && e.subject.starts_with(FILE_PREFIX) {
            s.files += 1;
            continue;
        }
        if s.files > 0 {
            bail!("the backup has a log entry ({}) after its files", e.position);
        }
        if e.position <= s.last {
            bail!("the backup's positions do not increase at entry {}", e.position);
        }
        s.last = e.position;
        s.entries += 1;
    }
    r.finish(s.entries + s.files)?;
    Ok(s)
}

fn write_entry(out: &mut impl Write, e: &LogEntry) -> std::io::Result<()> {
    out.write_all(&e.position.to_be_bytes())?;
    out.write_all(&(e.subject.len() as u32).to_be_bytes())?;
    out.write_all(e.subject.as_bytes())?;
    out.write_all(&(e.payload.len() as u32).to_be_bytes())?;
    out.write_all(&e.payload)
}

/// A writer that hashes what goes through it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(subject: &str, position: u64, payload: &[u8]) -> LogEntry {
        LogEntry { subject: subject.into(), position, payload: payload.to_vec().into() }
    }

    /// A backup file as `backup` writes it, with `magic` as its header.
    fn write_backup(path: &Path, magic: &[u8], entries: &[LogEntry]) {
        let mut out = Hashing { inner: Vec::new(), hash: Sha256::new() };
        out.write_all(magic).unwrap();
        for e in entries {
            write_entry(&mut out, e).unwrap();
        }
        let digest = out.hash.finalize();
        let mut bytes = out.inner;
        bytes.extend_from_slice(&(entries.len() as u64).to_be_bytes());
        bytes.extend_from_slice(&digest);
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn backups_of_the_first_format_are_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.backup");
        write_backup(&path, MAGIC_V1, &[entry("utalk.log.shared", 1, b"a"), entry("utalk.log.shared", 4, b"b")]);
        assert_eq!(verify(&path).unwrap(), BackupSummary { entries: 2, last: 4, files: 0 });
    }

    #[test]
    fn files_follow_the_log_and_are_counted_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v2.backup");
        let file = entry("file:media-1", FILE_POSITION, b"\x89PNG");
        write_backup(&path, MAGIC, &[entry("utalk.log.shared", 1, b"a"), file.clone()]);
        assert_eq!(verify(&path).unwrap(), BackupSummary { entries: 1, last: 1, files: 1 });

        let path = dir.path().join("mixed.backup");
        write_backup(&path, MAGIC, &[file, entry("utalk.log.shared", 1, b"a")]);
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("after its files"), "{err}");
    }

    #[test]
    fn a_log_entry_at_position_zero_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("zero.backup");
        write_backup(&path, MAGIC, &[entry("utalk.log.shared", 0, b"a")]);
        let err = verify(&path).unwrap_err().to_string();
        assert!(err.contains("do not increase"), "{err}");
    }
}
