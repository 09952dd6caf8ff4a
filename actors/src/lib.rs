//! utalk's actors.
//!
//! - [`store_writer`]: the one path to disk, group-committing every actor's writes.
//! - [`conversation`]: one actor per active conversation, deciding its order.
//! - [`registry`]: starts conversation actors on demand under supervision and retires idle ones.
//! - [`broker`]: delivers committed events to subscribers; in-process today, a cross-node bus later.
//! - [`session`] and [`ws_conn`]: one Socket.IO session per connection, over long-polling or websocket.

pub mod broker;
pub mod conversation;
pub mod engineio;
pub mod registry;
pub mod session;
pub mod socket_hub;
pub mod socketio;
pub mod store_writer;
pub mod ws_conn;

pub use broker::{Broker, ConversationEvent, LocalBroker, Subscriber, SubscriptionId};
pub use conversation::{AppendRequest, Appended, ConversationChange, ConversationError};
pub use registry::{Registry, RegistryConfig};
pub use socket_hub::{Authenticator, Identity, SocketConfig, SocketHub};
pub use store_writer::{Durability, StoreWriter, WriteError, WriterStats};
