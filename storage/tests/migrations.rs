//! Migrations against a real RocksDB: applied with a backup first, and a failing one restores the database.

#![cfg(not(loom))]

use serde::{Deserialize, Serialize};
use utalk_storage::backup::Backups;
use utalk_storage::codec::{encode, Record};
use utalk_storage::keys::Key;
use utalk_storage::migrations::{self, MigrateError, Migration, StepError};
use utalk_storage::model::{
    kpi, message, user, Author, AuthorType, Channel, Conversation, Customer, Direction, Message, MessageStatus, Role,
};
use utalk_storage::{Batch, Db, DbOptions, Map, Timestamp, SCHEMA_VERSION};
use uuid::Uuid;

/// A user as schema version 1 wrote it: no preferences.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserV1 {
    id: Uuid,
    email: String,
    role: Role,
    password_hash: String,
    created_at: Timestamp,
    disabled: bool,
}

impl Record for UserV1 {
    const KIND: &'static str = "user";
}

/// A version-1 database with one user; returns the user id.
fn old_database(path: &std::path::Path) -> Uuid {
    let db = Db::open(path, &DbOptions::default()).unwrap();
    let id = Uuid::now_v7();
    let u = UserV1 {
        id,
        email: "old@example.com".into(),
        role: Role::Agent,
        password_hash: "h".into(),
        created_at: Timestamp(1),
        disabled: false,
    };
    let mut b = Batch::new();
    b.put_raw(Map::Users, Key::new().uuid(id).into_bytes(), encode(&u).unwrap());
    db.write_group([&b], true).unwrap();
    migrations::force_version(&db, 1).unwrap();
    id
}

#[test]
fn an_old_database_is_backed_up_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = old_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    let mut steps = Vec::new();
    let r =
        migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |s| steps.push(s.to_string())).unwrap();
    assert_eq!((r.from, r.to), (1, SCHEMA_VERSION));
    assert!(r.backup_id.is_some());
    assert!(steps.iter().any(|s| s.contains("backing up first")), "{steps:?}");
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), Some(SCHEMA_VERSION));
    let u = user::get(&db, id).unwrap().unwrap();
    assert_eq!(u.preferences.language, "es");
    assert_eq!(u.preferences.timezone, "America/Mexico_City");
    drop(db);
    // Running again changes nothing and takes no backup.
    let again = migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    assert_eq!((again.from, again.to, again.backup_id), (SCHEMA_VERSION, SCHEMA_VERSION, None));
}

#[test]
fn messages_stored_before_the_time_index_are_indexed_and_marked_for_the_kpis() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hour = 1_795_000_000_000 - 1_795_000_000_000 % kpi::HOUR_MS;
    let conv = {
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        let c = Conversation::new(Channel::Web, Customer::default(), None);
        let mut b = Batch::new();
        b.put(Map::Conversations, Key::new().uuid(c.id), &c).unwrap();
        for seq in 1..=3u64 {
            let m = Message {
                id: Uuid::new_v4(),
                conversation_id: c.id,
                seq,
                direction: if seq == 3 { Direction::Outbound } else { Direction::Inbound },
                author: Author { kind: AuthorType::Customer, id: None },
                text: Some("hola".into()),
                media_id: (seq == 2).then(Uuid::new_v4),
                status: MessageStatus::Received,
                provider_id: None,
                created_at: Timestamp(hour + seq as i64),
                media: Vec::new(),
                error_code: None,
                error_message: None,
                status_updated_at: None,
                private: false,
                template: None,
            };
            // As version 2 wrote it: the message alone, no time index, no dirty mark.
            b.put(Map::Messages, message::key(c.id, seq), &m).unwrap();
        }
        db.write_group([&b], true).unwrap();
        migrations::force_version(&db, 2).unwrap();
        assert!(!kpi::time_index_complete(&db).unwrap());
        c
    };
    let backups = Backups::new(dir.path().join("backups"));
    let r = migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    assert_eq!((r.from, r.to), (2, SCHEMA_VERSION));
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert!(kpi::time_index_complete(&db).unwrap());
    // Version 4: the conversation's last activity is its last message's second.
    assert!(utalk_storage::model::activity::complete(&db).unwrap());
    assert_eq!(
        utalk_storage::model::activity::get(&db, conv.id).unwrap(),
        Some((hour + 3).div_euclid(1000).max(conv.created_at.millis().div_euclid(1000)))
    );
    let dirty = kpi::dirty_hours(&db, 100).unwrap();
    assert!(dirty.contains(&hour), "the messages' hour is marked: {dirty:?}");
    assert!(dirty.contains(&kpi::Granularity::Hour.bucket_start(conv.created_at)), "the conversation's hour is marked");
    let rows = kpi::compute_hour(&db, hour, &utalk_storage::BusinessHours::always_open()).unwrap();
    let all = &rows[&kpi::Dimension::All];
    assert_eq!((all.messages, all.media_messages, all.outbound), (3, 1, 1));
    assert_eq!(rows[&kpi::Dimension::Channel(Channel::Web)].messages, 3);
}

fn wipe_users(db: &Db) -> Result<Batch, StepError> {
    let mut b = Batch::new();
    for (k, _) in db.scan_raw(Map::Users, &[], &[], usize::MAX)? {
        b.delete_raw(Map::Users, k);
    }
    Ok(b)
}

#[test]
fn a_failing_migration_restores_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = old_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    // It writes (removes every user), then its validation fails.
    let failing = [Migration {
        version: 2,
        description: "breaks things",
        up: wipe_users,
        validate: |_| Err(StepError::Invalid("validation says no".into())),
    }];
    let err = migrations::migrate(&data, &DbOptions::default(), &backups, &failing, &mut |_| {}).unwrap_err();
    let MigrateError::Restored { version, cause, kept, .. } = &err else { panic!("{err}") };
    assert_eq!(*version, 2);
    assert_eq!(cause.to_string(), "validation says no");
    assert!(std::path::Path::new(kept).exists(), "the failed attempt is kept");
    assert!(err.to_string().contains("restored from backup"), "{err}");
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), Some(1), "the version is as before");
    assert!(user::get(&db, id).unwrap().is_some(), "the data is as before");
}
