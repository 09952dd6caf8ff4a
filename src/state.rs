//! What the HTTP handlers share.

use crate::config::Config;
use std::sync::Arc;
use std::time::Instant;
use utalk_actors::channels::delivery::Delivery;
use utalk_actors::channels::media_fetch::MediaFetcher;
use utalk_actors::channels::media_store::MediaStore;
use utalk_actors::channels::twilio::TwilioAccount;
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
    /// Twilio, when configured.
    pub twilio: Option<Arc<TwilioAccount>>,
    /// Media files and their signed URLs.
    pub media: Arc<MediaStore>,
    /// The WhatsApp outbox worker.
    pub delivery: Arc<Delivery>,
    /// The inbound media downloader.
    pub fetcher: Arc<MediaFetcher>,
    /// Inbound WhatsApp: one conversation per number.
    pub inbound: Arc<utalk_actors::channels::whatsapp::Inbound>,
    /// The bot.
    pub bot: Arc<utalk_actors::bot::answers::Bot>,
    /// Serialises changes of the bot settings (version check and write).
    pub ai_config_lock: tokio::sync::Mutex<()>,
    /// Scheduled jobs.
    pub scheduler: Arc<utalk_schedules::Scheduler>,
    /// Stock: one actor per store.
    pub inventory: utalk_actors::inventory::Inventory,
    /// Feature flags.
    pub flags: Arc<crate::services::flags::Flags>,
    /// Serialises flag changes (version check and write).
    pub flags_lock: tokio::sync::Mutex<()>,
    /// The other nodes, as far as this one is concerned; one node alone today.
    pub cluster: Arc<dyn utalk_actors::cluster::Cluster>,
}
