//! The restore drill on a large database: how long a backup, its encrypted
//! off-machine copy and a restore from that copy alone take, against the
//! operations manual's RTO of 4 hours.
//!
//! Builds a data directory of `DRILL_BYTES` of messages (default 1 GiB of
//! message text, 1 KiB per message, in conversations of 100 messages), as the
//! conversation actor writes them, in unsynced batches, plus
//! `DRILL_MEDIA_FILES` media files of 256 KiB (default 200). Then it times:
//! a backup (`Backups::create`), the off-machine copy of it
//! (`Offsite::ship`), and the restore from the archive alone into a new
//! directory (`Offsite::restore`), opens the restored database and counts
//! its messages against what was written. The message text is random
//! base64, which compresses about as little as real media does.
//!
//! `cargo bench --bench backup_drill` (`DRILL_BYTES=100000000` for a short
//! run; `UTALK_BENCH_DIR` chooses where the data goes, default the working
//! directory).

#[path = "common/bench_dir.rs"]
mod bench_dir;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::path::Path;
use std::time::Instant;
use utalk_storage::backup::Backups;
use utalk_storage::model::{
    conversation, message, Author, AuthorType, Channel, Conversation, Customer, Direction, Message, MessageFormat, MessageStatus,
};
use utalk_storage::offsite::{Offsite, OffsiteKey};
use utalk_storage::{Batch, Db, DbOptions, Map, Timestamp};
use uuid::Uuid;

// The allocator of the server binary (src/main.rs), so that the figures are the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const TEXT_BYTES: usize = 1024;
const PER_CONVERSATION: u64 = 100;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| if e.path().is_dir() { dir_bytes(&e.path()) } else { e.metadata().map(|m| m.len()).unwrap_or(0) })
        .sum()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn text(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut raw = vec![0u8; TEXT_BYTES];
    rng.fill_bytes(&mut raw);
    raw.iter().map(|b| ALPHABET[usize::from(b % 64)] as char).collect()
}

fn main() {
    let bytes = env("DRILL_BYTES", 1 << 30);
    let files = env("DRILL_MEDIA_FILES", 200);
    let messages = (bytes / TEXT_BYTES as u64).max(1);
    let base = bench_dir::temp_dir();
    let (data, backups_dir, offsite_dir, restored) =
        (base.path().join("data"), base.path().join("data-backups"), base.path().join("offsite"), base.path().join("restored"));
    let db = Db::open(&data, &DbOptions::default()).expect("open");
    let mut rng = StdRng::seed_from_u64(20_261_207);

    println!("building {messages} messages of {TEXT_BYTES} bytes and {files} media files of 256 KiB");
    let started = Instant::now();
    let mut batch = Batch::new();
    let mut conv = Conversation::new(Channel::Api, Customer::default(), None);
    for i in 0..messages {
        let seq = i % PER_CONVERSATION + 1;
        if seq == 1 {
            conv = Conversation::new(Channel::Api, Customer { name: Some(format!("Cliente {i}")), ..Customer::default() }, None);
            batch.extend(conversation::put_batch(None, &conv).expect("encode"));
        }
        let customer = Author { kind: AuthorType::Customer, id: None };
        let text = text(&mut rng);
        let m = Message {
            id: Uuid::new_v4(),
            ..Message::text(conv.id, seq, Direction::Inbound, customer, MessageStatus::Received, &text, Timestamp::now())
        };
        batch.extend(message::append_batch(&m, MessageFormat::Compact).expect("encode"));
        if i % 1000 == 999 {
            db.write_group([&std::mem::take(&mut batch)], false).expect("write");
        }
        if (i + 1) % 200_000 == 0 {
            println!("  {} of {messages} messages, {:.0} s", i + 1, started.elapsed().as_secs_f64());
        }
    }
    db.write_group([&batch], false).expect("write");
    let media = data.join("media");
    std::fs::create_dir_all(media.join("ab")).expect("media dir");
    for i in 0..files {
        let mut f = vec![0u8; 256 * 1024];
        rng.fill_bytes(&mut f);
        std::fs::write(media.join("ab").join(format!("file-{i}")), f).expect("media file");
    }
    let size = dir_bytes(&data);
    println!("built in {:.1} s: {:.1} MiB on disk", started.elapsed().as_secs_f64(), mib(size));

    let backups = Backups::new(&backups_dir);
    let started = Instant::now();
    let b = backups.create(&db, &media, &mut |_| {}).expect("backup");
    let backup_secs = started.elapsed().as_secs_f64();
    println!("backup {} taken and verified in {backup_secs:.1} s ({:.1} MiB)", b.id, mib(b.size));

    let mut key = [0u8; 32];
    rng.fill_bytes(&mut key);
    let key = OffsiteKey::from_base64(&base64::engine::general_purpose::STANDARD.encode(key)).expect("key");
    let offsite = Offsite::new(&offsite_dir, key, "bench");
    let started = Instant::now();
    let a = offsite.ship(&backups, b.id, b.created_at, &mut |_| {}).expect("ship");
    let ship_secs = started.elapsed().as_secs_f64();
    println!("encrypted copy written in {ship_secs:.1} s: {} ({:.1} MiB, {:.0} MiB/s)", a.name, mib(a.bytes), mib(a.bytes) / ship_secs);
    drop(db);

    let started = Instant::now();
    let r = offsite.restore(Path::new(&a.name), &restored, &base.path().join("restored-backups"), &mut |_| {}).expect("restore");
    let restore_secs = started.elapsed().as_secs_f64();
    println!("restored from the copy alone in {restore_secs:.1} s: {} files, {:.1} MiB, every chunk verified", r.files, mib(r.bytes));
    let started = Instant::now();
    let again = Db::open(&restored, &DbOptions::default()).expect("open the restored database");
    let mut counted = 0u64;
    let mut start = Vec::new();
    loop {
        let rows = again.scan_raw(Map::Messages, &[], &start, 10_000).expect("scan");
        let Some((last, _)) = rows.last() else { break };
        start = last.clone();
        start.push(0);
        counted += rows.len() as u64;
    }
    println!("restored database opened and its {counted} messages counted in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(counted, messages, "every message written is in the restored database");
    println!(
        "drill: {:.1} MiB of data; backup {backup_secs:.1} s, encrypted copy {ship_secs:.1} s, restore from the copy {restore_secs:.1} s (RTO objective: 4 h)",
        mib(size)
    );
}
