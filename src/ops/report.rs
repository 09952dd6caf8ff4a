//! The table and CSV of `utalk report kpis` (the range of buckets asked for
//! is checked in `services::reports`).

use std::fmt::Write as _;
use utalk_storage::model::kpi::{Granularity, KpiRow, KPIS};

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
    use utalk_storage::model::kpi;
    use utalk_storage::model::KpiSums;
    use utalk_storage::Timestamp;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-02T10:30:00Z").unwrap_or_default()
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
