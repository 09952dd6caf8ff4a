//! Off-machine copies of backups: each one archive of a whole backup (the
//! database files as a restore writes them, the media files, the erasure
//! ledger), encrypted with a key from the configuration and written to a
//! directory on another mount, where retention applies too.
//!
//! The format (`.ubk`): a 24-byte header (`UTALKBK` and a version byte, the
//! key's id, a random nonce prefix), then chunks of at most 1 MiB of the
//! archive, each sealed with AES-256-GCM under nonce = prefix · chunk number
//! and the header plus a last-chunk flag (also the length's top bit) as
//! associated data: a changed,
//! reordered, dropped or cut-off chunk fails to open, and a different key
//! is told apart by its id before anything is decrypted. Inside, entries of
//! `1 · u16 path length · path · u64 size · bytes`, ended by a `0`.
//!
//! Written to a temporary name, fsynced and renamed, so the directory only
//! ever holds whole archives. A restore writes into a new directory beside
//! the target and renames it into place only once every chunk verified, so
//! a wrong key or a damaged file changes nothing.

use crate::backup::{files_under, Backups, LEDGER};
use crate::time::Timestamp;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

const MAGIC: &[u8; 8] = b"UTALKBK\x01";
const HEADER: usize = 24;
const CHUNK: usize = 1 << 20;
const TAG: usize = 16;
/// The bit of a chunk's length that marks the last chunk.
const LAST: u32 = 1 << 31;
/// Longest path inside an archive.
const MAX_PATH: usize = 1024;
/// Where a restore puts the archived ledger until it is merged.
const RESTORED_LEDGER: &str = ".erasures.jsonl";
/// The archives' file name ending.
pub const EXTENSION: &str = "ubk";

/// Why shipping or restoring an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum OffsiteError {
    /// The key is not 32 bytes of base64.
    #[error("the backup key must be 32 random bytes in base64 (`openssl rand -base64 32`)")]
    BadKey,
    /// The archive was made with another key.
    #[error("{0} was encrypted with another key (key id {1}, this key's is {2})")]
    WrongKey(String, String, String),
    /// The archive does not open: changed, cut off, or not an archive.
    #[error("{0} is damaged or not a backup archive: {1}")]
    Damaged(String, String),
    /// Where to restore is taken.
    #[error("{0} is not empty; restore into a new directory")]
    NotEmpty(String),
    /// Reading or writing files failed.
    #[error("{0}: {1}")]
    Io(String, io::Error),
    /// The backup to ship could not be read.
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> OffsiteError + '_ {
    move |e| OffsiteError::Io(path.display().to_string(), e)
}

/// The key archives are sealed with.
#[derive(Clone)]
pub struct OffsiteKey {
    key: [u8; 32],
}

impl std::fmt::Debug for OffsiteKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OffsiteKey({})", self.id())
    }
}

impl OffsiteKey {
    /// The key from its base64 form.
    pub fn from_base64(text: &str) -> Result<OffsiteKey, OffsiteError> {
        use base64::Engine;
        // Standard or URL-safe alphabet, padded or not, as key tools print them.
        let text = text.trim().trim_end_matches('=');
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
            .map_err(|_| OffsiteError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| OffsiteError::BadKey)?;
        Ok(OffsiteKey { key })
    }

    /// A short name of the key that does not reveal it: the start of a hash.
    pub fn id(&self) -> String {
        hex::encode(self.id_bytes())
    }

    fn id_bytes(&self) -> [u8; 8] {
        let d = Sha256::new().chain_update(b"utalk offsite key id").chain_update(self.key).finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&d[..8]);
        id
    }

    fn sealing(&self) -> LessSafeKey {
        // 32 bytes is AES-256's key length, so this cannot fail.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.key).unwrap_or_else(|_| unreachable!("a 32-byte AES-256 key")))
    }
}

/// Seals what is written through it, chunk by chunk.
struct Sealer<W: Write> {
    out: W,
    key: LessSafeKey,
    header: [u8; HEADER],
    counter: u32,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> Sealer<W> {
    fn new(mut out: W, key: &OffsiteKey) -> io::Result<Sealer<W>> {
        let mut header = [0u8; HEADER];
        header[..8].copy_from_slice(MAGIC);
        header[8..16].copy_from_slice(&key.id_bytes());
        SystemRandom::new().fill(&mut header[16..24]).map_err(|_| io::Error::other("no randomness for the nonce"))?;
        out.write_all(&header)?;
        Ok(Sealer { out, key: key.sealing(), header, counter: 0, buf: Vec::with_capacity(CHUNK + TAG), written: HEADER as u64 })
    }

    fn seal(&mut self, last: bool) -> io::Result<()> {
        let nonce = nonce(&self.header, self.counter);
        self.counter = self.counter.checked_add(1).ok_or_else(|| io::Error::other("an archive past 4 PiB"))?;
        let aad = aad(&self.header, last);
        self.key.seal_in_place_append_tag(nonce, Aad::from(aad), &mut self.buf).map_err(|_| io::Error::other("sealing failed"))?;
        let len = u32::try_from(self.buf.len()).map_err(|_| io::Error::other("chunk too large"))?;
        self.out.write_all(&(len | if last { LAST } else { 0 }).to_be_bytes())?;
        self.out.write_all(&self.buf)?;
        self.written += 4 + self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Seals the last chunk and hands the output back.
    fn finish(mut self) -> io::Result<(W, u64)> {
        self.seal(true)?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.seal(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn nonce(header: &[u8; HEADER], counter: u32) -> Nonce {
    let mut n = [0u8; 12];
    n[..8].copy_from_slice(&header[16..24]);
    n[8..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

fn aad(header: &[u8; HEADER], last: bool) -> [u8; HEADER + 1] {
    let mut a = [0u8; HEADER + 1];
    a[..HEADER].copy_from_slice(header);
    a[HEADER] = u8::from(last);
    a
}

/// Opens an archive's chunks in order; an error names what is wrong.
struct Opener<R: Read> {
    input: R,
    key: LessSafeKey,
    header: [u8; HEADER],
    counter: u32,
    chunk: Vec<u8>,
    at: usize,
    ended: bool,
    name: String,
}

impl<R: Read> Opener<R> {
    fn new(mut input: R, key: &OffsiteKey, name: &str) -> Result<Opener<R>, OffsiteError> {
        let damaged = |why: &str| OffsiteError::Damaged(name.to_string(), why.to_string());
        let mut header = [0u8; HEADER];
        input.read_exact(&mut header).map_err(|_| damaged("shorter than its header"))?;
        if &header[..8] != MAGIC {
            return Err(damaged("not a utalk backup archive, or of another version"));
        }
        if header[8..16] != key.id_bytes() {
            let theirs = hex::encode(&header[8..16]);
            return Err(OffsiteError::WrongKey(name.to_string(), theirs, key.id()));
        }
        Ok(Opener { input, key: key.sealing(), header, counter: 0, chunk: Vec::new(), at: 0, ended: false, name: name.to_string() })
    }

    fn damaged(&self, why: &str) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", self.name))
    }

    /// Reads and opens the next chunk; false once the last one was read.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let mut len = [0u8; 4];
        self.input.read_exact(&mut len).map_err(|_| self.damaged("cut off before its last chunk"))?;
        // The top bit marks the last chunk; it is also in the associated data, so flipping it fails to open.
        let raw = u32::from_be_bytes(len);
        let (last, len) = (raw & LAST != 0, (raw & !LAST) as usize);
        if !(TAG..=CHUNK + TAG).contains(&len) {
            return Err(self.damaged("a chunk of an impossible length"));
        }
        self.chunk.resize(len, 0);
        self.input.read_exact(&mut self.chunk).map_err(|_| self.damaged("cut off inside a chunk"))?;
        let opened =
            self.key.open_in_place(nonce(&self.header, self.counter), Aad::from(aad(&self.header, last)), &mut self.chunk).map(|p| p.len());
        let Ok(plain) = opened else { return Err(self.damaged("a chunk does not verify (changed, reordered or dropped)")) };
        self.chunk.truncate(plain);
        self.at = 0;
        self.counter += 1;
        if last {
            self.ended = true;
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra)? != 0 {
                return Err(self.damaged("bytes after its last chunk"));
            }
        }
        Ok(true)
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// One archive in the off-machine directory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Archive {
    /// Its file name.
    pub name: String,
    /// When the backup in it was taken.
    pub created_at: Timestamp,
    /// The backup's id on the machine it came from.
    pub backup_id: u32,
    /// Its size.
    pub bytes: u64,
}

/// What a restore wrote.
#[derive(Debug, Default)]
pub struct Restored {
    /// Files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// The directory archives go to, the key that seals them, and the node
/// whose archives these are.
#[derive(Debug, Clone)]
pub struct Offsite {
    dir: PathBuf,
    key: OffsiteKey,
    node: String,
}

/// Fails unless `dir`'s filesystem has `need` bytes free.
fn room_for(dir: &Path, need: u64, what: &str) -> Result<(), OffsiteError> {
    let free = crate::free_space::available_bytes(dir).map_err(io_at(dir))?;
    if free < need {
        return Err(OffsiteError::Io(
            dir.display().to_string(),
            io::Error::other(format!("{what} needs {need} bytes and {free} are free; nothing was written")),
        ));
    }
    Ok(())
}

/// The time in an archive's name: `20261207T044109Z`.
const STAMP: &str = "%Y%m%dT%H%M%SZ";

/// An archive's name: `utalk-backup-<time>-<backup id>-<node>.ubk`. The
/// node keeps nodes sharing one directory apart.
fn name_of(created_at: Timestamp, id: u32, node: &str) -> String {
    let t = chrono::DateTime::from_timestamp_millis(created_at.millis()).unwrap_or_default();
    format!("utalk-backup-{}-{id}-{node}.{EXTENSION}", t.format(STAMP))
}

/// The time, backup id and node an archive's name carries; `None` for any
/// other file (whatever its bytes: the directory is another machine's too).
fn parse_name(name: &str) -> Option<(Timestamp, u32, &str)> {
    let rest = name.strip_prefix("utalk-backup-")?.strip_suffix(&format!(".{EXTENSION}"))?;
    let mut parts = rest.splitn(3, '-');
    let (stamp, id, node) = (parts.next()?, parts.next()?, parts.next()?);
    let t = chrono::NaiveDateTime::parse_from_str(stamp, STAMP).ok()?.and_utc();
    Some((Timestamp(t.timestamp_millis()), id.parse().ok()?, node))
}

fn write_entry(out: &mut impl Write, path: &str, file: &Path) -> Result<u64, OffsiteError> {
    let mut f = File::open(file).map_err(io_at(file))?;
    let size = f.metadata().map_err(io_at(file))?.len();
    let p = path.as_bytes();
    let len = u16::try_from(p.len()).map_err(|_| OffsiteError::Io(path.into(), io::Error::other("path too long")))?;
    out.write_all(&[1]).and_then(|_| out.write_all(&len.to_be_bytes())).and_then(|_| out.write_all(p)).map_err(io_at(file))?;
    out.write_all(&size.to_be_bytes()).map_err(io_at(file))?;
    // Exactly `size` bytes, even if the file grew since (the ledger may).
    let copied = io::copy(&mut (&mut f).take(size), out).map_err(io_at(file))?;
    if copied != size {
        return Err(OffsiteError::Io(file.display().to_string(), io::Error::other("the file shrank while being archived")));
    }
    Ok(size)
}

/// Where an archive's entry goes under a restore's directory, or why it may not.
fn destination(root: &Path, path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || path.len() > MAX_PATH || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let mut parts = path.splitn(2, '/');
    match (parts.next()?, parts.next()) {
        // The database's files are flat: nothing of them may land in media/ or on the ledger.
        ("db", Some(rest)) if !rest.contains('/') && !rest.starts_with('.') && rest != "media" => Some(root.join(rest)),
        ("media", Some(rest)) => Some(root.join("media").join(rest)),
        (LEDGER, None) => Some(root.join(RESTORED_LEDGER)),
        _ => None,
    }
}

fn sync_dir(dir: &Path) -> Result<(), OffsiteError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_at(dir))
}

impl Offsite {
    /// Node `node`'s archives in `dir`, sealed with `key`.
    pub fn new(dir: impl Into<PathBuf>, key: OffsiteKey, node: &str) -> Offsite {
        Offsite { dir: dir.into(), key, node: node.to_string() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes backup `id` of `backups` (taken at `created_at`) as one sealed
    /// archive; returns it. Uses a staging copy of the database beside the
    /// backups, removed afterwards.
    pub fn ship(&self, backups: &Backups, id: u32, created_at: Timestamp, progress: &mut dyn FnMut(&str)) -> Result<Archive, OffsiteError> {
        std::fs::create_dir_all(&self.dir).map_err(io_at(&self.dir))?;
        let staging = backups.dir().join(".offsite-staging");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io_at(&staging))?;
        }
        // The staging copy beside the backups, and the archive (about as large) at the target.
        let size = backups.pick(Some(id))?.size;
        room_for(backups.dir(), size, "the staging copy")?;
        room_for(&self.dir, size, "the archive")?;
        progress("verifying and staging the database files");
        backups.restore_db(id, &staging)?;
        let name = name_of(created_at, id, &self.node);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let result = (|| {
            let file = File::create(&tmp).map_err(io_at(&tmp))?;
            let mut sealer = Sealer::new(BufWriter::with_capacity(CHUNK, file), &self.key).map_err(io_at(&tmp))?;
            let mut files = 0u64;
            for (rel, path) in files_under(&staging)? {
                write_entry(&mut sealer, &format!("db/{rel}"), &path)?;
                files += 1;
            }
            progress(&format!("sealed {files} database files; now the media files"));
            for (rel, path) in files_under(&backups.dir().join("media"))? {
                write_entry(&mut sealer, &format!("media/{rel}"), &path)?;
            }
            let ledger = backups.dir().join(LEDGER);
            if ledger.exists() {
                write_entry(&mut sealer, LEDGER, &ledger)?;
            }
            sealer.write_all(&[0]).map_err(io_at(&tmp))?;
            let (out, bytes) = sealer.finish().map_err(io_at(&tmp))?;
            let file = out.into_inner().map_err(|e| OffsiteError::Io(tmp.display().to_string(), e.into_error()))?;
            file.sync_all().map_err(io_at(&tmp))?;
            Ok::<u64, OffsiteError>(bytes)
        })();
        let _ = std::fs::remove_dir_all(&staging);
        let bytes = match result {
            Ok(b) => b,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        let to = self.dir.join(&name);
        std::fs::rename(&tmp, &to).map_err(io_at(&to))?;
        sync_dir(&self.dir)?;
        progress(&format!("wrote {} ({bytes} bytes)", to.display()));
        Ok(Archive { name, created_at, backup_id: id, bytes })
    }

    /// This node's archives in the directory, oldest first.
    pub fn list(&self) -> Result<Vec<Archive>, OffsiteError> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(OffsiteError::Io(self.dir.display().to_string(), e)),
        };
        for e in entries {
            let e = e.map_err(io_at(&self.dir))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((created_at, backup_id, node)) = parse_name(&name) else { continue };
            if node == self.node {
                let bytes = e.metadata().map_err(io_at(&e.path()))?.len();
                out.push(Archive { name, created_at, backup_id, bytes });
            }
        }
        out.sort_by_key(|a| (a.created_at, a.backup_id));
        Ok(out)
    }

    /// Removes the archives older than `max_age` (the newest always stays); how many went.
    pub fn prune(&self, max_age: Duration, now: Timestamp) -> Result<usize, OffsiteError> {
        let list = self.list()?;
        let cutoff = now.millis().saturating_sub(i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX));
        let mut removed = 0;
        for a in list.iter().take(list.len().saturating_sub(1)).filter(|a| a.created_at.millis() < cutoff) {
            let p = self.dir.join(&a.name);
            std::fs::remove_file(&p).map_err(io_at(&p))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Restores archive `file` (a name in the directory, or a path) into
    /// `to`, which must not exist or be empty: opens and verifies every
    /// chunk, writes into a new directory beside `to` and renames it into
    /// place at the end. The erasure ledger it holds is added to
    /// `ledger_dir`'s (lines it lacks).
    pub fn restore(&self, file: &Path, to: &Path, ledger_dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<Restored, OffsiteError> {
        let path = if file.components().count() == 1 { self.dir.join(file) } else { file.to_path_buf() };
        if to.exists() && std::fs::read_dir(to).map_err(io_at(to))?.next().is_some() {
            return Err(OffsiteError::NotEmpty(to.display().to_string()));
        }
        let name = path.display().to_string();
        let file = File::open(&path).map_err(io_at(&path))?;
        let parent = to.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io_at(parent))?;
        room_for(parent, file.metadata().map_err(io_at(&path))?.len(), "the restore")?;
        let input = BufReader::with_capacity(CHUNK, file);
        let mut archive = Opener::new(input, &self.key, &name)?;
        let staging = to.with_file_name(format!(".{}.restoring", to.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(io_at(&staging))?;
        }
        std::fs::create_dir_all(&staging).map_err(io_at(&staging))?;
        let result = unpack(&mut archive, &staging, &name, progress);
        let restored = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let ledger = staging.join(RESTORED_LEDGER);
        if ledger.exists() {
            merge_ledger(&ledger, ledger_dir)?;
            std::fs::remove_file(&ledger).map_err(io_at(&ledger))?;
        }
        if to.exists() {
            std::fs::remove_dir(to).map_err(io_at(to))?;
        }
        std::fs::rename(&staging, to).map_err(io_at(to))?;
        sync_dir(parent)?;
        progress(&format!("restored {} files, {} bytes, into {}", restored.files, restored.bytes, to.display()));
        Ok(restored)
    }
}

fn unpack(archive: &mut impl Read, root: &Path, name: &str, progress: &mut dyn FnMut(&str)) -> Result<Restored, OffsiteError> {
    let damaged = |why: String| OffsiteError::Damaged(name.to_string(), why);
    let read = |archive: &mut dyn Read, buf: &mut [u8]| archive.read_exact(buf).map_err(|e| damaged(e.to_string()));
    let mut restored = Restored::default();
    let mut seen = std::collections::HashSet::new();
    let mut dirs = std::collections::BTreeSet::from([root.to_path_buf()]);
    loop {
        let mut tag = [0u8; 1];
        read(archive, &mut tag)?;
        match tag[0] {
            0 => break,
            1 => {}
            t => return Err(damaged(format!("an entry of unknown kind {t}"))),
        }
        let mut len = [0u8; 2];
        read(archive, &mut len)?;
        let mut path = vec![0u8; usize::from(u16::from_be_bytes(len))];
        read(archive, &mut path)?;
        let path = String::from_utf8(path).map_err(|_| damaged("a path that is not UTF-8".into()))?;
        let dest = destination(root, &path).ok_or_else(|| damaged(format!("an entry at a path it may not write: {path:?}")))?;
        if !seen.insert(dest.clone()) {
            return Err(damaged(format!("two entries at {path:?}")));
        }
        let mut size = [0u8; 8];
        read(archive, &mut size)?;
        let size = u64::from_be_bytes(size);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).map_err(io_at(dir))?;
            dirs.insert(dir.to_path_buf());
        }
        let mut out = BufWriter::new(File::create(&dest).map_err(io_at(&dest))?);
        let copied = io::copy(&mut archive.take(size), &mut out).map_err(|e| damaged(e.to_string()))?;
        if copied != size {
            return Err(damaged("cut off inside a file".into()));
        }
        let file = out.into_inner().map_err(|e| OffsiteError::Io(dest.display().to_string(), e.into_error()))?;
        file.sync_all().map_err(io_at(&dest))?;
        restored.files += 1;
        restored.bytes += size;
        if restored.files % 1000 == 0 {
            progress(&format!("{} files, {} bytes", restored.files, restored.bytes));
        }
    }
    let mut rest = [0u8; 1];
    if archive.read(&mut rest).map_err(|e| damaged(e.to_string()))? != 0 {
        return Err(damaged("bytes after its end".into()));
    }
    // The files are fsynced; so are the directories that name them.
    for d in &dirs {
        sync_dir(d)?;
    }
    Ok(restored)
}

/// Adds the lines of `from` that `dir`'s ledger lacks.
fn merge_ledger(from: &Path, dir: &Path) -> Result<(), OffsiteError> {
    let theirs = std::fs::read_to_string(from).map_err(io_at(from))?;
    let path = dir.join(LEDGER);
    let ours = match std::fs::read_to_string(&path) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(OffsiteError::Io(path.display().to_string(), e)),
    };
    let known: std::collections::HashSet<&str> = ours.lines().collect();
    let missing: Vec<&str> = theirs.lines().filter(|l| !l.is_empty() && !known.contains(l)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_at(dir))?;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_at(&path))?;
    for l in missing {
        writeln!(f, "{l}").map_err(io_at(&path))?;
    }
    f.sync_all().map_err(io_at(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> OffsiteKey {
        OffsiteKey { key: [b; 32] }
    }

    fn seal(data: &[u8], k: &OffsiteKey) -> Vec<u8> {
        let mut s = Sealer::new(Vec::new(), k).expect("sealer");
        s.write_all(data).expect("write");
        s.finish().expect("finish").0
    }

    fn open(sealed: &[u8], k: &OffsiteKey) -> io::Result<Vec<u8>> {
        let mut o = Opener::new(sealed, k, "test").map_err(|e| io::Error::other(e.to_string()))?;
        let mut out = Vec::new();
        o.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn sealed_chunks_open_only_whole_in_order_and_with_the_key() {
        let data: Vec<u8> = (0..(CHUNK * 2 + 1234)).map(|i| (i % 251) as u8).collect();
        let sealed = seal(&data, &key(7));
        assert_eq!(open(&sealed, &key(7)).expect("opens"), data);
        assert!(!sealed.windows(64).any(|w| w == &data[1000..1064]), "no plaintext in the sealed bytes");
        assert!(matches!(Opener::new(&sealed[..], &key(8), "x"), Err(OffsiteError::WrongKey(..))));
        let mut changed = sealed.clone();
        changed[HEADER + 100] ^= 1;
        assert!(open(&changed, &key(7)).is_err(), "a changed byte");
        assert!(open(&sealed[..sealed.len() - 1], &key(7)).is_err(), "cut off");
        // Cut exactly after a whole, non-last chunk: the missing last chunk is noticed.
        let first = HEADER + 4 + CHUNK + TAG;
        assert!(open(&sealed[..first], &key(7)).is_err(), "a dropped tail");
        let mut extra = sealed.clone();
        extra.push(0);
        assert!(open(&extra, &key(7)).is_err(), "bytes after the end");
        assert_eq!(open(&seal(b"", &key(7)), &key(7)).expect("empty"), b"");
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        let k = OffsiteKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").expect("key");
        assert_eq!(k.key, std::array::from_fn::<u8, 32, _>(|i| i as u8));
        assert!(matches!(OffsiteKey::from_base64("c2hvcnQ="), Err(OffsiteError::BadKey)));
        assert!(matches!(OffsiteKey::from_base64("not base64 at all!"), Err(OffsiteError::BadKey)));
        assert!(!format!("{k:?}").contains("AAEC"));
    }

    #[test]
    fn names_carry_the_time_and_id_and_entries_stay_inside_the_target() {
        let t = Timestamp::parse_rfc3339("2026-12-07T04:41:09Z").expect("time");
        let name = name_of(t, 42, "node-a");
        assert_eq!(name, "utalk-backup-20261207T044109Z-42-node-a.ubk");
        assert_eq!(parse_name(&name), Some((t, 42, "node-a")));
        for odd in ["utalk-backup-202é120T044109Z-1-n.ubk", "utalk-backup-20261207T044109Z-x-n.ubk", "utalk-backup-2026.ubk", "notes.txt"]
        {
            assert_eq!(parse_name(odd), None, "{odd}");
        }
        let root = Path::new("/r");
        assert_eq!(destination(root, "db/000012.sst"), Some(PathBuf::from("/r/000012.sst")));
        assert_eq!(destination(root, "media/ab/cd"), Some(PathBuf::from("/r/media/ab/cd")));
        for bad in ["../x", "db/../../etc/passwd", "/etc/passwd", "other/x", "db", "", "db/media/x", "db/.erasures.jsonl", "db/media"] {
            assert_eq!(destination(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn the_list_has_this_nodes_archives_only_and_pruning_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Offsite::new(dir.path(), key(1), "a");
        let day = 86_400_000;
        let now = Timestamp(1_800_000_000_000);
        for (age, id, node) in [(100, 1, "a"), (95, 2, "a"), (10, 3, "a"), (100, 1, "b")] {
            std::fs::write(dir.path().join(name_of(Timestamp(now.millis() - age * day), id, node)), b"x").expect("write");
        }
        for other in ["utalk-backup-202é120T044109Z-1-a.ubk", "utalk-backup-20261207T044109Z-4-a.ubk.tmp", "README"] {
            std::fs::write(dir.path().join(other), b"x").expect("write");
        }
        assert_eq!(o.list().expect("list").iter().map(|a| a.backup_id).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(o.prune(Duration::from_secs(90 * 86_400), now).expect("prune"), 2);
        assert_eq!(o.list().expect("list").iter().map(|a| a.backup_id).collect::<Vec<_>>(), vec![3]);
        // Another node's and other files stay; the newest stays however old.
        assert_eq!(Offsite::new(dir.path(), key(1), "b").list().expect("list").len(), 1);
        assert_eq!(o.prune(Duration::from_secs(1), now).expect("prune"), 0);
    }

    /// A sealed archive of `entries` (path, bytes), as `ship` writes them, in `dir`.
    fn archive_of(dir: &Path, entries: &[(&str, &[u8])], end: bool) -> PathBuf {
        let mut s = Sealer::new(Vec::new(), &key(1)).expect("sealer");
        for (path, bytes) in entries {
            s.write_all(&[1]).expect("tag");
            s.write_all(&(path.len() as u16).to_be_bytes()).expect("len");
            s.write_all(path.as_bytes()).expect("path");
            s.write_all(&(bytes.len() as u64).to_be_bytes()).expect("size");
            s.write_all(bytes).expect("bytes");
        }
        if end {
            s.write_all(&[0]).expect("end");
        }
        let path = dir.join("crafted.ubk");
        std::fs::write(&path, s.finish().expect("finish").0).expect("write");
        path
    }

    #[test]
    fn a_restore_refuses_a_taken_target_and_an_archive_whose_entries_break_the_rules_and_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let o = Offsite::new(dir.path().join("offsite"), key(1), "a");
        let (to, ledgers) = (dir.path().join("restored"), dir.path().join("backups"));
        let good = archive_of(dir.path(), &[("db/CURRENT", b"MANIFEST-1\n"), ("media/ab/f", b"file")], true);
        std::fs::create_dir_all(&to).expect("mkdir");
        std::fs::write(to.join("x"), b"taken").expect("write");
        assert!(matches!(o.restore(&good, &to, &ledgers, &mut |_| {}), Err(OffsiteError::NotEmpty(_))));
        std::fs::remove_dir_all(&to).expect("rm");
        // Each archive's entries, whether it ends, and what the refusal says.
        type Case<'a> = (&'a [(&'a str, &'a [u8])], bool, &'a str);
        let cases: [Case; 4] = [
            (&[("db/../../escape", b"x")], true, "may not write"),
            (&[("db/CURRENT", b"a"), ("db/CURRENT", b"b")], true, "two entries"),
            (&[("db/media/x", b"x")], true, "may not write"),
            (&[("db/CURRENT", b"a")], false, "damaged"),
        ];
        for (entries, end, why) in cases {
            let bad = archive_of(dir.path(), entries, end);
            let e = o.restore(&bad, &to, &ledgers, &mut |_| {}).expect_err(why).to_string();
            assert!(e.contains(why), "{e}");
            assert!(!to.exists(), "nothing is left behind: {why}");
        }
        let good = archive_of(dir.path(), &[("db/CURRENT", b"MANIFEST-1\n"), ("media/ab/f", b"file")], true);
        let r = o.restore(&good, &to, &ledgers, &mut |_| {}).expect("restore");
        assert_eq!((r.files, r.bytes), (2, 15));
        assert_eq!(std::fs::read(to.join("media/ab/f")).expect("file"), b"file");
    }
}
