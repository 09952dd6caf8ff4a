//! Backups over REST, for a running server.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{web, HttpResponse};
use utalk_storage::backup::{BackupInfo, Backups};
use utalk_storage::model::{AuditEvent, Role};
use utalk_storage::Batch;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/backups", web::get().to(list)).route("/admin/backups", web::post().to(create));
}

/// Lists the backups, oldest first (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/backups", tag = "operations",
    responses((status = 200, body = super::Page<BackupInfo>), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(state: web::Data<AppState>, who: Principal) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let backups = Backups::new(state.config.backup_dir());
    let items = web::block(move || backups.list()).await.map_err(ApiError::internal)??;
    Ok(HttpResponse::Ok().json(super::Page { items, next_cursor: None }))
}

/// Takes and verifies a backup now, while the server serves (admins).
#[utoipa::path(post, path = "/api/v1/admin/backups", tag = "operations",
    responses((status = 201, body = BackupInfo), (status = 401), (status = 403), (status = 503, description = "backup_failed")), security(("bearer" = [])))]
pub async fn create(state: web::Data<AppState>, who: Principal) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(&[Role::Admin])?;
    // One backup at a time.
    let _guard = state.backup_lock.lock().await;
    let backups = Backups::new(state.config.backup_dir());
    let db = state.db.clone();
    let media = state.config.data_dir.join("media");
    let b = web::block(move || backups.create(&db, &media, &mut |step| tracing::info!(step, "backup")))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::unavailable("backup_failed", format!("the backup failed: {e}")))?;
    let mut batch = Batch::new();
    AuditEvent::new(user.to_string(), "backup.create", format!("backup {}", b.id)).add_to(&mut batch)?;
    state.registry.writer().commit(batch).await?;
    tracing::info!(backup = b.id, files = b.files, size = b.size, "backup taken and verified");
    Ok(HttpResponse::Created().json(b))
}
