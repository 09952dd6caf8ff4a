//! utalk's actors.
//!
//! - [`store_writer`]: the one path to disk, group-committing every actor's writes.
//! - [`conversation`]: one actor per active conversation, deciding its order.
//! - [`registry`]: starts conversation actors on demand under supervision and retires idle ones.
//! - [`broker`]: delivers committed events to subscribers; in-process today, a cross-node bus later.

pub mod broker;
pub mod conversation;
pub mod registry;
pub mod store_writer;

pub use broker::{Broker, ConversationEvent, LocalBroker, Subscriber, SubscriptionId};
pub use conversation::{AppendRequest, Appended, ConversationChange, ConversationError};
pub use registry::{Registry, RegistryConfig};
pub use store_writer::{Durability, StoreWriter, WriteError, WriterStats};
