//! Contacts as writers see them: the contact a new conversation belongs to
//! (found by the customer's external id, email or phone, or made), and
//! changes of contacts, one at a time cluster-wide so that no two contacts
//! take the same phone, email or external id.
//!
//! Every change is read, checked and written under one lock on this node
//! and fenced on one log subject in a cluster (a node that read an older
//! state writes nothing and reads again).

use crate::durability::{Journal, JournalError};
use utalk_storage::model::contact::{self, Contact, Identifier};
use utalk_storage::model::{AuditEvent, Customer};
use utalk_storage::{Batch, CodecError, Db, StoreError};
use uuid::Uuid;

/// Why a contact change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    /// Another contact holds this phone, email or external id.
    #[error("another contact ({other}) already has this {field}")]
    Taken {
        /// `phone`, `email` or `externalId`.
        field: &'static str,
        /// The contact that has it.
        other: Uuid,
    },
    /// No such contact.
    #[error("contact not found")]
    NotFound,
    /// Other nodes kept changing contacts while this one tried.
    #[error("contacts keep changing on other nodes; retry")]
    Busy,
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A record could not be encoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The journal did not take the write.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Changes on this node, one at a time.
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn subject() -> String {
    crate::durability::unique_subject("contacts", "all")
}

/// The customer fields a conversation of `c` carries.
pub fn customer_of(c: &Contact) -> Customer {
    Customer { name: c.name.clone(), phone: c.phone.clone(), email: c.email.clone(), external_id: c.external_id.clone() }
}

/// The contact the identifiers of `customer` name: by external id, then
/// email, then phone (the first that names one).
pub fn find(db: &Db, customer: &Customer) -> Result<Option<Contact>, StoreError> {
    let email = customer.email.as_deref().map(str::to_lowercase);
    let ids = [
        customer.external_id.as_deref().map(Identifier::ExternalId),
        email.as_deref().map(Identifier::Email),
        customer.phone.as_deref().map(Identifier::Phone),
    ];
    for id in ids.into_iter().flatten() {
        if let Some(found) = contact::find(db, id)? {
            if let Some(c) = contact::get(db, found)? {
                return Ok(Some(c));
            }
        }
    }
    Ok(None)
}

/// The contact of a new conversation with `customer`: the one its
/// identifiers name, or a new contact with its fields. A customer with no
/// identifier gets a contact of their own (a web visitor who gave none).
pub async fn resolve(db: &Db, journal: &Journal, customer: &Customer) -> Result<Contact, ContactError> {
    if let Some(c) = find(db, customer)? {
        return Ok(c);
    }
    let new = Contact::new(customer.name.clone(), customer.phone.clone(), customer.email.clone(), customer.external_id.clone());
    if contact::identifiers(&new).is_empty() {
        // Nothing unique to claim: no need to wait for the other writers.
        journal.commit(contact::put_batch(None, &new)?).await?;
        return Ok(new);
    }
    let mut made = None;
    let outcome = write(journal, || {
        // Another writer may have made it meanwhile: take theirs.
        if let Some(c) = find(db, customer)? {
            made = Some(c);
            return Ok(None);
        }
        let b = contact::put_batch(None, &new)?;
        made = Some(new.clone());
        Ok(Some(b))
    })
    .await;
    outcome?;
    made.ok_or(ContactError::Busy)
}

/// An identifier's field name in the API.
fn field(id: Identifier<'_>) -> &'static str {
    match id {
        Identifier::Phone(_) => "phone",
        Identifier::Email(_) => "email",
        Identifier::ExternalId(_) => "externalId",
    }
}

/// Fails with [`ContactError::Taken`] when an identifier of `c` names a
/// contact other than `c` and `leaving` (a merged contact, removed in the same write).
pub fn check_unique(db: &Db, c: &Contact, leaving: Option<Uuid>) -> Result<(), ContactError> {
    for id in contact::identifiers(c) {
        if let Some(other) = contact::find(db, id)?.filter(|o| *o != c.id && Some(*o) != leaving) {
            return Err(ContactError::Taken { field: field(id), other });
        }
    }
    Ok(())
}

/// Stores `new` (replacing the stored version of its id, if any) with an
/// audit line by `actor`, after checking its identifiers are its own.
pub async fn save(db: &Db, journal: &Journal, actor: &str, action: &str, new: &Contact) -> Result<(), ContactError> {
    write(journal, || {
        let old = contact::get(db, new.id)?;
        check_unique(db, new, None)?;
        let mut b = contact::put_batch(old.as_ref(), new)?;
        AuditEvent::new(actor, action, new.id.to_string()).add_to(&mut b)?;
        Ok(Some(b))
    })
    .await
}

/// Removes `gone` and stores `survivor` in one write, with an audit line by
/// `actor`: the last step of a merge, once `gone`'s conversations moved.
pub async fn replace(db: &Db, journal: &Journal, actor: &str, gone: Uuid, survivor: &Contact) -> Result<(), ContactError> {
    write(journal, || {
        let Some(old_gone) = contact::get(db, gone)? else { return Err(ContactError::NotFound) };
        let old = contact::get(db, survivor.id)?.ok_or(ContactError::NotFound)?;
        // `gone`'s identifiers are freed in the same write that may give them to the survivor.
        let mut b = contact::delete_batch(&old_gone)?;
        check_unique(db, survivor, Some(gone))?;
        // After the removal in the same batch, so an identifier the survivor
        // takes over from `gone` ends up naming the survivor.
        b.extend(contact::put_batch(Some(&old), survivor)?);
        AuditEvent::new(actor, "contact.merge", format!("{gone} into {}", survivor.id)).add_to(&mut b)?;
        Ok(Some(b))
    })
    .await
}

/// Removes contact `id` and its identifiers in one write, with an audit line
/// by `actor` that names only the id: the last step of an erasure. Nothing
/// to remove is not an error (an erasure applied again).
pub async fn erase(db: &Db, journal: &Journal, actor: &str, id: Uuid) -> Result<(), ContactError> {
    write(journal, || {
        let mut b = match contact::get(db, id)? {
            Some(c) => contact::delete_batch(&c)?,
            None => Batch::new(),
        };
        AuditEvent::new(actor, "contact.erase", id.to_string()).add_to(&mut b)?;
        Ok(Some(b))
    })
    .await
}

/// Reads and writes contacts one change at a time: `decide` sees the store as
/// it is after every change so far and gives the batch to write (none: write
/// nothing); when another node wrote first, it decides again.
async fn write<F>(journal: &Journal, mut decide: F) -> Result<(), ContactError>
where
    F: FnMut() -> Result<Option<Batch>, ContactError>,
{
    let subject = subject();
    let _one_at_a_time = WRITES.lock().await;
    for _ in 0..10 {
        let expected = journal.sync_subject(&subject).await?;
        let Some(batch) = decide()? else { return Ok(()) };
        if journal.commit_fenced(&subject, expected, batch).await? {
            return Ok(());
        }
    }
    Err(ContactError::Busy)
}
