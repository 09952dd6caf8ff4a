//! The catalogue of column families: every map is declared here once.
//!
//! Names follow `<key>_<value>` for indexes, and the collection name for
//! primary records. A map that is retired stays listed (as dropped) so that
//! its name is never reused for something else.

/// A column family of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Map {
    /// Database-wide values: schema version, generated signing key. Key: name (UTF-8).
    Meta,
    /// `user_id (16) → User`.
    Users,
    /// `email (lowercased UTF-8) → user_id`.
    EmailUserid,
    /// `token_hash (32, SHA-256 of the refresh token) → RefreshToken`.
    RefreshTokens,
    /// `conversation_id (16, UUIDv7 so time-ordered) → Conversation`.
    Conversations,
    /// `status (1) · conversation_id (16) → ()`: index for the status filter.
    StatusConvid,
    /// `assignee_id (16) · conversation_id (16) → ()`: index for the assignee filter.
    AssigneeConvid,
    /// `conversation_id (16) · seq (8, big-endian) → Message`.
    Messages,
    /// `message_id (16) → conversation_id (16) · seq (8)`: idempotency index.
    MessageidConvseq,
    /// `at_ms (8) · event_id (16) → AuditEvent`.
    Audit,
    /// `conversation_id (16) · reader_id (16; nil for the customer) → seq (8)`.
    ReadMarkers,
    /// `media_id (16) → MediaRecord`; the bytes are files in the media directory.
    Media,
    /// `media_id (16) → MediaFetch`: inbound media still to download.
    MediaFetches,
    /// `conversation_id (16) · seq (8) → OutboxEntry`: outbound channel messages not yet handed over.
    Outbox,
    /// `channel (1) · phone (UTF-8) → conversation_id (16)`: a customer number's latest conversation.
    PhoneConvid,
    /// `name (UTF-8) → versioned settings record` (the bot's `ai_config`).
    Settings,
    /// `at_ms (8) · run_id (16) → BotRun`: every bot answer, time-ordered for the KPIs.
    BotRuns,
    /// `at_ms (8) · escalation_id (16) → Escalation`.
    Escalations,
    /// `at_ms (8) · conversation_id (16) · kind (1) → Rating`.
    Ratings,
    /// `job name (UTF-8) · started_ms (8) · run_id (16) → JobRun`.
    JobRuns,
    /// `pid (UTF-8) → SocketSession`: what Socket.IO connection state recovery needs, kept across restarts.
    SocketSessions,
    /// `name (UTF-8) → MigrationProgress`: where each background data migration is.
    DataMigrations,
    /// `hour_ms (8) · conversation_id (16) → first seq (8)`: the conversations with messages in each hour, for the KPIs.
    HourconvSeq,
    /// `state (1: dirty, claimed) · hour_ms (8) → ()`: hours whose KPIs must be rolled up again.
    KpiDirty,
    /// `granularity (1) · bucket_ms (8) · dimension (1 + 0, 1 or 16) → KpiSums`.
    KpiRollups,
    /// `store_id (16) → Store`.
    Stores,
    /// `store_id (16) · sku (UTF-8) → Product` (with its stock).
    Products,
    /// `level (1: low, 2: negative) · store_id (16) · sku (UTF-8) → ()`: products short of stock.
    LevelProduct,
    /// `transaction_id (16) → StockTxn`: applied stock transactions, the idempotency record.
    StockTxns,
    /// `at_ms (8) · transaction_id (16) → ()`: transactions by time.
    TxntimeId,
    /// `alert_id (16, UUIDv7) → Alert`.
    Alerts,
    /// `kind (1) · store_id (16) · sku (UTF-8) → alert_id (16)`: the unresolved alert of each product and kind.
    OpenalertId,
    /// `delivery_id (16, UUIDv7) → WebhookDelivery`: alert webhooks still to
    /// deliver, from before event webhooks; emptied into `webhook_deliveries` at start.
    AlertWebhooks,
    /// `at_ms (8) · id (16) → TxnError`: refused stock transactions, for the error figures.
    TxnErrors,
    /// `name (UTF-8) → Flag`: feature flags.
    Flags,
    /// `conversation_id (16) · media_id (16) → size (8)`: uploads of each conversation, for its media quota.
    ConvidMedia,
    /// `uuid key_id` → `ApiKey`: integrators' API keys (the secret only as its hash).
    ApiKeys,
    /// `[u8; 32] sha256(key)` → `uuid key_id`: finds a presented key; removed when the key is revoked.
    KeyhashId,
    /// `uuid key_id` → `i64 ms`: when each key was last used, kept apart so that a use never overwrites a revocation.
    KeyUsed,
    /// `webhook_id (16) → Webhook`: event webhook subscriptions.
    Webhooks,
    /// `webhook_id (16) · delivery_id (16, UUIDv7) → Delivery`: each subscription's delivery log.
    WebhookDeliveries,
    /// `webhook_id (16) · delivery_id (16) → ()`: deliveries still to send, oldest first.
    WebhookPending,
    /// `second (8) · conversation_id (16) → ()`: conversations by last activity.
    ActivityConvid,
    /// `conversation_id (16) → second (8)`: each conversation's entry in `activity_convid`.
    ConvidActivity,
    /// `label (UTF-8, NUL-terminated) · conversation_id (16) → ()`: index for the label filter.
    LabelConvid,
    /// `canned_response_id (16, UUIDv7) → CannedResponse`: agents' saved replies.
    CannedResponses,
    /// `contact_id (16, UUIDv7) → Contact`: customers.
    Contacts,
    /// `phone (UTF-8, E.164) → contact_id (16)`: a phone's one contact.
    PhoneContact,
    /// `email (UTF-8, lowercased) → contact_id (16)`: an email's one contact.
    EmailContact,
    /// `external_id (UTF-8) → contact_id (16)`: an integrator's id's one contact.
    ExtidContact,
    /// `contact_id (16) · conversation_id (16) → ()`: a contact's conversations.
    ContactConvid,
    /// `erasure_id (16, v7) → Erasure`: customers erased, for every node to scrub its own files.
    Erasures,
}

impl Map {
    /// Every map, in declaration order.
    pub const ALL: [Map; 52] = [
        Map::Meta,
        Map::Users,
        Map::EmailUserid,
        Map::RefreshTokens,
        Map::Conversations,
        Map::StatusConvid,
        Map::AssigneeConvid,
        Map::Messages,
        Map::MessageidConvseq,
        Map::Audit,
        Map::ReadMarkers,
        Map::Media,
        Map::MediaFetches,
        Map::Outbox,
        Map::PhoneConvid,
        Map::Settings,
        Map::BotRuns,
        Map::Escalations,
        Map::Ratings,
        Map::JobRuns,
        Map::HourconvSeq,
        Map::KpiDirty,
        Map::KpiRollups,
        Map::Stores,
        Map::Products,
        Map::LevelProduct,
        Map::StockTxns,
        Map::TxntimeId,
        Map::Alerts,
        Map::OpenalertId,
        Map::AlertWebhooks,
        Map::TxnErrors,
        Map::Flags,
        Map::ConvidMedia,
        Map::ApiKeys,
        Map::KeyhashId,
        Map::KeyUsed,
        Map::Webhooks,
        Map::WebhookDeliveries,
        Map::WebhookPending,
        Map::ActivityConvid,
        Map::ConvidActivity,
        Map::LabelConvid,
        Map::CannedResponses,
        Map::Contacts,
        Map::PhoneContact,
        Map::EmailContact,
        Map::ExtidContact,
        Map::ContactConvid,
        Map::Erasures,
        Map::SocketSessions,
        Map::DataMigrations,
    ];

    /// Maps that existed in earlier schemas and are dropped at open.
    pub const DROPPED: [&'static str; 0] = [];

    /// The column family's name on disk.
    pub const fn name(self) -> &'static str {
        match self {
            Map::Meta => "meta",
            Map::Users => "users",
            Map::EmailUserid => "email_userid",
            Map::RefreshTokens => "refresh_tokens",
            Map::Conversations => "conversations",
            Map::StatusConvid => "status_convid",
            Map::AssigneeConvid => "assignee_convid",
            Map::Messages => "messages",
            Map::MessageidConvseq => "messageid_convseq",
            Map::Audit => "audit",
            Map::ReadMarkers => "read_markers",
            Map::Media => "media",
            Map::MediaFetches => "media_fetches",
            Map::Outbox => "outbox",
            Map::PhoneConvid => "phone_convid",
            Map::Settings => "settings",
            Map::BotRuns => "bot_runs",
            Map::Escalations => "escalations",
            Map::Ratings => "ratings",
            Map::JobRuns => "job_runs",
            Map::HourconvSeq => "hourconv_seq",
            Map::KpiDirty => "kpi_dirty",
            Map::KpiRollups => "kpi_rollups",
            Map::Stores => "stores",
            Map::Products => "products",
            Map::LevelProduct => "level_product",
            Map::StockTxns => "stock_txns",
            Map::TxntimeId => "txntime_id",
            Map::Alerts => "alerts",
            Map::OpenalertId => "openalert_id",
            Map::AlertWebhooks => "alert_webhooks",
            Map::TxnErrors => "txn_errors",
            Map::Flags => "flags",
            Map::ConvidMedia => "convid_media",
            Map::ApiKeys => "api_keys",
            Map::KeyhashId => "keyhash_id",
            Map::KeyUsed => "key_used",
            Map::Webhooks => "webhooks",
            Map::WebhookDeliveries => "webhook_deliveries",
            Map::WebhookPending => "webhook_pending",
            Map::ActivityConvid => "activity_convid",
            Map::ConvidActivity => "convid_activity",
            Map::LabelConvid => "label_convid",
            Map::CannedResponses => "canned_responses",
            Map::Contacts => "contacts",
            Map::PhoneContact => "phone_contact",
            Map::EmailContact => "email_contact",
            Map::ExtidContact => "extid_contact",
            Map::ContactConvid => "contact_convid",
            Map::Erasures => "erasures",
            Map::SocketSessions => "socket_sessions",
            Map::DataMigrations => "data_migrations",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_never_reuse_a_dropped_name() {
        let names: HashSet<_> = Map::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names.len(), Map::ALL.len());
        for d in Map::DROPPED {
            assert!(!names.contains(d));
        }
    }
}
