//! The full-text search index on a large store: how long it takes to
//! rebuild from RocksDB, how big it is, and how long searches take.
//!
//! Builds a database of `SEARCH_BENCH_MESSAGES` messages (default 1,000,000)
//! in `SEARCH_BENCH_CONVERSATIONS` conversations (default one per 50
//! messages), each conversation with its customer (name, phone, email) and a
//! contact for that customer. Messages are chat text in Spanish and English
//! from a seeded generator (benches/common/chat_text.rs), 5% of them private
//! notes, each in a random conversation, written as the conversation actor
//! writes them (the record and its id index), in unsynced batches. Then it
//! opens the search index on an empty directory, which rebuilds it from the
//! database, and times that; then it runs `SEARCH_BENCH_QUERIES` searches of
//! each kind (default 1,000), interleaved, through the calls the API makes
//! (`conversations(q, false, 1021)`, `contacts(q, 21)`), and prints the
//! latency of each kind.
//!
//! `cargo bench --bench search` (`SEARCH_BENCH_MESSAGES=100000` for a short run;
//! `UTALK_BENCH_DIR` chooses where the data goes, default the working directory).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::{Duration, Instant};
use utalk_actors::search::{SearchIndex, Settings};
use utalk_storage::model::{contact, conversation, message, Author, AuthorType, Channel, Contact, Conversation, Customer, Direction};
use utalk_storage::model::{Message, MessageFormat, MessageStatus};
use utalk_storage::{Batch, Db, DbOptions, Timestamp};
use uuid::Uuid;

// The allocator of the server binary (src/main.rs), so that the figures are the server's.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[path = "common/bench_dir.rs"]
mod bench_dir;
#[path = "common/chat_text.rs"]
mod chat_text;

const FIRST_NAMES: &[&str] = &[
    "María",
    "José",
    "Lucía",
    "Juan",
    "Sofía",
    "Carlos",
    "Valentina",
    "Andrés",
    "Camila",
    "Diego",
    "Ana",
    "Luis",
    "Martina",
    "Jorge",
    "Paula",
    "Miguel",
    "Elena",
    "Pedro",
    "Laura",
    "Javier",
    "John",
    "Emma",
    "Michael",
    "Olivia",
    "David",
    "Sarah",
    "James",
    "Emily",
    "Robert",
    "Jessica",
    "Ángel",
    "Inés",
    "Begoña",
    "Iñaki",
    "Raúl",
    "Zoë",
];
const LAST_NAMES: &[&str] = &[
    "García",
    "Rodríguez",
    "González",
    "Fernández",
    "López",
    "Martínez",
    "Sánchez",
    "Pérez",
    "Gómez",
    "Martín",
    "Jiménez",
    "Ruiz",
    "Hernández",
    "Díaz",
    "Moreno",
    "Muñoz",
    "Álvarez",
    "Romero",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Taylor",
    "Castillo",
    "Ortega",
    "Núñez",
    "Peña",
    "Ibáñez",
];

/// Accented Spanish words of the vocabulary, searched as typed and without their accents.
const ACCENTED: &[&str] = &[
    "envío",
    "dirección",
    "número",
    "teléfono",
    "contraseña",
    "facturación",
    "devolución",
    "código",
    "cupón",
    "información",
    "aplicación",
    "página",
    "sesión",
    "atención",
    "sábado",
    "miércoles",
    "dañado",
    "cancelación",
    "suscripción",
    "confirmación",
    "garantía",
    "reparación",
    "técnico",
    "rápido",
    "perdón",
];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.replace(['_', ','], "").parse().ok()).unwrap_or(default)
}

fn fold(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            'á' => 'a',
            'é' => 'e',
            'í' => 'i',
            'ó' => 'o',
            'ú' | 'ü' => 'u',
            'ñ' => 'n',
            other => other,
        })
        .collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// Segments of a tantivy index: one `.idx` file each.
fn segments(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "idx")).count()).unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// What the database holds: the customers' phones, for the phone searches.
struct Built {
    phones: Vec<String>,
    records: u64,
}

/// Writes `conversations` conversations and contacts and `messages` messages to `db`.
fn build(db: &Db, rng: &mut StdRng, chat: &mut chat_text::ChatText, conversations: usize, messages: usize) -> Built {
    let started = Instant::now();
    let mut ids = Vec::with_capacity(conversations);
    let mut phones = Vec::with_capacity(conversations);
    let mut batch = Batch::new();
    for i in 0..conversations {
        let first = FIRST_NAMES[rng.gen_range(0..FIRST_NAMES.len())];
        let last = LAST_NAMES[rng.gen_range(0..LAST_NAMES.len())];
        // Spanish mobiles and a few US numbers, all distinct.
        let phone = if i % 5 == 4 {
            format!("+1415{:07}", (i as u64 * 7_919_993 + 1_234_567) % 10_000_000)
        } else {
            format!("+346{:08}", (i as u64 * 7_919_993 + 12_345_678) % 100_000_000)
        };
        let email = format!("{}.{}{}@example.com", fold(&first.to_lowercase()), fold(&last.to_lowercase()), i);
        let name = format!("{first} {last}");
        let customer = Customer { name: Some(name.clone()), phone: Some(phone.clone()), email: Some(email.clone()), external_id: None };
        let channel = [Channel::Whatsapp, Channel::Web, Channel::Api][i % 3];
        let conv = Conversation::new(channel, customer, None);
        let person = Contact::new(Some(name), Some(phone.clone()), Some(email), None);
        batch.extend(conversation::put_batch(None, &conv).expect("encode"));
        batch.extend(contact::put_batch(None, &person).expect("encode"));
        contact::link(&mut batch, person.id, conv.id);
        ids.push(conv.id);
        phones.push(phone);
        if i % 1000 == 999 {
            db.write_group([&std::mem::take(&mut batch)], false).expect("write");
        }
    }
    db.write_group([&std::mem::take(&mut batch)], false).expect("write");
    let mut seqs = vec![0u64; conversations];
    let start_ms = Timestamp::now().0 - 90 * 24 * 3600 * 1000;
    for i in 0..messages {
        let c = rng.gen_range(0..conversations);
        seqs[c] += 1;
        let inbound = rng.gen_bool(0.55);
        let private = !inbound && rng.gen_bool(0.1);
        let m = Message {
            id: Uuid::new_v4(),
            conversation_id: ids[c],
            seq: seqs[c],
            direction: if inbound { Direction::Inbound } else { Direction::Outbound },
            author: Author { kind: if inbound { AuthorType::Customer } else { AuthorType::Agent }, id: None },
            text: Some(chat.message(rng)),
            media_id: None,
            status: if inbound { MessageStatus::Received } else { MessageStatus::Delivered },
            provider_id: None,
            created_at: Timestamp(start_ms + i as i64 * 7),
            media: Vec::new(),
            error_code: None,
            error_message: None,
            status_updated_at: None,
            private,
            template: None,
        };
        batch.extend(message::append_batch(&m, MessageFormat::Compact).expect("encode"));
        if i % 1000 == 999 {
            db.write_group([&std::mem::take(&mut batch)], false).expect("write");
        }
        if (i + 1) % 100_000 == 0 || i + 1 == messages {
            let secs = started.elapsed().as_secs_f64();
            println!("  built {:>9} of {messages} messages, {:.0} s, {:.0} messages/s", i + 1, secs, (i + 1) as f64 / secs);
        }
    }
    db.write_group([&batch], false).expect("write");
    Built { phones, records: (2 * conversations + messages) as u64 }
}

/// One kind of search and its latencies.
struct Kind {
    name: &'static str,
    queries: Vec<String>,
    contacts: bool,
    latencies: Vec<Duration>,
    results: u64,
    empty: u64,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let messages = env("SEARCH_BENCH_MESSAGES", 1_000_000).max(1);
    let conversations = env("SEARCH_BENCH_CONVERSATIONS", (messages / 50).max(1)).max(1);
    let per_kind = env("SEARCH_BENCH_QUERIES", 1_000).max(1);
    // The rebuild's own progress (every 100,000 records) and any warning.
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let base = bench_dir::temp_dir();
    let (db_dir, index_dir) = (base.path().join("db"), base.path().join("search"));
    let db = Db::open(&db_dir, &DbOptions::default()).expect("open");
    let mut rng = StdRng::seed_from_u64(20_261_207);
    let mut chat = chat_text::ChatText::new(&mut rng);

    println!("building {messages} messages in {conversations} conversations ({} words of vocabulary)", chat.vocabulary());
    let started = Instant::now();
    let built = build(&db, &mut rng, &mut chat, conversations, messages);
    let build_secs = started.elapsed().as_secs_f64();
    println!("database built in {build_secs:.1} s: {:.1} MiB on disk", mib(dir_bytes(&db_dir)));

    println!("opening the search index on an empty directory (it rebuilds from the database)");
    let started = Instant::now();
    let index = SearchIndex::open(&index_dir, db.clone(), Settings::default()).expect("search index");
    let mut said = Instant::now();
    while index.rebuilding() {
        std::thread::sleep(Duration::from_millis(10));
        if said.elapsed() >= Duration::from_secs(10) {
            said = Instant::now();
            println!("  rebuilding, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    let rebuild = started.elapsed();
    let documents = index.documents();
    let size_rebuilt = dir_bytes(&index_dir);
    let segments_rebuilt = segments(&index_dir);
    println!(
        "rebuilt in {:.1} s: {} records read, {:.0} records/s, {documents} documents, {:.1} MiB in {segments_rebuilt} segments",
        rebuild.as_secs_f64(),
        built.records,
        built.records as f64 / rebuild.as_secs_f64(),
        mib(size_rebuilt),
    );

    // The queries, drawn from what was written.
    let words: Vec<(String, usize, u64)> = chat.words().map(|(w, r, u)| (w.to_string(), r, u)).collect();
    let common: Vec<&str> = words.iter().filter(|(_, r, _)| *r < 20).map(|(w, _, _)| w.as_str()).collect();
    let mid: Vec<&str> = words.iter().filter(|(_, r, _)| (20..400).contains(r)).map(|(w, _, _)| w.as_str()).collect();
    // The 200 least written words (of those written at all).
    let mut by_use: Vec<&(String, usize, u64)> = words.iter().filter(|(_, _, u)| *u > 0).collect();
    by_use.sort_by_key(|(_, _, u)| *u);
    let rare: Vec<&str> = by_use.iter().take(200).map(|(w, _, _)| w.as_str()).collect();
    let numbers: Vec<String> = chat.numbers().iter().map(u32::to_string).collect();
    let uses = |set: &[&str]| {
        let total: u64 = words.iter().filter(|(w, _, _)| set.contains(&w.as_str())).map(|(_, _, u)| *u).sum();
        total as f64 / set.len() as f64
    };
    println!(
        "query words: {} common (written {:.0} times each on average), {} rare ({:.1} times, {} to {}), {} mid-frequency for pairs ({:.0} times), {} accented ({:.0} times), {} order numbers",
        common.len(),
        uses(&common),
        rare.len(),
        uses(&rare),
        by_use.first().map_or(0, |(_, _, u)| *u),
        by_use.get(rare.len().max(1) - 1).map_or(0, |(_, _, u)| *u),
        mid.len(),
        uses(&mid),
        ACCENTED.len(),
        uses(ACCENTED),
        numbers.len()
    );
    let mut q = StdRng::seed_from_u64(99);
    let pick = |q: &mut StdRng, set: &[&str]| set[q.gen_range(0..set.len())].to_string();
    let mut kinds = vec![
        Kind {
            name: "one common word",
            queries: (0..per_kind).map(|_| pick(&mut q, &common)).collect(),
            contacts: false,
            latencies: vec![],
            results: 0,
            empty: 0,
        },
        Kind {
            name: "one rare word",
            queries: (0..per_kind).map(|_| pick(&mut q, &rare)).collect(),
            contacts: false,
            latencies: vec![],
            results: 0,
            empty: 0,
        },
        Kind {
            name: "two words",
            queries: (0..per_kind).map(|_| format!("{} {}", pick(&mut q, &mid), pick(&mut q, &mid))).collect(),
            contacts: false,
            latencies: vec![],
            results: 0,
            empty: 0,
        },
        Kind {
            name: "accented word",
            queries: (0..per_kind).map(|_| pick(&mut q, ACCENTED)).collect(),
            contacts: false,
            latencies: vec![],
            results: 0,
            empty: 0,
        },
        Kind {
            name: "same, unaccented",
            queries: (0..per_kind).map(|_| fold(&pick(&mut q, ACCENTED))).collect(),
            contacts: false,
            latencies: vec![],
            results: 0,
            empty: 0,
        },
    ];
    if !numbers.is_empty() {
        let queries = (0..per_kind).map(|_| numbers[q.gen_range(0..numbers.len())].clone()).collect();
        kinds.push(Kind { name: "order number", queries, contacts: false, latencies: vec![], results: 0, empty: 0 });
    }
    let mut r = StdRng::seed_from_u64(100);
    let phone_queries = (0..per_kind)
        .map(|_| {
            let phone = &built.phones[r.gen_range(0..built.phones.len())];
            let digits = &phone[1..];
            digits[digits.len() - r.gen_range(6..=9)..].to_string()
        })
        .collect();
    kinds.push(Kind { name: "phone tail (contacts)", queries: phone_queries, contacts: true, latencies: vec![], results: 0, empty: 0 });

    let run = |index: &SearchIndex, kind: &Kind, i: usize| -> (Duration, usize) {
        let started = Instant::now();
        let n = if kind.contacts {
            index.contacts(&kind.queries[i], 21).expect("search").len()
        } else {
            index.conversations(&kind.queries[i], false, 1021).expect("search").len()
        };
        (started.elapsed(), n)
    };
    // Warm up: the first searches read the index's files into the page cache.
    let warm = Instant::now();
    for i in 0..per_kind.min(100) {
        for k in &kinds {
            run(&index, k, i);
        }
    }
    println!("warm-up: {} searches in {:.2} s", per_kind.min(100) * kinds.len(), warm.elapsed().as_secs_f64());
    let started = Instant::now();
    for i in 0..per_kind {
        for k in kinds.iter_mut() {
            let (took, n) = run(&index, k, i);
            k.latencies.push(took);
            k.results += n as u64;
            k.empty += u64::from(n == 0);
        }
    }
    let searches = per_kind * kinds.len();
    println!("{searches} searches in {:.1} s, one at a time", started.elapsed().as_secs_f64());

    println!("\nsummary: {messages} messages, {conversations} conversations, {conversations} contacts");
    println!(
        "database {:.1} MiB, built in {build_secs:.1} s; search index rebuilt in {:.1} s ({:.0} records/s), {documents} documents, {:.1} MiB in {segments_rebuilt} segments after the rebuild",
        mib(dir_bytes(&db_dir)),
        rebuild.as_secs_f64(),
        built.records as f64 / rebuild.as_secs_f64(),
        mib(size_rebuilt)
    );
    println!("{:<24} {:>8} {:>9} {:>9} {:>9} {:>13} {:>8}", "query", "searches", "p50 ms", "p99 ms", "max ms", "mean results", "empty");
    for k in kinds.iter_mut() {
        k.latencies.sort();
        println!(
            "{:<24} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>13.1} {:>8}",
            k.name,
            k.latencies.len(),
            ms(percentile(&k.latencies, 0.5)),
            ms(percentile(&k.latencies, 0.99)),
            ms(*k.latencies.last().expect("searched")),
            k.results as f64 / k.latencies.len() as f64,
            k.empty
        );
    }
    // Merges the rebuild started may have finished by now.
    println!("search index now {:.1} MiB in {} segments", mib(dir_bytes(&index_dir)), segments(&index_dir));
    index.stop(db.latest_sequence());
}
