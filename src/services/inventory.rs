//! Stores, products, stock transactions and stock alerts.

use super::ServiceError;
use utalk_actors::inventory::{Inventory, InventoryError, TxnOutcome, TxnRequest};
use utalk_actors::Journal;
use utalk_storage::model::alert::{self, AlertStatus};
use utalk_storage::model::inventory::{self, Product, Store, TxnError, TxnType};
use utalk_storage::model::{Alert, AuditEvent, Role};
use utalk_storage::{Batch, Db, Timestamp};
use uuid::Uuid;

/// Every store.
pub fn stores(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Store>, ServiceError> {
    Ok(inventory::stores_page(db, after, limit)?)
}

/// Stores a new inventory store, created by `actor`.
pub async fn create_store(journal: &Journal, actor: Uuid, store: &Store) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    inventory::put_store(&mut b, store)?;
    AuditEvent::new(actor.to_string(), "store.create", store.id.to_string()).add_to(&mut b)?;
    Ok(journal.commit(b).await?)
}

/// Whether `id` names a store.
pub fn store_exists(db: &Db, id: Uuid) -> Result<bool, ServiceError> {
    Ok(inventory::store(db, id)?.is_some())
}

/// A store's products with their stock.
pub fn products(db: &Db, store: Uuid, after: Option<&str>, limit: usize) -> Result<Vec<Product>, ServiceError> {
    if !store_exists(db, store)? {
        return Err(ServiceError::NotFound("store"));
    }
    Ok(inventory::products_page(db, store, after, limit)?)
}

/// Why a stock transaction was not applied.
#[derive(Debug, thiserror::Error)]
pub enum TxnRefused {
    /// The transaction names something that does not exist or cannot be used.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The store refused it.
    #[error(transparent)]
    Inventory(#[from] InventoryError),
}

/// Applies a stock transaction recorded by someone with `role`, counted by
/// type and outcome; a refusal by a store that exists is kept for the
/// inventory report's errors per store. Agents record SALEs taken in a
/// conversation.
pub async fn transaction(db: &Db, journal: &Journal, stock: &Inventory, role: Role, req: TxnRequest) -> Result<TxnOutcome, TxnRefused> {
    // An id that names no store is answered before anything else looks at
    // the request: any id can be sent, so none may become a metric label or
    // a stored refusal.
    if !store_exists(db, req.store_id).map_err(TxnRefused::Service)? {
        return Err(InventoryError::UnknownStore(req.store_id).into());
    }
    if role == Role::Agent && (req.kind != TxnType::Sale || req.conversation_id.is_none()) {
        return Err(ServiceError::Forbidden("agents record SALEs taken in a conversation (with conversationId)").into());
    }
    let sku = req.sku.trim();
    if sku.is_empty() || sku.chars().count() > 64 || sku.chars().any(char::is_control) {
        let message = "sku must be 1 to 64 characters without control characters".to_string();
        return Err(ServiceError::Invalid { code: "validation_failed", message }.into());
    }
    if let Some(c) = req.conversation_id {
        super::conversations::must_exist(db, c)?;
    }
    let (store_id, sku, kind) = (req.store_id, req.sku.clone(), req.kind);
    let result = stock.apply(req).await;
    let store_label = match &result {
        Err(InventoryError::UnknownStore(_)) => "unknown".to_string(),
        _ => store_id.to_string(),
    };
    let status = match &result {
        Ok(o) if o.created => "applied",
        Ok(_) => "duplicate",
        Err(InventoryError::InsufficientStock { .. }) => "rejected",
        Err(_) => "error",
    };
    metrics::counter!("inventory_transactions_total", "type" => kind.as_str(), "status" => status, "store" => store_label.clone())
        .increment(1);
    if status == "error" {
        metrics::counter!("inventory_errors_total", "store" => store_label).increment(1);
    }
    match result {
        Ok(o) => Ok(o),
        // Nothing of an id that names no store is kept: any id could be sent.
        Err(e @ InventoryError::UnknownStore(_)) => Err(e.into()),
        Err(e) => {
            let refused = TxnError { store_id, sku, kind, code: e.code().to_string(), at: Timestamp::now() };
            if let Err(w) = record_refusal(journal, &refused).await {
                tracing::error!(error = %w, "recording a refused transaction failed");
            }
            Err(e.into())
        }
    }
}

/// Keeps a refused stock transaction for the inventory report (through the
/// journal, so that in a cluster every node's report counts it).
async fn record_refusal(journal: &Journal, refused: &TxnError) -> Result<(), ServiceError> {
    let mut b = Batch::new();
    inventory::put_error(&mut b, refused)?;
    Ok(journal.commit(b).await?)
}

/// A page of stock alerts, newest first, and the cursor of the next.
pub fn alerts(db: &Db, status: Option<AlertStatus>, after: Option<Uuid>, limit: usize) -> Result<(Vec<Alert>, Option<Uuid>), ServiceError> {
    Ok(alert::list(db, status, after, limit)?)
}

/// Acknowledges or resolves an alert for `by`, audited.
pub async fn update_alert(journal: &Journal, stock: &Inventory, by: Uuid, id: Uuid, resolve: bool) -> Result<Alert, TxnRefused> {
    let a = stock.update_alert(id, by, resolve).await?;
    let action = if resolve { "alert.resolve" } else { "alert.ack" };
    super::records::audit(journal, by, action, id.to_string()).await?;
    Ok(a)
}
