//! Records stored in the maps, with their keys and read queries.
//!
//! Their serde form is the disk format: MessagePack with field names (ids as
//! bytes, times as milliseconds; `storage/tests/golden.rs` pins it). They know
//! nothing of HTTP: the API shows its own views of them (`utalk_actors::views`),
//! so an API rename cannot change what is stored. Exports write the same
//! records as JSON (ids as strings, times as RFC 3339).

pub mod activity;
pub mod alert;
pub mod api_key;
pub mod audit;
pub mod bot;
pub mod canned;
pub mod contact;
pub mod conversation;
pub mod data_migration;
pub mod erasure;
pub mod flag;
pub mod inventory;
pub mod job_run;
pub mod kpi;
pub mod media;
pub mod message;
pub mod message_format;
pub mod outbox;
pub mod read_marker;
pub mod socket_session;
pub mod token;
pub mod user;
pub mod webhook;

pub use alert::{Alert, AlertKind, AlertStatus, Severity};
pub use api_key::ApiKey;
pub use audit::AuditEvent;
pub use bot::{AiConfig, BotOutcome, BotRun, Escalation, EscalationReason, Provider, Rating, RatingSource};
pub use canned::CannedResponse;
pub use contact::Contact;
pub use conversation::{Channel, Conversation, ConversationFilter, ConversationStatus, Customer, FirstContact, RatingKind};
pub use flag::{Flag, Subject};
pub use inventory::{Product, StockLevel, StockTxn, Store, TxnType};
pub use job_run::{JobOutcome, JobRun};
pub use kpi::{Dimension, Granularity, KpiRow, KpiSums, KPIS};
pub use media::{MediaFetch, MediaRecord, MediaSource};
pub use message::{Attachment, Author, AuthorType, Direction, MediaStatus, Message, MessageStatus, Template};
pub use message_format::MessageFormat;
pub use outbox::{OutboxEntry, OutboxState, Outcome};
pub use token::RefreshToken;
pub use user::{Role, User};
pub use webhook::{Delivery, DeliveryState, Webhook};
