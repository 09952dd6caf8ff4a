//! The parts of the server the HTTP handlers use. Each is registered on its
//! own, so a handler names what it needs (`web::Data<Registry>`,
//! `web::Data<MediaStore>`, …) and nothing else: what a route may touch is
//! in its signature.

use crate::config::Config;
use crate::services::flags::Flags;
use crate::services::webhooks::Limits as WebhookLimits;
use actix_web::web;
use std::sync::Arc;
use std::time::Instant;
use utalk_actors::bot::answers::Bot;
use utalk_actors::channels::delivery::Delivery;
use utalk_actors::channels::media_fetch::MediaFetcher;
use utalk_actors::channels::media_store::MediaStore;
use utalk_actors::channels::twilio::TwilioAccount;
use utalk_actors::channels::whatsapp::Inbound;
use utalk_actors::cluster::Cluster;
use utalk_actors::inventory::Inventory;
use utalk_actors::search::SearchIndex;
use utalk_actors::webhooks::WebhookTap;
use utalk_actors::{Registry, SocketHub};
use utalk_schedules::Scheduler;
use utalk_storage::{BusinessHours, Db};

/// When the server started (uptime in `/health`).
pub struct Started(pub Instant);

/// Twilio's account, when configured.
pub struct Twilio(pub Option<Arc<TwilioAccount>>);

/// The search index, unless `search.enabled` is off.
pub struct Search(pub Option<Arc<SearchIndex>>);

impl Search {
    /// The index, when there is one.
    pub fn index(&self) -> Option<&SearchIndex> {
        self.0.as_deref()
    }
}

/// Serialises changes of the bot settings (version check and write).
#[derive(Default)]
pub struct BotSettingsLock(pub tokio::sync::Mutex<()>);

/// Serialises flag changes (version check and write).
#[derive(Default)]
pub struct FlagsLock(pub tokio::sync::Mutex<()>);

/// What the server is made of, as the wiring builds it.
pub struct Parts {
    /// Reads.
    pub db: Db,
    /// Conversation actors, and the journal every write goes through.
    pub registry: Registry,
    /// Socket.IO sessions.
    pub sockets: Arc<SocketHub>,
    /// Effective configuration.
    pub config: Arc<Config>,
    /// Twilio, when configured.
    pub twilio: Option<Arc<TwilioAccount>>,
    /// Media files and their signed URLs.
    pub media: Arc<MediaStore>,
    /// The WhatsApp outbox worker.
    pub delivery: Arc<Delivery>,
    /// The inbound media downloader.
    pub fetcher: Arc<MediaFetcher>,
    /// Inbound WhatsApp: one conversation per number.
    pub inbound: Arc<Inbound>,
    /// The bot.
    pub bot: Arc<Bot>,
    /// Scheduled jobs.
    pub scheduler: Arc<Scheduler>,
    /// Stock: one actor per store.
    pub inventory: Inventory,
    /// Feature flags.
    pub flags: Arc<Flags>,
    /// The other nodes, as far as this one is concerned.
    pub cluster: Arc<dyn Cluster>,
    /// Where changes queue webhook deliveries.
    pub webhooks: Arc<WebhookTap>,
    /// The search index.
    pub search: Option<Arc<SearchIndex>>,
    /// When people answer (always open unless configured).
    pub hours: Arc<BusinessHours>,
}

/// The parts as handlers extract them, cheap to clone into each worker.
#[derive(Clone)]
pub struct Shared {
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    sockets: web::Data<Arc<SocketHub>>,
    config: web::Data<Config>,
    started: web::Data<Started>,
    twilio: web::Data<Twilio>,
    media: web::Data<MediaStore>,
    delivery: web::Data<Delivery>,
    fetcher: web::Data<MediaFetcher>,
    inbound: web::Data<Inbound>,
    bot: web::Data<Bot>,
    bot_settings_lock: web::Data<BotSettingsLock>,
    scheduler: web::Data<Scheduler>,
    inventory: web::Data<Inventory>,
    flags: web::Data<Flags>,
    flags_lock: web::Data<FlagsLock>,
    cluster: web::Data<dyn Cluster>,
    webhooks: web::Data<WebhookTap>,
    webhook_limits: web::Data<WebhookLimits>,
    search: web::Data<Search>,
    hours: web::Data<BusinessHours>,
}

impl Shared {
    /// Wraps each part once, for every worker to share.
    pub fn new(p: Parts) -> Shared {
        Shared {
            db: web::Data::new(p.db),
            registry: web::Data::new(p.registry),
            sockets: web::Data::new(p.sockets),
            started: web::Data::new(Started(Instant::now())),
            twilio: web::Data::new(Twilio(p.twilio)),
            media: web::Data::from(p.media),
            delivery: web::Data::from(p.delivery),
            fetcher: web::Data::from(p.fetcher),
            inbound: web::Data::from(p.inbound),
            bot: web::Data::from(p.bot),
            bot_settings_lock: web::Data::new(BotSettingsLock::default()),
            scheduler: web::Data::from(p.scheduler),
            inventory: web::Data::new(p.inventory),
            flags: web::Data::from(p.flags),
            flags_lock: web::Data::new(FlagsLock::default()),
            webhook_limits: web::Data::new(WebhookLimits {
                max_subscriptions: p.config.webhooks.max_subscriptions,
                allow_private: p.config.webhooks.allow_private_targets,
            }),
            config: web::Data::from(p.config),
            cluster: web::Data::from(p.cluster),
            webhooks: web::Data::from(p.webhooks),
            search: web::Data::new(Search(p.search)),
            hours: web::Data::from(p.hours),
        }
    }

    /// Registers every part on a worker's app.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(self.db.clone())
            .app_data(self.registry.clone())
            .app_data(self.sockets.clone())
            .app_data(self.config.clone())
            .app_data(self.started.clone())
            .app_data(self.twilio.clone())
            .app_data(self.media.clone())
            .app_data(self.delivery.clone())
            .app_data(self.fetcher.clone())
            .app_data(self.inbound.clone())
            .app_data(self.bot.clone())
            .app_data(self.bot_settings_lock.clone())
            .app_data(self.scheduler.clone())
            .app_data(self.inventory.clone())
            .app_data(self.flags.clone())
            .app_data(self.flags_lock.clone())
            .app_data(self.cluster.clone())
            .app_data(self.webhooks.clone())
            .app_data(self.webhook_limits.clone())
            .app_data(self.search.clone())
            .app_data(self.hours.clone());
    }
}
