use crate::state::AppState;
use actix_web::{web, HttpResponse};
use serde_json::json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/health/database", web::get().to(database))
        .route("/health/socket", web::get().to(socket))
        .route("/health/cluster", web::get().to(cluster));
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200)))]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": state.started.elapsed().as_secs(),
    }))
}

/// Readiness of storage: the writer accepts work and a read succeeds.
#[utoipa::path(get, path = "/health/database", tag = "health", responses((status = 200), (status = 503)))]
pub async fn database(state: web::Data<AppState>) -> HttpResponse {
    let read = state.db.schema_version();
    let stats = state.db.stats();
    let writer = state.registry.journal().store_health();
    let ok = read.is_ok() && writer.accepting;
    let body = json!({
        "status": if ok { "ok" } else { "failing" },
        "schemaVersion": read.as_ref().ok().copied().flatten(),
        "readError": read.err().map(|e| e.to_string()),
        "writer": writer,
        "engine": stats,
        "durability": state.config.store.durability,
    });
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

/// Live subscriptions and conversation actors.
#[utoipa::path(get, path = "/health/socket", tag = "health", responses((status = 200)))]
pub async fn socket(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "connections": state.sockets.counts(),
        "subscriptions": state.registry.broker().subscriptions(),
        "conversationActors": state.registry.stats(),
    }))
}

/// Where this node stands in the cluster: its id, the shards it owns, the
/// NATS connection (null on a single node) and how far it is behind the log.
#[utoipa::path(get, path = "/health/cluster", tag = "health", responses((status = 200)))]
pub async fn cluster(state: web::Data<AppState>) -> HttpResponse {
    let s = state.cluster.status();
    let journal = state.registry.journal();
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
