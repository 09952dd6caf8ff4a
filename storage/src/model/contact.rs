//! Contacts: the customer as one record, which each of their conversations
//! links to. A phone number, an email address and an integrator's external
//! id each name at most one contact (the `*_contact` indexes).

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Most custom attributes on one contact.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME: usize = 64;
/// Longest attribute value, in characters.
pub const MAX_ATTRIBUTE_VALUE: usize = 1_024;
/// Longest name, email, phone or external id, in characters.
pub const MAX_FIELD: usize = 200;

/// One customer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contact {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Phone, E.164 (`+` and digits); unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Email, lowercased; unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The integrator's id for the customer; unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Custom attributes (bounded: [`MAX_ATTRIBUTES`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last changed.
    pub updated_at: Timestamp,
}

impl Record for Contact {
    const KIND: &'static str = "contact";
}

impl Contact {
    /// A new contact, created now.
    pub fn new(name: Option<String>, phone: Option<String>, email: Option<String>, external_id: Option<String>) -> Contact {
        let now = Timestamp::now();
        Contact {
            id: Uuid::now_v7(),
            name,
            phone: phone.map(|p| normalize_phone(&p)),
            email: email.map(|e| e.trim().to_lowercase()),
            external_id,
            attributes: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        }
    }
}

/// A phone number as contacts index it: spaces, dashes, dots and brackets
/// dropped, and a leading `+` when it is all digits (as WhatsApp's numbers
/// are); anything else is kept as written.
pub fn normalize_phone(raw: &str) -> String {
    let compact: String = raw.trim().chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        format!("+{digits}")
    } else {
        raw.trim().to_string()
    }
}

/// Whether `phone` is `+` and 1 to 20 digits.
pub fn is_e164(phone: &str) -> bool {
    phone.strip_prefix('+').is_some_and(|d| !d.is_empty() && d.len() <= 20 && d.chars().all(|c| c.is_ascii_digit()))
}

/// What names a contact uniquely.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identifier<'a> {
    /// A phone number (E.164).
    Phone(&'a str),
    /// An email address (lowercased).
    Email(&'a str),
    /// An integrator's external id.
    ExternalId(&'a str),
}

impl Identifier<'_> {
    fn map(self) -> Map {
        match self {
            Identifier::Phone(_) => Map::PhoneContact,
            Identifier::Email(_) => Map::EmailContact,
            Identifier::ExternalId(_) => Map::ExtidContact,
        }
    }
    fn key(self) -> Result<Key, CodecError> {
        match self {
            Identifier::Phone(v) | Identifier::Email(v) | Identifier::ExternalId(v) => Key::new().str(v),
        }
    }
}

/// The identifiers `c` holds.
pub fn identifiers(c: &Contact) -> Vec<Identifier<'_>> {
    let mut out = Vec::with_capacity(3);
    if let Some(p) = c.phone.as_deref() {
        out.push(Identifier::Phone(p));
    }
    if let Some(e) = c.email.as_deref() {
        out.push(Identifier::Email(e));
    }
    if let Some(x) = c.external_id.as_deref() {
        out.push(Identifier::ExternalId(x));
    }
    out
}

/// Reads a contact.
pub fn get(db: &Db, id: Uuid) -> Result<Option<Contact>, StoreError> {
    db.get(Map::Contacts, Key::new().uuid(id))
}

/// The contact `identifier` names, if any.
pub fn find(db: &Db, identifier: Identifier<'_>) -> Result<Option<Uuid>, StoreError> {
    match db.get_raw(identifier.map(), identifier.key()?)? {
        Some(v) => Ok(Some(KeyReader::new(&v).uuid()?)),
        None => Ok(None),
    }
}

/// The writes that store `new`, replacing `old` (none when creating), with its indexes.
pub fn put_batch(old: Option<&Contact>, new: &Contact) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.put(Map::Contacts, Key::new().uuid(new.id), new)?;
    let before = old.map(identifiers).unwrap_or_default();
    let after = identifiers(new);
    for gone in before.iter().filter(|i| !after.contains(i)) {
        b.delete(gone.map(), gone.key()?);
    }
    for added in after.iter().filter(|i| !before.contains(i)) {
        b.put_raw(added.map(), added.key()?.into_bytes(), Key::new().uuid(new.id).into_bytes());
    }
    Ok(b)
}

/// The writes that remove `c` and its indexes (not its conversations' links).
pub fn delete_batch(c: &Contact) -> Result<Batch, CodecError> {
    let mut b = Batch::new();
    b.delete(Map::Contacts, Key::new().uuid(c.id));
    for i in identifiers(c) {
        b.delete(i.map(), i.key()?);
    }
    Ok(b)
}

/// Contacts by id (creation order) after `after`, at most `limit`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Contact>, StoreError> {
    let start = after.map(|a| Key::new().uuid(a).u8(0).into_bytes()).unwrap_or_default();
    Ok(db.scan::<Contact>(Map::Contacts, &[], &start, limit)?.into_iter().map(|(_, c)| c).collect())
}

/// Adds "conversation `conversation` belongs to `contact`" to `batch`.
pub fn link(batch: &mut Batch, contact: Uuid, conversation: Uuid) {
    batch.put_raw(Map::ContactConvid, Key::new().uuid(contact).uuid(conversation).into_bytes(), Vec::new());
}

/// Adds the removal of that link to `batch`.
pub fn unlink(batch: &mut Batch, contact: Uuid, conversation: Uuid) {
    batch.delete(Map::ContactConvid, Key::new().uuid(contact).uuid(conversation));
}

/// The conversations of `contact`, oldest first, after `after`, at most `limit`.
pub fn conversations(db: &Db, contact: Uuid, after: Option<Uuid>, limit: usize) -> Result<Vec<Uuid>, StoreError> {
    let prefix = Key::new().uuid(contact).into_bytes();
    let start = match after {
        Some(a) => Key::new().uuid(contact).uuid(a).u8(0).into_bytes(),
        None => prefix.clone(),
    };
    db.scan_raw(Map::ContactConvid, &prefix, &start, limit)?.iter().map(|(k, _)| Ok(KeyReader::new(&k[prefix.len()..]).uuid()?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::DbOptions;

    #[test]
    fn identifiers_follow_the_contact_and_conversations_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path(), &DbOptions::default()).expect("open");
        let c = Contact::new(Some("Ana".into()), Some("+5215550001".into()), Some("Ana@Example.com".into()), None);
        assert_eq!(c.email.as_deref(), Some("ana@example.com"), "emails are kept lowercased");
        assert_eq!(normalize_phone(" +52 (155) 500-01 "), "+5215550001");
        assert_eq!(normalize_phone("5215550001"), "+5215550001");
        assert_eq!(normalize_phone("ext. 12"), "ext. 12");
        assert!(is_e164("+5215550001") && !is_e164("5215550001") && !is_e164("+") && !is_e164(&format!("+{}", "1".repeat(21))));
        db.write_group([&put_batch(None, &c).expect("put")], false).expect("write");
        assert_eq!(find(&db, Identifier::Phone("+5215550001")).expect("find"), Some(c.id));
        assert_eq!(find(&db, Identifier::Email("ana@example.com")).expect("find"), Some(c.id));

        // A new phone moves its index entry; an external id is added.
        let mut d = c.clone();
        d.phone = Some("+5215550002".into());
        d.external_id = Some("crm-7".into());
        db.write_group([&put_batch(Some(&c), &d).expect("put")], false).expect("write");
        assert_eq!(find(&db, Identifier::Phone("+5215550001")).expect("find"), None);
        assert_eq!(find(&db, Identifier::Phone("+5215550002")).expect("find"), Some(c.id));
        assert_eq!(find(&db, Identifier::ExternalId("crm-7")).expect("find"), Some(c.id));

        let convs: Vec<Uuid> = (0..5).map(|_| Uuid::now_v7()).collect();
        let mut b = Batch::new();
        for v in &convs {
            link(&mut b, c.id, *v);
        }
        db.write_group([&b], false).expect("write");
        assert_eq!(conversations(&db, c.id, None, 3).expect("page"), convs[..3]);
        assert_eq!(conversations(&db, c.id, Some(convs[2]), 10).expect("page"), convs[3..]);

        db.write_group([&delete_batch(&d).expect("delete")], false).expect("write");
        assert_eq!(get(&db, c.id).expect("get"), None);
        assert_eq!(find(&db, Identifier::ExternalId("crm-7")).expect("find"), None);
        assert_eq!(list(&db, None, 10).expect("list"), Vec::<Contact>::new());
    }
}
