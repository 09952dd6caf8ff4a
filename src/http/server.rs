//! The HTTP server: actix-web's app behind an HTTP/1 service that hands
//! websocket upgrades to [`ws_upgrade`](crate::http::ws_upgrade).
//!
//! Built from the parts actix-web's own `HttpServer` uses, with the same
//! settings (keep-alive, 5 s to read a request head, 1 s to close, graceful
//! shutdown), because `HttpServer` has no way to take an upgraded stream.

use crate::http::ws_upgrade::{self, Upgrades};
use actix_http::body::MessageBody;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_server::Server;
use actix_service::{map_config, IntoServiceFactory, ServiceFactory, ServiceFactoryExt as _};
use actix_web::dev::AppConfig;
use std::net::TcpListener;
use std::time::Duration;

/// Settings of the listener.
pub(crate) struct Listen {
    pub listener: TcpListener,
    pub workers: usize,
    pub shutdown_timeout_secs: u64,
}

/// Starts serving `app` (built once per worker) on the listener.
pub(crate) fn serve<F, I, S, B>(listen: Listen, upgrades: Upgrades, app: F) -> std::io::Result<Server>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: std::fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as actix_service::Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listen.listener.local_addr()?;
    let builder = Server::build().workers(listen.workers).shutdown_timeout(listen.shutdown_timeout_secs);
    let shutdown = builder.graceful_shutdown_signal();
    builder
        .listen("utalk-http", listen.listener, move || {
            let shutdown = shutdown.clone();
            let app = app().into_factory().map_err(|err| err.into().error_response());
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let signal = shutdown.clone();
                    async move { signal.notified().await }
                })
                .keep_alive(KeepAlive::default())
                .client_request_timeout(Duration::from_secs(5))
                .client_disconnect_timeout(Duration::from_secs(1))
                // Chat traffic is small frames that must leave at once; Nagle's algorithm
                // would hold an ack until the peer's delayed ACK (up to 40 ms).
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(ws_upgrade::factory(upgrades.clone()))
                .finish(map_config(app, |_| AppConfig::default()))
                .tcp()
        })
        .map(|b| b.run())
}
