//! `GET /metrics`.

use actix_web::{web, HttpResponse};
use utalk_actors::Registry;
use utalk_actors::SocketHub;
use utalk_storage::Db;

/// `GET /metrics`: every recorded metric in the Prometheus text format.
pub async fn scrape(
    db: web::Data<Db>,
    registry: web::Data<Registry>,
    sockets: web::Data<std::sync::Arc<SocketHub>>,
    config: web::Data<crate::config::Config>,
) -> HttpResponse {
    let backup = config.backup_dir();
    crate::observe::metrics::sample(&db, &registry, &sockets, &crate::observe::metrics::Dirs { data: &config.data_dir, backup: &backup });
    let (age, limit) = crate::services::secrets::signing_key_age(&db, &config);
    crate::observe::metrics::secret_age("jwt", age, limit);
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(crate::observe::metrics::render())
}
