//! Builds the server from a configuration: storage, writer, actors, auth, HTTP.

use crate::config::Config;
use crate::http::auth::AuthService;
use crate::http::request_id;
use crate::http::routes;
use crate::state::{Parts, Shared};
use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use utalk_actors::bot::answers::Bot;
use utalk_actors::bot::assigner::Assigner;
use utalk_actors::bot::knowledge::KnowledgeFile;
use utalk_actors::bot::openai::OpenAi;
use utalk_actors::channels::delivery::{Delivery, DeliveryConfig};
use utalk_actors::channels::media_fetch::MediaFetcher;
use utalk_actors::channels::media_store::{MediaLimits, MediaStore};
use utalk_actors::cluster::{redact_urls, valid_node_id, Cluster, LocalCluster, NatsCluster, NatsSettings, NatsTls};
use utalk_actors::durability::Journal;
use utalk_actors::hosts::HostList;
use utalk_actors::inventory::{Inventory, SocketAlerts};
use utalk_actors::jobs::retry::{Backoff, Breaker};
use utalk_actors::jobs::signal::JobSignal;
use utalk_actors::jobs::worker::WorkerActor;
use utalk_actors::search::{SearchIndex, Settings as SearchSettings};
use utalk_actors::webhooks::{SenderConfig, WebhookSender, WebhookTap};
use utalk_actors::{LocalBroker, Registry, RegistryConfig, SocketConfig, SocketHub, StoreWriter};
use utalk_schedules::backup::BackupTask;
use utalk_schedules::daily_report::DailyReportTask;
use utalk_schedules::kpi_rollup::KpiRollupTask;
use utalk_schedules::retention::RetentionTask;
use utalk_schedules::stock_scan::StockScanTask;
use utalk_schedules::{JobSpec, Scheduler};
use utalk_storage::backup::Backups;
use utalk_storage::migrations;
use utalk_storage::{BusinessHours, Db, DbOptions};

/// A built server, bound but not yet running.
pub struct Application {
    port: u16,
    server: Server,
    writer: StoreWriter,
    search: Option<Arc<SearchIndex>>,
    db: Db,
    /// This node's membership of a cluster, left at a graceful stop so its shards move at once.
    nats: Option<NatsCluster>,
    /// The socket sessions, written to the store at a stop so that their clients recover on the next start.
    sockets: Arc<SocketHub>,
}

/// How `node_id` connects to the NATS servers at `urls`; a `member` takes shards, a tool does not.
pub fn nats_settings(config: &Config, urls: &str, node_id: &str, member: bool) -> NatsSettings {
    let c = &config.cluster;
    NatsSettings {
        urls: urls.to_string(),
        node_id: node_id.to_string(),
        replicas: c.replicas,
        lease: Duration::from_millis(c.lease_ms),
        lock_ttl: Duration::from_millis(c.lock_ttl_ms),
        member,
        tls: NatsTls { ca_file: c.tls_ca_file.clone(), client_cert: c.tls_cert_file.clone().zip(c.tls_key_file.clone()) },
    }
}

/// The cluster this node belongs to: NATS when `cluster_url` is set, this node alone otherwise.
async fn join_cluster(config: &Config) -> anyhow::Result<(Arc<dyn Cluster>, Option<NatsCluster>)> {
    let Some(urls) = &config.cluster_url else {
        let node_id = config.node_id.clone().unwrap_or_else(|| "local".into());
        return Ok((Arc::new(LocalCluster::new(node_id)), None));
    };
    let node_id = config.node_id.clone().filter(|n| valid_node_id(n)).context(
        "a cluster node needs UTALK_NODE_ID (1 to 64 letters, digits, - or _), unique in the cluster and the same across restarts",
    )?;
    let settings = nats_settings(config, urls, &node_id, true);
    let shown = redact_urls(urls);
    let nats = NatsCluster::connect(settings).await.with_context(|| format!("cannot join the cluster at {shown}"))?;
    tracing::info!(node_id, urls = shown, "joined the cluster");
    Ok((Arc::new(nats.clone()), Some(nats)))
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// A pool's size as configured, where 0 means one thread per core.
fn or_one_per_core(configured: usize) -> usize {
    if configured == 0 {
        cores()
    } else {
        configured
    }
}

/// Opens the store of `config`, with a clear error when it is locked or too new.
pub fn open_db(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    Ok(Db::open(&config.data_dir, &db_options(config))?)
}

fn db_options(config: &Config) -> DbOptions {
    DbOptions {
        block_cache_bytes: config.store.block_cache_mb << 20,
        write_buffer_bytes: config.store.write_buffer_mb << 20,
        ..DbOptions::default()
    }
}

/// Brings the database up to this build's schema (backup first, restore on failure).
pub fn migrate_db(config: &Config, progress: &mut dyn FnMut(&str)) -> anyhow::Result<migrations::Report> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let backups = Backups::new(config.backup_dir());
    Ok(migrations::migrate(&config.data_dir, &db_options(config), &backups, &migrations::registry(), progress)?)
}

/// Takes the database back to schema version `to` in place (backup first, restore on failure).
pub fn rollback_db(config: &Config, to: u32, progress: &mut dyn FnMut(&str)) -> anyhow::Result<migrations::Report> {
    if !config.data_dir.exists() {
        anyhow::bail!("no data directory at {}", config.data_dir.display());
    }
    let backups = Backups::new(config.backup_dir());
    Ok(migrations::rollback(&config.data_dir, &db_options(config), &backups, &migrations::registry(), to, progress)?)
}

/// Starts the media store, the media fetcher and the delivery actor.
async fn start_whatsapp(
    config: &Config,
    db: &Db,
    registry: &Registry,
    account: Option<Arc<utalk_actors::channels::twilio::TwilioAccount>>,
    outbox_signal: Arc<JobSignal>,
) -> anyhow::Result<(Arc<Delivery>, Arc<MediaFetcher>, Arc<MediaStore>)> {
    let secret = match (&config.media.url_secret, &config.cluster_url, &config.jwt_secret) {
        (Some(s), _, _) => s.clone(),
        // Every node must sign media URLs alike; a node cannot generate its own.
        (None, Some(_), Some(jwt)) => {
            use sha2::Digest;
            let derived = sha2::Sha256::digest(format!("utalk media url secret\0{}", jwt.expose()).as_bytes());
            crate::config::Secret::new(hex::encode(derived))
        }
        _ => crate::services::secrets::media_url_secret(db, registry.journal()).await?,
    };
    let limits = MediaLimits {
        max_bytes: config.media.max_bytes,
        allowed_types: config.media.allowed_types.clone(),
        url_ttl: Duration::from_secs(config.media.url_ttl_secs),
    };
    let media = Arc::new(
        MediaStore::new(
            &config.data_dir,
            secret.expose().as_bytes(),
            crate::http::routes::media::url_prefix(config.public_url.as_deref()),
            limits,
        )
        .with_context(|| format!("cannot create the media directory in {}", config.data_dir.display()))?
        .with_blobs(registry.journal().cluster().clone()),
    );
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("utalk/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot build the HTTP client")?;
    let d = &config.delivery;
    let backoff = Backoff {
        base: Duration::from_millis(d.backoff_base_ms),
        max: Duration::from_millis(d.backoff_max_ms),
        max_attempts: d.max_attempts,
    };
    let delivery = Delivery::new(
        db.clone(),
        registry.clone(),
        account.clone(),
        media.clone(),
        client.clone(),
        outbox_signal,
        DeliveryConfig {
            backoff,
            request_timeout: Duration::from_millis(d.request_timeout_ms),
            concurrency: d.concurrency,
            breaker_failures: d.breaker_failures,
            breaker_cooldown: Duration::from_secs(d.breaker_cooldown_secs),
            media_url_ttl: Duration::from_secs(config.media.url_ttl_secs),
        },
    );
    WorkerActor::start(delivery.clone());
    let fetcher = MediaFetcher::new(
        db.clone(),
        registry.clone(),
        account,
        media.clone(),
        client,
        Arc::new(JobSignal::new(true)),
        backoff,
        Duration::from_millis(d.media_fetch_timeout_ms),
        HostList::new(&config.twilio_media_hosts),
    );
    WorkerActor::start(fetcher.clone());
    if delivery.configured() {
        tracing::info!(api_base = %config.twilio_api_base, "WhatsApp through Twilio is configured");
    } else {
        let missing = config.twilio_missing().join(", ");
        tracing::warn!(missing = %missing, "WhatsApp through Twilio is not configured: inbound webhooks are refused with 503 and outbound WhatsApp messages wait in the outbox as not_configured; web chat works as usual");
    }
    Ok((delivery, fetcher, media))
}

/// Starts the scheduled jobs.
async fn start_jobs(
    config: &Config,
    db: &Db,
    journal: &Journal,
    inventory: &Inventory,
    hours: &Arc<BusinessHours>,
    registry: &Registry,
) -> anyhow::Result<Arc<Scheduler>> {
    let j = &config.jobs;
    let day = 86_400;
    let backup = BackupTask {
        db: db.clone(),
        backups: Backups::new(config.backup_dir()),
        media: config.data_dir.join("media"),
        keep: config.backup.keep,
        max_age: Duration::from_secs(config.backup.max_age_days * day),
    };
    let retention = RetentionTask {
        db: db.clone(),
        journal: journal.clone(),
        inventory: inventory.clone(),
        audit_max_age: Duration::from_secs(config.retention.audit_days * day),
        job_runs_max_age: Duration::from_secs(config.retention.job_runs_days * day),
        inventory_max_age: Duration::from_secs(config.retention.inventory_days * day),
        webhook_deliveries_max_age: Duration::from_secs(u64::from(config.webhooks.keep_deliveries_days) * day),
        // Every job below, and 0.1.0's `contact_backfill`, whose runs age out like the others'.
        job_names: vec![
            "backup",
            "offsite_copy",
            "retention",
            "kpi_rollup",
            "daily_report",
            "stock_negative",
            "secret_rotation",
            "data_migrations",
            "contact_backfill",
        ],
    };
    let kpi_rollup = KpiRollupTask { db: db.clone(), journal: journal.clone(), hours: hours.clone() };
    let daily_report =
        DailyReportTask { db: db.clone(), journal: journal.clone(), dir: config.data_dir.join("reports"), hours: hours.clone() };
    let spec = |name, schedule: &String, task: Arc<dyn utalk_schedules::Task>, once| JobSpec {
        name,
        schedule: schedule.clone(),
        retries: j.retries,
        retry_delay: Duration::from_secs(j.retry_delay_secs),
        task,
        once,
    };
    // Backups and reports are of the node's own store and folder, so every
    // node makes them; retention trims the node's own job history there and
    // leaves the shared records to the leading node. The rollup's figures and
    // the stock scan's alerts go to every node through the log: once.
    let specs = vec![
        spec("backup", &j.backup, Arc::new(backup), false),
        // Each node copies its own backups.
        spec(
            "offsite_copy",
            &j.offsite_copy,
            Arc::new(utalk_schedules::offsite_copy::OffsiteCopyTask {
                backups: Backups::new(config.backup_dir()),
                target: config.offsite(),
                max_age: Duration::from_secs(config.backup.offsite.max_age_days * day),
            }),
            false,
        ),
        spec("retention", &j.retention, Arc::new(retention), false),
        spec("kpi_rollup", &j.kpi_rollup, Arc::new(kpi_rollup), true),
        spec("daily_report", &j.daily_report, Arc::new(daily_report), false),
        spec("stock_negative", &j.stock_negative, Arc::new(StockScanTask { inventory: inventory.clone(), db: db.clone() }), true),
        // Its writes reach every node through the log: once.
        // The new key reaches every node through the log: once.
        spec(
            "secret_rotation",
            &j.secret_rotation,
            Arc::new(crate::services::secrets::RotationTask {
                db: db.clone(),
                journal: journal.clone(),
                configured: config.jwt_secret.is_some(),
                max_age: Duration::from_secs(config.auth.jwt_rotate_days * day),
                grace: Duration::from_secs(config.auth.jwt_rotation_grace_days * day),
            }),
            true,
        ),
        // Background data migrations: once in the cluster, resuming from the progress in the log.
        spec(
            "data_migrations",
            &j.data_migrations,
            Arc::new(utalk_schedules::data_migrations::Runner {
                db: db.clone(),
                journal: journal.clone(),
                migrations: crate::services::backfill::migrations(db, registry),
                throttle: utalk_schedules::data_migrations::Throttle {
                    duty: f64::from(j.data_migration_duty_percent) / 100.0,
                    ..Default::default()
                },
            }),
            true,
        ),
    ];
    let scheduler = Scheduler::start(db.clone(), journal.clone(), specs).await.context("cannot start the scheduled jobs")?;
    tracing::info!(backup = %j.backup, retention = %j.retention, kpi_rollup = %j.kpi_rollup, daily_report = %j.daily_report, backups = %config.backup_dir().display(), "scheduled jobs started");
    Ok(scheduler)
}

/// Starts the store actors; alert changes queue their webhook deliveries.
fn start_inventory(db: &Db, registry: &Registry, webhooks: &Arc<WebhookTap>) -> Inventory {
    let sink = Arc::new(SocketAlerts::new(db.clone(), registry.broker().clone()));
    Inventory::start(db.clone(), registry.journal().clone(), sink, Some(webhooks.clone()))
}

/// Starts event webhooks: the subscription the deprecated `[alerts]`
/// settings describe, alert deliveries queued by an older version moved
/// into it, and the sender.
async fn start_webhooks(config: &Config, db: &Db, journal: &Journal, tap: &Arc<WebhookTap>) -> anyhow::Result<()> {
    use crate::services::webhooks as service;
    let a = &config.alerts;
    match (&a.webhook_url, &a.webhook_secret) {
        (Some(url), Some(secret)) => {
            service::ensure_configured_alert_webhook(db, journal, tap, url, secret.expose())
                .await
                .context("cannot set up the [alerts] webhook")?;
            tracing::warn!(
                webhook = %service::configured_alert_webhook_id(),
                "[alerts] webhook_url is deprecated: it is now an event webhook subscription to alert.*; make one at /api/v1/webhooks instead"
            );
        }
        _ => service::remove_configured_alert_webhook(db, journal, tap).await.context("cannot remove the [alerts] webhook")?,
    }
    let moved = service::move_old_alert_queue(db, journal).await.context("cannot move the queued alert webhooks")?;
    if moved > 0 {
        tracing::info!(moved, "alert webhooks queued by an older version now go out as event webhooks");
    }
    let w = &config.webhooks;
    let sender = WebhookSender::new(
        db.clone(),
        journal.clone(),
        SenderConfig {
            timeout: Duration::from_millis(w.timeout_ms),
            backoff: Backoff {
                base: Duration::from_millis(w.backoff_base_ms),
                max: Duration::from_millis(w.backoff_max_ms),
                // The retry period ends retries, not a count.
                max_attempts: u32::MAX,
            },
            retry_for: Duration::from_secs(w.retry_for_secs),
            disable_after: Duration::from_secs(w.disable_after_secs),
            allow_private: w.allow_private_targets,
        },
        tap.clone(),
        journal.cluster().clone(),
    );
    WorkerActor::start(Arc::new(sender));
    Ok(())
}

/// Starts the bot's workers and hooks it to the conversations.
fn start_bot(
    config: &Config,
    db: &Db,
    registry: &Registry,
    sockets: &Arc<SocketHub>,
    hours: &Arc<BusinessHours>,
) -> anyhow::Result<Arc<Bot>> {
    let path = config.bot.knowledge_file.clone().unwrap_or_else(|| config.data_dir.join("knowledge.toml"));
    let knowledge = KnowledgeFile::open(&path)?;
    let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().context("cannot build the HTTP client")?;
    let b = &config.bot;
    let model = OpenAi::new(
        client,
        config.openai_api_key.as_ref().map(|k| k.expose().to_string()),
        HostList::new(&b.allowed_model_hosts),
        Duration::from_millis(b.model_timeout_ms),
        Breaker::new(b.breaker_failures, Duration::from_secs(b.breaker_cooldown_secs)),
    );
    let bot = Bot::new(db.clone(), registry.clone(), knowledge, model, b.workers, b.queue, hours.clone())?;
    bot.set_assigner(Arc::new(Assigner::new(db.clone(), registry.clone(), sockets.clone(), b.agent_capacity, hours.clone())));
    registry.set_hook(bot.clone());
    WorkerActor::start(bot.clone());
    let cfg = bot.config();
    if cfg.provider == utalk_storage::model::Provider::Openai {
        if let Err(e) = HostList::new(&b.allowed_model_hosts).check_url(&OpenAi::completions_url(&cfg.base_url)) {
            // Stored before the list existed, or under a wider one: the key is not sent (the rules answer) until fixed.
            tracing::error!(base_url = %cfg.base_url, error = %e, "the bot settings' model host is not in bot.allowed_model_hosts; the rules answer");
        }
    }
    tracing::info!(enabled = cfg.enabled, provider = cfg.provider.as_str(), knowledge = %path.display(), "bot ready");
    Ok(bot)
}

/// Opens the search index in `<data_dir>/search`, unless it is turned off.
fn open_search(config: &Config, db: &Db) -> anyhow::Result<Option<Arc<SearchIndex>>> {
    let s = &config.search;
    if !s.enabled {
        return Ok(None);
    }
    let settings = SearchSettings {
        commit_interval: Duration::from_millis(s.commit_interval_ms),
        writer_memory_bytes: s.writer_memory_mb << 20,
        max_queue_bytes: s.max_queue_mb << 20,
        backfill_duty: f64::from(s.backfill_duty_percent) / 100.0,
    };
    let dir = config.data_dir.join("search");
    Ok(Some(SearchIndex::open(&dir, db.clone(), settings).with_context(|| format!("cannot open the search index in {}", dir.display()))?))
}

impl Application {
    /// Opens storage, starts the actors and binds the listener. Must run inside an actix `System`.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        // Before any job or actor records: metrics recorded earlier would be lost.
        crate::observe::metrics::install();
        let report = migrate_db(&config, &mut |step| tracing::info!(step, "migration"))
            .context("the database could not be migrated, so the server does not start")?;
        if report.from != report.to {
            tracing::info!(from = report.from, to = report.to, backup = ?report.backup_id, "database migrated");
        }
        let db = open_db(&config)?;
        if let Ok(Some(v)) = db.schema_version() {
            if v > utalk_storage::SCHEMA_VERSION {
                tracing::warn!(
                    schema_version = v,
                    build_version = utalk_storage::SCHEMA_VERSION,
                    "the data was written by a newer release that keeps it readable by this one; run the newer release again, or roll the data back with it"
                );
            }
        }
        let writer = StoreWriter::start_with_reserve(db.clone(), config.store.durability, config.store.min_free_mb << 20)
            .context("cannot start the store writer")?;
        // Before the first write: the index follows every durable batch.
        let search = open_search(&config, &db)?;
        if let Some(index) = &search {
            writer.tap_with(index.clone());
        }
        let broker = Arc::new(LocalBroker::new());
        let (cluster, nats) = join_cluster(&config).await?;
        // Applied changes are published to this node's sockets only: other nodes apply them from the log.
        let journal = Journal::new(&db, writer.clone(), cluster.clone(), broker.clone());
        journal.follow();
        journal.catch_up().await.context("cannot catch up with the cluster log")?;
        if let Some(n) = &nats {
            n.join();
        }
        // `utalk user …` reaches the running server here; without it those
        // commands need the server stopped, which is no reason not to serve.
        if let Err(e) = crate::ops::user_admin::serve(&config.data_dir, db.clone(), journal.clone()) {
            tracing::warn!(error = %format!("{e:#}"), "no control socket: `utalk user` commands need the server stopped");
        }
        let account = config.twilio_account().map(Arc::new);
        let outbox_signal = Arc::new(JobSignal::new(account.is_some()));
        let threads = or_one_per_core(config.conversations.threads);
        // Typing, presence and alerts are not in the log: they also go to the
        // other nodes' sockets over the cluster's events (none on one node).
        let broker: Arc<dyn utalk_actors::Broker> = utalk_actors::fanout::shared_broker::SharedBroker::start(broker, cluster.clone());
        let webhooks = WebhookTap::new(db.clone()).context("cannot read the webhook subscriptions")?;
        // Subscriptions changed on other nodes reach this one's writers within a second.
        webhooks.refresh_every(Duration::from_secs(1));
        let registry = Registry::start(
            db.clone(),
            journal.clone(),
            broker,
            RegistryConfig {
                idle_timeout: Duration::from_secs(config.conversations.idle_timeout_secs),
                max_inflight: config.conversations.max_inflight,
                threads,
                outbox: outbox_signal.clone(),
                forward_timeout: Duration::from_millis(config.cluster.forward_timeout_ms),
                webhooks: Some(webhooks.clone()),
            },
        );
        let (delivery, fetcher, media) = start_whatsapp(&config, &db, &registry, account.clone(), outbox_signal).await?;
        let auth = Arc::new(AuthService::new(db.clone(), journal.clone(), config.jwt_secret.clone(), config.auth.clone()).await?);
        let s = &config.socket;
        let socket_config = SocketConfig {
            ping_interval: Duration::from_millis(s.ping_interval_ms),
            ping_timeout: Duration::from_millis(s.ping_timeout_ms),
            max_payload: s.max_payload_bytes,
            max_queued: s.max_queued,
            recovery_window: Duration::from_secs(s.recovery_window_secs),
            max_replay: s.max_replay,
            max_queue_bytes: s.max_queue_bytes,
            max_replay_bytes: s.max_replay_bytes,
            max_sessions: s.max_sessions,
            max_anonymous_sessions_per_ip: s.max_anonymous_sessions_per_ip,
            session_flush: Duration::from_millis(s.session_flush_ms),
            ..SocketConfig::default()
        };
        let sockets = SocketHub::new(socket_config, auth.clone(), registry.clone(), db.clone());
        // Recovery state goes to the store, so that clients recover across a restart.
        sockets.keep_sessions();
        // Automatic assignment on any node chooses among the staff online on every node.
        sockets.share_presence(cluster.clone());
        let announce = crate::services::api_version::record(&db, &journal).await.context("cannot record the API version")?;
        if let Some(payload) = announce {
            tracing::info!(version = crate::services::api_version::API_VERSION, "new API version: connecting sockets get api:changes");
            sockets.announce_api_changes(payload);
        }
        // Validated with the rest of the configuration; built once, shared by the bot, the assigner, the KPIs and the API.
        let hours = Arc::new(config.business_hours.calendar().context("business_hours")?);
        if let Some(zone) = hours.zone_name() {
            let now = utalk_storage::Timestamp::now();
            tracing::info!(
                timezone = zone,
                open = hours.is_open(now),
                "business hours in force: assignments wait for opening, agent KPIs count business time"
            );
        }
        let bot = start_bot(&config, &db, &registry, &sockets, &hours)?;
        let inventory = start_inventory(&db, &registry, &webhooks);
        start_webhooks(&config, &db, &journal, &webhooks).await?;
        let scheduler = start_jobs(&config, &db, &journal, &inventory, &hours, &registry).await?;
        let flags = Arc::new(crate::services::flags::Flags::load(&db).context("cannot read the feature flags")?);
        let auth = web::Data::from(auth);
        let upload_limits = web::Data::new(routes::media_limits::UploadLimits::new(&config.media));
        {
            // Flags, bot settings and signing keys are cached: reload them when
            // shared state changes (through another node, in a cluster).
            let (db, flags, bot, mut changes) = (db.clone(), flags.clone(), bot.clone(), journal.shared_changes());
            let keys = auth.clone();
            tokio::spawn(async move {
                while changes.changed().await.is_ok() {
                    if let Err(e) = keys.reload_keys() {
                        tracing::warn!(error = %e, "cannot reload the token signing keys");
                    }
                    if let Err(e) = flags.reload(&db) {
                        tracing::warn!(error = %e, "cannot reload the feature flags");
                    }
                    match utalk_storage::model::bot::ai_config(&db) {
                        Ok(c) if c.version > bot.config().version => bot.use_config(c),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "cannot reload the bot settings"),
                    }
                }
            });
        }
        let inbound = Arc::new(utalk_actors::channels::whatsapp::Inbound::new(db.clone(), registry.clone(), fetcher.clone()));
        let socket_hub = sockets.clone();
        {
            // A backup restored from before an erasure brought its data back:
            // erase it again, through the same path as the first time, before
            // anything is served. Then follow the erasures other nodes serve,
            // to rewrite this node's files.
            let (db, registry, media, search, dir) = (db.clone(), registry.clone(), media.clone(), search.clone(), config.backup_dir());
            let parts = crate::services::erasure::Parts {
                db: &db,
                registry: &registry,
                media: &media,
                search: search.as_deref(),
                backup_dir: &dir,
            };
            if let Err(e) = crate::services::erasure::reapply(&parts).await {
                tracing::error!(error = %e, "cannot apply the erasure ledger again; the next start retries");
            }
            let changes = journal.shared_changes();
            tokio::spawn(async move {
                let parts = crate::services::erasure::Parts {
                    db: &db,
                    registry: &registry,
                    media: &media,
                    search: search.as_deref(),
                    backup_dir: &dir,
                };
                crate::services::erasure::follow(&parts, changes).await;
            });
        }
        let db_handle = db.clone();
        let shared = Shared::new(Parts {
            cluster,
            db,
            registry,
            sockets,
            config: config.clone(),
            twilio: account,
            media,
            delivery,
            fetcher,
            inbound,
            bot,
            scheduler,
            inventory,
            flags,
            webhooks,
            search: search.clone(),
            hours,
        });

        let listener = TcpListener::bind(&config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let max_body = config.http.max_body_bytes;
        let max_socket_payload = config.socket.max_payload_bytes;
        let workers = or_one_per_core(config.http.workers);
        let proxies = web::Data::new(crate::http::client_addr::TrustedProxies::parse(&config.http.trusted_proxies)?);
        let deprecations = web::Data::new(crate::http::api_version::Deprecations(config.api.deprecations.clone()));
        let origins = web::Data::new(crate::http::cors::AllowedOrigins::parse(&config.http.allowed_origins)?);
        let rate_limits = web::Data::new(crate::http::rate_limit::RateLimits::new(config.http.requests_per_minute));
        let upgrades = crate::http::ws_upgrade::Upgrades { hub: socket_hub.clone(), proxies: proxies.clone().into_inner() };
        let listen = crate::http::server::Listen { listener, workers, shutdown_timeout_secs: config.http.shutdown_timeout_secs };
        let server = crate::http::server::serve(listen, upgrades, move || {
            App::new()
                .configure(|cfg| shared.register(cfg))
                .app_data(deprecations.clone())
                .app_data(proxies.clone())
                .app_data(origins.clone())
                .app_data(rate_limits.clone())
                .app_data(auth.clone())
                .app_data(upload_limits.clone())
                .wrap(Compress::default())
                .wrap(from_fn(crate::http::rate_limit::middleware))
                .wrap(from_fn(crate::http::cors::middleware))
                .wrap(from_fn(request_id::middleware))
                .configure(|cfg| routes::configure(cfg, max_body, max_socket_payload))
        })?;
        tracing::info!(addr = %addr, data_dir = %config.data_dir.display(), durability = config.store.durability.as_str(), "utalk listening on http://{addr}");
        Ok(Application { port: addr.port(), server, writer, search, db: db_handle, nats, sockets: socket_hub })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is asked to stop, then drains the store writer.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        if let Some(nats) = self.nats.clone() {
            // Hand the shards over as soon as the stop is asked for, not after
            // the HTTP drain: requests still in flight go on to the new owners.
            tokio::spawn(async move {
                let term = async {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                        Ok(mut s) => {
                            s.recv().await;
                        }
                        Err(_) => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = term => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                tracing::info!("stopping: handing this node's shards over");
                nats.leave().await;
            });
        }
        let result = self.server.await;
        if let Some(nats) = &self.nats {
            nats.leave().await;
        }
        // No session changes after the listener closed: every one is written
        // as dropped now, before the writer drains, for its client to recover
        // on the next start.
        self.sockets.persist_sessions().await;
        let (writer, search, db) = (self.writer.clone(), self.search.clone(), self.db.clone());
        tokio::task::spawn_blocking(move || {
            writer.shutdown();
            // After the last write: the index records the store's sequence,
            // so the next start finds it current and does not rebuild it.
            if let Some(index) = search {
                index.stop(db.latest_sequence());
            }
        })
        .await?;
        tracing::info!("utalk stopped");
        Ok(result?)
    }
}
