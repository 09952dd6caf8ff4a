//! Builds the server from a configuration: storage, writer, actors, auth, HTTP.

use crate::auth::AuthService;
use crate::config::Config;
use crate::request_id;
use crate::routes;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utalk_actors::{LocalBroker, Registry, RegistryConfig, SocketConfig, SocketHub, StoreWriter};
use utalk_storage::{Db, DbOptions};

/// A built server, bound but not yet running.
pub struct Application {
    port: u16,
    server: Server,
    writer: StoreWriter,
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// Opens the store of `config`, with a clear error when it is locked or too new.
pub fn open_db(config: &Config) -> anyhow::Result<Db> {
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    let opts = DbOptions { block_cache_bytes: config.store.block_cache_mb << 20, ..DbOptions::default() };
    Ok(Db::open(&config.data_dir, &opts)?)
}

impl Application {
    /// Opens storage, starts the actors and binds the listener. Must run inside an actix `System`.
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let db = open_db(&config)?;
        let writer = StoreWriter::start(db.clone(), config.store.durability).context("cannot start the store writer")?;
        let broker = Arc::new(LocalBroker::new());
        let threads = if config.conversations.threads == 0 { cores() } else { config.conversations.threads };
        let registry = Registry::start(
            db.clone(),
            writer.clone(),
            broker,
            RegistryConfig {
                idle_timeout: Duration::from_secs(config.conversations.idle_timeout_secs),
                max_inflight: config.conversations.max_inflight,
                threads,
            },
        );
        let auth = Arc::new(AuthService::new(db.clone(), writer.clone(), config.jwt_secret.clone(), config.auth.clone()).await?);
        let s = &config.socket;
        let socket_config = SocketConfig {
            ping_interval: Duration::from_millis(s.ping_interval_ms),
            ping_timeout: Duration::from_millis(s.ping_timeout_ms),
            max_payload: s.max_payload_bytes,
            max_queued: s.max_queued,
            recovery_window: Duration::from_secs(s.recovery_window_secs),
            max_replay: s.max_replay,
        };
        let sockets = SocketHub::new(socket_config, auth.clone(), registry.clone(), db.clone());
        let auth = web::Data::from(auth);
        let hub = web::Data::new(sockets.clone());
        let state = web::Data::new(AppState { db, registry, sockets, config: config.clone(), started: Instant::now() });

        let listener = TcpListener::bind(&config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let max_body = config.http.max_body_bytes;
        let max_socket_payload = config.socket.max_payload_bytes;
        let workers = if config.http.workers == 0 { cores() } else { config.http.workers };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(hub.clone())
                .wrap(Compress::default())
                .wrap(from_fn(request_id::middleware))
                .configure(|cfg| routes::configure(cfg, max_body, max_socket_payload))
        })
        .workers(workers)
        // Chat traffic is small frames that must leave at once; Nagle's algorithm
        // would hold an ack until the peer's delayed ACK (up to 40 ms).
        .tcp_nodelay(true)
        .shutdown_timeout(config.http.shutdown_timeout_secs)
        .listen(listener)?
        .run();
        tracing::info!(addr = %addr, data_dir = %config.data_dir.display(), durability = config.store.durability.as_str(), "utalk listening on http://{addr}");
        Ok(Application { port: addr.port(), server, writer })
    }

    /// The bound port (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the process is asked to stop, then drains the store writer.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let result = self.server.await;
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || writer.shutdown()).await?;
        tracing::info!("utalk stopped");
        Ok(result?)
    }
}
