//! Scheduled jobs for operators: their schedules and last runs, and running one now.

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::services::operations::{self as service, RunJobError};
use actix_web::{web, HttpResponse};
use utalk_actors::views;
use utalk_actors::Registry;
use utalk_schedules::JobView;
use utalk_schedules::Scheduler;
use utalk_storage::model::{JobOutcome, JobRun, Role};
use utalk_storage::Db;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/jobs", web::get().to(list))
        .route("/admin/jobs/{name}/runs", web::get().to(runs))
        .route("/admin/jobs/{name}/run", web::post().to(run));
}

/// Every job with its schedule, whether it runs now, its last run and its next time (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "operations",
    responses((status = 200, body = super::Page<JobView>), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(scheduler: web::Data<Scheduler>, who: Principal) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    Ok(HttpResponse::Ok().json(super::Page { items: scheduler.jobs(), next_cursor: None }))
}

/// A job's recent runs, newest first (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/jobs/{name}/runs", tag = "operations", params(("name" = String, Path)),
    responses((status = 200, body = super::Page<views::JobRun>), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn runs(
    db: web::Data<Db>,
    scheduler: web::Data<Scheduler>,
    who: Principal,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let items = service::job_runs(&db, &scheduler, &name, 100)?;
    Ok(HttpResponse::Ok().json(super::Page { items: super::viewed::<_, views::JobRun>(items), next_cursor: None }))
}

/// Runs a job now and answers with its run once it is over (admins).
pub async fn run_job(registry: &Registry, scheduler: &Scheduler, user: uuid::Uuid, name: &str) -> Result<JobRun, ApiError> {
    service::run_job(registry.journal(), scheduler, user, name).await.map_err(|e| match e {
        RunJobError::Unknown => ApiError::not_found("job"),
        RunJobError::Run(r) => ApiError::internal(r),
        RunJobError::Audit(a) => a.into(),
    })
}

/// Runs a job now: 200 with the run (`ok` or `failed`), 409 `job_running` when a run is going on.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{name}/run", tag = "operations", params(("name" = String, Path)),
    responses((status = 200, body = views::JobRun), (status = 401), (status = 403), (status = 404), (status = 409, description = "job_running")),
    security(("bearer" = [])))]
pub async fn run(
    registry: web::Data<Registry>,
    scheduler: web::Data<Scheduler>,
    who: Principal,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (user, _) = who.require(&[Role::Admin])?;
    let run = run_job(&registry, &scheduler, user, &name).await?;
    if run.outcome == JobOutcome::Skipped {
        return Err(ApiError::conflict("job_running", format!("job {} is running now; see GET /api/v1/admin/jobs", run.name)));
    }
    Ok(HttpResponse::Ok().json(views::JobRun::from(run)))
}
