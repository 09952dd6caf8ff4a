//! Reports: KPI series over a checked range of buckets (the API and
//! `utalk report kpis`), the inventory report, and the daily report pages.

use super::{blocking, ServiceError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use utalk_actors::Journal;
use utalk_storage::model::inventory::{self, InventoryReport};
use utalk_storage::model::kpi::{self, Dimension, Granularity, KpiRow};
use utalk_storage::model::Channel;
use utalk_storage::{BusinessHours, Db, StoreError, Timestamp};
use uuid::Uuid;

/// At most this many buckets per query.
pub const MAX_BUCKETS: i64 = 2_000;

/// Why a KPI query was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    /// A parameter could not be read.
    #[error("{0}")]
    Invalid(String),
    /// Too many buckets.
    #[error("{0} buckets asked; at most {MAX_BUCKETS} per query (narrow the range or use granularity day)")]
    TooLarge(i64),
}

/// A checked KPI query: `count` buckets of `granularity` from `start`, for `dim`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiRange {
    /// Bucket size.
    pub granularity: Granularity,
    /// Start of the first bucket.
    pub start: i64,
    /// Buckets.
    pub count: i64,
    /// Overall, a channel or an agent.
    pub dim: Dimension,
}

fn time(name: &str, v: Option<&str>) -> Result<Option<i64>, RangeError> {
    v.map(|s| {
        Timestamp::parse_rfc3339(s)
            .map(|t| t.millis())
            .ok_or_else(|| RangeError::Invalid(format!("{name} must be an RFC 3339 time, got {s:?}")))
    })
    .transpose()
}

impl KpiRange {
    /// Checks a query; `to` defaults to `now`, `from` to a day (hours) or 30 days (days) before `to`.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        channel: Option<&str>,
        agent: Option<Uuid>,
        now: Timestamp,
    ) -> Result<KpiRange, RangeError> {
        let g = match granularity {
            None => Granularity::Hour,
            Some(s) => Granularity::parse(s).ok_or_else(|| RangeError::Invalid(format!("granularity must be hour or day, got {s:?}")))?,
        };
        let to = time("to", to)?.unwrap_or(now.millis());
        let span = match g {
            Granularity::Hour => kpi::DAY_MS,
            Granularity::Day => 30 * kpi::DAY_MS,
        };
        let from = time("from", from)?.unwrap_or(to - span);
        if from >= to {
            return Err(RangeError::Invalid("from must be before to".into()));
        }
        let start = g.bucket_start(Timestamp(from));
        let count = (to - start + g.millis() - 1) / g.millis();
        if count > MAX_BUCKETS {
            return Err(RangeError::TooLarge(count));
        }
        let dim = match (channel, agent) {
            (Some(_), Some(_)) => return Err(RangeError::Invalid("give a channel or an agent, not both".into())),
            (Some(c), None) => Dimension::Channel(
                serde_json::from_value::<Channel>(serde_json::Value::String(c.into()))
                    .map_err(|_| RangeError::Invalid(format!("channel must be web, whatsapp or api, got {c:?}")))?,
            ),
            (None, Some(a)) => Dimension::Agent(a),
            (None, None) => Dimension::All,
        };
        Ok(KpiRange { granularity: g, start, count, dim })
    }

    /// The buckets, from the stored rollups.
    pub fn rows(&self, db: &Db) -> Result<Vec<KpiRow>, StoreError> {
        kpi::rows(db, self.granularity, self.start, self.count, self.dim)
    }
}

/// The KPI buckets of `range` and when the last rollup finished (`None`
/// before the first): the figures are as of then.
pub async fn kpis(db: &Db, range: KpiRange) -> Result<(Vec<KpiRow>, Option<Timestamp>), ServiceError> {
    let db = db.clone();
    blocking(move || Ok((range.rows(&db)?, kpi::rolled_up_at(&db)?))).await
}

/// Transactions per hour over the hours of `range`, products low or below
/// zero now, and refused transactions per store.
pub async fn inventory(db: &Db, range: KpiRange) -> Result<InventoryReport, ServiceError> {
    let (from, to) = (Timestamp(range.start), Timestamp(range.start + range.count * range.granularity.millis()));
    let db = db.clone();
    blocking(move || Ok(inventory::report(&db, from, to)?)).await
}

/// Why the daily report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DailyError {
    /// The KPIs could not be rolled up first.
    #[error("the KPIs could not be rolled up: {0}")]
    Rollup(String),
    /// Writing the page failed.
    #[error("the report could not be written: {0}")]
    Write(String),
}

/// Rolls the KPIs up (waiting for a rollup already running, then taking
/// what it left) and writes the report page of `day` into `dir`: its path.
pub async fn daily(db: &Db, journal: &Journal, hours: &Arc<BusinessHours>, dir: &Path, day: i64) -> Result<PathBuf, DailyError> {
    utalk_schedules::kpi_rollup::roll_up(db, journal, hours).await.map_err(|e| DailyError::Rollup(e.to_string()))?;
    let (db, dir) = (db.clone(), dir.to_path_buf());
    let made = tokio::task::spawn_blocking(move || utalk_schedules::daily_report::make(&db, &dir, day))
        .await
        .map_err(|e| DailyError::Write(e.to_string()))?;
    made.map(|(path, _)| path).map_err(|e| DailyError::Write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-02T10:30:00Z").unwrap_or_default()
    }

    #[test]
    fn ranges_are_rounded_bounded_and_checked() {
        let r = KpiRange::parse(None, None, None, None, None, now()).expect("defaults");
        assert_eq!((r.granularity, r.count, r.dim), (Granularity::Hour, 25, Dimension::All), "24 h back from 10:30 touches 25 hours");
        assert_eq!(Timestamp(r.start).to_rfc3339(), "2026-11-01T10:00:00.000Z");
        let d = KpiRange::parse(Some("2026-10-01T00:00:00Z"), Some("2026-11-01T00:00:00Z"), Some("day"), Some("whatsapp"), None, now())
            .expect("days");
        assert_eq!((d.count, d.dim), (31, Dimension::Channel(Channel::Whatsapp)));
        let bad = |from, to, g, c, a| KpiRange::parse(from, to, g, c, a, now()).unwrap_err();
        assert!(matches!(bad(Some("yesterday"), None, None, None, None), RangeError::Invalid(m) if m.contains("from")));
        assert!(matches!(bad(None, None, Some("week"), None, None), RangeError::Invalid(m) if m.contains("granularity")));
        assert!(matches!(bad(Some("2026-11-02T00:00:00Z"), Some("2026-11-01T00:00:00Z"), None, None, None), RangeError::Invalid(_)));
        assert!(matches!(bad(None, None, None, Some("fax"), None), RangeError::Invalid(m) if m.contains("channel")));
        assert!(matches!(bad(None, None, None, Some("web"), Some(Uuid::nil())), RangeError::Invalid(_)));
        assert!(matches!(bad(Some("2000-01-01T00:00:00Z"), None, None, None, None), RangeError::TooLarge(n) if n > MAX_BUCKETS));
    }
}
