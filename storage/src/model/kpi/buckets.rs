//! Where rollups keep their state: the dirty and claimed hours, the
//! rollup's times and watermark, the per-hour time index of conversations,
//! and the stored buckets read back as series and rows.

use super::*;
use crate::batch::Batch;
use crate::db::Db;
use crate::error::StoreError;
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::model::message::Message;
use crate::time::Timestamp;
use std::collections::BTreeMap;
use uuid::Uuid;

// ---- dirty hours ----

const DIRTY: u8 = 0;
const CLAIMED: u8 = 1;

/// Adds "the hour holding `at` must be rolled up again" to `batch`.
pub fn touch(batch: &mut Batch, at: Timestamp) {
    let hour = Granularity::Hour.bucket_start(at);
    batch.put_raw(Map::KpiDirty, Key::new().u8(DIRTY).i64(hour).into_bytes(), Vec::new());
}

fn hours_in(db: &Db, state: u8, limit: usize) -> Result<Vec<i64>, StoreError> {
    let prefix = [state];
    db.scan_raw(Map::KpiDirty, &prefix, &[], limit)?
        .into_iter()
        .map(|(k, _)| {
            let mut r = KeyReader::new(&k);
            r.u8()?;
            Ok(r.i64()?)
        })
        .collect()
}

/// Hours marked dirty and not claimed yet, oldest first, at most `limit`.
pub fn dirty_hours(db: &Db, limit: usize) -> Result<Vec<i64>, StoreError> {
    hours_in(db, DIRTY, limit)
}

/// Hours claimed by a rollup that did not finish (it stopped midway), oldest first.
pub fn claimed_hours(db: &Db, limit: usize) -> Result<Vec<i64>, StoreError> {
    hours_in(db, CLAIMED, limit)
}

/// The writes that claim `hours` for a rollup: a write after this marks them dirty again.
pub fn claim_batch(hours: &[i64]) -> Batch {
    let mut b = Batch::new();
    for &h in hours {
        b.delete_raw(Map::KpiDirty, Key::new().u8(DIRTY).i64(h).into_bytes());
        b.put_raw(Map::KpiDirty, Key::new().u8(CLAIMED).i64(h).into_bytes(), Vec::new());
    }
    b
}

/// Adds "the claim on `hour` is done" to `batch`.
pub fn release(batch: &mut Batch, hour: i64) {
    batch.delete_raw(Map::KpiDirty, Key::new().u8(CLAIMED).i64(hour).into_bytes());
}

const ROLLED_UP_AT: &[u8] = b"kpi_rolled_up_at";
const WATERMARK: &[u8] = b"kpi_watermark";
/// How far before the last rollup's start the next one looks again: a record
/// stamped just before that start may have been committed just after it.
pub const WATERMARK_MARGIN_MS: i64 = 5 * 60_000;

fn meta_time(db: &Db, key: &[u8]) -> Result<Option<Timestamp>, StoreError> {
    Ok(db.get_raw(Map::Meta, key)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(|b| Timestamp(i64::from_be_bytes(b))))
}

/// Adds "a rollup that started at `started` finished at `finished`" to `batch`.
pub fn set_rolled_up(batch: &mut Batch, started: Timestamp, finished: Timestamp) {
    batch.put_raw(Map::Meta, WATERMARK.to_vec(), started.millis().to_be_bytes().to_vec());
    batch.put_raw(Map::Meta, ROLLED_UP_AT.to_vec(), finished.millis().to_be_bytes().to_vec());
}

/// When the last rollup finished, if one ever did: the figures are as of then.
pub fn rolled_up_at(db: &Db) -> Result<Option<Timestamp>, StoreError> {
    meta_time(db, ROLLED_UP_AT)
}

/// When the last finished rollup started, if one ever did.
pub fn last_rollup_started(db: &Db) -> Result<Option<Timestamp>, StoreError> {
    meta_time(db, WATERMARK)
}

/// The time of the oldest record a KPI counts, if any.
fn earliest(db: &Db) -> Result<Option<i64>, StoreError> {
    let mut first = Vec::new();
    for map in [Map::HourconvSeq, Map::BotRuns, Map::Escalations, Map::Ratings] {
        if let Some((k, _)) = db.scan_raw(map, &[], &[], 1)?.into_iter().next() {
            first.push(KeyReader::new(&k).i64()?);
        }
    }
    if let Some((k, _)) = db.scan_raw(Map::Conversations, &[], &[], 1)?.into_iter().next() {
        let uuid = KeyReader::new(&k).uuid()?;
        if let Some((secs, nanos)) = uuid.get_timestamp().map(|t| t.to_unix()) {
            first.push(secs as i64 * 1000 + i64::from(nanos / 1_000_000));
        }
    }
    Ok(first.into_iter().min())
}

/// The hours every rollup recomputes: from shortly before the last rollup
/// started (or from the oldest record, before the first) to the hour of `now`.
///
/// Records stamped at the moment they are written (new conversations,
/// messages, bot runs) always fall here, so their writes need no dirty mark;
/// a change to an older record marks its hour with [`touch`].
pub fn recent_hours(db: &Db, now: Timestamp) -> Result<Vec<i64>, StoreError> {
    let from = match meta_time(db, WATERMARK)? {
        Some(w) => Some(w.millis() - WATERMARK_MARGIN_MS),
        None => earliest(db)?,
    };
    let Some(from) = from else { return Ok(Vec::new()) };
    let (first, last) = (Granularity::Hour.bucket_start(Timestamp(from)), Granularity::Hour.bucket_start(now));
    Ok((first..=last).step_by(HOUR_MS as usize).collect())
}

// ---- the hour index of messages ----

pub(super) fn hour_key(hour: i64, conversation: Uuid) -> Vec<u8> {
    Key::new().i64(hour).uuid(conversation).into_bytes()
}

/// Adds to `batch` the hour index entries `messages` (ascending seqs of one
/// conversation, about to be appended) need: "`conversation` has messages in
/// this hour, from this seq". `known` is the hour the caller already indexed
/// (a conversation's actor remembers it), so a busy conversation writes one
/// entry an hour, not one a message. Returns the hour indexed last.
pub fn index_messages(db: &Db, batch: &mut Batch, messages: &[Message], mut known: Option<i64>) -> Result<Option<i64>, StoreError> {
    for m in messages {
        let hour = Granularity::Hour.bucket_start(m.created_at);
        if known == Some(hour) {
            continue;
        }
        // An earlier run of the actor may have written this hour's entry with an earlier seq: keep it.
        let key = hour_key(hour, m.conversation_id);
        if db.get_raw(Map::HourconvSeq, &key)?.is_none() {
            batch.put_raw(Map::HourconvSeq, key, m.seq.to_be_bytes().to_vec());
        }
        known = Some(hour);
    }
    Ok(known)
}

// ---- rollups ----

fn rollup_key(g: Granularity, start: i64) -> Key {
    Key::new().u8(g.code()).i64(start)
}

/// The stored rows of one bucket, by dimension.
pub fn bucket(db: &Db, g: Granularity, start: i64) -> Result<BTreeMap<Dimension, KpiSums>, StoreError> {
    let prefix = rollup_key(g, start).into_bytes();
    let mut out = BTreeMap::new();
    for (k, v) in db.scan::<KpiSums>(Map::KpiRollups, &prefix, &[], usize::MAX)? {
        out.insert(Dimension::decode(&mut KeyReader::new(&k[prefix.len()..]))?, v);
    }
    Ok(out)
}

/// The writes that replace the stored rows of one bucket with `rows`.
pub fn replace_bucket(
    db: &Db,
    batch: &mut Batch,
    g: Granularity,
    start: i64,
    rows: &BTreeMap<Dimension, KpiSums>,
) -> Result<(), StoreError> {
    let prefix = rollup_key(g, start).into_bytes();
    for (k, _) in db.scan_raw(Map::KpiRollups, &prefix, &[], usize::MAX)? {
        batch.delete_raw(Map::KpiRollups, k);
    }
    for (d, s) in rows {
        batch.put(Map::KpiRollups, d.encode(rollup_key(g, start)), s)?;
    }
    Ok(())
}

/// The stored sums for `dim` of the buckets starting in `[from, to)`, by bucket start.
pub fn series(db: &Db, g: Granularity, from: i64, to: i64, dim: Dimension) -> Result<BTreeMap<i64, KpiSums>, StoreError> {
    let prefix = [g.code()];
    let start = rollup_key(g, from).into_bytes();
    let mut out = BTreeMap::new();
    let mut cursor = start;
    loop {
        let chunk = db.scan::<KpiSums>(Map::KpiRollups, &prefix, &cursor, 512)?;
        let Some((last, _)) = chunk.last() else { break };
        cursor = Key::new().bytes(last).u8(0).into_bytes();
        for (k, v) in chunk {
            let mut r = KeyReader::new(&k[1..]);
            let at = r.i64()?;
            if at >= to {
                return Ok(out);
            }
            if Dimension::decode(&mut r)? == dim {
                out.insert(at, v);
            }
        }
    }
    Ok(out)
}

/// Every bucket of `dim` from `start` (a bucket start), `count` of them, with null KPIs where nothing is stored.
pub fn rows(db: &Db, g: Granularity, start: i64, count: i64, dim: Dimension) -> Result<Vec<KpiRow>, StoreError> {
    let step = g.millis();
    let mut stored = series(db, g, start, start + count * step, dim)?;
    Ok((0..count).map(|i| start + i * step).map(|at| KpiRow::new(at, g, &stored.remove(&at).unwrap_or_default())).collect())
}
