//! KPI report queries shared by `GET /api/v1/reports/kpis` and `utalk report kpis`:
//! the range of buckets asked for, checked, and the CLI's table and CSV.

use std::fmt::Write as _;
use utalk_storage::model::kpi::{self, Dimension, Granularity, KpiRow, KPIS};
use utalk_storage::model::Channel;
use utalk_storage::{Db, StoreError, Timestamp};
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

/// Output formats of `utalk report kpis`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// Comma-separated, raw values, one header line.
    Csv,
    /// `{"items": [...]}` as the API answers.
    Json,
}

fn bucket_label(r: &KpiRow) -> String {
    let s = r.bucket_start.to_rfc3339();
    match r.granularity {
        Granularity::Hour => format!("{} {}", &s[..10], &s[11..16]),
        Granularity::Day => s[..10].to_string(),
    }
}

/// `rows` in `format`.
pub fn render(rows: &[KpiRow], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Json => {
            out = serde_json::json!({ "items": rows }).to_string();
            out.push('\n');
        }
        Format::Csv => {
            out.push_str("bucketStart,granularity,conversations,messages");
            for k in &KPIS {
                let _ = write!(out, ",{}", k.field);
            }
            out.push('\n');
            for r in rows {
                let _ = write!(out, "{},{},{},{}", r.bucket_start.to_rfc3339(), r.granularity.as_str(), r.conversations, r.messages);
                for k in &KPIS {
                    out.push(',');
                    if let Some(v) = (k.value)(r) {
                        let _ = write!(out, "{v}");
                    }
                }
                out.push('\n');
            }
        }
        Format::Table => {
            let mut header = vec!["bucket".to_string(), "convs".into(), "msgs".into()];
            header.extend(KPIS.iter().map(|k| k.field.to_string()));
            let mut lines = vec![header];
            for r in rows {
                let mut line = vec![bucket_label(r), r.conversations.to_string(), r.messages.to_string()];
                line.extend(KPIS.iter().map(|k| (k.value)(r).map(|v| k.format(v)).unwrap_or_else(|| "-".into())));
                lines.push(line);
            }
            let mut target = vec!["target".to_string(), String::new(), String::new()];
            target.extend(KPIS.iter().map(|k| k.target_text()));
            lines.push(target);
            let widths: Vec<usize> = (0..lines[0].len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
            for l in &lines {
                let cells: Vec<String> = l
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (c, w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::KpiSums;

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

    #[test]
    fn formats_show_null_as_empty_and_every_kpi() {
        let s = KpiSums { conversations: 4, resolved_first_contact: 3, messages: 10, ..KpiSums::default() };
        let rows = [KpiRow::new(now().millis() - now().millis() % kpi::HOUR_MS, Granularity::Hour, &s)];
        let csv = render(&rows, Format::Csv);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0].split(',').count(), 13);
        assert_eq!(lines[1], "2026-11-02T10:00:00.000Z,hour,4,10,,0.75,,0,,,0,,");
        let table = render(&rows, Format::Table);
        assert!(table.contains("2026-11-02 10:00") && table.contains("75.0%") && table.contains("> 70.0%"), "{table}");
        let json: serde_json::Value = serde_json::from_str(&render(&rows, Format::Json)).expect("json");
        assert_eq!(json["items"][0]["firstContactResolution"], 0.75);
        assert_eq!(json["items"][0]["csat"], serde_json::Value::Null);
    }
}
