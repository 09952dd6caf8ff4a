//! Migrations against a real RocksDB: applied with a backup first, and a failing one restores the database.

#![cfg(not(loom))]

use serde::{Deserialize, Serialize};
use utalk_storage::backup::Backups;
use utalk_storage::codec::{encode, Record};
use utalk_storage::keys::Key;
use utalk_storage::migrations::{self, MigrateError, Migration, StepError};
use utalk_storage::model::{
    kpi, message, user, Author, AuthorType, Channel, Conversation, Customer, Direction, Message, MessageStatus, Role, User,
};
use utalk_storage::{Batch, Db, DbOptions, Map, Timestamp, READABLE_FROM, SCHEMA_VERSION};
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
            let direction = if seq == 3 { Direction::Outbound } else { Direction::Inbound };
            let customer = Author { kind: AuthorType::Customer, id: None };
            let m = Message {
                id: Uuid::new_v4(),
                media_id: (seq == 2).then(Uuid::new_v4),
                ..Message::text(c.id, seq, direction, customer, MessageStatus::Received, "hola", Timestamp(hour + seq as i64))
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
        readable_from: 2,
        down: None,
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

#[test]
fn the_registry_ends_at_this_builds_versions_and_never_lowers_who_can_read() {
    let registry = migrations::registry();
    let last = registry.last().unwrap();
    assert_eq!((last.version, last.readable_from), (SCHEMA_VERSION, READABLE_FROM));
    for pair in registry.windows(2) {
        assert_eq!(pair[1].version, pair[0].version + 1, "versions follow each other");
        assert!(pair[1].readable_from >= pair[0].readable_from && pair[1].readable_from <= pair[1].version);
    }
    // The release before this one must be reachable again in place.
    assert!(last.down.is_some(), "the newest step can be reversed");
}

/// A database as the release before wrote it (schema 4, no `readable_from`), with one user.
fn previous_release_database(path: &std::path::Path) -> Uuid {
    let id = old_database(path);
    let backups = Backups::new(path.with_file_name("setup-backups"));
    let upto4: Vec<Migration> = migrations::registry().into_iter().filter(|m| m.version <= 4).collect();
    migrations::migrate(path, &DbOptions::default(), &backups, &upto4, &mut |_| {}).unwrap();
    let db = Db::open(path, &DbOptions::default()).unwrap();
    assert_eq!((db.schema_version().unwrap(), db.readable_from().unwrap()), (Some(4), None));
    id
}

#[test]
fn a_rollback_takes_the_data_back_in_place_keeping_what_was_written_since() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = previous_release_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    let written_since = Uuid::now_v7();
    {
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        assert_eq!((db.schema_version().unwrap(), db.readable_from().unwrap()), (Some(SCHEMA_VERSION), Some(READABLE_FROM)));
        let u = user::get(&db, id).unwrap().unwrap();
        let mut b = Batch::new();
        b.put(Map::Users, Key::new().uuid(written_since), &User { id: written_since, email: "new@example.com".into(), ..u }).unwrap();
        db.write_group([&b], true).unwrap();
    }
    let mut steps = Vec::new();
    let r = migrations::rollback(&data, &DbOptions::default(), &backups, &migrations::registry(), 4, &mut |s| steps.push(s.to_string()))
        .unwrap();
    assert_eq!((r.from, r.to), (SCHEMA_VERSION, 4));
    assert!(r.backup_id.is_some() && steps.iter().any(|s| s.contains("backing up first")), "{steps:?}");
    {
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        assert_eq!((db.schema_version().unwrap(), db.readable_from().unwrap()), (Some(4), None), "as the release before wrote it");
        assert!(user::get(&db, id).unwrap().is_some());
        assert_eq!(user::get(&db, written_since).unwrap().map(|u| u.email), Some("new@example.com".into()), "the write made since is kept");
    }
    // Nothing to do the second time, and up again from there.
    let again = migrations::rollback(&data, &DbOptions::default(), &backups, &migrations::registry(), 4, &mut |_| {}).unwrap();
    assert_eq!((again.from, again.to, again.backup_id), (4, 4, None));
    let up = migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    assert_eq!((up.from, up.to), (4, SCHEMA_VERSION));
}

#[test]
fn a_rollback_past_a_step_without_a_way_back_or_of_unknown_data_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    previous_release_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    let before = backups.list().unwrap().len();
    let err = migrations::rollback(&data, &DbOptions::default(), &backups, &migrations::registry(), 3, &mut |_| {}).unwrap_err();
    assert!(matches!(err, MigrateError::NotReversible { version: 4, to: 3 }), "{err}");
    assert!(err.to_string().contains("restore of the backup"), "{err}");
    // Data of a newer release this build knows no steps of.
    let older: Vec<Migration> = migrations::registry().into_iter().filter(|m| m.version <= 4).collect();
    let err = migrations::rollback(&data, &DbOptions::default(), &backups, &older, 4, &mut |_| {}).unwrap_err();
    assert!(matches!(err, MigrateError::UnknownVersion { found: SCHEMA_VERSION, .. }), "{err}");
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), Some(SCHEMA_VERSION), "unchanged");
    assert_eq!(backups.list().unwrap().len(), before, "and no backup taken");
}

#[test]
fn a_failing_step_back_restores_the_database_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let id = previous_release_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    let mut registry = migrations::registry();
    migrations::migrate(&data, &DbOptions::default(), &backups, &registry, &mut |_| {}).unwrap();
    if let Some(last) = registry.last_mut() {
        last.down = Some(|_| Err(StepError::Invalid("cannot go back".into())));
    }
    let err = migrations::rollback(&data, &DbOptions::default(), &backups, &registry, 4, &mut |_| {}).unwrap_err();
    assert!(matches!(err, MigrateError::Restored { version, .. } if version == SCHEMA_VERSION), "{err}");
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert_eq!(db.schema_version().unwrap(), Some(SCHEMA_VERSION));
    assert!(user::get(&db, id).unwrap().is_some());
}

#[test]
fn going_back_before_socket_sessions_removes_them_and_the_data_stays_readable_by_the_release_before() {
    use utalk_storage::model::socket_session::{self, SessionOwner, SocketSession};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    previous_release_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    {
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        let mut b = Batch::new();
        let session = SocketSession {
            sid: "sid".into(),
            owner: SessionOwner::Widget { conversation_id: Uuid::now_v7() },
            floors: Vec::new(),
            log: Vec::new(),
            next_offset: 1,
            dropped_at: None,
        };
        for pid in ["p1", "p2"] {
            socket_session::put(&mut b, pid, &session).unwrap();
        }
        db.write_group([&b], true).unwrap();
        // Schema 6 only expanded: the release that wrote 5 may read it as it is.
        assert_eq!(db.readable_from().unwrap(), Some(5));
    }
    let r = migrations::rollback(&data, &DbOptions::default(), &backups, &migrations::registry(), 5, &mut |_| {}).unwrap();
    assert_eq!((r.from, r.to), (SCHEMA_VERSION, 5));
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert_eq!((db.schema_version().unwrap(), db.readable_from().unwrap()), (Some(5), Some(5)));
    assert!(socket_session::page(&db, None, 10).unwrap().is_empty(), "no session is left");
}

#[test]
fn going_back_before_message_format_2_writes_every_message_in_format_1_again() {
    use utalk_storage::codec::version_of;
    use utalk_storage::model::data_migration::{self, MigrationProgress};
    use utalk_storage::model::message_format::{self, MessageFormat};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    previous_release_database(&data);
    let backups = Backups::new(dir.path().join("backups"));
    migrations::migrate(&data, &DbOptions::default(), &backups, &migrations::registry(), &mut |_| {}).unwrap();
    let conv = Uuid::now_v7();
    let author = Author { kind: AuthorType::Customer, id: None };
    // More than a page of the way back (4,096), half written before the switch and half after.
    let all: Vec<Message> = (1..=5_000)
        .map(|seq| {
            Message::text(conv, seq, Direction::Inbound, author.clone(), MessageStatus::Received, &format!("m{seq}"), Timestamp(seq as i64))
        })
        .collect();
    {
        let db = Db::open(&data, &DbOptions::default()).unwrap();
        assert_eq!(db.readable_from().unwrap(), Some(5), "schema 7 only expands until format 2 is turned on");
        let mut before = Batch::new();
        for m in &all[..2_500] {
            before.extend(message::append_batch(m, db.message_format()).unwrap());
        }
        db.write_group([&before], true).unwrap();
        let mut on = Batch::new();
        message_format::turn_on(&mut on);
        data_migration::put(&mut on, &MigrationProgress::new(migrations::MESSAGE_FORMAT_MIGRATION, Timestamp::now())).unwrap();
        db.write_group([&on], true).unwrap();
        assert_eq!((db.message_format(), db.readable_from().unwrap()), (MessageFormat::Compact, Some(message_format::READ_FROM_SCHEMA)));
        let mut after = Batch::new();
        for m in &all[2_500..] {
            after.extend(message::append_batch(m, db.message_format()).unwrap());
        }
        db.write_group([&after], true).unwrap();
        let versions: Vec<Option<u16>> = db.scan_raw(Map::Messages, &[], &[], 10_000).unwrap().iter().map(|(_, v)| version_of(v)).collect();
        assert_eq!(versions.iter().filter(|v| **v == Some(2)).count(), 2_500);
    }
    let r = migrations::rollback(&data, &DbOptions::default(), &backups, &migrations::registry(), 6, &mut |_| {}).unwrap();
    assert_eq!((r.from, r.to), (SCHEMA_VERSION, 6));
    let db = Db::open(&data, &DbOptions::default()).unwrap();
    assert_eq!((db.schema_version().unwrap(), db.readable_from().unwrap()), (Some(6), Some(5)), "readable by the release before again");
    assert_eq!(db.message_format(), MessageFormat::Named, "format 2 is off");
    let rows = db.scan_raw(Map::Messages, &[], &[], 10_000).unwrap();
    assert_eq!(rows.len(), all.len());
    assert!(rows.iter().all(|(_, v)| version_of(v) == Some(1)), "every message is in format 1");
    let read: Vec<Message> = rows.iter().map(|(_, v)| utalk_storage::codec::decode(v).unwrap()).collect();
    assert_eq!(read, all, "and reads as it was written");
    assert!(data_migration::get(&db, migrations::MESSAGE_FORMAT_MIGRATION).unwrap().is_none(), "the migration starts over when run again");
}
