//! `GET /metrics`.

use crate::state::AppState;
use actix_web::{web, HttpResponse};

/// `GET /metrics`: every recorded metric in the Prometheus text format.
pub async fn scrape(state: web::Data<AppState>) -> HttpResponse {
    crate::observe::metrics::sample(&state.db, &state.registry, &state.sockets);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(crate::observe::metrics::render())
}
