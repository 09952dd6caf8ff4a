//! Stores, their products with stock, and stock transactions.
//!
//! Stock lives on the product record of each store and changes only through
//! a transaction, written in the same batch as the product(s) it changes, so
//! a transaction id seen in `stock_txns` is a change already applied.

use crate::batch::Batch;
use crate::codec::Record;
use crate::db::Db;
use crate::error::{CodecError, StoreError};
use crate::keys::{Key, KeyReader};
use crate::maps::Map;
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A store that keeps stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Store {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Whether a sale may take stock below zero (then an alert is raised) or is refused.
    pub allow_negative_stock: bool,
    /// Who is told about the store's stock alerts.
    pub manager_email: Option<String>,
    /// Created.
    pub created_at: Timestamp,
}

impl Record for Store {
    const KIND: &'static str = "store";
}

/// A product as a store stocks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// The store.
    pub store_id: Uuid,
    /// Stock keeping unit, unique in the store.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Unit price in the store's currency.
    pub price: f64,
    /// At or below this, the product is low on stock.
    pub low_stock_threshold: i64,
    /// Units in stock; negative when more was sold than recorded.
    pub stock: i64,
    /// Last change.
    pub updated_at: Timestamp,
}

impl Record for Product {
    const KIND: &'static str = "product";
}

/// How low a product's stock is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockLevel {
    /// Above the threshold.
    Ok,
    /// At or below the low-stock threshold, not below zero.
    Low,
    /// Below zero.
    Negative,
}

impl Product {
    /// Where the stock stands against zero and the threshold.
    pub fn level(&self) -> StockLevel {
        if self.stock < 0 {
            StockLevel::Negative
        } else if self.stock <= self.low_stock_threshold {
            StockLevel::Low
        } else {
            StockLevel::Ok
        }
    }
}

/// What a transaction does to stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TxnType {
    /// Units sold: stock goes down.
    Sale,
    /// Units bought in: stock goes up.
    Purchase,
    /// Units brought back by a customer: stock goes up.
    Return,
    /// A count correction: the quantity is signed.
    Adjustment,
    /// Units moved to another store (`toStoreId`): down here, up there.
    Transfer,
}

impl TxnType {
    /// The API name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TxnType::Sale => "SALE",
            TxnType::Purchase => "PURCHASE",
            TxnType::Return => "RETURN",
            TxnType::Adjustment => "ADJUSTMENT",
            TxnType::Transfer => "TRANSFER",
        }
    }
    /// The change to the source store's stock for `quantity`.
    pub const fn delta(self, quantity: i64) -> i64 {
        match self {
            TxnType::Sale | TxnType::Transfer => -quantity,
            TxnType::Purchase | TxnType::Return | TxnType::Adjustment => quantity,
        }
    }
}

/// One applied stock transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockTxn {
    /// The client's `transactionId`: the same id again is the same transaction.
    pub id: Uuid,
    /// Type.
    #[serde(rename = "type")]
    pub kind: TxnType,
    /// The store whose stock it changes (the source of a transfer).
    pub store_id: Uuid,
    /// The product.
    pub sku: String,
    /// Units (positive; signed for adjustments).
    pub quantity: i64,
    /// The receiving store of a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_store_id: Option<Uuid>,
    /// The conversation a sale was taken in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<Uuid>,
    /// Who recorded it.
    pub by: Uuid,
    /// When it was applied.
    pub at: Timestamp,
    /// The store's stock of the product after it.
    pub stock_after: i64,
    /// The receiving store's stock after a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_stock_after: Option<i64>,
}

impl Record for StockTxn {
    const KIND: &'static str = "stock_txn";
}

/// Reads a store.
pub fn store(db: &Db, id: Uuid) -> Result<Option<Store>, StoreError> {
    db.get(Map::Stores, Key::new().uuid(id))
}

/// Every store, oldest first.
pub fn stores(db: &Db) -> Result<Vec<Store>, StoreError> {
    Ok(db.scan::<Store>(Map::Stores, &[], &[], usize::MAX)?.into_iter().map(|(_, s)| s).collect())
}

/// Stores in id order after `after`, at most `limit`.
pub fn stores_page(db: &Db, after: Option<Uuid>, limit: usize) -> Result<Vec<Store>, StoreError> {
    let start = after.map(|a| Key::new().uuid(a).u8(0).into_bytes()).unwrap_or_default();
    Ok(db.scan::<Store>(Map::Stores, &[], &start, limit)?.into_iter().map(|(_, s)| s).collect())
}

/// Products of `store` in SKU order after `after`, at most `limit`.
pub fn products_page(db: &Db, store: Uuid, after: Option<&str>, limit: usize) -> Result<Vec<Product>, StoreError> {
    let prefix = Key::new().uuid(store).into_bytes();
    // Just past `after`'s own key (`sku` and its terminator).
    let start = match after {
        Some(sku) => Key::new().uuid(store).str(sku)?.u8(0).into_bytes(),
        None => prefix.clone(),
    };
    Ok(db.scan::<Product>(Map::Products, &prefix, &start, limit)?.into_iter().map(|(_, p)| p).collect())
}

/// Adds the write of `s` to `batch`.
pub fn put_store(batch: &mut Batch, s: &Store) -> Result<(), CodecError> {
    batch.put(Map::Stores, Key::new().uuid(s.id), s)?;
    Ok(())
}

fn product_key(store: Uuid, sku: &str) -> Result<Key, CodecError> {
    Key::new().uuid(store).str(sku)
}

/// Reads a store's product.
pub fn product(db: &Db, store: Uuid, sku: &str) -> Result<Option<Product>, StoreError> {
    db.get(Map::Products, product_key(store, sku)?)
}

/// A store's products, by SKU.
pub fn products(db: &Db, store: Uuid) -> Result<Vec<Product>, StoreError> {
    let prefix = Key::new().uuid(store).into_bytes();
    Ok(db.scan::<Product>(Map::Products, &prefix, &[], usize::MAX)?.into_iter().map(|(_, p)| p).collect())
}

fn level_key(level: StockLevel, store: Uuid, sku: &str) -> Result<Option<Vec<u8>>, CodecError> {
    let code = match level {
        StockLevel::Ok => return Ok(None),
        StockLevel::Low => 1,
        StockLevel::Negative => 2,
    };
    Ok(Some(Key::new().u8(code).uuid(store).str(sku)?.into_bytes()))
}

/// Adds the write of `new` (replacing `old`) to `batch`, keeping the low/negative index in step.
pub fn put_product(batch: &mut Batch, old: Option<&Product>, new: &Product) -> Result<(), CodecError> {
    batch.put(Map::Products, product_key(new.store_id, &new.sku)?, new)?;
    let (before, after) = (old.map(Product::level), new.level());
    if before != Some(after) {
        if let Some(k) = old.map(|o| level_key(o.level(), o.store_id, &o.sku)).transpose()?.flatten() {
            batch.delete_raw(Map::LevelProduct, k);
        }
        if let Some(k) = level_key(after, new.store_id, &new.sku)? {
            batch.put_raw(Map::LevelProduct, k, Vec::new());
        }
    }
    Ok(())
}

/// Products at `level` (low or negative) in every store, as `(store, sku)`.
pub fn products_at(db: &Db, level: StockLevel) -> Result<Vec<(Uuid, String)>, StoreError> {
    let code = match level {
        StockLevel::Ok => return Ok(Vec::new()),
        StockLevel::Low => 1u8,
        StockLevel::Negative => 2,
    };
    let mut out = Vec::new();
    for (k, _) in db.scan_raw(Map::LevelProduct, &[code], &[], usize::MAX)? {
        let mut r = KeyReader::new(&k[1..]);
        out.push((r.uuid()?, r.str()?.to_string()));
    }
    Ok(out)
}

/// A transaction already applied under `id`.
pub fn txn(db: &Db, id: Uuid) -> Result<Option<StockTxn>, StoreError> {
    db.get(Map::StockTxns, Key::new().uuid(id))
}

/// Adds the write of `t` with its time index to `batch`.
pub fn put_txn(batch: &mut Batch, t: &StockTxn) -> Result<(), CodecError> {
    batch.put(Map::StockTxns, Key::new().uuid(t.id), t)?;
    batch.put_raw(Map::TxntimeId, Key::new().i64(t.at.millis()).uuid(t.id).into_bytes(), Vec::new());
    Ok(())
}

/// Transactions applied in `[from, to)`, oldest first, at most `limit`.
pub fn txns_between(db: &Db, from: Timestamp, to: Timestamp, limit: usize) -> Result<Vec<StockTxn>, StoreError> {
    let start = Key::new().i64(from.millis()).into_bytes();
    let mut out = Vec::new();
    for (k, _) in db.scan_raw(Map::TxntimeId, &[], &start, limit)? {
        let mut r = KeyReader::new(&k);
        if r.i64()? >= to.millis() {
            break;
        }
        if let Some(t) = txn(db, r.uuid()?)? {
            out.push(t);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_zero_and_the_threshold() {
        let mut p = Product {
            store_id: Uuid::nil(),
            sku: "A".into(),
            name: "a".into(),
            price: 1.0,
            low_stock_threshold: 5,
            stock: 6,
            updated_at: Timestamp(0),
        };
        assert_eq!(p.level(), StockLevel::Ok);
        p.stock = 5;
        assert_eq!(p.level(), StockLevel::Low);
        p.stock = 0;
        assert_eq!(p.level(), StockLevel::Low);
        p.stock = -1;
        assert_eq!(p.level(), StockLevel::Negative);
        assert_eq!(TxnType::Sale.delta(3), -3);
        assert_eq!(TxnType::Transfer.delta(3), -3);
        assert_eq!(TxnType::Adjustment.delta(-2), -2);
        assert_eq!(TxnType::Return.delta(2), 2);
    }
}

/// A transaction that was refused: what the inventory error figures count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnError {
    /// The store asked for.
    pub store_id: Uuid,
    /// The SKU asked for.
    pub sku: String,
    /// The transaction type.
    #[serde(rename = "type")]
    pub kind: TxnType,
    /// The error code answered.
    pub code: String,
    /// When.
    pub at: Timestamp,
}

impl Record for TxnError {
    const KIND: &'static str = "txn_error";
}

/// Adds the record of a refused transaction to `batch`.
pub fn put_error(batch: &mut Batch, e: &TxnError) -> Result<(), CodecError> {
    batch.put(Map::TxnErrors, Key::new().i64(e.at.millis()).uuid(Uuid::now_v7()), e)?;
    Ok(())
}

/// Transactions per hour of one type.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TxnHour {
    /// Start of the hour.
    pub bucket_start: Timestamp,
    /// Applied transactions by type (`SALE`, …).
    pub by_type: std::collections::BTreeMap<String, u64>,
    /// All applied transactions.
    pub total: u64,
    /// Refused ones.
    pub refused: u64,
}

/// A product short of stock, with its store's name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShortProduct {
    /// The store.
    pub store_id: Uuid,
    /// Its name.
    pub store_name: String,
    /// The product.
    pub sku: String,
    /// Its name.
    pub name: String,
    /// Stock now.
    pub stock: i64,
    /// Its low-stock threshold.
    pub low_stock_threshold: i64,
}

/// Refused transactions of one store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreErrors {
    /// The store asked for.
    pub store_id: Uuid,
    /// Its name (empty for a store that does not exist).
    pub store_name: String,
    /// Refusals.
    pub errors: u64,
    /// By error code.
    pub by_code: std::collections::BTreeMap<String, u64>,
}

/// The inventory report of `[from, to)`: transactions per hour, products low
/// or below zero now, refused transactions per store.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryReport {
    /// Every hour of the range, oldest first.
    pub transactions_per_hour: Vec<TxnHour>,
    /// Products at or under their threshold, not below zero.
    pub low_stock: Vec<ShortProduct>,
    /// Products below zero.
    pub negative_stock: Vec<ShortProduct>,
    /// Refused transactions per store, most first.
    pub errors_per_store: Vec<StoreErrors>,
}

/// Most transactions or refusals one report reads.
const REPORT_SCAN: usize = 1_000_000;

/// Builds the inventory report of `[from, to)` (`from` rounded down to its hour).
pub fn report(db: &Db, from: Timestamp, to: Timestamp) -> Result<InventoryReport, StoreError> {
    const HOUR: i64 = 3_600_000;
    let start = from.millis() - from.millis().rem_euclid(HOUR);
    let hours = ((to.millis() - start + HOUR - 1) / HOUR).max(0);
    let mut per_hour: Vec<TxnHour> =
        (0..hours).map(|i| TxnHour { bucket_start: Timestamp(start + i * HOUR), ..TxnHour::default() }).collect();
    let slot = |at: Timestamp| usize::try_from((at.millis() - start) / HOUR).ok();
    for t in txns_between(db, Timestamp(start), to, REPORT_SCAN)? {
        if let Some(h) = slot(t.at).and_then(|i| per_hour.get_mut(i)) {
            *h.by_type.entry(t.kind.as_str().to_string()).or_default() += 1;
            h.total += 1;
        }
    }
    let names: std::collections::HashMap<Uuid, String> = stores(db)?.into_iter().map(|s| (s.id, s.name)).collect();
    let mut errors: std::collections::BTreeMap<Uuid, StoreErrors> = std::collections::BTreeMap::new();
    let first = Key::new().i64(start).into_bytes();
    for (k, e) in db.scan::<TxnError>(Map::TxnErrors, &[], &first, REPORT_SCAN)? {
        if KeyReader::new(&k).i64()? >= to.millis() {
            break;
        }
        if let Some(h) = slot(e.at).and_then(|i| per_hour.get_mut(i)) {
            h.refused += 1;
        }
        let s = errors.entry(e.store_id).or_insert_with(|| StoreErrors {
            store_id: e.store_id,
            store_name: names.get(&e.store_id).cloned().unwrap_or_default(),
            errors: 0,
            by_code: Default::default(),
        });
        s.errors += 1;
        *s.by_code.entry(e.code).or_default() += 1;
    }
    let mut errors_per_store: Vec<StoreErrors> = errors.into_values().collect();
    errors_per_store.sort_by_key(|e| std::cmp::Reverse(e.errors));
    let short = |level| -> Result<Vec<ShortProduct>, StoreError> {
        let mut out = Vec::new();
        for (store, sku) in products_at(db, level)? {
            if let Some(p) = product(db, store, &sku)? {
                out.push(ShortProduct {
                    store_id: store,
                    store_name: names.get(&store).cloned().unwrap_or_default(),
                    sku,
                    name: p.name,
                    stock: p.stock,
                    low_stock_threshold: p.low_stock_threshold,
                });
            }
        }
        Ok(out)
    };
    Ok(InventoryReport {
        transactions_per_hour: per_hour,
        low_stock: short(StockLevel::Low)?,
        negative_stock: short(StockLevel::Negative)?,
        errors_per_store,
    })
}
