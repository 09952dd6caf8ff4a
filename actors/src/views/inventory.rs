//! API views of the inventory records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use utalk_storage::model::inventory as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// A store that keeps stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl From<storage::Store> for Store {
    fn from(r: storage::Store) -> Self {
        Self {
            id: r.id,
            name: r.name,
            allow_negative_stock: r.allow_negative_stock,
            manager_email: r.manager_email,
            created_at: r.created_at,
        }
    }
}

/// A product as a store stocks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<storage::Product> for Product {
    fn from(r: storage::Product) -> Self {
        Self {
            store_id: r.store_id,
            sku: r.sku,
            name: r.name,
            price: r.price,
            low_stock_threshold: r.low_stock_threshold,
            stock: r.stock,
            updated_at: r.updated_at,
        }
    }
}

/// What a transaction does to stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
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

impl From<storage::TxnType> for TxnType {
    fn from(r: storage::TxnType) -> Self {
        match r {
            storage::TxnType::Sale => TxnType::Sale,
            storage::TxnType::Purchase => TxnType::Purchase,
            storage::TxnType::Return => TxnType::Return,
            storage::TxnType::Adjustment => TxnType::Adjustment,
            storage::TxnType::Transfer => TxnType::Transfer,
        }
    }
}

/// One applied stock transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
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
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// The store's stock of the product after it.
    pub stock_after: i64,
    /// The receiving store's stock after a transfer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_stock_after: Option<i64>,
}

impl From<storage::StockTxn> for StockTxn {
    fn from(r: storage::StockTxn) -> Self {
        Self {
            id: r.id,
            kind: r.kind.into(),
            store_id: r.store_id,
            sku: r.sku,
            quantity: r.quantity,
            to_store_id: r.to_store_id,
            conversation_id: r.conversation_id,
            by: r.by,
            at: r.at,
            stock_after: r.stock_after,
            to_stock_after: r.to_stock_after,
        }
    }
}

/// Transactions per hour of one type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TxnHour {
    /// Start of the hour.
    #[schema(value_type = String, format = DateTime)]
    pub bucket_start: Timestamp,
    /// Applied transactions by type (`SALE`, …).
    pub by_type: std::collections::BTreeMap<String, u64>,
    /// All applied transactions.
    pub total: u64,
    /// Refused ones.
    pub refused: u64,
}

impl From<storage::TxnHour> for TxnHour {
    fn from(r: storage::TxnHour) -> Self {
        Self { bucket_start: r.bucket_start, by_type: r.by_type, total: r.total, refused: r.refused }
    }
}

/// A product short of stock, with its store's name.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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

impl From<storage::ShortProduct> for ShortProduct {
    fn from(r: storage::ShortProduct) -> Self {
        Self {
            store_id: r.store_id,
            store_name: r.store_name,
            sku: r.sku,
            name: r.name,
            stock: r.stock,
            low_stock_threshold: r.low_stock_threshold,
        }
    }
}

/// Refused transactions of one store.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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

impl From<storage::StoreErrors> for StoreErrors {
    fn from(r: storage::StoreErrors) -> Self {
        Self { store_id: r.store_id, store_name: r.store_name, errors: r.errors, by_code: r.by_code }
    }
}

/// The inventory report of `[from, to)`: transactions per hour, products low
/// or below zero now, refused transactions per store.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
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

impl From<storage::InventoryReport> for InventoryReport {
    fn from(r: storage::InventoryReport) -> Self {
        Self {
            transactions_per_hour: r.transactions_per_hour.into_iter().map(Into::into).collect(),
            low_stock: r.low_stock.into_iter().map(Into::into).collect(),
            negative_stock: r.negative_stock.into_iter().map(Into::into).collect(),
            errors_per_store: r.errors_per_store.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<TxnType> for storage::TxnType {
    fn from(v: TxnType) -> Self {
        match v {
            TxnType::Sale => storage::TxnType::Sale,
            TxnType::Purchase => storage::TxnType::Purchase,
            TxnType::Return => storage::TxnType::Return,
            TxnType::Adjustment => storage::TxnType::Adjustment,
            TxnType::Transfer => storage::TxnType::Transfer,
        }
    }
}
