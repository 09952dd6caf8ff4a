//! The broker of a cluster node: the local broker, plus the events that are
//! not in the log (typing, presence, stock alerts, canned response changes)
//! sent to every other node.
//!
//! Conversation changes reach other nodes through the log, whose follower
//! publishes them to each node's local broker in seq order. What is not kept
//! goes over the cluster's events at most once: a node that misses a typing
//! indicator or a presence change shows the next one.

use crate::cluster::Cluster;
use crate::fanout::broker::{Actor, Broker, ConversationEvent, LocalBroker, Subscriber, SubscriptionId};
use std::sync::Arc;
use uuid::Uuid;

use crate::wire::ephemeral::{Envelope, Wire};

/// The cluster topic of events that are not kept.
const TOPIC: &str = "ephemeral";

fn to_wire(conversation: Uuid, event: &ConversationEvent) -> Option<Wire> {
    Some(match event {
        ConversationEvent::Typing { conversation_id, user, typing, .. } if *conversation_id == conversation => {
            Wire::Typing { kind: user.kind.to_string(), id: user.id, typing: *typing }
        }
        ConversationEvent::Presence { user_id, status } => Wire::Presence { user_id: *user_id, status: status.to_string() },
        ConversationEvent::Alert { alert, manager, new } => Wire::Alert { alert: (**alert).clone(), manager: *manager, new: *new },
        ConversationEvent::Canned { id, change } => Wire::Canned { id: *id, change: change.to_string() },
        _ => return None,
    })
}

fn from_wire(topic: Uuid, w: Wire) -> ConversationEvent {
    match w {
        // Origin 0 is no session of this node, so every local session gets it.
        Wire::Typing { kind, id, typing } => ConversationEvent::Typing {
            conversation_id: topic,
            user: Actor { kind: crate::fanout::broker::reader_kind(&kind), id },
            typing,
            origin: 0,
        },
        Wire::Presence { user_id, status } => ConversationEvent::Presence { user_id, status: presence_status(&status) },
        Wire::Alert { alert, manager, new } => ConversationEvent::Alert { alert: Arc::new(alert), manager, new },
        Wire::Canned { id, change } => ConversationEvent::Canned { id, change: canned_change(&change) },
    }
}

fn canned_change(s: &str) -> &'static str {
    match s {
        "created" => "created",
        "deleted" => "deleted",
        _ => "updated",
    }
}

fn presence_status(s: &str) -> &'static str {
    match s {
        "online" => "online",
        "away" => "away",
        _ => "offline",
    }
}

/// A node's broker in a cluster.
pub struct SharedBroker {
    local: Arc<LocalBroker>,
    cluster: Arc<dyn Cluster>,
}

impl SharedBroker {
    /// Wraps `local` and starts taking other nodes' events into it. Must run inside a tokio runtime.
    pub fn start(local: Arc<LocalBroker>, cluster: Arc<dyn Cluster>) -> Arc<SharedBroker> {
        let (me, into) = (cluster.node_id().to_string(), local.clone());
        crate::cluster::listen_forever(cluster.clone(), TOPIC, move |bytes| {
            match Envelope::decode(&bytes) {
                Ok(e) if e.node != me => into.publish(e.topic, from_wire(e.topic, e.event)),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "an event from another node could not be read"),
            }
            true
        });
        Arc::new(SharedBroker { local, cluster })
    }
}

impl Broker for SharedBroker {
    fn publish(&self, conversation: Uuid, event: ConversationEvent) {
        if let Some(wire) = to_wire(conversation, &event) {
            let envelope = Envelope { node: self.cluster.node_id().to_string(), topic: conversation, event: wire };
            match envelope.encode() {
                Ok(bytes) => {
                    let cluster = self.cluster.clone();
                    tokio::spawn(async move {
                        if let Err(e) = cluster.publish(TOPIC, bytes.into()).await {
                            tracing::debug!(error = %e, "an event did not reach the other nodes");
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "an event could not be encoded for the other nodes"),
            }
        }
        self.local.publish(conversation, event);
    }

    fn subscribe(&self, conversation: Uuid, subscriber: Subscriber) -> SubscriptionId {
        self.local.subscribe(conversation, subscriber)
    }

    fn unsubscribe(&self, conversation: Uuid, id: SubscriptionId) {
        self.local.unsubscribe(conversation, id)
    }

    fn subscriptions(&self) -> usize {
        self.local.subscriptions()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ephemeral_events_cross_the_wire_and_kept_ones_do_not() {
        let conv = Uuid::now_v7();
        let typing = ConversationEvent::Typing {
            conversation_id: conv,
            user: Actor { kind: "agent", id: Some(Uuid::now_v7()) },
            typing: true,
            origin: 7,
        };
        let wire = to_wire(conv, &typing).expect("typing travels");
        let bytes = Envelope { node: "n1".into(), topic: conv, event: wire }.encode().expect("encode");
        let back = Envelope::decode(&bytes).expect("decode");
        match from_wire(back.topic, back.event) {
            ConversationEvent::Typing { conversation_id, typing: true, origin: 0, user } => {
                assert_eq!(conversation_id, conv);
                assert_eq!(user.kind, "agent");
            }
            other => panic!("{other:?}"),
        }
        let presence = ConversationEvent::Presence { user_id: Uuid::nil(), status: "away" };
        assert!(matches!(
            from_wire(Uuid::nil(), to_wire(Uuid::nil(), &presence).unwrap()),
            ConversationEvent::Presence { status: "away", .. }
        ));
        let read = ConversationEvent::Read { conversation_id: conv, seq: 1, reader: Actor { kind: "customer", id: None } };
        assert!(to_wire(conv, &read).is_none(), "kept events travel through the log, not here");
    }
}
