//! The daily operator report: one self-contained HTML page per UTC day with
//! each KPI beside its target (green when met, red when missed), a 14-day
//! trend chart per KPI and the day's volume by hour, drawn as inline SVG.
//!
//! Pages are kept in the data directory's `reports/` folder as
//! `daily-YYYY-MM-DD.html`; the server lists and serves them at `/reports/`.

use crate::kpi_rollup::bring_up_to_date;
use crate::scheduler::{Figures, JobError, Task};
use futures_util::future::BoxFuture;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;
use utalk_actors::durability::Journal;
use utalk_storage::model::inventory::{self, InventoryReport};
use utalk_storage::model::kpi::{self, Dimension, Granularity, Kpi, KpiRow, KpiSums, Unit, DAY_MS, KPIS};
use utalk_storage::model::Channel;
use utalk_storage::{Db, StoreError, Timestamp};

/// Days shown in each KPI's trend chart, the report's day last.
pub const TREND_DAYS: i64 = 14;

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading the rollups failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Drawing a chart failed.
    #[error("cannot draw a chart: {0}")]
    Chart(String),
    /// Writing the page failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The page.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// `YYYY-MM-DD` of the UTC day starting at `day`.
pub fn date_of(day: i64) -> String {
    Timestamp(day).to_rfc3339()[..10].to_string()
}

/// The start of the UTC day `YYYY-MM-DD`, if it is a date.
pub fn parse_date(s: &str) -> Option<i64> {
    let ts = Timestamp::parse_rfc3339(&format!("{s}T00:00:00Z"))?;
    (s.len() == 10 && date_of(ts.millis()) == s).then_some(ts.millis())
}

/// The file name of the report of `day`.
pub fn file_name(day: i64) -> String {
    format!("daily-{}.html", date_of(day))
}

/// The rollups a day's report shows.
pub struct DayFigures {
    /// Start of the day.
    pub day: i64,
    /// The whole day.
    pub total: KpiRow,
    /// Each hour of the day.
    pub hours: Vec<KpiRow>,
    /// The day and the days before it, oldest first.
    pub trend: Vec<KpiRow>,
    /// The day per channel that had any traffic.
    pub channels: Vec<(Channel, KpiRow)>,
    /// Stock: the day's transactions and refusals, and what is short now.
    pub inventory: InventoryReport,
}

/// Reads what the report of `day` shows from the stored rollups.
pub fn gather(db: &Db, day: i64) -> Result<DayFigures, StoreError> {
    let day = Granularity::Day.bucket_start(Timestamp(day));
    let trend = kpi::rows(db, Granularity::Day, day - (TREND_DAYS - 1) * DAY_MS, TREND_DAYS, Dimension::All)?;
    let total = trend.last().cloned().unwrap_or_else(|| KpiRow::new(day, Granularity::Day, &KpiSums::default()));
    let hours = kpi::rows(db, Granularity::Hour, day, 24, Dimension::All)?;
    let mut channels = Vec::new();
    for c in [Channel::Whatsapp, Channel::Web, Channel::Api] {
        let s = kpi::series(db, Granularity::Day, day, day + 1, Dimension::Channel(c))?.remove(&day);
        if let Some(s) = s {
            channels.push((c, KpiRow::new(day, Granularity::Day, &s)));
        }
    }
    let inventory = inventory::report(db, Timestamp(day), Timestamp(day + DAY_MS))?;
    Ok(DayFigures { day, total, hours, trend, channels, inventory })
}

/// The value of `k` in the unit its chart uses (seconds or minutes, percent, score).
fn display(k: &Kpi, v: f64) -> f64 {
    match k.unit {
        Unit::Millis if k.target >= 60_000.0 => v / 60_000.0,
        Unit::Millis => v / 1000.0,
        Unit::Fraction => v * 100.0,
        Unit::Score => v,
    }
}

fn axis_label(k: &Kpi) -> &'static str {
    match k.unit {
        Unit::Millis if k.target >= 60_000.0 => "min",
        Unit::Millis => "s",
        Unit::Fraction => "%",
        Unit::Score => "score",
    }
}

const GREEN: RGBColor = RGBColor(0x1a, 0x7f, 0x37);
const RED: RGBColor = RGBColor(0xcf, 0x22, 0x2e);
const INK: RGBColor = RGBColor(0x24, 0x29, 0x2f);

fn chart_error(e: impl std::fmt::Display) -> ReportError {
    ReportError::Chart(e.to_string())
}

/// The trend of one KPI over `trend` with its target line, as an SVG element.
fn trend_chart(k: &Kpi, trend: &[KpiRow]) -> Result<String, ReportError> {
    let points: Vec<(i64, Option<f64>)> = trend.iter().enumerate().map(|(i, r)| (i as i64, (k.value)(r).map(|v| display(k, v)))).collect();
    let target = display(k, k.target);
    let (mut lo, mut hi) = points.iter().filter_map(|(_, v)| *v).fold((target, target), |(lo, hi), v| (lo.min(v), hi.max(v)));
    match k.unit {
        Unit::Fraction => (lo, hi) = (0.0, 100.0),
        // NPS runs from −100; the negative half is shown only when a day falls in it.
        Unit::Score => (lo, hi) = (if lo < 0.0 { -100.0 } else { 0.0 }, 100.0),
        Unit::Millis => (lo, hi) = (0.0, hi * 1.2),
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (360, 170)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let n = points.len() as i64;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(40)
            .build_cartesian_2d(-1i64..n, lo..hi)
            .map_err(chart_error)?;
        let labels: Vec<String> = trend.iter().map(|r| date_of(r.bucket_start.millis())[5..].to_string()).collect();
        chart
            .configure_mesh()
            .x_labels(7)
            .y_labels(5)
            .y_desc(axis_label(k))
            .x_label_formatter(&|i| usize::try_from(*i).ok().and_then(|i| labels.get(i).cloned()).unwrap_or_default())
            .light_line_style(WHITE)
            .draw()
            .map_err(chart_error)?;
        chart.draw_series(LineSeries::new([(-1, target), (n, target)], RED.stroke_width(1))).map_err(chart_error)?;
        // Days without data break the line instead of being drawn as zero.
        for run in points.split(|(_, v)| v.is_none()).filter(|r| !r.is_empty()) {
            let line: Vec<(i64, f64)> = run.iter().filter_map(|(x, v)| v.map(|v| (*x, v))).collect();
            chart.draw_series(LineSeries::new(line, INK.stroke_width(2))).map_err(chart_error)?;
        }
        chart
            .draw_series(trend.iter().enumerate().filter_map(|(x, r)| {
                let raw = (k.value)(r)?;
                Some(Circle::new((x as i64, display(k, raw)), 3, if k.meets(raw) { GREEN.filled() } else { RED.filled() }))
            }))
            .map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

/// Conversations and messages per hour of the day, as an SVG element.
fn volume_chart(hours: &[KpiRow]) -> Result<String, ReportError> {
    let max = hours.iter().map(|h| h.messages.max(h.conversations)).max().unwrap_or(0).max(1) as f64 * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (740, 200)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(6)
            .x_label_area_size(22)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..24f64, 0f64..max)
            .map_err(chart_error)?;
        chart
            .configure_mesh()
            .x_labels(12)
            .y_labels(5)
            .x_label_formatter(&|h| format!("{:02}h", *h as i64))
            .light_line_style(WHITE)
            .draw()
            .map_err(chart_error)?;
        let blue = RGBColor(0x09, 0x69, 0xda);
        let grey = RGBColor(0x8c, 0x95, 0x9f);
        chart
            .draw_series(
                hours
                    .iter()
                    .enumerate()
                    .map(|(i, h)| Rectangle::new([(i as f64 + 0.1, 0.0), (i as f64 + 0.5, h.messages as f64)], grey.filled())),
            )
            .map_err(chart_error)?
            .label("messages")
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], grey.filled()));
        chart
            .draw_series(
                hours
                    .iter()
                    .enumerate()
                    .map(|(i, h)| Rectangle::new([(i as f64 + 0.5, 0.0), (i as f64 + 0.9, h.conversations as f64)], blue.filled())),
            )
            .map_err(chart_error)?
            .label("conversations")
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 10, y + 4)], blue.filled()));
        chart.configure_series_labels().background_style(WHITE).border_style(INK).draw().map_err(chart_error)?;
        root.present().map_err(chart_error)?;
    }
    Ok(svg)
}

fn verdict(k: &Kpi, v: Option<f64>) -> (&'static str, &'static str) {
    match v {
        Some(v) if k.meets(v) => ("met", "meets target"),
        Some(_) => ("missed", "misses target"),
        None => ("nodata", "no data"),
    }
}

fn cell(k: &Kpi, v: Option<f64>) -> String {
    let (class, _) = verdict(k, v);
    format!("<td class=\"{class}\">{}</td>", v.map(|v| k.format(v)).unwrap_or_else(|| "—".into()))
}

const STYLE: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;color:#24292f;margin:24px auto;max-width:1180px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}.meta{color:#57606a;margin:0 0 18px}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(370px,1fr));gap:14px}
.kpi{border:1px solid #d0d7de;border-left-width:6px;border-radius:6px;padding:10px 12px}
.kpi h3{font-size:15px;margin:0}.kpi .value{font-size:26px;font-weight:600;margin:2px 0}
.kpi .target{color:#57606a;margin:0 0 6px}.kpi svg{width:100%;height:auto}
.kpi.met{border-left-color:#1a7f37}.kpi.met .value,td.met{color:#1a7f37}
.kpi.missed{border-left-color:#cf222e}.kpi.missed .value,td.missed{color:#cf222e}
.kpi.nodata{border-left-color:#8c959f}.kpi.nodata .value,td.nodata{color:#8c959f}
.badge{font-size:12px;font-weight:600;border-radius:10px;padding:1px 8px;color:#fff;margin-left:6px;vertical-align:middle}
.met .badge{background:#1a7f37}.missed .badge{background:#cf222e}.nodata .badge{background:#8c959f}
table{border-collapse:collapse}th,td{border-bottom:1px solid #d0d7de;padding:4px 10px;text-align:right}th:first-child,td:first-child{text-align:left}
";

/// Renders the report page of `figures`, generated at `now`.
pub fn render(figures: &DayFigures, now: Timestamp) -> Result<String, ReportError> {
    let date = date_of(figures.day);
    let t = &figures.total;
    let met = KPIS.iter().filter(|k| (k.value)(t).is_some_and(|v| k.meets(v))).count();
    let measured = KPIS.iter().filter(|k| (k.value)(t).is_some()).count();
    let mut h = String::with_capacity(256 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>utalk daily report {date}</title><style>{STYLE}</style></head><body>\
         <h1>Daily report — {date} (UTC)</h1>\
         <p class=\"meta\">{met} of {measured} measured KPIs meet their targets · {} conversations · {} messages · generated {}</p>\
         <section class=\"kpis\" id=\"kpis\">",
        t.conversations,
        t.messages,
        now.to_rfc3339()
    );
    for k in &KPIS {
        let v = (k.value)(t);
        let (class, word) = verdict(k, v);
        let _ = write!(
            h,
            "<article class=\"kpi {class}\" data-kpi=\"{}\" data-status=\"{class}\"><h3>{}<span class=\"badge\">{word}</span></h3>\
             <p class=\"value\">{}</p><p class=\"target\">target {} · last {TREND_DAYS} days</p>{}</article>",
            k.field,
            k.title,
            v.map(|v| k.format(v)).unwrap_or_else(|| "no data".into()),
            k.target_text().replace('<', "&lt;").replace('>', "&gt;"),
            trend_chart(k, &figures.trend)?
        );
    }
    h.push_str("</section><h2>By channel</h2><table id=\"channels\"><tr><th>Channel</th><th>Conversations</th><th>Messages</th>");
    for k in &KPIS {
        let _ = write!(h, "<th>{}</th>", k.title);
    }
    h.push_str("</tr>");
    if figures.channels.is_empty() {
        let _ = write!(h, "<tr><td colspan=\"{}\">No traffic this day.</td></tr>", KPIS.len() + 3);
    }
    for (c, r) in &figures.channels {
        let name = serde_json::to_value(c).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        let _ = write!(h, "<tr><td>{name}</td><td>{}</td><td>{}</td>", r.conversations, r.messages);
        for k in &KPIS {
            h.push_str(&cell(k, (k.value)(r)));
        }
        h.push_str("</tr>");
    }
    let _ = write!(h, "</table><h2>Volume by hour</h2><div id=\"volume\">{}</div>", volume_chart(&figures.hours)?);
    render_inventory(&mut h, &figures.inventory);
    h.push_str("</body></html>");
    Ok(h)
}

/// Text from the database (store and product names) as HTML text.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn render_inventory(h: &mut String, inv: &InventoryReport) {
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for hour in &inv.transactions_per_hour {
        for (t, n) in &hour.by_type {
            *by_type.entry(t.as_str()).or_default() += n;
        }
    }
    let applied: u64 = inv.transactions_per_hour.iter().map(|x| x.total).sum();
    let refused: u64 = inv.transactions_per_hour.iter().map(|x| x.refused).sum();
    let kinds = by_type.iter().map(|(t, n)| format!("{n} {t}")).collect::<Vec<_>>().join(", ");
    let _ = write!(
        h,
        "<section id=\"inventory\"><h2>Inventory</h2><p class=\"meta\">{applied} transactions applied{}, {refused} refused this day</p>",
        if kinds.is_empty() { String::new() } else { format!(" ({kinds})") }
    );
    for (title, rows, class) in [("Below zero now", &inv.negative_stock, "missed"), ("Low on stock now", &inv.low_stock, "nodata")] {
        let _ = write!(h, "<h3>{title}</h3>");
        if rows.is_empty() {
            h.push_str("<p>None.</p>");
            continue;
        }
        h.push_str("<table><tr><th>Store</th><th>SKU</th><th>Product</th><th>Stock</th><th>Threshold</th></tr>");
        for p in rows {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td></tr>",
                escape(&p.store_name),
                escape(&p.sku),
                escape(&p.name),
                p.stock,
                p.low_stock_threshold
            );
        }
        h.push_str("</table>");
    }
    h.push_str("<h3>Refused transactions by store</h3>");
    if inv.errors_per_store.is_empty() {
        h.push_str("<p>None.</p>");
    } else {
        h.push_str("<table><tr><th>Store</th><th>Refused</th><th>Why</th></tr>");
        for e in &inv.errors_per_store {
            let why = e.by_code.iter().map(|(c, n)| format!("{n} {c}")).collect::<Vec<_>>().join(", ");
            let name = if e.store_name.is_empty() { e.store_id.to_string() } else { escape(&e.store_name) };
            let _ = write!(h, "<tr><td>{name}</td><td>{}</td><td>{}</td></tr>", e.errors, escape(&why));
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");
}

/// Writes `html` as the report of `day` in `dir` (whole or not at all); returns its path.
pub fn write(dir: &Path, day: i64, html: &str) -> Result<PathBuf, ReportError> {
    let path = dir.join(file_name(day));
    let io = |source| ReportError::Write { path: path.clone(), source };
    std::fs::create_dir_all(dir).map_err(io)?;
    // Unique per writer: the job, the API and the CLI may write the same day at once.
    let tmp = dir.join(format!(".{}.{}.{}.tmp", file_name(day), std::process::id(), uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, html).map_err(io)?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(path)
}

/// Renders and writes the report of `day` from the stored rollups.
pub fn make(db: &Db, dir: &Path, day: i64) -> Result<(PathBuf, DayFigures), ReportError> {
    let figures = gather(db, day)?;
    let html = render(&figures, Timestamp::now())?;
    Ok((write(dir, figures.day, &html)?, figures))
}

/// A report page on disk.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportFile {
    /// The day, `YYYY-MM-DD`.
    pub date: String,
    /// File name in the reports folder.
    pub file: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// The reports in `dir`, newest day first.
pub fn list(dir: &Path) -> std::io::Result<Vec<ReportFile>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(date) = name.strip_prefix("daily-").and_then(|n| n.strip_suffix(".html")) else { continue };
        if parse_date(date).is_some() {
            out.push(ReportFile { date: date.to_string(), bytes: e.metadata()?.len(), file: name });
        }
    }
    out.sort_by(|a, b| b.date.cmp(&a.date));
    Ok(out)
}

/// How long a node that does not lead the cluster waits for the leader's
/// rollup before it rolls up itself: longer than the default 5-minute rollup schedule.
pub const LEADER_ROLLUP_PATIENCE: Duration = Duration::from_secs(6 * 60);

/// The daily report job: brings the KPI rollups up to date, then writes yesterday's report (UTC).
pub struct DailyReportTask {
    /// The store.
    pub db: Db,
    /// Where the rollup's writes go.
    pub journal: Journal,
    /// The reports folder.
    pub dir: PathBuf,
    /// The open time the agent speed of answer counts.
    pub hours: std::sync::Arc<utalk_storage::BusinessHours>,
}

impl Task for DailyReportTask {
    fn run(&self) -> BoxFuture<'static, Figures> {
        let (db, journal, dir, hours) = (self.db.clone(), self.journal.clone(), self.dir.clone(), self.hours.clone());
        Box::pin(async move {
            bring_up_to_date(&db, &journal, &hours, LEADER_ROLLUP_PATIENCE).await.map_err(JobError::step)?;
            let yesterday = Granularity::Day.bucket_start(Timestamp::now()) - DAY_MS;
            let (path, figures) =
                tokio::task::spawn_blocking(move || make(&db, &dir, yesterday)).await.map_err(JobError::step)?.map_err(JobError::step)?;
            let t = &figures.total;
            let mut f = BTreeMap::new();
            f.insert("kpisMet".into(), KPIS.iter().filter(|k| (k.value)(t).is_some_and(|v| k.meets(v))).count() as f64);
            f.insert("kpisMissed".into(), KPIS.iter().filter(|k| (k.value)(t).is_some_and(|v| !k.meets(v))).count() as f64);
            f.insert("conversations".into(), t.conversations as f64);
            tracing::info!(report = %path.display(), "daily report written");
            Ok(f)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use utalk_storage::model::kpi::HOUR_MS;

    #[test]
    fn dates_round_trip_and_bad_ones_are_refused() {
        let day = parse_date("2026-11-02").expect("date");
        assert_eq!(day, 1_793_577_600_000);
        assert_eq!(date_of(day + HOUR_MS), "2026-11-02");
        assert_eq!(file_name(day), "daily-2026-11-02.html");
        for bad in ["2026-13-01", "2026-02-30", "2026-1-1", "yesterday", "", "2026-11-02T00:00:00Z"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_day_without_data_renders_every_kpi_as_no_data() {
        let empty = KpiRow::new(0, Granularity::Day, &KpiSums::default());
        let figures = DayFigures {
            day: 0,
            total: empty.clone(),
            hours: (0..24).map(|h| KpiRow::new(h * HOUR_MS, Granularity::Hour, &KpiSums::default())).collect(),
            trend: vec![empty; TREND_DAYS as usize],
            channels: Vec::new(),
            inventory: InventoryReport {
                transactions_per_hour: Vec::new(),
                low_stock: vec![inventory::ShortProduct {
                    store_id: uuid::Uuid::nil(),
                    store_name: "<Norte & Sur>".into(),
                    sku: "A-1".into(),
                    name: "Café".into(),
                    stock: 1,
                    low_stock_threshold: 5,
                }],
                negative_stock: Vec::new(),
                errors_per_store: Vec::new(),
            },
        };
        let html = render(&figures, Timestamp(0)).expect("render");
        assert_eq!(html.matches("data-status=\"nodata\"").count(), 9);
        assert_eq!(html.matches("<svg").count(), 10, "nine trends and the volume chart");
        assert!(html.contains("No traffic this day."));
        assert!(html.contains("<td>&lt;Norte &amp; Sur&gt;</td>"), "names from the database are escaped");
        assert!(html.contains("0 transactions applied, 0 refused this day"));
    }
}
