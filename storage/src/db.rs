use crate::batch::{Batch, Op};
use crate::codec::{decode, Record};
use crate::error::StoreError;
use crate::formats::MessageFormat;
use crate::maps::Map;
use rocksdb::{BlockBasedOptions, ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;

/// The schema version this build writes.
///
/// Rules: a lower version is upgraded by the migrations registry before the
/// server serves; a new database starts at this version; a higher one (a
/// newer utalk wrote it) is opened only when its `readable_from` says builds
/// of this version can still read it, and refused otherwise.
pub const SCHEMA_VERSION: u32 = 7;

/// The oldest build schema version that can read what this build writes:
/// the `readable_from` of the last migration in the registry.
pub const READABLE_FROM: u32 = 5;

const META_SCHEMA_VERSION: &[u8] = b"schema_version";
/// The oldest build schema version that can read this data (from version 5
/// on; before it, only builds of the stored version itself).
pub(crate) const META_READABLE_FROM: &[u8] = b"readable_from";
/// The format new messages are written in (absent: format 1; the model's
/// `message_format` says how the switch is made).
pub(crate) const META_MESSAGE_FORMAT: &[u8] = b"message_format";

/// A raw key and value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Tuning for [`Db::open`].
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// Block cache shared by all maps, in bytes.
    pub block_cache_bytes: usize,
    /// Create the directory and maps when missing.
    pub create_if_missing: bool,
    /// Memtable size of each map, in bytes: how much is written before a
    /// flush to a table file. RocksDB also keeps this much disk free before
    /// it resumes writing after a full disk.
    pub write_buffer_bytes: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { block_cache_bytes: 64 << 20, create_if_missing: true, write_buffer_bytes: 64 << 20 }
    }
}

/// Figures read from the engine for health and metrics.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DbStats {
    /// Whether writes are currently stalled or slowed.
    pub write_stopped: bool,
    /// Bytes compaction still has to process.
    pub pending_compaction_bytes: u64,
    /// Estimated live keys over all maps.
    pub estimated_keys: u64,
}

/// An open store. Cheap to clone; reads go straight to RocksDB, writes come
/// only from the store writer through [`Db::write_group`].
#[derive(Clone)]
pub struct Db {
    inner: Arc<DB>,
    path: PathBuf,
    /// The envelope version of [`META_MESSAGE_FORMAT`], followed by every
    /// write through [`Db::write_group`], so that each message write reads it
    /// without a lookup.
    message_format: Arc<AtomicU16>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

fn map_options(map: Map, cache: &rocksdb::Cache, write_buffer_bytes: usize) -> Options {
    let mut o = Options::default();
    if map == Map::MessageidConvseq {
        // Every append asks this map whether its message id is new, and the
        // answer is nearly always no: a bloom filter over the memtable
        // answers that without a skip-list search (2% of the memtable's size).
        o.set_memtable_prefix_bloom_ratio(0.02);
        o.set_memtable_whole_key_filtering(true);
        // Every append also inserts a random 16-byte id here, and in one
        // ordered skip list over the whole memtable each insert was a search
        // from the top, missing the cache at every level. This map is only
        // ever read by whole key, so its memtable hashes the key to a bucket
        // of a few entries instead (one bucket pointer per 128 bytes of memtable).
        o.set_prefix_extractor(rocksdb::SliceTransform::create_fixed_prefix(16));
        o.set_memtable_factory(rocksdb::MemtableFactory::HashSkipList {
            bucket_count: (write_buffer_bytes / 128).max(1024),
            height: 4,
            branching_factor: 4,
        });
    }
    let mut t = BlockBasedOptions::default();
    t.set_block_cache(cache);
    t.set_bloom_filter(10.0, false);
    t.set_cache_index_and_filter_blocks(true);
    o.set_block_based_table_factory(&t);
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o.set_write_buffer_size(write_buffer_bytes);
    o
}

impl Db {
    /// Opens (or creates) the store in `path`.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another process holds the directory,
    /// [`StoreError::TooNew`] when a newer build wrote it, [`StoreError::Open`] otherwise.
    pub fn open(path: &Path, opts: &DbOptions) -> Result<Db, StoreError> {
        let mut o = Options::default();
        o.create_if_missing(opts.create_if_missing);
        o.create_missing_column_families(true);
        o.set_max_background_jobs(2);
        o.set_bytes_per_sync(1 << 20);
        // The store writer is the only writer; pipelining lets RocksDB overlap
        // the WAL write of one group with the memtable insert of the last.
        o.set_enable_pipelined_write(true);
        // Hashed memtables (see `map_options`) take one inserting thread at a
        // time, which the store writer is anyway.
        o.set_allow_concurrent_memtable_write(false);
        o.set_write_buffer_size(opts.write_buffer_bytes);
        let cache = rocksdb::Cache::new_lru_cache(opts.block_cache_bytes);
        let existing = DB::list_cf(&o, path).unwrap_or_default();
        let mut cfs: Vec<ColumnFamilyDescriptor> =
            Map::ALL.iter().map(|m| ColumnFamilyDescriptor::new(m.name(), map_options(*m, &cache, opts.write_buffer_bytes))).collect();
        for name in &existing {
            if name != "default" && !Map::ALL.iter().any(|m| m.name() == name) {
                // Dropped or unknown maps must still be opened to be dropped.
                cfs.push(ColumnFamilyDescriptor::new(name.as_str(), Options::default()));
            }
        }
        let mut db = DB::open_cf_descriptors(&o, path, cfs).map_err(|e| open_error(path, e))?;
        for name in Map::DROPPED {
            if existing.iter().any(|n| n == name) {
                db.drop_cf(name).map_err(|e| open_error(path, e))?;
            }
        }
        let db = Db::wrap(db, path)?;
        match db.schema_version()? {
            Some(v) if v > SCHEMA_VERSION => {
                let readable_from = db.readable_from()?.unwrap_or(v);
                if readable_from > SCHEMA_VERSION {
                    return Err(StoreError::TooNew { found: v, readable_from, supported: SCHEMA_VERSION });
                }
            }
            Some(_) => {}
            None => {
                let mut b = Batch::new();
                b.put_raw(Map::Meta, META_SCHEMA_VERSION.to_vec(), SCHEMA_VERSION.to_be_bytes().to_vec());
                b.put_raw(Map::Meta, META_READABLE_FROM.to_vec(), READABLE_FROM.to_be_bytes().to_vec());
                db.write_group([&b], true)?;
            }
        }
        Ok(db)
    }

    /// Opens the store in `path` for reading only, as it is at this moment;
    /// works while a server holds it (no lock is taken, nothing is written).
    ///
    /// # Errors
    /// [`StoreError::Open`] when it is not a utalk store.
    pub fn open_read_only(path: &Path) -> Result<Db, StoreError> {
        let o = Options::default();
        let names: Vec<&str> = Map::ALL.iter().map(|m| m.name()).collect();
        let existing = DB::list_cf(&o, path).map_err(|e| open_error(path, e))?;
        let present: Vec<&str> = names.into_iter().filter(|n| existing.iter().any(|e| e == n)).collect();
        let db = DB::open_cf_for_read_only(&o, path, present, false).map_err(|e| open_error(path, e))?;
        Db::wrap(db, path)
    }

    fn wrap(db: DB, path: &Path) -> Result<Db, StoreError> {
        let db = Db { inner: Arc::new(db), path: path.to_path_buf(), message_format: Arc::new(AtomicU16::new(1)) };
        let stored = db.get_raw(Map::Meta, META_MESSAGE_FORMAT)?;
        db.message_format.store(format_version(stored.as_deref()), Ordering::Release);
        Ok(db)
    }

    /// The format new messages are written in: format 2 once the data says
    /// so (meta `message_format`), format 1 before.
    pub fn message_format(&self) -> MessageFormat {
        MessageFormat::of_version(self.message_format.load(Ordering::Acquire)).unwrap_or_default()
    }

    /// The engine, for backups.
    pub(crate) fn raw(&self) -> &DB {
        &self.inner
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version recorded in the database, if any.
    pub fn schema_version(&self) -> Result<Option<u32>, StoreError> {
        self.meta_u32(META_SCHEMA_VERSION)
    }

    /// The oldest build schema version that can read this data, when recorded
    /// (version 5 on); without it only builds of the stored version can.
    pub fn readable_from(&self) -> Result<Option<u32>, StoreError> {
        self.meta_u32(META_READABLE_FROM)
    }

    fn meta_u32(&self, key: &[u8]) -> Result<Option<u32>, StoreError> {
        Ok(self.get_raw(Map::Meta, key)?.and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok()).map(u32::from_be_bytes))
    }

    // The handles are created once at open and never dropped while the store
    // is open, so the engine is opened single-threaded for column families:
    // a handle is then a plain reference, where the multi-threaded mode took
    // a lock and two reference counts for every read and every written key.
    fn cf(&self, map: Map) -> Result<&rocksdb::ColumnFamily, StoreError> {
        self.inner.cf_handle(map.name()).ok_or_else(|| StoreError::Engine(format!("column family {} missing", map.name())))
    }

    /// Reads and decodes one record.
    pub fn get<V: Record>(&self, map: Map, key: impl AsRef<[u8]>) -> Result<Option<V>, StoreError> {
        match self.inner.get_pinned_cf(&self.cf(map)?, key)? {
            Some(bytes) => Ok(Some(decode(&bytes)?)),
            None => Ok(None),
        }
    }

    /// Reads raw bytes.
    pub fn get_raw(&self, map: Map, key: impl AsRef<[u8]>) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.get_cf(&self.cf(map)?, key)?)
    }

    /// Entries whose key starts with `prefix`, from `start` (inclusive; must
    /// itself start with `prefix`, or be empty to begin at the prefix), at most `limit`.
    pub fn scan_raw(&self, map: Map, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        let from = if start.is_empty() { prefix } else { start };
        let cf = self.cf(map)?;
        let mut out = Vec::new();
        for item in self.inner.iterator_cf(&cf, IteratorMode::From(from, Direction::Forward)) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    /// Writes every memtable to table files and compacts every map down to
    /// its last level, so that no older version of a rewritten or removed
    /// value is left in any file (an erasure): the write-ahead logs that held
    /// them are then obsolete and removed. Slow on a large store; rare.
    pub fn compact_everything(&self) -> Result<(), StoreError> {
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        for map in Map::ALL {
            let cf = self.cf(map)?;
            self.inner.flush_cf(&cf)?;
            self.inner.compact_range_cf_opt(&cf, None::<&[u8]>, None::<&[u8]>, &opts);
        }
        self.inner.flush_wal(true)?;
        Ok(())
    }

    /// RocksDB's sequence number of the last write: unchanged between a clean
    /// stop and the next open, so a follower of the writes (the search index)
    /// can tell whether it missed any.
    pub fn latest_sequence(&self) -> u64 {
        self.inner.latest_sequence_number()
    }

    /// Like [`scan_raw`](Self::scan_raw), decoding values.
    pub fn scan<V: Record>(&self, map: Map, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, V)>, StoreError> {
        self.scan_raw(map, prefix, start, limit)?.into_iter().map(|(k, v)| Ok((k, decode(&v)?))).collect()
    }

    /// Entries of the whole map with keys before `before` (all when `None`), newest key first, at most `limit`.
    pub fn scan_raw_rev(&self, map: Map, before: Option<&[u8]>, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let cf = self.cf(map)?;
        let mut it = self.inner.raw_iterator_cf(&cf);
        match before {
            Some(b) => {
                it.seek_for_prev(b);
                // seek_for_prev lands on `before` itself when it exists; it is excluded.
                if it.valid() && it.key() == Some(b) {
                    it.prev();
                }
            }
            None => it.seek_to_last(),
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            out.push((k.to_vec(), v.to_vec()));
            it.prev();
        }
        it.status()?;
        Ok(out)
    }

    /// Entries whose keys start with `prefix` and sort before `before`, newest key first, at most `limit`.
    pub fn scan_raw_rev_prefix(&self, map: Map, prefix: &[u8], before: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        let cf = self.cf(map)?;
        let mut it = self.inner.raw_iterator_cf(&cf);
        it.seek_for_prev(before);
        // seek_for_prev lands on `before` itself when it exists; it is excluded.
        if it.valid() && it.key() == Some(before) {
            it.prev();
        }
        let mut out = Vec::new();
        while out.len() < limit {
            let (Some(k), Some(v)) = (it.key(), it.value()) else { break };
            if !k.starts_with(prefix) {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
            it.prev();
        }
        it.status()?;
        Ok(out)
    }

    /// The last entry whose key starts with `prefix`.
    pub fn last_with_prefix(&self, map: Map, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        let cf = self.cf(map)?;
        let mut it = self.inner.raw_iterator_cf(&cf);
        match prefix_successor(prefix) {
            Some(upper) => {
                it.seek_for_prev(&upper);
                // seek_for_prev lands on `upper` itself when it exists; step back once.
                if it.valid() && it.key() == Some(upper.as_slice()) {
                    it.prev();
                }
            }
            None => it.seek_to_last(),
        }
        it.status()?;
        match (it.key(), it.value()) {
            (Some(k), Some(v)) if k.starts_with(prefix) => Ok(Some((k.to_vec(), v.to_vec()))),
            _ => Ok(None),
        }
    }

    /// Writes several batches as one atomic WriteBatch with (when `sync`) one WAL sync.
    ///
    /// Only the store writer calls this; batches are applied in order.
    pub fn write_group<'a>(&self, batches: impl IntoIterator<Item = &'a Batch>, sync: bool) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        let mut format = None;
        for b in batches {
            for op in &b.ops {
                match op {
                    Op::Put { map, key, value } => {
                        if *map == Map::Meta && key == META_MESSAGE_FORMAT {
                            format = Some(format_version(Some(value)));
                        }
                        wb.put_cf(&self.cf(*map)?, key, value)
                    }
                    Op::Delete { map, key } => {
                        if *map == Map::Meta && key == META_MESSAGE_FORMAT {
                            format = Some(format_version(None));
                        }
                        wb.delete_cf(&self.cf(*map)?, key)
                    }
                }
            }
        }
        if wb.is_empty() {
            return Ok(());
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.inner.write_opt(wb, &wo)?;
        if let Some(v) = format {
            self.message_format.store(v, Ordering::Release);
        }
        Ok(())
    }

    /// Engine figures for health and metrics.
    pub fn stats(&self) -> DbStats {
        let mut s = DbStats::default();
        for m in Map::ALL {
            if let Ok(cf) = self.cf(m) {
                let int = |name: &str| self.inner.property_int_value_cf(&cf, name).ok().flatten().unwrap_or(0);
                s.write_stopped |= int("rocksdb.is-write-stopped") != 0 || int("rocksdb.actual-delayed-write-rate") != 0;
                s.pending_compaction_bytes += int("rocksdb.estimate-pending-compaction-bytes");
                s.estimated_keys += int("rocksdb.estimate-num-keys");
            }
        }
        s
    }
}

/// The message format stored as meta `message_format` (format 1 when absent or unreadable).
fn format_version(stored: Option<&[u8]>) -> u16 {
    stored
        .and_then(|v| <[u8; 2]>::try_from(v).ok())
        .map(u16::from_be_bytes)
        .filter(|v| MessageFormat::of_version(*v).is_some())
        .unwrap_or(1)
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last != 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

fn open_error(path: &Path, e: rocksdb::Error) -> StoreError {
    let message = e.into_string();
    if message.contains("lock")
        && (message.contains("Resource temporarily unavailable")
            || message.contains("No locks available")
            || message.contains("lock hold by current process"))
    {
        StoreError::Locked { path: path.to_path_buf() }
    } else {
        StoreError::Open { path: path.to_path_buf(), message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Key;

    #[test]
    fn a_second_open_of_the_same_dir_is_a_clear_locked_error() {
        let dir = tempfile::tempdir().unwrap();
        let _db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        let err = Db::open(dir.path(), &DbOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("in use by another process"));
    }

    #[test]
    fn the_message_format_follows_its_meta_key_through_writes_and_opens() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        assert_eq!(db.message_format(), MessageFormat::Named, "a new database writes format 1");
        let mut on = Batch::new();
        on.put_raw(Map::Meta, META_MESSAGE_FORMAT.to_vec(), 2u16.to_be_bytes().to_vec());
        db.write_group([&Batch::new(), &on], false).unwrap();
        assert_eq!(db.clone().message_format(), MessageFormat::Compact, "every clone follows the write");
        drop(db);
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        assert_eq!(db.message_format(), MessageFormat::Compact, "read back at open");
        let mut off = Batch::new();
        off.delete_raw(Map::Meta, META_MESSAGE_FORMAT.to_vec());
        db.write_group([&off], false).unwrap();
        assert_eq!(db.message_format(), MessageFormat::Named);
        let mut unknown = Batch::new();
        unknown.put_raw(Map::Meta, META_MESSAGE_FORMAT.to_vec(), 9u16.to_be_bytes().to_vec());
        db.write_group([&unknown], false).unwrap();
        assert_eq!(db.message_format(), MessageFormat::Named, "a format this build does not know is never written");
    }

    #[test]
    fn a_new_database_records_the_schema_version_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write_meta = |version: u32, readable_from: u32| {
            let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
            let mut b = Batch::new();
            b.put_raw(Map::Meta, META_SCHEMA_VERSION.to_vec(), version.to_be_bytes().to_vec());
            b.put_raw(Map::Meta, META_READABLE_FROM.to_vec(), readable_from.to_be_bytes().to_vec());
            db.write_group([&b], true).unwrap();
        };
        {
            let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
            assert_eq!(db.schema_version().unwrap(), Some(SCHEMA_VERSION));
            assert_eq!(db.readable_from().unwrap(), Some(READABLE_FROM));
        }
        // A newer release's data that it marked readable by this build opens…
        write_meta(SCHEMA_VERSION + 1, SCHEMA_VERSION);
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        assert_eq!(db.schema_version().unwrap(), Some(SCHEMA_VERSION + 1));
        drop(db);
        // …and data only newer builds can read is refused, saying so.
        write_meta(SCHEMA_VERSION + 1, SCHEMA_VERSION + 1);
        let err = Db::open(dir.path(), &DbOptions::default()).unwrap_err();
        assert!(matches!(err, StoreError::TooNew { .. }), "{err}");
        assert!(err.to_string().contains(&format!("readable from version {}", SCHEMA_VERSION + 1)), "{err}");
    }

    #[test]
    fn scans_stay_inside_their_prefix_and_last_finds_the_highest_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &DbOptions::default()).unwrap();
        let a = uuid::Uuid::from_u128(1);
        let b = uuid::Uuid::from_u128(2);
        let mut batch = Batch::new();
        for seq in 1..=5u64 {
            batch.put_raw(Map::Messages, Key::new().uuid(a).u64(seq).into_bytes(), vec![seq as u8]);
        }
        batch.put_raw(Map::Messages, Key::new().uuid(b).u64(1).into_bytes(), vec![99]);
        db.write_group([&batch], true).unwrap();
        let pa = Key::new().uuid(a).into_bytes();
        let rows = db.scan_raw(Map::Messages, &pa, &Key::new().uuid(a).u64(3).into_bytes(), 10).unwrap();
        assert_eq!(rows.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(db.last_with_prefix(Map::Messages, &pa).unwrap().unwrap().1, vec![5]);
        let pc = Key::new().uuid(uuid::Uuid::from_u128(3)).into_bytes();
        assert!(db.last_with_prefix(Map::Messages, &pc).unwrap().is_none());
        let all_ff = vec![0xFF; 16];
        assert!(db.last_with_prefix(Map::Messages, &all_ff).unwrap().is_none());
    }

    #[test]
    fn message_ids_are_found_in_the_hashed_memtable_in_flushed_files_and_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        // A 1 MiB memtable flushes many times over 20,000 ids.
        let opts = DbOptions { write_buffer_bytes: 1 << 20, ..DbOptions::default() };
        let id = |i: u64| Key::new().uuid(uuid::Uuid::from_u128(u128::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)));
        // Every `step`-th id reads back as written; id 7 as rewritten; one never written is absent.
        let all_found = |db: &Db, step: usize| {
            for i in (1..20_000u64).step_by(step).filter(|i| *i != 7) {
                assert_eq!(db.get_raw(Map::MessageidConvseq, id(i).into_bytes()).unwrap(), Some(i.to_be_bytes().to_vec()), "id {i}");
            }
            assert_eq!(db.get_raw(Map::MessageidConvseq, id(7).into_bytes()).unwrap(), Some(vec![7]));
            assert_eq!(db.get_raw(Map::MessageidConvseq, id(20_001).into_bytes()).unwrap(), None);
        };
        {
            let db = Db::open(dir.path(), &opts).unwrap();
            for chunk in 0..200u64 {
                let mut batch = Batch::new();
                for i in chunk * 100..(chunk + 1) * 100 {
                    batch.put_raw(Map::MessageidConvseq, id(i).into_bytes(), i.to_be_bytes().to_vec());
                }
                db.write_group([&batch], false).unwrap();
            }
            // A rewritten id keeps its last value, in the memtable as in the files.
            let mut batch = Batch::new();
            batch.put_raw(Map::MessageidConvseq, id(7).into_bytes(), vec![7]);
            db.write_group([&batch], true).unwrap();
            all_found(&db, 97);
        }
        all_found(&Db::open(dir.path(), &opts).unwrap(), 89);
    }

    #[test]
    fn prefix_successor_carries_over_ff() {
        assert_eq!(prefix_successor(&[1, 0xFF]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xFF]), None);
    }
}
