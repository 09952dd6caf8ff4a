//! Scheduled jobs for operators: their schedules and last runs, and running one now.

use crate::http::auth::Principal;
use crate::http::error::ApiError;
use crate::services::backfill::SearchBackfill;
use crate::services::operations::{self as service, RunJobError};
use crate::state::Search;
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
        .route("/admin/jobs/{name}/run", web::post().to(run))
        .route("/admin/migrations", web::get().to(migrations));
}

/// The data's schema version, who can read it, and the progress of every
/// background data migration (admins and operators). The `data_migrations`
/// job runs those of scope `cluster`; `POST /api/v1/admin/jobs/data_migrations/run`
/// runs it now. The search index backfill (scope `node`) is this node's.
#[utoipa::path(get, path = "/api/v1/admin/migrations", tag = "operations",
    responses((status = 200, body = crate::services::backfill::MigrationsView), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn migrations(db: web::Data<Db>, search: web::Data<Search>, who: Principal) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let search = search.index().map_or(SearchBackfill::Off, SearchBackfill::Live);
    let view = crate::services::backfill::status(&db, search).map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(view))
}

/// Every job with its schedule, whether it runs now, its last run and its next time, by name (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "operations", params(super::PageQuery),
    responses((status = 200, body = super::Page<JobView>), (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn list(scheduler: web::Data<Scheduler>, who: Principal, q: web::Query<super::PageQuery>) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let mut jobs: Vec<(String, JobView)> = scheduler.jobs().into_iter().map(|j| (j.name.clone(), j)).collect();
    jobs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(HttpResponse::Ok().json(super::page_of(jobs, true, super::page_size(q.limit)?, q.cursor.as_deref())?))
}

/// A job's recent runs, newest first (admins and operators).
#[utoipa::path(get, path = "/api/v1/admin/jobs/{name}/runs", tag = "operations", params(("name" = String, Path)),
    params(super::PageQuery), responses((status = 200, body = super::Page<views::JobRun>), (status = 400), (status = 401), (status = 403), (status = 404)), security(("bearer" = [])))]
pub async fn runs(
    db: web::Data<Db>,
    scheduler: web::Data<Scheduler>,
    who: Principal,
    name: web::Path<String>,
    q: web::Query<super::PageQuery>,
) -> Result<HttpResponse, ApiError> {
    who.require(&[Role::Admin, Role::Operator])?;
    let limit = super::page_size(q.limit)?;
    let before = q.cursor.as_deref().filter(|c| !c.is_empty()).map(super::parse_time_cursor).transpose()?;
    let items = service::job_runs(&db, &scheduler, &name, before, limit)?;
    let next = (items.len() == limit).then(|| items.last().map(|r| super::time_cursor(r.started_at, r.id))).flatten();
    Ok(HttpResponse::Ok().json(super::Page { items: super::viewed::<_, views::JobRun>(items), next_cursor: next }))
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
