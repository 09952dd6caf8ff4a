//! utalk's actors, in rooms by concern. Arrows point one way:
//! socket and bot → conversation → durability → storage, with fan-out,
//! jobs and the cluster seam below them (`tests/api/layout.rs` checks that
//! no two rooms import each other).
//!
//! - [`durability`]: the one path of every durable change: the [`Journal`] (the log: the store writer on one
//!   node, the replicated stream in a cluster), the store writer's group commit, and the follower that
//!   publishes events once a change is applied.
//! - [`conversation`]: one actor per active conversation deciding its order, its commands, errors and rules,
//!   the registry that starts them, and forwarding to the node that owns one.
//! - [`fanout`]: delivers committed events to subscribers, on this node and to the others.
//! - [`cluster`]: the seam to other nodes, one trait per job; one node alone by default.
//! - [`socket`]: one Socket.IO session per connection, over long-polling or websocket.
//! - [`channels`]: WhatsApp through Twilio (the outbox, media).
//! - [`webhooks`]: event webhooks, queued with the change they report and sent in order.
//! - [`jobs`]: the supervised worker loop of durable background work.
//! - [`bot`]: answers customers first, hands over to people, assigns agents.
//! - [`inventory`]: stores, stock and negative-stock alerts; [`hosts`]: which hosts outbound calls may reach.

pub mod bot;
pub mod channels;
pub mod cluster;
pub mod contacts;
pub mod conversation;
pub mod durability;
pub mod fanout;
pub mod hosts;
pub mod inventory;
pub mod jobs;
pub mod search;
pub mod socket;
pub mod views;
pub mod webhooks;
pub(crate) mod wire;

pub use conversation::registry::{Registry, RegistryConfig};
pub use conversation::{AppendRequest, Appended, ConversationChange, ConversationError, MessageChange};
pub use durability::{Durability, Journal, JournalError, StoreWriter, WriteError, WriterStats};
pub use fanout::broker::{Broker, ConversationEvent, LocalBroker, Subscriber, SubscriptionId};
pub use socket::hub::{Authenticated, Authenticator, Identity, SocketConfig};
pub use socket::session::SocketHub;
