//! utalk's embedded store.
//!
//! Only this crate names RocksDB. Everything above it sees [`Db`] (reads),
//! [`Batch`] (writes, committed by the store writer through [`Db::write_group`]),
//! the column-family catalogue [`Map`], the order-preserving key codec in
//! [`keys`] and the versioned MessagePack value envelope in [`codec`].
//!
//! Under `--cfg loom` only the model-checkable parts ([`group_commit`]) are
//! compiled, so the model checker builds without RocksDB.

pub mod group_commit;

#[cfg(not(loom))]
pub mod backup;
#[cfg(not(loom))]
mod batch;
#[cfg(not(loom))]
pub mod codec;
#[cfg(not(loom))]
mod db;
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
pub mod formats;
#[cfg(not(loom))]
pub mod free_space;
#[cfg(not(loom))]
pub mod hours;
#[cfg(not(loom))]
pub mod keys;
#[cfg(not(loom))]
mod maps;
#[cfg(not(loom))]
pub mod migrations;
#[cfg(not(loom))]
pub mod model;
#[cfg(not(loom))]
pub mod offsite;
#[cfg(not(loom))]
pub mod time;

#[cfg(not(loom))]
pub use batch::{Batch, Change};
#[cfg(not(loom))]
pub use codec::Record;
#[cfg(not(loom))]
pub use db::{Db, DbOptions, DbStats, READABLE_FROM, SCHEMA_VERSION};
#[cfg(not(loom))]
pub use error::{CodecError, StoreError};
#[cfg(not(loom))]
pub use hours::{BusinessHours, HoursError};
#[cfg(not(loom))]
pub use maps::Map;
#[cfg(not(loom))]
pub use time::{Rfc3339, Timestamp};
