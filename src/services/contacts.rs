//! Contacts as the API reads and changes them: made, changed and merged
//! (audited), each change carried to the customer fields of the contact's
//! conversations.

use super::ServiceError;
use std::collections::BTreeMap;
use utalk_actors::contacts::{self as writer, ContactError};
use utalk_actors::{ConversationChange, Registry};
use utalk_storage::model::contact::{self, Contact, MAX_ATTRIBUTES, MAX_ATTRIBUTE_NAME, MAX_ATTRIBUTE_VALUE, MAX_FIELD};
use utalk_storage::model::{conversation, Channel, Customer};
use utalk_storage::{Db, Timestamp};
use uuid::Uuid;

/// Most conversations a merge or a change carries over at once; a contact
/// with more is refused (409 `too_many_conversations`) rather than half moved.
const MAX_MOVED: usize = 10_000;

impl From<ContactError> for ServiceError {
    fn from(e: ContactError) -> Self {
        match e {
            ContactError::Taken { field, other } => ServiceError::Conflict {
                code: "contact_exists",
                message: format!("contact {other} already has this {field}; merge the two instead"),
            },
            ContactError::NotFound => ServiceError::NotFound("contact"),
            ContactError::Busy => ServiceError::Conflict { code: "concurrent_change", message: e.to_string() },
            ContactError::Store(s) => ServiceError::Store(s),
            ContactError::Codec(c) => ServiceError::Codec(c),
            ContactError::Journal(j) => ServiceError::Journal(j),
        }
    }
}

/// A change of a contact's fields: `None` keeps a field, `Some(None)` clears it.
#[derive(Debug, Default, Clone)]
pub struct Fields {
    /// Name.
    pub name: Option<Option<String>>,
    /// Phone.
    pub phone: Option<Option<String>>,
    /// Email.
    pub email: Option<Option<String>>,
    /// External id.
    pub external_id: Option<Option<String>>,
    /// Custom attributes, replacing the current ones.
    pub attributes: Option<BTreeMap<String, String>>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Invalid { code, message: message.into() }
}

/// Applies `f` to `c`, checking every value.
fn apply(c: &mut Contact, f: Fields) -> Result<(), ServiceError> {
    let text = |v: Option<String>, what: &str| -> Result<Option<String>, ServiceError> {
        let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        if v.as_ref().is_some_and(|s| s.chars().count() > MAX_FIELD || s.chars().any(char::is_control)) {
            return Err(invalid("validation_failed", format!("{what} must be at most {MAX_FIELD} characters without control characters")));
        }
        Ok(v)
    };
    if let Some(n) = f.name {
        c.name = text(n, "name")?;
    }
    if let Some(p) = f.phone {
        c.phone = text(p, "phone")?.map(|p| contact::normalize_phone(&p));
        if c.phone.as_deref().is_some_and(|p| !contact::is_e164(p)) {
            return Err(invalid("invalid_phone", "phone must be a number: digits with an optional leading +"));
        }
    }
    if let Some(e) = f.email {
        c.email = text(e, "email")?.map(|e| e.to_lowercase());
        if c.email.as_deref().is_some_and(|e| !e.contains('@') || e.contains(char::is_whitespace)) {
            return Err(invalid("invalid_email", "email must be an address"));
        }
    }
    if let Some(x) = f.external_id {
        c.external_id = text(x, "externalId")?;
    }
    if let Some(a) = f.attributes {
        if a.len() > MAX_ATTRIBUTES
            || a.iter()
                .any(|(k, v)| k.is_empty() || k.len() > MAX_ATTRIBUTE_NAME || k.contains('\0') || v.chars().count() > MAX_ATTRIBUTE_VALUE)
        {
            return Err(invalid(
                "validation_failed",
                format!(
                    "at most {MAX_ATTRIBUTES} attributes, names of 1 to {MAX_ATTRIBUTE_NAME} bytes, values of at most {MAX_ATTRIBUTE_VALUE} characters"
                ),
            ));
        }
        c.attributes = a;
    }
    Ok(())
}

/// Contacts by creation, after `after`.
pub fn list(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Contact>, ServiceError> {
    Ok(contact::list(db, after, limit)?)
}

/// One contact.
pub fn get(db: &Db, id: Uuid) -> Result<Contact, ServiceError> {
    contact::get(db, id)?.ok_or(ServiceError::NotFound("contact"))
}

/// The conversations of contact `id`, oldest first.
pub fn conversations(db: &Db, id: Uuid, after: Option<Uuid>, limit: usize) -> Result<Vec<super::conversations::Listed>, ServiceError> {
    get(db, id)?;
    contact::conversations(db, id, after, limit)?
        .into_iter()
        .filter_map(|c| conversation::get(db, c).transpose())
        .map(|c| super::conversations::with_last_seq(db, c?))
        .collect()
}

/// Most messages one export gathers: an export is built in memory, so a
/// customer with more is refused (409 `export_too_large`) rather than
/// growing the server's memory without bound.
pub const MAX_EXPORT_MESSAGES: usize = 100_000;

/// Everything held about one contact: the contact, and each of their
/// conversations with its messages (private notes included: the export is
/// for an admin answering a data request) and its media files' records.
pub struct Export {
    /// The contact.
    pub contact: Contact,
    /// Their conversations, oldest first.
    pub conversations: Vec<ExportedConversation>,
}

/// One conversation of an [`Export`].
pub struct ExportedConversation {
    /// The conversation.
    pub conversation: utalk_storage::model::Conversation,
    /// Its messages in seq order.
    pub messages: Vec<utalk_storage::model::Message>,
    /// The records of the media files its messages carry.
    pub media: Vec<utalk_storage::model::MediaRecord>,
}

/// Gathers everything held about contact `id` and records that `actor` exported it.
pub async fn export(db: &Db, registry: &Registry, actor: Uuid, id: Uuid) -> Result<Export, ServiceError> {
    let contact = get(db, id)?;
    let mut conversations = Vec::new();
    let mut total = 0usize;
    for cid in all_conversations(db, id)? {
        let Some(conversation) = conversation::get(db, cid)? else { continue };
        let mut messages = Vec::new();
        let mut seq = 0;
        loop {
            let chunk = utalk_storage::model::message::after(db, cid, seq, 500)?;
            let Some(m) = chunk.last() else { break };
            seq = m.seq;
            total += chunk.len();
            if total > MAX_EXPORT_MESSAGES {
                return Err(ServiceError::Conflict {
                    code: "export_too_large",
                    message: format!("the contact has more than {MAX_EXPORT_MESSAGES} messages"),
                });
            }
            messages.extend(chunk);
        }
        let mut media = Vec::new();
        for mid in messages.iter().flat_map(|m| m.media.iter().map(|a| a.id).chain(m.media_id)).collect::<std::collections::BTreeSet<_>>() {
            media.extend(utalk_storage::model::media::get(db, mid)?);
        }
        conversations.push(ExportedConversation { conversation, messages, media });
    }
    super::records::audit(registry.journal(), actor, "contact.export", id.to_string()).await?;
    Ok(Export { contact, conversations })
}

/// Makes a contact; audited.
pub async fn create(db: &Db, registry: &Registry, actor: Uuid, fields: Fields) -> Result<Contact, ServiceError> {
    let mut c = Contact::new(None, None, None, None);
    apply(&mut c, fields)?;
    writer::save(db, registry.journal(), &actor.to_string(), "contact.create", &c).await?;
    Ok(c)
}

/// Changes a contact; audited; its conversations take its new fields.
pub async fn update(db: &Db, registry: &Registry, actor: Uuid, id: Uuid, fields: Fields) -> Result<Contact, ServiceError> {
    let mut c = get(db, id)?;
    let before = c.clone();
    apply(&mut c, fields)?;
    if c == before {
        return Ok(c);
    }
    c.updated_at = Timestamp::now();
    writer::save(db, registry.journal(), &actor.to_string(), "contact.update", &c).await?;
    carry_over(db, registry, &c, id).await?;
    Ok(c)
}

/// Merges contact `gone` into `survivor`: the survivor keeps its fields and
/// takes `gone`'s where it has none, `gone`'s conversations move to it, and
/// `gone` is removed; audited.
pub async fn merge(db: &Db, registry: &Registry, actor: Uuid, survivor: Uuid, gone: Uuid) -> Result<Contact, ServiceError> {
    if survivor == gone {
        return Err(invalid("validation_failed", "a contact cannot be merged into itself"));
    }
    let mut s = get(db, survivor)?;
    let g = get(db, gone)?;
    s.name = s.name.or(g.name.clone());
    s.phone = s.phone.or(g.phone.clone());
    s.email = s.email.or(g.email.clone());
    s.external_id = s.external_id.or(g.external_id.clone());
    for (k, v) in &g.attributes {
        if s.attributes.len() >= MAX_ATTRIBUTES {
            break;
        }
        s.attributes.entry(k.clone()).or_insert_with(|| v.clone());
    }
    s.updated_at = Timestamp::now();
    // The conversations first, each durable on its own: a merge cut short
    // leaves two whole contacts, and doing it again finishes it.
    carry_over(db, registry, &s, gone).await?;
    writer::replace(db, registry.journal(), &actor.to_string(), gone, &s).await?;
    carry_over(db, registry, &s, survivor).await?;
    Ok(s)
}

/// Every conversation of contact `id`, oldest first; refused past [`MAX_MOVED`].
pub(crate) fn all_conversations(db: &Db, id: Uuid) -> Result<Vec<Uuid>, ServiceError> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let page = contact::conversations(db, id, after, 500)?;
        let Some(last) = page.last().copied() else { return Ok(ids) };
        ids.extend(page);
        if ids.len() > MAX_MOVED {
            return Err(ServiceError::Conflict {
                code: "too_many_conversations",
                message: format!("the contact has more than {MAX_MOVED} conversations"),
            });
        }
        after = Some(last);
    }
}

/// Links every conversation of contact `from` to `to`, with `to`'s customer fields.
async fn carry_over(db: &Db, registry: &Registry, to: &Contact, from: Uuid) -> Result<(), ServiceError> {
    for id in all_conversations(db, from)? {
        let Some(conv) = conversation::get(db, id)? else { continue };
        let customer = customer_in(conv.channel, &conv.customer, to);
        if conv.contact_id == Some(to.id) && conv.customer == customer {
            continue;
        }
        registry.call(id, ConversationChange { contact: Some((to.id, customer)), ..ConversationChange::default() }).await?;
    }
    Ok(())
}

/// The customer fields of a conversation on `channel` of contact `c`: the
/// contact's, but a WhatsApp conversation keeps the number it talks to.
pub fn customer_in(channel: Channel, current: &Customer, c: &Contact) -> Customer {
    let mut customer = writer::customer_of(c);
    if channel == Channel::Whatsapp {
        customer.phone = current.phone.clone();
    }
    customer
}
