//! Records as the previous release wrote them (golden bytes checked in
//! under `tests/golden/`) still read, and write back byte for byte. A field
//! renamed or retyped for the API (these records are also API schemas)
//! would change the disk format; this test is where that shows.
//!
//! After a deliberate format change (a new `Record::VERSION` with its
//! `upgrade`), add the new version's bytes next to the old ones:
//! `UTALK_WRITE_GOLDEN=1 cargo test --test golden` writes `records.new.hex`
//! for review.

use std::collections::BTreeMap;
use utalk_storage::codec::{decode, encode};
use utalk_storage::model::flag::Flag;
use utalk_storage::model::message_format::{self, MessageFormat};
use utalk_storage::model::user::Preferences;
use utalk_storage::model::{
    Attachment, Author, AuthorType, Channel, Conversation, Customer, Direction, MediaStatus, Message, MessageStatus, Role, Store, User,
};
use utalk_storage::{Record, Timestamp};
use uuid::Uuid;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0190_f5a3_7b1c_7d2e_8f00_0000_0000_0000 + n)
}

const AT: Timestamp = Timestamp(1_764_000_000_000);

fn conversation() -> Conversation {
    let customer = Customer { name: Some("Ana Pérez".into()), phone: Some("+5215512345678".into()), email: None, external_id: None };
    let mut c = Conversation::new(Channel::Whatsapp, customer, Some("pedido 42".into()));
    c.id = id(1);
    c.created_at = AT;
    c.updated_at = AT;
    c.assignee_id = Some(id(2));
    c.csat = Some(5);
    c
}

fn message() -> Message {
    Message {
        id: id(3),
        conversation_id: id(1),
        seq: 7,
        direction: Direction::Inbound,
        author: Author { kind: AuthorType::Customer, id: None },
        text: Some("¿dónde está mi pedido?".into()),
        media_id: Some(id(4)),
        status: MessageStatus::Received,
        provider_id: Some("SM0123456789abcdef0123456789abcdef".into()),
        created_at: AT,
        media: vec![Attachment { id: id(4), content_type: "image/jpeg".into(), status: MediaStatus::Stored, error: None }],
        error_code: None,
        error_message: None,
        status_updated_at: Some(AT),
        private: false,
        template: None,
    }
}

fn user() -> User {
    User {
        id: id(5),
        email: "agent@example.com".into(),
        role: Role::Agent,
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: AT,
        disabled: false,
        preferences: Preferences { language: "es".into(), timezone: "America/Mexico_City".into() },
        name: None,
        signed_out_at: None,
    }
}

fn store() -> Store {
    Store {
        id: id(6),
        name: "Centro".into(),
        allow_negative_stock: false,
        manager_email: Some("manager@example.com".into()),
        created_at: AT,
    }
}

fn flag() -> Flag {
    Flag {
        name: "new_console".into(),
        description: "the new agent console".into(),
        enabled: true,
        percent: 25,
        workspaces: BTreeMap::from([("acme".to_string(), true)]),
        users: BTreeMap::from([(id(5), false)]),
        version: 3,
        updated_at: AT,
        updated_by: id(2).to_string(),
    }
}

/// A message in format 2, which is written only once turned on.
fn compact(m: &Message) -> Vec<u8> {
    message_format::encode(m, MessageFormat::Compact).expect("encode")
}

/// Each record kind with its current encoding and a JSON view to compare decoded values by.
fn current() -> BTreeMap<&'static str, (Vec<u8>, serde_json::Value)> {
    fn entry<R: Record>(r: &R) -> (Vec<u8>, serde_json::Value) {
        (encode(r).expect("encode"), serde_json::to_value(r).expect("json"))
    }
    BTreeMap::from([
        ("conversation", entry(&conversation())),
        ("message", entry(&message())),
        ("message.2", (compact(&message()), serde_json::to_value(message()).expect("json"))),
        ("user", entry(&user())),
        ("store", entry(&store())),
        ("flag", entry(&flag())),
    ])
}

/// Decodes `bytes` as the record kind `kind` and encodes it again.
fn reread(kind: &str, bytes: &[u8]) -> (Vec<u8>, serde_json::Value) {
    fn again<R: Record>(bytes: &[u8]) -> (Vec<u8>, serde_json::Value) {
        let r: R = decode(bytes).unwrap_or_else(|e| panic!("{} no longer reads: {e}", R::KIND));
        (encode(&r).expect("encode"), serde_json::to_value(&r).expect("json"))
    }
    match kind {
        "conversation" => again::<Conversation>(bytes),
        "message" => again::<Message>(bytes),
        "message.2" => {
            let m: Message = decode(bytes).unwrap_or_else(|e| panic!("message format 2 no longer reads: {e}"));
            (compact(&m), serde_json::to_value(&m).expect("json"))
        }
        "user" => again::<User>(bytes),
        "store" => again::<Store>(bytes),
        "flag" => again::<Flag>(bytes),
        other => panic!("unknown record kind {other} in the golden file"),
    }
}

fn manifest_dir() -> std::path::PathBuf {
    // Read at run time: the build cache is shared by clones, and a test binary
    // built in another clone would otherwise read that clone's files.
    std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()))
}

fn golden() -> BTreeMap<String, Vec<u8>> {
    let path = manifest_dir().join("tests/golden/records.hex");
    let text = std::fs::read_to_string(path).expect("tests/golden/records.hex");
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (kind, hex) = l.split_once(' ').expect("`kind hex` lines");
            (kind.to_string(), hex::decode(hex.trim()).expect("hex"))
        })
        .collect()
}

#[test]
fn records_the_previous_release_wrote_read_and_write_back_unchanged() {
    let now = current();
    if std::env::var_os("UTALK_WRITE_GOLDEN").is_some() {
        let lines: Vec<String> = now.iter().map(|(k, (bytes, _))| format!("{k} {}", hex::encode(bytes))).collect();
        let path = manifest_dir().join("tests/golden/records.new.hex");
        std::fs::write(path, lines.join("\n") + "\n").expect("write records.new.hex");
    }
    let old = golden();
    assert_eq!(old.keys().collect::<Vec<_>>(), now.keys().collect::<Vec<_>>(), "every kind has golden bytes");
    for (kind, bytes) in &old {
        let (written, value) = reread(kind, bytes);
        assert_eq!(&value, &now[kind.as_str()].1, "{kind}: the golden bytes read as other values");
        assert_eq!(hex::encode(&written), hex::encode(bytes), "{kind}: a record read from the golden bytes writes back differently");
    }
}

#[test]
fn a_renamed_field_is_noticed() {
    // What a rename for the API would do: the same record under another field name.
    let (bytes, _) = &current()["store"];
    let renamed = hex::encode(bytes).replace(&hex::encode("managerEmail"), &hex::encode("managerInbox"));
    let (written, value) = reread("store", &hex::decode(renamed).expect("hex"));
    assert_ne!(&written, bytes, "the renamed field writes back differently");
    assert_eq!(value["managerEmail"], serde_json::Value::Null, "the renamed field's value is lost");
}
