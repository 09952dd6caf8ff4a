//! What the index holds: its fields, how words are cut and folded, and the
//! documents made from records.
//!
//! Three kinds of record are indexed, one document each: a message with text
//! (a private note is kept apart by its kind), a conversation (its customer's
//! fields) and a contact. Only ids are stored: the words are in the index's
//! terms, never in a stored field, so the index holds no text it could give
//! back, and an erased record's words leave with its document.

use super::forms::Forms;
use tantivy::schema::{Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, STORED, STRING};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer, TokenizerManager};
use tantivy::TantivyDocument;
use utalk_storage::model::{Contact, Conversation, Message};
use uuid::Uuid;

/// Bumped when fields or analysers change: an index of another version is rebuilt.
pub(crate) const VERSION: u32 = 2;

/// Shortest tail of a phone number that finds it: people type the number
/// without the country code, or only its last digits.
pub(crate) const SHORTEST_PHONE_TAIL: usize = 6;

const FORMS: &str = "utalk_forms";
const IDENT: &str = "utalk_ident";

/// A document's kind, the `kind` field's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Message,
    Note,
    Conversation,
    Contact,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Message => "message",
            Kind::Note => "note",
            Kind::Conversation => "conversation",
            Kind::Contact => "contact",
        }
    }
}

/// The index's fields.
#[derive(Clone)]
pub(crate) struct Fields {
    /// Unique per record (`m/<conversation>/<seq>`, `c/<conversation>`, `p/<contact>`): replaced and deleted by it.
    pub(crate) key: Field,
    pub(crate) kind: Field,
    /// The conversation's id (messages, notes, conversations) or the contact's; stored.
    pub(crate) id: Field,
    /// The words' forms ([`Forms`]): folded as written, and their stems.
    pub(crate) words: Field,
    /// Whole identifiers, lowercased: an email, an external id, a phone's digits and their tails.
    pub(crate) ident: Field,
}

/// The schema and its fields.
pub(crate) fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = |name: &str| {
        TextOptions::default()
            .set_indexing_options(TextFieldIndexing::default().set_tokenizer(name).set_index_option(IndexRecordOption::WithFreqs))
    };
    let fields = Fields {
        key: b.add_text_field("key", STRING),
        kind: b.add_text_field("kind", STRING),
        id: b.add_text_field("id", STRING | STORED),
        words: b.add_text_field("words", text(FORMS)),
        ident: b.add_text_field("ident", text(IDENT)),
    };
    (b.build(), fields)
}

/// Registers the analysers the fields name.
pub(crate) fn register(tokenizers: &TokenizerManager) {
    tokenizers.register(FORMS, TextAnalyzer::from(Forms::new()));
    tokenizers.register(IDENT, TextAnalyzer::builder(RawTokenizer::default()).filter(LowerCaser).build());
}

/// The document of a message, `None` when it has no text to find.
pub(crate) fn message_doc(f: &Fields, m: &Message) -> Option<TantivyDocument> {
    let text = m.text.as_deref().filter(|t| !t.trim().is_empty())?;
    let kind = if m.private { Kind::Note } else { Kind::Message };
    let mut d = base(f, message_key(m.conversation_id, m.seq), kind, m.conversation_id);
    words(f, &mut d, text);
    Some(d)
}

/// The document of a conversation: its customer's fields.
pub(crate) fn conversation_doc(f: &Fields, c: &Conversation) -> TantivyDocument {
    let mut d = base(f, conversation_key(c.id), Kind::Conversation, c.id);
    let cu = &c.customer;
    person(f, &mut d, cu.name.as_deref(), cu.phone.as_deref(), cu.email.as_deref(), cu.external_id.as_deref());
    if let Some(s) = c.subject.as_deref() {
        words(f, &mut d, s);
    }
    d
}

/// The document of a contact.
pub(crate) fn contact_doc(f: &Fields, c: &Contact) -> TantivyDocument {
    let mut d = base(f, contact_key(c.id), Kind::Contact, c.id);
    person(f, &mut d, c.name.as_deref(), c.phone.as_deref(), c.email.as_deref(), c.external_id.as_deref());
    d
}

fn base(f: &Fields, key: String, kind: Kind, id: Uuid) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_text(f.key, key);
    d.add_text(f.kind, kind.as_str());
    d.add_text(f.id, id.to_string());
    d
}

fn words(f: &Fields, d: &mut TantivyDocument, text: &str) {
    d.add_text(f.words, text);
}

fn person(f: &Fields, d: &mut TantivyDocument, name: Option<&str>, phone: Option<&str>, email: Option<&str>, external: Option<&str>) {
    for text in [name, email, external].into_iter().flatten() {
        words(f, d, text);
    }
    for id in [email, external].into_iter().flatten() {
        d.add_text(f.ident, id);
    }
    if let Some(phone) = phone {
        for tail in phone_tails(phone) {
            d.add_text(f.ident, tail);
        }
    }
}

/// A phone's digits and each tail of them down to [`SHORTEST_PHONE_TAIL`].
pub(crate) fn phone_tails(phone: &str) -> Vec<String> {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < SHORTEST_PHONE_TAIL {
        return Vec::new();
    }
    (0..=digits.len() - SHORTEST_PHONE_TAIL).filter_map(|i| digits.get(i..).map(str::to_string)).collect()
}

pub(crate) fn message_key(conversation: Uuid, seq: u64) -> String {
    format!("m/{conversation}/{seq}")
}

pub(crate) fn conversation_key(id: Uuid) -> String {
    format!("c/{id}")
}

pub(crate) fn contact_key(id: Uuid) -> String {
    format!("p/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_phone_is_found_by_its_tails() {
        let t = phone_tails("+34 600 11 22 33");
        assert_eq!(t.first().map(String::as_str), Some("34600112233"));
        assert_eq!(t.last().map(String::as_str), Some("112233"));
        assert!(t.contains(&"600112233".to_string()));
        assert!(phone_tails("+1 23").is_empty());
    }
}
