//! Business hours over REST: the configured week and whether the business
//! is open now, for any authenticated caller (a widget may show it too).

use crate::config::Config;
use crate::http::auth::Principal;
use crate::services::business_hours as service;
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utalk_storage::{BusinessHours, Timestamp};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/business-hours", web::get().to(get));
}

/// Opening intervals of each weekday (`HH:MM-HH:MM` in the zone); an empty list is closed all day.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Week {
    /// Mondays.
    pub monday: Vec<String>,
    /// Tuesdays.
    pub tuesday: Vec<String>,
    /// Wednesdays.
    pub wednesday: Vec<String>,
    /// Thursdays.
    pub thursday: Vec<String>,
    /// Fridays.
    pub friday: Vec<String>,
    /// Saturdays.
    pub saturday: Vec<String>,
    /// Sundays.
    pub sunday: Vec<String>,
}

/// The business hours and whether the business is open now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessHoursView {
    /// Whether business hours are configured; without them the business is always open.
    pub enabled: bool,
    /// The IANA time zone of the hours and holidays.
    #[schema(example = "Europe/Madrid")]
    pub timezone: Option<String>,
    /// Each weekday's opening intervals.
    pub week: Week,
    /// Dates closed all day (`YYYY-MM-DD` in the zone).
    pub holidays: Vec<String>,
    /// The server's time of this answer.
    #[schema(value_type = String, format = DateTime)]
    pub now: Timestamp,
    /// Whether the business is open now.
    pub open: bool,
    /// When it next opens (when open: after this opening ends); null when always open or no opening is in sight.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_opening: Option<Timestamp>,
    /// When the current opening ends; null when closed or always open.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub closes_at: Option<Timestamp>,
}

/// The business hours and whether the business is open now (any authenticated caller, widget tokens included).
#[utoipa::path(get, path = "/api/v1/business-hours", tag = "bot",
    responses((status = 200, body = BusinessHoursView), (status = 401)), security(("bearer" = [])))]
pub async fn get(config: web::Data<Config>, hours: web::Data<BusinessHours>, _who: Principal) -> HttpResponse {
    let now = service::at(&hours, Timestamp::now());
    let c = &config.business_hours;
    let enabled = hours.is_configured();
    let days = |d: &Vec<String>| if enabled { d.clone() } else { Vec::new() };
    HttpResponse::Ok().json(BusinessHoursView {
        enabled,
        timezone: hours.zone_name().map(str::to_owned),
        week: Week {
            monday: days(&c.monday),
            tuesday: days(&c.tuesday),
            wednesday: days(&c.wednesday),
            thursday: days(&c.thursday),
            friday: days(&c.friday),
            saturday: days(&c.saturday),
            sunday: days(&c.sunday),
        },
        holidays: if enabled { c.holidays.clone() } else { Vec::new() },
        now: now.now,
        open: now.open,
        next_opening: now.next_opening,
        closes_at: now.closes_at,
    })
}
