//! Stock changes, one actor per store.
//!
//! Every transaction of a store goes through the store's actor, which
//! handles one at a time (read, check, write, answer), so concurrent sales
//! never lose an update and a retried `transactionId` finds the first one.
//! A transfer changes two stores in one batch: it is run by the actor of the
//! lower store id, which holds the other store's actor until the batch is
//! written. An actor only ever waits for actors of higher ids, so two
//! transfers in opposite directions cannot wait for each other.
//!
//! In a cluster every node may run a store's actor, so each write is fenced
//! on the inventory's log subject at the position its reads were made at:
//! a write that another node overtook is refused, and the change is read
//! and decided again (optimistic concurrency, retried a bounded number of times).

use crate::durability::{Journal, INVENTORY_SUBJECT};
use crate::webhooks::{payloads, WebhookTap};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use utalk_storage::model::alert::{self, Alert, AlertKind, AlertStatus};
use utalk_storage::model::inventory::{self, Product, StockLevel, StockTxn, Store, TxnType};
use utalk_storage::{Batch, CodecError, Db, StoreError, Timestamp};
use uuid::Uuid;

/// A stock transaction as a client asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct TxnRequest {
    /// The client's `transactionId`.
    pub id: Uuid,
    /// Type.
    pub kind: TxnType,
    /// The store (the source of a transfer).
    pub store_id: Uuid,
    /// The product.
    pub sku: String,
    /// Units: positive; for an adjustment, signed and not zero.
    pub quantity: i64,
    /// The receiving store of a transfer.
    pub to_store_id: Option<Uuid>,
    /// The conversation a sale was taken in.
    pub conversation_id: Option<Uuid>,
    /// Who records it.
    pub by: Uuid,
}

impl TxnRequest {
    /// Whether `t` is this request applied (a retry of the same transaction).
    fn is(&self, t: &StockTxn) -> bool {
        t.kind == self.kind
            && t.store_id == self.store_id
            && t.sku == self.sku
            && t.quantity == self.quantity
            && t.to_store_id == self.to_store_id
            && t.conversation_id == self.conversation_id
    }
}

/// What applying a transaction did.
#[derive(Debug, Clone)]
pub struct TxnOutcome {
    /// The transaction as stored.
    pub txn: StockTxn,
    /// False when the same `transactionId` had been applied before: nothing changed now.
    pub created: bool,
    /// Alerts raised by it.
    pub raised: Vec<Alert>,
    /// Alerts it resolved (stock restored).
    pub resolved: Vec<Alert>,
}

/// Why a transaction was refused; nothing changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InventoryError {
    /// No such store.
    #[error("store {0} does not exist")]
    UnknownStore(Uuid),
    /// The store has no such product.
    #[error("store {store} has no product with SKU {sku:?}")]
    UnknownSku {
        /// The store.
        store: Uuid,
        /// The SKU.
        sku: String,
    },
    /// The quantity does not fit the type.
    #[error("{0}")]
    InvalidQuantity(String),
    /// A transfer needs another store.
    #[error("{0}")]
    InvalidTransfer(String),
    /// The store does not allow negative stock and the change would go below zero.
    #[error("not enough stock: {stock} left of {sku}, {wanted} asked")]
    InsufficientStock {
        /// The SKU.
        sku: String,
        /// Stock left.
        stock: i64,
        /// Units asked for.
        wanted: i64,
    },
    /// The store already has a product with this SKU.
    #[error("store {store} already has a product with SKU {sku:?}")]
    ProductExists {
        /// The store.
        store: Uuid,
        /// The SKU.
        sku: String,
    },
    /// No such alert.
    #[error("alert {0} does not exist")]
    UnknownAlert(Uuid),
    /// The `transactionId` was used for a different transaction.
    #[error("transactionId {0} was already used for a different transaction")]
    IdReused(Uuid),
    /// Reading or writing failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The store's actor stopped.
    #[error("the store is restarting; retry")]
    Unavailable,
    /// Other nodes kept changing stock first; nothing changed, retry with the same `transactionId`.
    #[error("other nodes kept changing the stock first; nothing changed, retry with the same transactionId")]
    Contended,
    /// The cluster's log could not take the change; nothing changed, retry with the same `transactionId`.
    #[error("the cluster could not take the change: {0}")]
    Cluster(String),
}

impl InventoryError {
    /// The error's machine-readable code, as the API answers it and the
    /// inventory report counts refusals.
    pub fn code(&self) -> &'static str {
        match self {
            InventoryError::UnknownStore(_) => "store_not_found",
            InventoryError::UnknownSku { .. } => "product_not_found",
            InventoryError::InvalidQuantity(_) => "invalid_quantity",
            InventoryError::InvalidTransfer(_) => "invalid_transfer",
            InventoryError::InsufficientStock { .. } => "insufficient_stock",
            InventoryError::IdReused(_) => "transaction_id_reused",
            InventoryError::ProductExists { .. } => "product_exists",
            InventoryError::UnknownAlert(_) => "not_found",
            InventoryError::Storage(_) => "internal",
            InventoryError::Unavailable | InventoryError::Contended => "store_unavailable",
            InventoryError::Cluster(_) => "cluster_unavailable",
        }
    }
}

impl From<StoreError> for InventoryError {
    fn from(e: StoreError) -> Self {
        InventoryError::Storage(e.to_string())
    }
}

impl From<utalk_storage::CodecError> for InventoryError {
    fn from(e: utalk_storage::CodecError) -> Self {
        InventoryError::Storage(e.to_string())
    }
}

/// Told about alerts once they are stored.
pub trait AlertSink: Send + Sync + 'static {
    /// A new alert.
    fn raised(&self, alert: &Alert, store: &Store);
    /// An alert acknowledged or resolved (by hand, or by restored stock).
    fn changed(&self, alert: &Alert, store: &Store);
}

/// Queues the `alert.*` webhook deliveries of `a`'s change in its batch.
fn queue_webhooks(tap: Option<&WebhookTap>, batch: &mut Batch, a: &Alert, store_name: &str, now: Timestamp) -> Result<(), CodecError> {
    match tap {
        Some(tap) => tap.add(batch, payloads::alert_kind(a), now, || payloads::alert(a, store_name)),
        None => Ok(()),
    }
}

/// Opens and resolves the alerts of one product after a change, in `batch`.
///
/// Negative stock raises a critical alert, stock at or under the threshold a
/// warning; each is raised once while unresolved and resolved when the stock
/// is back above its line.
pub fn evaluate_alerts(
    db: &Db,
    batch: &mut Batch,
    store: &Store,
    product: &Product,
    now: Timestamp,
    webhooks: Option<&WebhookTap>,
) -> Result<(Vec<Alert>, Vec<Alert>), InventoryError> {
    let (mut raised, mut resolved) = (Vec::new(), Vec::new());
    let level = product.level();
    for kind in [AlertKind::NegativeStock, AlertKind::LowStock] {
        let wanted = match kind {
            AlertKind::NegativeStock => level == StockLevel::Negative,
            // A negative product is low too; its low alert stays until stock is back over the threshold.
            AlertKind::LowStock => level != StockLevel::Ok,
        };
        match (wanted, alert::unresolved(db, kind, store.id, &product.sku)?) {
            (true, None) => {
                let a = Alert::new(kind, store.id, &store.name, &product.sku, product.stock, now);
                alert::put(batch, &a)?;
                queue_webhooks(webhooks, batch, &a, &store.name, now)?;
                raised.push(a);
            }
            (false, Some(mut a)) => {
                a.status = AlertStatus::Resolved;
                a.resolved_at = Some(now);
                alert::put(batch, &a)?;
                queue_webhooks(webhooks, batch, &a, &store.name, now)?;
                resolved.push(a);
            }
            _ => {}
        }
    }
    Ok((raised, resolved))
}

/// Locks a `transactionId` is held under while it is applied (by hash), so
/// that the same id sent twice at once, even naming different stores, is
/// applied once; the second finds the first stored.
const ID_STRIPES: usize = 256;

struct Shared {
    ids: Vec<tokio::sync::Mutex<()>>,
    db: Db,
    journal: Journal,
    /// Where alert changes queue their webhook deliveries.
    webhooks: Option<Arc<WebhookTap>>,
    sink: Arc<dyn AlertSink>,
    /// Store actors are spread over these by store id, so one busy store does not hold up the rest.
    arbiters: Vec<ArbiterHandle>,
    actors: Mutex<HashMap<Uuid, Addr<StoreActor>>>,
}

fn journal_error(e: crate::durability::JournalError) -> InventoryError {
    match e {
        crate::durability::JournalError::Write(w) => InventoryError::Storage(w.to_string()),
        other => InventoryError::Cluster(other.to_string()),
    }
}

/// How many times a change overtaken by another node is decided again before giving up.
const FENCE_ATTEMPTS: usize = 20;
/// Longest random wait between two of those attempts, ms.
const FENCE_BACKOFF_MS: u64 = 50;

impl Shared {
    /// Runs `change` (reads, then a fenced write) until no other node overtook it.
    async fn fenced<T, F, Fut>(&self, mut change: F) -> Result<T, InventoryError>
    where
        F: FnMut(u64) -> Fut,
        Fut: std::future::Future<Output = Result<Option<T>, InventoryError>>,
    {
        for attempt in 0..FENCE_ATTEMPTS {
            let at = self.journal.sync_subject(INVENTORY_SUBJECT).await.map_err(journal_error)?;
            if let Some(done) = change(at).await? {
                return Ok(done);
            }
            // Overtaken: nodes that retried at once would overtake each other
            // again, so each waits a random while, longer as it keeps losing.
            let cap = FENCE_BACKOFF_MS.min(1 << attempt.min(6));
            let wait = rand::Rng::gen_range(&mut rand::thread_rng(), 0..=cap);
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
        Err(InventoryError::Contended)
    }

    /// Writes `batch` fenced at `at`; `false` when another node wrote first.
    async fn commit(&self, at: u64, batch: Batch) -> Result<bool, InventoryError> {
        self.journal.commit_fenced(INVENTORY_SUBJECT, at, batch).await.map_err(journal_error)
    }
    /// Tells the listeners about alert changes now durable.
    fn announce(&self, raised: &[Alert], changed: &[Alert], store_of: impl Fn(&Alert) -> Option<Store>) {
        if raised.is_empty() && changed.is_empty() {
            return;
        }
        for a in raised {
            if let Some(s) = store_of(a) {
                self.sink.raised(a, &s);
            }
        }
        for a in changed {
            if let Some(s) = store_of(a) {
                self.sink.changed(a, &s);
            }
        }
    }
}

/// The store actors, started on demand.
#[derive(Clone)]
pub struct Inventory {
    shared: Arc<Shared>,
}

impl Inventory {
    /// Starts the inventory on its own arbiter; with `webhooks`, alert changes queue their webhook deliveries.
    pub fn start(db: Db, journal: Journal, sink: Arc<dyn AlertSink>, webhooks: Option<Arc<WebhookTap>>) -> Inventory {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).max(2);
        let arbiters = (0..threads).map(|_| Arbiter::new().handle()).collect();
        let ids = (0..ID_STRIPES).map(|_| tokio::sync::Mutex::new(())).collect();
        Inventory { shared: Arc::new(Shared { ids, db, journal, webhooks, sink, arbiters, actors: Mutex::new(HashMap::new()) }) }
    }

    /// Every store's id.
    pub fn stores(&self) -> Result<Vec<Uuid>, InventoryError> {
        Ok(inventory::stores(&self.shared.db)?.into_iter().map(|s| s.id).collect())
    }

    fn actor(&self, store: Uuid) -> Addr<StoreActor> {
        let mut actors = self.shared.actors.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = actors.get(&store).filter(|a| a.connected()) {
            return a.clone();
        }
        let me = self.clone();
        let arbiter = &self.shared.arbiters[(store.as_u128() % self.shared.arbiters.len() as u128) as usize];
        let addr = StoreActor::start_in_arbiter(arbiter, move |_| StoreActor { store, inventory: me });
        actors.insert(store, addr.clone());
        addr
    }

    /// Applies a transaction through its store's actor.
    pub async fn apply(&self, req: TxnRequest) -> Result<TxnOutcome, InventoryError> {
        validate(&req)?;
        // Actors start only for stores that exist: an unknown id costs nothing to keep.
        for s in std::iter::once(req.store_id).chain(req.to_store_id) {
            inventory::store(&self.shared.db, s)?.ok_or(InventoryError::UnknownStore(s))?;
        }
        let stripe = (req.id.as_u128() % ID_STRIPES as u128) as usize;
        let _id = self.shared.ids[stripe].lock().await;
        // A transfer runs in the lower store's actor, which holds the higher one.
        let owner = match (req.kind, req.to_store_id) {
            (TxnType::Transfer, Some(to)) => req.store_id.min(to),
            _ => req.store_id,
        };
        self.actor(owner).send(Apply(req)).await.map_err(|_| InventoryError::Unavailable)?
    }

    /// Adds a product (stock 0) to a store, through the store's actor so that it cannot race its transactions.
    pub async fn add_product(&self, product: Product) -> Result<Product, InventoryError> {
        inventory::store(&self.shared.db, product.store_id)?.ok_or(InventoryError::UnknownStore(product.store_id))?;
        self.actor(product.store_id).send(AddProduct(product)).await.map_err(|_| InventoryError::Unavailable)?
    }

    /// Acknowledges (`resolve` false) or resolves an alert, through its store's actor.
    pub async fn update_alert(&self, id: Uuid, by: Uuid, resolve: bool) -> Result<Alert, InventoryError> {
        let a = alert::get(&self.shared.db, id)?.ok_or(InventoryError::UnknownAlert(id))?;
        self.actor(a.store_id).send(UpdateAlert { id, by, resolve }).await.map_err(|_| InventoryError::Unavailable)?
    }

    /// Removes alerts resolved before `cutoff`, `chunk` at a time, fenced
    /// like every alert change; returns how many went.
    pub async fn purge_resolved_alerts(&self, cutoff: Timestamp, chunk: usize) -> Result<usize, InventoryError> {
        let s = &self.shared;
        let mut removed = 0;
        loop {
            let found = s
                .fenced(|at| async move {
                    let mut b = Batch::new();
                    let found = alert::purge_resolved(&s.db, &mut b, cutoff, chunk)?;
                    if found == 0 {
                        return Ok(Some(0));
                    }
                    Ok(s.commit(at, b).await?.then_some(found))
                })
                .await?;
            if found == 0 {
                return Ok(removed);
            }
            removed += found;
        }
    }

    /// Re-checks the alerts of every product of `store` against its stock, through the store's actor.
    pub async fn check(&self, store: Uuid) -> Result<(Vec<Alert>, Vec<Alert>), InventoryError> {
        self.actor(store).send(Check).await.map_err(|_| InventoryError::Unavailable)?
    }
}

/// One store's actor.
pub struct StoreActor {
    store: Uuid,
    inventory: Inventory,
}

impl Actor for StoreActor {
    type Context = Context<Self>;
}

/// Applies a transaction.
#[derive(Message)]
#[rtype(result = "Result<TxnOutcome, InventoryError>")]
pub struct Apply(pub TxnRequest);

/// Re-checks the alerts of every product of the store.
#[derive(Message)]
#[rtype(result = "Result<(Vec<Alert>, Vec<Alert>), InventoryError>")]
pub struct Check;

/// Adds a product.
#[derive(Message)]
#[rtype(result = "Result<Product, InventoryError>")]
pub struct AddProduct(pub Product);

/// Acknowledges or resolves an alert.
#[derive(Message)]
#[rtype(result = "Result<Alert, InventoryError>")]
#[derive(Clone, Copy)]
pub struct UpdateAlert {
    id: Uuid,
    by: Uuid,
    resolve: bool,
}

/// Holds the store until `release` fires (or is dropped): another store's transfer is changing it.
#[derive(Message)]
#[rtype(result = "()")]
struct Hold {
    held: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

impl Handler<Apply> for StoreActor {
    type Result = AtomicResponse<Self, Result<TxnOutcome, InventoryError>>;
    fn handle(&mut self, msg: Apply, _ctx: &mut Context<Self>) -> Self::Result {
        let inv = self.inventory.clone();
        let me = self.store;
        AtomicResponse::new(Box::pin(apply(inv, me, msg.0).into_actor(self)))
    }
}

impl Handler<Check> for StoreActor {
    type Result = AtomicResponse<Self, Result<(Vec<Alert>, Vec<Alert>), InventoryError>>;
    fn handle(&mut self, _msg: Check, _ctx: &mut Context<Self>) -> Self::Result {
        let inv = self.inventory.clone();
        let store = self.store;
        let shared = inv.shared.clone();
        AtomicResponse::new(Box::pin(async move { shared.fenced(|at| check(inv.clone(), store, at)).await }.into_actor(self)))
    }
}

impl Handler<AddProduct> for StoreActor {
    type Result = AtomicResponse<Self, Result<Product, InventoryError>>;
    fn handle(&mut self, msg: AddProduct, _ctx: &mut Context<Self>) -> Self::Result {
        let shared = self.inventory.shared.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let p = msg.0;
                let s = shared.clone();
                shared
                    .fenced(|at| {
                        let (shared, p) = (s.clone(), p.clone());
                        async move {
                            inventory::store(&shared.db, p.store_id)?.ok_or(InventoryError::UnknownStore(p.store_id))?;
                            if inventory::product(&shared.db, p.store_id, &p.sku)?.is_some() {
                                return Err(InventoryError::ProductExists { store: p.store_id, sku: p.sku });
                            }
                            let mut b = Batch::new();
                            inventory::put_product(&mut b, None, &p)?;
                            Ok(shared.commit(at, b).await?.then_some(p))
                        }
                    })
                    .await
            }
            .into_actor(self),
        ))
    }
}

impl Handler<UpdateAlert> for StoreActor {
    type Result = AtomicResponse<Self, Result<Alert, InventoryError>>;
    fn handle(&mut self, msg: UpdateAlert, _ctx: &mut Context<Self>) -> Self::Result {
        let shared = self.inventory.shared.clone();
        AtomicResponse::new(Box::pin(
            async move {
                let s = shared.clone();
                shared.fenced(|at| update_alert(s.clone(), at, msg)).await
            }
            .into_actor(self),
        ))
    }
}

/// Acknowledges or resolves an alert; `None` when another node wrote first.
async fn update_alert(shared: Arc<Shared>, at: u64, msg: UpdateAlert) -> Result<Option<Alert>, InventoryError> {
    let mut a = alert::get(&shared.db, msg.id)?.ok_or(InventoryError::UnknownAlert(msg.id))?;
    let now = Timestamp::now();
    match (msg.resolve, a.status) {
        // Resolving twice, or acknowledging what is already taken or over, changes nothing.
        (_, AlertStatus::Resolved) | (false, AlertStatus::Acknowledged) => return Ok(Some(a)),
        (false, AlertStatus::Open) => {
            a.status = AlertStatus::Acknowledged;
            a.acknowledged_at = Some(now);
            a.acknowledged_by = Some(msg.by);
        }
        (true, _) => {
            a.status = AlertStatus::Resolved;
            a.resolved_at = Some(now);
            a.resolved_by = Some(msg.by);
        }
    }
    let store = inventory::store(&shared.db, a.store_id)?;
    let mut b = Batch::new();
    alert::put(&mut b, &a)?;
    if let Some(s) = &store {
        queue_webhooks(shared.webhooks.as_deref(), &mut b, &a, &s.name, now)?;
    }
    if !shared.commit(at, b).await? {
        return Ok(None);
    }
    shared.announce(&[], std::slice::from_ref(&a), |_| store.clone());
    Ok(Some(a))
}

impl Handler<Hold> for StoreActor {
    type Result = AtomicResponse<Self, ()>;
    fn handle(&mut self, msg: Hold, _ctx: &mut Context<Self>) -> Self::Result {
        AtomicResponse::new(Box::pin(
            async move {
                if msg.held.send(()).is_ok() {
                    // Released, or the holder went away: either way the store is free again.
                    let _ = msg.release.await;
                }
            }
            .into_actor(self),
        ))
    }
}

fn validate(req: &TxnRequest) -> Result<(), InventoryError> {
    match req.kind {
        TxnType::Adjustment if req.quantity == 0 => {
            Err(InventoryError::InvalidQuantity("an adjustment needs a quantity other than zero".into()))
        }
        TxnType::Adjustment => Ok(()),
        _ if req.quantity <= 0 => Err(InventoryError::InvalidQuantity(format!(
            "quantity must be a positive number of units for {}, got {}",
            req.kind.as_str(),
            req.quantity
        ))),
        _ => Ok(()),
    }?;
    if req.quantity.unsigned_abs() > 1_000_000_000 {
        return Err(InventoryError::InvalidQuantity("quantity must be at most 1,000,000,000 units".into()));
    }
    match (req.kind, req.to_store_id) {
        (TxnType::Transfer, None) => Err(InventoryError::InvalidTransfer("a TRANSFER needs toStoreId".into())),
        (TxnType::Transfer, Some(to)) if to == req.store_id => {
            Err(InventoryError::InvalidTransfer("a TRANSFER needs a toStoreId other than storeId".into()))
        }
        (TxnType::Transfer, Some(_)) => Ok(()),
        (_, Some(_)) => Err(InventoryError::InvalidTransfer("toStoreId is only for TRANSFER".into())),
        (_, None) => Ok(()),
    }
}

/// Loads a store and its product, or says which is missing.
fn load(db: &Db, store: Uuid, sku: &str) -> Result<(Store, Product), InventoryError> {
    let s = inventory::store(db, store)?.ok_or(InventoryError::UnknownStore(store))?;
    let p = inventory::product(db, store, sku)?.ok_or_else(|| InventoryError::UnknownSku { store, sku: sku.to_string() })?;
    Ok((s, p))
}

/// Runs in the owning store's actor; `Inventory::apply`, the only sender, has validated `req`.
async fn apply(inv: Inventory, me: Uuid, req: TxnRequest) -> Result<TxnOutcome, InventoryError> {
    let shared = &inv.shared;
    let db = &shared.db;
    if let Some(t) = inventory::txn(db, req.id)? {
        return if req.is(&t) {
            Ok(TxnOutcome { txn: t, created: false, raised: Vec::new(), resolved: Vec::new() })
        } else {
            Err(InventoryError::IdReused(req.id))
        };
    }
    // The other store of a transfer is held while both are read and written.
    let mut release = None;
    if let Some(to) = req.to_store_id.filter(|_| req.kind == TxnType::Transfer) {
        let other = if to == me { req.store_id } else { to };
        let (held_tx, held_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        inv.actor(other).do_send(Hold { held: held_tx, release: release_rx });
        held_rx.await.map_err(|_| InventoryError::Unavailable)?;
        release = Some(release_tx);
    }
    let result = inv.shared.fenced(|at| apply_held(&inv, &req, at)).await;
    if let Some(r) = release {
        let _ = r.send(());
    }
    result
}

/// Reads, checks and writes a transaction fenced at `at`; `None` when another node wrote first.
async fn apply_held(inv: &Inventory, req: &TxnRequest, at: u64) -> Result<Option<TxnOutcome>, InventoryError> {
    let shared = &inv.shared;
    let db = &shared.db;
    // Another node may have taken the same transaction since it was first looked up.
    if let Some(t) = inventory::txn(db, req.id)? {
        return if req.is(&t) {
            Ok(Some(TxnOutcome { txn: t, created: false, raised: Vec::new(), resolved: Vec::new() }))
        } else {
            Err(InventoryError::IdReused(req.id))
        };
    }
    let now = Timestamp::now();
    let (store, old) = load(db, req.store_id, &req.sku)?;
    let mut new = old.clone();
    let delta = req.kind.delta(req.quantity);
    new.stock = old.stock.checked_add(delta).ok_or_else(|| InventoryError::InvalidQuantity("stock would overflow".into()))?;
    new.updated_at = now;
    if delta < 0 && new.stock < 0 && !store.allow_negative_stock {
        return Err(InventoryError::InsufficientStock { sku: req.sku.clone(), stock: old.stock, wanted: -delta });
    }
    let mut batch = Batch::new();
    inventory::put_product(&mut batch, Some(&old), &new)?;
    let (mut raised, mut resolved) = evaluate_alerts(db, &mut batch, &store, &new, now, shared.webhooks.as_deref())?;
    let mut to_stock_after = None;
    let mut other_store = None;
    if let (TxnType::Transfer, Some(to)) = (req.kind, req.to_store_id) {
        let (to_store, to_old) = load(db, to, &req.sku)?;
        let mut to_new = to_old.clone();
        to_new.stock =
            to_old.stock.checked_add(req.quantity).ok_or_else(|| InventoryError::InvalidQuantity("stock would overflow".into()))?;
        to_new.updated_at = now;
        inventory::put_product(&mut batch, Some(&to_old), &to_new)?;
        let (r, s) = evaluate_alerts(db, &mut batch, &to_store, &to_new, now, shared.webhooks.as_deref())?;
        raised.extend(r);
        resolved.extend(s);
        to_stock_after = Some(to_new.stock);
        other_store = Some(to_store);
    }
    let txn = StockTxn {
        id: req.id,
        kind: req.kind,
        store_id: req.store_id,
        sku: req.sku.clone(),
        quantity: req.quantity,
        to_store_id: req.to_store_id,
        conversation_id: req.conversation_id,
        by: req.by,
        at: now,
        stock_after: new.stock,
        to_stock_after,
    };
    inventory::put_txn(&mut batch, &txn)?;
    if !shared.commit(at, batch).await? {
        return Ok(None);
    }
    shared.announce(&raised, &resolved, |a| if a.store_id == store.id { Some(store.clone()) } else { other_store.clone() });
    Ok(Some(TxnOutcome { txn, created: true, raised, resolved }))
}

/// Raised and resolved alerts of `store_id`, written fenced at `at`; `None` when another node wrote first.
async fn check(inv: Inventory, store_id: Uuid, at: u64) -> Result<Option<(Vec<Alert>, Vec<Alert>)>, InventoryError> {
    let shared = &inv.shared;
    let db = &shared.db;
    let store = inventory::store(db, store_id)?.ok_or(InventoryError::UnknownStore(store_id))?;
    let now = Timestamp::now();
    let mut batch = Batch::new();
    let (mut raised, mut resolved) = (Vec::new(), Vec::new());
    for p in inventory::products(db, store_id)? {
        let (r, s) = evaluate_alerts(db, &mut batch, &store, &p, now, shared.webhooks.as_deref())?;
        raised.extend(r);
        resolved.extend(s);
    }
    if !batch.is_empty() && !shared.commit(at, batch).await? {
        return Ok(None);
    }
    shared.announce(&raised, &resolved, |_| Some(store.clone()));
    Ok(Some((raised, resolved)))
}

/// Sends alerts to connected operators, admins and the store's manager (`alert:new`, `alert:updated`).
pub struct SocketAlerts {
    db: Db,
    broker: Arc<dyn crate::fanout::broker::Broker>,
}

impl SocketAlerts {
    /// Publishes through `broker` on the staff topic.
    pub fn new(db: Db, broker: Arc<dyn crate::fanout::broker::Broker>) -> SocketAlerts {
        SocketAlerts { db, broker }
    }

    fn publish(&self, alert: &Alert, store: &Store, new: bool) {
        let manager =
            store.manager_email.as_deref().and_then(|e| utalk_storage::model::user::by_email(&self.db, e).ok().flatten()).map(|u| u.id);
        let event = crate::fanout::broker::ConversationEvent::Alert { alert: Arc::new(alert.clone()), manager, new };
        self.broker.publish(crate::fanout::broker::STAFF_TOPIC, event);
    }
}

impl AlertSink for SocketAlerts {
    fn raised(&self, alert: &Alert, store: &Store) {
        metrics::counter!("inventory_alerts_total", "kind" => kind_name(alert.kind), "store" => store.id.to_string()).increment(1);
        tracing::warn!(alert = %alert.id, store = %store.id, sku = %alert.sku, stock = alert.stock, kind = kind_name(alert.kind), "stock alert raised");
        self.publish(alert, store, true);
    }
    fn changed(&self, alert: &Alert, store: &Store) {
        tracing::info!(alert = %alert.id, store = %store.id, sku = %alert.sku, "stock alert resolved");
        self.publish(alert, store, false);
    }
}

fn kind_name(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::NegativeStock => "negative_stock",
        AlertKind::LowStock => "low_stock",
    }
}
