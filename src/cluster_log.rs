//! Backup and restore of a cluster's replicated log (`utalk cluster backup|restore`).
//!
//! The log is the truth of a cluster: with it, any node can be rebuilt from
//! an empty data directory. A backup is every entry from position 1 to the
//! log's end when it started, in a file of its own format: a header line,
//! then for each entry its position, subject and payload (each length
//! prefixed), then a trailer with the count and a SHA-256 of everything
//! before it. A restore refuses a log that is not empty and checks that
//! each entry lands at its old position, so that nodes' applied positions
//! stay true.

use anyhow::{bail, Context};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use utalk_actors::cluster::{Cluster, LogEntry, LOG_FILTER};

const MAGIC: &[u8] = b"utalk-cluster-log 1\n";

/// Writes every entry of the log up to its current end into `to`; returns the number written.
pub async fn backup(cluster: &dyn Cluster, to: &Path, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<u64> {
    if to.exists() {
        bail!("{} exists; pick a new file", to.display());
    }
    let end = cluster.log_end().await.context("cannot read the log's end")?;
    let tmp = to.with_extension("partial");
    let file = std::fs::File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    let mut out = Hashing { inner: BufWriter::new(file), hash: Sha256::new() };
    out.write_all(MAGIC)?;
    let mut count = 0u64;
    if end > 0 {
        let mut entries = cluster.follow(LOG_FILTER, 0).await.context("cannot read the log")?;
        while let Some(entry) = entries.next().await {
            let entry = entry.context("reading the log broke off; run the backup again")?;
            if entry.position > end {
                break;
            }
            write_entry(&mut out, &entry)?;
            count += 1;
            if count.is_multiple_of(10_000) {
                progress(entry.position, end);
            }
            if entry.position == end {
                break;
            }
        }
    }
    let digest = out.hash.clone().finalize();
    let mut file = out.inner;
    file.write_all(&count.to_be_bytes())?;
    file.write_all(&digest)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, to)?;
    progress(end, end);
    Ok(count)
}

/// Appends every entry of the backup `from` to an empty log, each at its old position.
pub async fn restore(cluster: &dyn Cluster, from: &Path, progress: &mut dyn FnMut(u64, u64)) -> anyhow::Result<u64> {
    let (count, last) = verify(from)?;
    let end = cluster.log_end().await.context("cannot read the log's end")?;
    if end != 0 {
        bail!("the cluster's log is not empty (it ends at position {end}); restore only into a new NATS cluster");
    }
    let mut r = BackupReader::open(from)?;
    let mut done = 0u64;
    while let Some(e) = r.next_entry()? {
        let id = format!("restore.{}", e.position);
        let at = cluster
            .append(&e.subject, None, &id, e.payload.clone())
            .await
            .with_context(|| format!("appending entry {} failed; restore into a new NATS cluster again", e.position))?;
        if at != e.position {
            bail!("entry {} landed at position {at}: the log was not empty or the backup has gaps", e.position);
        }
        done += 1;
        if done.is_multiple_of(10_000) {
            progress(e.position, last);
        }
    }
    progress(last, last);
    Ok(count)
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
        if magic != MAGIC || len < (MAGIC.len() + TRAILER) as u64 {
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

/// Checks a backup file whole; returns its number of entries and last position.
pub fn verify(from: &Path) -> anyhow::Result<(u64, u64)> {
    let mut r = BackupReader::open(from)?;
    let (mut count, mut last) = (0u64, 0u64);
    while let Some(e) = r.next_entry()? {
        if e.position <= last {
            bail!("the backup's positions do not increase at entry {}", e.position);
        }
        last = e.position;
        count += 1;
    }
    r.finish(count)?;
    Ok((count, last))
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
