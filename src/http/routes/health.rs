use crate::config::Config;
use crate::state::Started;
use actix_web::{web, HttpResponse};
use serde_json::json;
use utalk_actors::cluster::Cluster;
use utalk_actors::Registry;
use utalk_actors::SocketHub;
use utalk_storage::Db;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/database", web::get().to(database))
        .route("/health/socket", web::get().to(socket))
        .route("/health/cluster", web::get().to(cluster));
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200)))]
pub async fn health(started: web::Data<Started>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": started.0.elapsed().as_secs(),
    }))
}

/// Readiness of storage: the writer accepts work and a read succeeds.
#[utoipa::path(get, path = "/health/database", tag = "health", responses((status = 200), (status = 503)))]
pub async fn database(db: web::Data<Db>, registry: web::Data<Registry>, config: web::Data<Config>) -> HttpResponse {
    let (read, stats) = crate::services::operations::store_readiness(&db);
    let writer = registry.journal().store_health();
    let ok = read.is_ok() && writer.accepting;
    let body = json!({
        "status": if ok { "ok" } else { "failing" },
        "schemaVersion": read.as_ref().ok().copied().flatten(),
        "readError": read.err().map(|e| e.to_string()),
        "writer": writer,
        "engine": stats,
        "durability": config.store.durability,
    });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Live subscriptions and conversation actors.
#[utoipa::path(get, path = "/health/socket", tag = "health", responses((status = 200)))]
pub async fn socket(registry: web::Data<Registry>, sockets: web::Data<std::sync::Arc<SocketHub>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "connections": sockets.counts(),
        "subscriptions": registry.broker().subscriptions(),
        "conversationActors": registry.stats(),
    }))
}

/// Where this node stands in the cluster: its id, the shards it owns, the
/// NATS connection (null on a single node) and how far it is behind the log.
#[utoipa::path(get, path = "/health/cluster", tag = "health", responses((status = 200)))]
pub async fn cluster(registry: web::Data<Registry>, cluster: web::Data<dyn Cluster>) -> HttpResponse {
    let s = cluster.status();
    let journal = registry.journal();
    let applied = journal.applied();
    // An unreachable log leaves the lag unknown (null).
    let lag = journal.lag().await;
    // Null on a single node, which has no connection to report.
    let nats = (s.mode != "single").then(|| json!({ "connected": s.connected }));
    let ok = s.connected && !journal.stuck() && lag.is_some();
    HttpResponse::Ok().json(json!({
        "status": if ok { "ok" } else { "degraded" },
        "mode": s.mode,
        "nodeId": s.node_id,
        "ownedShards": s.owned_shards,
        "liveNodes": s.live_nodes,
        "nats": nats,
        "lag": lag,
        "appliedPosition": applied,
        "followerStuck": journal.stuck(),
    }))
}
