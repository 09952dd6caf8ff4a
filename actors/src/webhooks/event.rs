//! The events a subscription can ask for, by their public names.

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A message was stored (customer, bot, agent or system).
    MessageCreated,
    /// An outbound message's delivery status changed.
    MessageStatus,
    /// A conversation was opened.
    ConversationCreated,
    /// A conversation's own fields changed (sent with the specific events below, too).
    ConversationUpdated,
    /// A conversation got an assignee (or another one).
    ConversationAssigned,
    /// A conversation was escalated to people.
    ConversationEscalated,
    /// A conversation was closed.
    ConversationClosed,
    /// A customer rated a conversation (CSAT or NPS).
    RatingCreated,
    /// A stock alert was raised.
    AlertRaised,
    /// A stock alert was acknowledged.
    AlertAcknowledged,
    /// A stock alert was resolved.
    AlertResolved,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 11] = [
        EventKind::MessageCreated,
        EventKind::MessageStatus,
        EventKind::ConversationCreated,
        EventKind::ConversationUpdated,
        EventKind::ConversationAssigned,
        EventKind::ConversationEscalated,
        EventKind::ConversationClosed,
        EventKind::RatingCreated,
        EventKind::AlertRaised,
        EventKind::AlertAcknowledged,
        EventKind::AlertResolved,
    ];

    /// The public name (`X-Utalk-Event`, the body's `type`).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::MessageCreated => "message.created",
            EventKind::MessageStatus => "message.status",
            EventKind::ConversationCreated => "conversation.created",
            EventKind::ConversationUpdated => "conversation.updated",
            EventKind::ConversationAssigned => "conversation.assigned",
            EventKind::ConversationEscalated => "conversation.escalated",
            EventKind::ConversationClosed => "conversation.closed",
            EventKind::RatingCreated => "rating.created",
            EventKind::AlertRaised => "alert.raised",
            EventKind::AlertAcknowledged => "alert.acknowledged",
            EventKind::AlertResolved => "alert.resolved",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Its bit in a subscription's mask.
    pub(crate) const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// The mask of `names`, skipping names this version does not know (a
/// subscription stored by a newer node keeps working for the rest).
pub(crate) fn mask_of<'a>(names: impl IntoIterator<Item = &'a String>) -> u32 {
    names.into_iter().filter_map(|n| EventKind::parse(n)).fold(0, |m, k| m | k.bit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_and_bits_are_distinct() {
        let mut all = 0u32;
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.name()), Some(k));
            assert_eq!(all & k.bit(), 0);
            all |= k.bit();
        }
        assert_eq!(EventKind::parse("message.deleted"), None);
        assert_eq!(mask_of(&["alert.raised".to_string(), "nope".to_string()]), EventKind::AlertRaised.bit());
    }
}
