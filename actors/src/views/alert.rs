//! API views of the alert records: the shape REST and the socket show, kept apart
//! from the disk records so a rename here cannot change what is stored.

use serde::{Deserialize, Serialize};
use utalk_storage::model::alert as storage;
use utalk_storage::Timestamp;
use utoipa::ToSchema;
use uuid::Uuid;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A product's stock is below zero.
    NegativeStock,
    /// A product's stock is at or below its low-stock threshold.
    LowStock,
}

impl From<storage::AlertKind> for AlertKind {
    fn from(r: storage::AlertKind) -> Self {
        match r {
            storage::AlertKind::NegativeStock => AlertKind::NegativeStock,
            storage::AlertKind::LowStock => AlertKind::LowStock,
        }
    }
}

/// How urgent an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Act now.
    Critical,
    /// Act soon.
    Warning,
}

impl From<storage::Severity> for Severity {
    fn from(r: storage::Severity) -> Self {
        match r {
            storage::Severity::Critical => Severity::Critical,
            storage::Severity::Warning => Severity::Warning,
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Raised, nobody has taken it yet.
    Open,
    /// Someone took it; it stays until resolved.
    Acknowledged,
    /// Over: stock was restored, or someone closed it.
    Resolved,
}

impl From<storage::AlertStatus> for AlertStatus {
    fn from(r: storage::AlertStatus) -> Self {
        match r {
            storage::AlertStatus::Open => AlertStatus::Open,
            storage::AlertStatus::Acknowledged => AlertStatus::Acknowledged,
            storage::AlertStatus::Resolved => AlertStatus::Resolved,
        }
    }
}

/// One alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// Id (UUIDv7).
    pub id: Uuid,
    /// Kind.
    pub kind: AlertKind,
    /// Severity.
    pub severity: Severity,
    /// Status.
    pub status: AlertStatus,
    /// The store.
    pub store_id: Uuid,
    /// The product.
    pub sku: String,
    /// The stock when it was raised.
    pub stock: i64,
    /// For people.
    pub message: String,
    /// Raised.
    #[schema(value_type = String, format = DateTime)]
    pub opened_at: Timestamp,
    /// Acknowledged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
    /// By whom.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<Uuid>,
    /// Resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    /// By whom; none when stock was restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<Uuid>,
}

impl From<storage::Alert> for Alert {
    fn from(r: storage::Alert) -> Self {
        Self {
            id: r.id,
            kind: r.kind.into(),
            severity: r.severity.into(),
            status: r.status.into(),
            store_id: r.store_id,
            sku: r.sku,
            stock: r.stock,
            message: r.message,
            opened_at: r.opened_at,
            acknowledged_at: r.acknowledged_at,
            acknowledged_by: r.acknowledged_by,
            resolved_at: r.resolved_at,
            resolved_by: r.resolved_by,
        }
    }
}
