//! What the HTTP handlers share.

use crate::config::Config;
use std::sync::Arc;
use std::time::Instant;
use utalk_actors::{Registry, SocketHub};
use utalk_storage::Db;

/// Shared by every handler (wrapped in `web::Data`).
pub struct AppState {
    /// Reads.
    pub db: Db,
    /// Conversation actors.
    pub registry: Registry,
    /// Socket.IO sessions.
    pub sockets: Arc<SocketHub>,
    /// Effective configuration.
    pub config: Arc<Config>,
    /// When the server started.
    pub started: Instant,
}
