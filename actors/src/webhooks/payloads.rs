//! What each event's `data` holds: the API's own views, so a receiver
//! parses a webhook with the types it already has for REST.

use super::EventKind;
use crate::views;
use serde::Serialize;
use serde_json::{json, Value};
use utalk_storage::model::{Alert, Conversation, Message, Rating};
use uuid::Uuid;

/// `conversation.*`: the conversation as it now is.
pub fn conversation(c: &Conversation) -> Value {
    json!({ "conversation": views::Conversation::from(c.clone()) })
}

/// `message.created`, `message.status`: the message and its conversation.
pub fn message(m: &Message, c: &Conversation) -> Value {
    json!({ "message": views::Message::from(m.clone()), "conversation": views::Conversation::from(c.clone()) })
}

/// A rating as webhooks show it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RatingView {
    conversation_id: Uuid,
    kind: views::RatingKind,
    score: u8,
    source: &'static str,
    at: String,
    agent_id: Option<Uuid>,
}

/// `rating.created`.
pub fn rating(r: &Rating) -> Value {
    let source = match r.source {
        utalk_storage::model::RatingSource::Reply => "reply",
        utalk_storage::model::RatingSource::Widget => "widget",
        utalk_storage::model::RatingSource::Api => "api",
    };
    json!({ "rating": RatingView {
        conversation_id: r.conversation_id,
        kind: r.kind.into(),
        score: r.score,
        source,
        at: r.at.to_rfc3339(),
        agent_id: r.agent_id,
    }})
}

/// `alert.*`: the alert and its store.
pub fn alert(a: &Alert, store_name: &str) -> Value {
    json!({ "alert": views::Alert::from(a.clone()), "store": { "id": a.store_id, "name": store_name } })
}

/// The event of an alert as it now stands.
pub fn alert_kind(a: &Alert) -> EventKind {
    match a.status {
        utalk_storage::model::AlertStatus::Open => EventKind::AlertRaised,
        utalk_storage::model::AlertStatus::Acknowledged => EventKind::AlertAcknowledged,
        utalk_storage::model::AlertStatus::Resolved => EventKind::AlertResolved,
    }
}

/// The `conversation.*` events of a change from `before` (none: it is new)
/// to `after`: `conversation.updated` for every change, with the specific
/// ones when they apply.
pub fn conversation_kinds(before: Option<&Conversation>, after: &Conversation) -> Vec<EventKind> {
    let Some(b) = before else { return vec![EventKind::ConversationCreated] };
    let mut kinds = vec![EventKind::ConversationUpdated];
    if after.newly_assigned(b.assignee_id) {
        kinds.push(EventKind::ConversationAssigned);
    }
    if after.status != b.status {
        match after.status {
            utalk_storage::model::ConversationStatus::Escalated => kinds.push(EventKind::ConversationEscalated),
            utalk_storage::model::ConversationStatus::Closed => kinds.push(EventKind::ConversationClosed),
            utalk_storage::model::ConversationStatus::Open => {}
        }
    }
    kinds
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::{Channel, ConversationStatus, Customer};

    #[test]
    fn a_change_names_what_it_did() {
        let a = Conversation::new(Channel::Api, Customer::default(), None);
        assert_eq!(conversation_kinds(None, &a), vec![EventKind::ConversationCreated]);
        let mut b = a.clone();
        b.status = ConversationStatus::Escalated;
        b.assignee_id = Some(Uuid::from_u128(7));
        assert_eq!(
            conversation_kinds(Some(&a), &b),
            vec![EventKind::ConversationUpdated, EventKind::ConversationAssigned, EventKind::ConversationEscalated]
        );
        let mut c = b.clone();
        c.status = ConversationStatus::Closed;
        assert_eq!(conversation_kinds(Some(&b), &c), vec![EventKind::ConversationUpdated, EventKind::ConversationClosed]);
        let mut d = c.clone();
        d.assignee_id = None;
        assert_eq!(conversation_kinds(Some(&c), &d), vec![EventKind::ConversationUpdated], "unassigning is an update");
    }
}
