//! utalk's actors.
//!
//! - [`durability`]: the one path of every durable change: the [`Journal`] (the log: the store writer on one
//!   node, the replicated stream in a cluster), the store writer's group commit, and the follower that
//!   publishes events once a change is applied.
//! - [`conversation`]: one actor per active conversation, deciding its order.
//! - [`registry`]: starts conversation actors on demand under supervision and retires idle ones.
//! - [`broker`]: delivers committed events to subscribers; in-process today, a cross-node bus later.
//! - [`forward`] carries conversation requests to the node that owns them.
//! - [`cluster`]: the seam to other nodes (leases, the replicated log, forwarding, job locks); one node alone by default.
//! - [`session`] and [`ws_conn`]: one Socket.IO session per connection, over long-polling or websocket;
//!   [`admission`] caps how many there are.
//! - [`delivery`]: sends the WhatsApp outbox through Twilio, with retries and a circuit breaker.
//! - [`media_fetch`]: downloads inbound media into the [`media_store`] after the webhook has answered.
//! - [`worker`]: the supervised actor that runs such a worker's loop.
//! - [`bot`]: answers customers first ([`knowledge`] rules or an [`openai`]-compatible model), hands over to people;
//!   [`lifecycle`] holds the rules the conversation actor applies; [`assigner`] picks agents,
//!   among the staff online on any node ([`staff_presence`]).

pub mod admission;
pub mod alert_webhook;
pub mod assigner;
pub mod bot;
pub mod broker;
pub mod cluster;
pub mod conversation;
mod conversation_error;
pub mod delivery;
pub mod durability;
pub mod engineio;
mod event_args;
mod event_error;
pub mod forward;
pub mod hosts;
pub mod identity;
pub mod inventory;
pub mod knowledge;
pub mod lifecycle;
pub mod media_fetch;
pub mod media_store;
pub mod openai;
pub mod registry;
pub mod retry;
pub mod session;
pub mod shared_broker;
pub mod signal;
pub mod socket_hub;
pub mod socketio;
pub mod staff_presence;
pub mod twilio;
pub mod twilio_signature;
pub mod worker;
pub mod ws_conn;

pub use broker::{Broker, ConversationEvent, LocalBroker, Subscriber, SubscriptionId};
pub use conversation::{AppendRequest, Appended, ConversationChange, ConversationError, MessageChange};
pub use durability::{Durability, Journal, JournalError, StoreWriter, WriteError, WriterStats};
pub use registry::{Registry, RegistryConfig};
pub use session::SocketHub;
pub use socket_hub::{Authenticated, Authenticator, Identity, SocketConfig};
