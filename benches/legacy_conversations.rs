//! Writes conversations as a release before contacts (0.1.0) stored them,
//! with no contact linked, into a data directory whose server is stopped:
//! the records the `contact_links` background migration walks. Used by
//! `benches/peer/migration.mjs --migration contact_links` to measure sends
//! while that migration runs.
//!
//! `cargo bench --bench legacy_conversations -- --data-dir DIR [--count 100000]`
//!
//! Two conversations in three share a WhatsApp number with another (one
//! customer, several conversations: one contact for them); the rest have a
//! number of their own. Writes 10,000 a batch and says how far it got.

use std::path::PathBuf;
use utalk_storage::model::{conversation, Channel, Conversation, Customer};
use utalk_storage::{Batch, Db, DbOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let Some(dir) = value("--data-dir").map(PathBuf::from) else {
        eprintln!("usage: cargo bench --bench legacy_conversations -- --data-dir DIR [--count N]");
        std::process::exit(2);
    };
    let count: u64 = value("--count").and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let db = Db::open(&dir, &DbOptions::default()).unwrap_or_else(|e| {
        eprintln!("legacy_conversations: cannot open {}: {e} (is the server stopped?)", dir.display());
        std::process::exit(1);
    });
    let mut written = 0u64;
    while written < count {
        let n = (count - written).min(10_000);
        let batches: Vec<Batch> = (written..written + n)
            .map(|i| {
                let number = if i % 3 == 2 { i } else { i / 2 };
                let customer =
                    Customer { name: Some(format!("Cliente {i}")), phone: Some(format!("+52155{number:08}")), ..Customer::default() };
                conversation::put_batch(None, &Conversation::new(Channel::Whatsapp, customer, None)).expect("encode a conversation")
            })
            .collect();
        db.write_group(batches.iter(), true).expect("write");
        written += n;
        eprintln!("legacy_conversations: {written} of {count}");
    }
}
