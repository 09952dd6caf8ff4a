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
    let writer_ok = !state.registry.writer().has_failed();
    let ok = read.is_ok() && writer_ok;
    let body = json!({
        "status": if ok { "ok" } else { "failing" },
        "schemaVersion": read.as_ref().ok().copied().flatten(),
        "readError": read.err().map(|e| e.to_string()),
        "writer": { "accepting": writer_ok, "queued": state.registry.writer().queued() },
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

/// Cluster membership; a single node owns everything.
#[utoipa::path(get, path = "/health/cluster", tag = "health", responses((status = 200)))]
pub async fn cluster(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "mode": "single",
        "nodeId": state.config.node_id.clone().unwrap_or_else(|| "local".into()),
        "ownedShards": "all",
        "nats": null,
        "lag": 0,
    }))
}
