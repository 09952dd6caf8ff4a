//! Automatic assignment: an escalated conversation goes to the next online
//! agent, round robin, among those under their capacity, during business
//! hours; outside them it waits, escalated and unassigned, for the opening
//! (the bot's sweep offers it again then).

use crate::conversation::registry::Registry;
use crate::conversation::ConversationChange;
use crate::socket::session::SocketHub;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use utalk_storage::model::{conversation, user, Conversation, ConversationFilter, ConversationStatus, Role};
use utalk_storage::{BusinessHours, Db, Timestamp};
use uuid::Uuid;

/// Picks agents for escalated conversations.
pub struct Assigner {
    db: Db,
    registry: Registry,
    hub: Arc<SocketHub>,
    capacity: usize,
    hours: Arc<BusinessHours>,
    next: AtomicUsize,
    /// One assignment at a time, so two escalations never both take an agent's last slot.
    lock: tokio::sync::Mutex<()>,
}

impl Assigner {
    /// An assigner giving each agent at most `capacity` open conversations, during `hours`.
    pub fn new(db: Db, registry: Registry, hub: Arc<SocketHub>, capacity: usize, hours: Arc<BusinessHours>) -> Assigner {
        Assigner { db, registry, hub, capacity: capacity.max(1), hours, next: AtomicUsize::new(0), lock: tokio::sync::Mutex::new(()) }
    }

    /// Conversations assigned to `agent` that are not closed, counting up to `cap`.
    fn load(&self, agent: Uuid, cap: usize) -> usize {
        let filter = ConversationFilter { assignee_id: Some(agent), ..ConversationFilter::default() };
        let mut open = 0;
        let mut after = None;
        loop {
            match conversation::list(&self.db, &filter, after, 500) {
                Ok((items, next)) => {
                    open += items.iter().filter(|c| c.status != ConversationStatus::Closed).count();
                    match next {
                        Some(n) if open < cap => after = Some(n),
                        _ => return open,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading an agent's load failed");
                    return usize::MAX;
                }
            }
        }
    }

    /// Online agents (role agent or operator, not disabled), in a stable order.
    fn candidates(&self) -> Vec<Uuid> {
        self.hub
            .online_staff()
            .into_iter()
            .filter(|id| matches!(user::get(&self.db, *id), Ok(Some(u)) if !u.disabled && matches!(u.role, Role::Agent | Role::Operator)))
            .collect()
    }

    /// Assigns `conv` to the next online agent with room, if it has no assignee; returns the agent.
    pub async fn assign(&self, conv: &Conversation) -> Option<Uuid> {
        if conv.assignee_id.is_some() || conv.status == ConversationStatus::Closed {
            return None;
        }
        let now = Timestamp::now();
        if !self.hours.is_open(now) {
            let opens = self.hours.next_opening(now).map(|o| o.to_rfc3339()).unwrap_or_default();
            tracing::info!(conversation = %conv.id, opens = %opens, "outside business hours; the conversation waits unassigned for the opening");
            return None;
        }
        let _guard = self.lock.lock().await;
        let agents = self.candidates();
        if agents.is_empty() {
            tracing::info!(conversation = %conv.id, "no agent online; the conversation waits unassigned");
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..agents.len() {
            let agent = agents[(start + i) % agents.len()];
            if self.load(agent, self.capacity) >= self.capacity {
                continue;
            }
            // Applied only if still escalated and unassigned when the actor gets it:
            // a stale offer never moves or reopens anything.
            let change = ConversationChange { assign_if_unassigned: Some(agent), ..ConversationChange::default() };
            return match self.registry.call(conv.id, change).await {
                Ok(c) if c.assignee_id == Some(agent) => {
                    tracing::info!(conversation = %conv.id, agent = %agent, "conversation assigned");
                    Some(agent)
                }
                Ok(_) => None,
                Err(e) => {
                    tracing::warn!(conversation = %conv.id, error = %e, "assignment failed");
                    None
                }
            };
        }
        tracing::info!(conversation = %conv.id, "every online agent is at capacity; the conversation waits unassigned");
        None
    }
}
