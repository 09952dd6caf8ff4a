//! Backups over REST, for a running server.

use crate::config::Config;
use crate::http::auth::Principal;
use crate::http::error::ApiError;
use actix_web::{web, HttpResponse};
use utalk_actors::views::BackupInfo;
use utalk_actors::Registry;
use utalk_schedules::Scheduler;
use utalk_storage::model::{JobOutcome, Role};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/backups", web::get().to(list)).route("/admin/backups", web::post().to(create));
}

/// Lists the backups, oldest first (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/backups", tag = "operations", params(super::PageQuery),
    responses((status = 200, body = super::Page<BackupInfo>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(config: web::Data<Config>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let limit = super::page_size(q.limit)?;
    let items = crate::services::operations::backups(config.backup_dir()).await?;
    // Zero-padded, so the ids order as text as they do as numbers.
    let keyed = super::viewed::<_, BackupInfo>(items).into_iter().map(|b| (format!("{:010}", b.id), b)).collect();
    Ok(HttpResponse::Ok().json(super::page_of(keyed, true, limit, q.cursor.as_deref())?))
}

/// Takes and verifies a backup now, while the server serves (admins): runs the `backup` job.
#[utoipa::path(post, path = "/api/v1/admin/backups", tag = "operations",
    responses((status = 201, body = BackupInfo), (status = 401), (status = 403), (status = 409, description = "backup_running"),
        (status = 503, description = "backup_failed")),
    security(("bearer" = [])))]
pub async fn create(
    registry: web::Data<Registry>,
    config: web::Data<Config>,
    scheduler: web::Data<Scheduler>,
    who: Principal,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(&[Role::Admin])?;
    let run = super::jobs::run_job(&registry, &scheduler, user, "backup").await?;
    match run.outcome {
        JobOutcome::Ok => {}
        JobOutcome::Skipped => return Err(ApiError::conflict("backup_running", "a backup is running now; try again when it ends")),
        JobOutcome::Failed => {
            return Err(ApiError::unavailable("backup_failed", format!("the backup failed: {}", run.error.unwrap_or_default())));
        }
    }
    let latest = crate::services::operations::backups(config.backup_dir()).await?.pop();
    let b = latest.ok_or_else(|| ApiError::internal("a backup ran but none is listed"))?;
    Ok(HttpResponse::Created().json(BackupInfo::from(b)))
}
