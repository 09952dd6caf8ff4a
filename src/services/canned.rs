//! Canned responses: agents' saved replies, each under a unique short code.
//!
//! Every change reads the whole (small) set, checks the short code is free
//! and writes, one change at a time: on one node under a lock, in a cluster
//! fenced on one log subject, so two nodes cannot both take a short code.

use super::ServiceError;
use utalk_actors::fanout::broker::STAFF_TOPIC;
use utalk_actors::{ConversationEvent, Journal, Registry};
use utalk_storage::model::canned::{self, valid_short_code, CannedResponse, MAX_CANNED_RESPONSES, MAX_CONTENT_CHARS};
use utalk_storage::model::AuditEvent;
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// The log subject every change of canned responses is fenced on.
fn subject() -> String {
    utalk_actors::durability::unique_subject("canned_responses", "all")
}

/// Changes on this node, one at a time.
static WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a change asks for; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct Edit {
    /// New short code.
    pub short_code: Option<String>,
    /// New content.
    pub content: Option<String>,
}

/// Every canned response, by short code.
pub fn list(db: &Db) -> Result<Vec<CannedResponse>, ServiceError> {
    Ok(canned::all(db)?)
}

/// One canned response.
pub fn get(db: &Db, id: Uuid) -> Result<CannedResponse, ServiceError> {
    canned::get(db, id)?.ok_or(ServiceError::NotFound("canned response"))
}

fn invalid(message: &str) -> ServiceError {
    ServiceError::Invalid { code: "validation_failed", message: message.to_string() }
}

fn check(short_code: &str, content: &str) -> Result<(), ServiceError> {
    if !valid_short_code(short_code) {
        return Err(invalid("shortCode must be 1 to 32 of a-z, 0-9, _ and -"));
    }
    if content.trim().is_empty() || content.chars().count() > MAX_CONTENT_CHARS {
        return Err(invalid("content must have 1 to 4096 characters"));
    }
    Ok(())
}

/// Creates a canned response by `actor`; audited.
pub async fn create(
    db: &Db,
    registry: &Registry,
    actor: Uuid,
    short_code: String,
    content: String,
) -> Result<CannedResponse, ServiceError> {
    check(&short_code, &content)?;
    let now = Timestamp::now();
    let new = CannedResponse { id: Uuid::now_v7(), short_code, content, created_by: actor, created_at: now, updated_at: now };
    let made = write(db, registry.journal(), actor, "canned_response.create", |all| {
        if all.len() >= MAX_CANNED_RESPONSES {
            return Err(ServiceError::Conflict {
                code: "too_many_canned_responses",
                message: format!("at most {MAX_CANNED_RESPONSES} canned responses; delete some first"),
            });
        }
        taken(all, &new.short_code, new.id)?;
        Ok(new.clone())
    })
    .await?;
    announce(registry, made.id, "created");
    Ok(made)
}

/// Changes a canned response's short code or content; audited.
pub async fn update(db: &Db, registry: &Registry, actor: Uuid, id: Uuid, edit: Edit) -> Result<CannedResponse, ServiceError> {
    let changed = write(db, registry.journal(), actor, "canned_response.update", |all| {
        let current = all.iter().find(|c| c.id == id).ok_or(ServiceError::NotFound("canned response"))?;
        let mut new = current.clone();
        if let Some(s) = &edit.short_code {
            new.short_code = s.clone();
        }
        if let Some(c) = &edit.content {
            new.content = c.clone();
        }
        check(&new.short_code, &new.content)?;
        taken(all, &new.short_code, id)?;
        new.updated_at = Timestamp::now();
        Ok(new)
    })
    .await?;
    announce(registry, id, "updated");
    Ok(changed)
}

/// Deletes a canned response; audited.
pub async fn delete(db: &Db, registry: &Registry, actor: Uuid, id: Uuid) -> Result<(), ServiceError> {
    let journal = registry.journal();
    let subject = subject();
    let _one_at_a_time = WRITES.lock().await;
    for _ in 0..10 {
        let expected = journal.sync_subject(&subject).await?;
        let current = get(db, id)?;
        let mut b = Batch::new();
        canned::delete(&mut b, id);
        AuditEvent::new(actor.to_string(), "canned_response.delete", format!("/{} {id}", current.short_code)).add_to(&mut b)?;
        if journal.commit_fenced(&subject, expected, b).await? {
            announce(registry, id, "deleted");
            return Ok(());
        }
    }
    Err(busy())
}

/// Tells staff sockets (on every node) that a canned response changed, once
/// the change is stored: not kept, like presence; a console that misses it
/// shows the change at its next load.
fn announce(registry: &Registry, id: Uuid, change: &'static str) {
    registry.broker().publish(STAFF_TOPIC, ConversationEvent::Canned { id, change });
}

fn busy() -> ServiceError {
    ServiceError::Conflict { code: "concurrent_change", message: "canned responses keep changing on other nodes; retry".into() }
}

fn taken(all: &[CannedResponse], short_code: &str, except: Uuid) -> Result<(), ServiceError> {
    if all.iter().any(|c| c.short_code == short_code && c.id != except) {
        return Err(ServiceError::Conflict { code: "short_code_taken", message: format!("/{short_code} is already a canned response") });
    }
    Ok(())
}

/// Reads every canned response as this node's store holds them after every
/// write so far, lets `decide` make the new version, and writes it with its
/// audit line unless another node wrote first (then reads again).
async fn write<F>(db: &Db, journal: &Journal, actor: Uuid, action: &str, mut decide: F) -> Result<CannedResponse, ServiceError>
where
    F: FnMut(&[CannedResponse]) -> Result<CannedResponse, ServiceError>,
{
    let subject = subject();
    let _one_at_a_time = WRITES.lock().await;
    for _ in 0..10 {
        let expected = journal.sync_subject(&subject).await?;
        let all = canned::all(db)?;
        let new = decide(&all)?;
        let mut b = Batch::new();
        canned::put(&mut b, &new)?;
        AuditEvent::new(actor.to_string(), action, format!("/{} {}", new.short_code, new.id)).add_to(&mut b)?;
        if journal.commit_fenced(&subject, expected, b).await? {
            return Ok(new);
        }
    }
    Err(busy())
}
