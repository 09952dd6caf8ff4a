//! Durability: the one path every durable change takes, on one node as in a
//! cluster.
//!
//! ```text
//! writer (conversation actor, service) ──append──▶ Journal ──▶ log
//!                                                     │    one node: the store writer
//!                                                     │    cluster:  the replicated stream,
//!                                                     │              applied by every node's follow loop
//!                                                     ▼
//!                                    StoreWriter (group commit to RocksDB)
//!                                                     │ after each durable group, in order
//!                                                     ▼
//!                                    Follower ──▶ broker (subscribers)
//! ```
//!
//! - [`journal`]: the interface, [`Journal`]; callers never learn which log is underneath.
//! - [`entity`]: an entity's way into the log while its one writer owns it ([`EntityLog`]).
//! - [`store_writer`]: group commit to RocksDB on its own thread.
//! - [`follower`]: what happens once a change is applied: the one place durable events leave from.
//! - [`record`]: the log's wire types, apart from storage records and API views.

mod entity;
mod follower;
pub(crate) mod journal;
pub(crate) mod record;
pub(crate) mod store_writer;

pub use entity::EntityLog;
pub use journal::{append_first, applied_position, unique_subject, Journal, JournalError, StoreHealth, APPLIED_KEY, INVENTORY_SUBJECT};
pub use store_writer::{ChangeTap, Durability, StoreWriter, WriteError, WriterStats};
