//! The dashboards of ops/grafana/ and the alert rules of ops/prometheus/ read
//! only series utalk really exports: the metric names are collected from the
//! `metrics` macros in the sources (not from the documentation), each PromQL
//! expression is taken apart by a small lexer, and every metric it reads must
//! be one of them. Dashboards also refresh every 10 s, and every panel that
//! shows data has a query.

use crate::layout::rust_files;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn root() -> PathBuf {
    crate::helpers::repo_root()
}

/// The crates whose code records metrics.
const SOURCE_DIRS: [&str; 4] = ["src", "actors/src", "storage/src", "schedules/src"];

/// Series Prometheus makes itself: scrape health and the alerts' state.
const PROMETHEUS_SERIES: [&str; 3] = ["up", "ALERTS", "ALERTS_FOR_STATE"];

/// What a dashboard refreshes at.
const REFRESH: &str = "10s";

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The source without its unit tests and without comment lines.
fn code_of(source: &str) -> String {
    let source = source.find("#[cfg(test)]\nmod tests").map_or(source, |i| &source[..i]);
    source.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The string literals of `line` that look like metric names.
fn metric_literals(line: &str) -> Vec<String> {
    line.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| s.contains('_') && s.starts_with(|c: char| c.is_ascii_lowercase()) && s.chars().all(is_word_char))
        .map(String::from)
        .collect()
}

/// A metric recorded through the `metrics` macros.
#[derive(Debug, PartialEq)]
struct Recorded {
    kind: &'static str,
    name: String,
}

/// The metrics one source file records: `counter!("name"`, `gauge!("name"`,
/// `histogram!("name"` (with or without `metrics::`). A name held in a
/// variable is read from the string literals of the nearest line above that
/// mentions the variable (`for (level, name) in [(…, "a_b"), (…, "c_d")]`).
fn recorded_in(file: &str, code: &str) -> Vec<Recorded> {
    let mut out = Vec::new();
    for kind in ["counter", "gauge", "histogram"] {
        let call = format!("{kind}!(");
        for (at, _) in code.match_indices(&call) {
            if code[..at].chars().next_back().is_some_and(is_word_char) {
                continue; // describe_counter!, absolute_counter! and the like
            }
            let args = code[at + call.len()..].trim_start();
            if let Some(literal) = args.strip_prefix('"') {
                let name = &literal[..literal.find('"').expect("a closed string")];
                out.push(Recorded { kind, name: name.to_string() });
                continue;
            }
            let var: String = args.chars().take_while(|c| is_word_char(*c)).collect();
            assert!(!var.is_empty(), "{file}: {kind}! without a name: {}", &args[..args.len().min(60)]);
            let above = code[..at].lines().rev().take(20).find(|l| {
                l.match_indices(var.as_str()).any(|(i, _)| {
                    !l[..i].chars().next_back().is_some_and(is_word_char)
                        && !l[i + var.len()..].chars().next().is_some_and(is_word_char)
                        && !metric_literals(l).is_empty()
                })
            });
            let names = above.map(metric_literals).unwrap_or_default();
            assert!(!names.is_empty(), "{file}: cannot tell which metric names `{var}` holds in {kind}!({var}, …)");
            out.extend(names.into_iter().map(|name| Recorded { kind, name }));
        }
    }
    out
}

/// Which histograms the exporter renders with buckets: those the recorder's
/// `set_buckets_for_metric(Matcher::…("…"))` calls match, or all of them
/// after `set_buckets(`. The others are rendered as summaries (`quantile`
/// label), without `_bucket` series.
#[derive(Debug, Default)]
struct Buckets {
    all: bool,
    full: Vec<String>,
    prefix: Vec<String>,
    suffix: Vec<String>,
}

impl Buckets {
    fn read(&mut self, code: &str) {
        self.all |= code.contains(".set_buckets(");
        for (matcher, list) in [("Full", &mut self.full), ("Prefix", &mut self.prefix), ("Suffix", &mut self.suffix)] {
            let open = format!("Matcher::{matcher}(\"");
            for (at, _) in code.match_indices(&open) {
                let rest = &code[at + open.len()..];
                list.push(rest[..rest.find('"').expect("a closed string")].to_string());
            }
        }
    }

    fn bucketed(&self, name: &str) -> bool {
        self.all
            || self.full.iter().any(|f| f == name)
            || self.prefix.iter().any(|p| name.starts_with(p.as_str()))
            || self.suffix.iter().any(|s| name.ends_with(s.as_str()))
    }
}

/// Every series name `/metrics` can carry, plus those Prometheus adds.
fn exported() -> BTreeSet<String> {
    let mut files = Vec::new();
    for dir in SOURCE_DIRS {
        rust_files(&root().join(dir), &mut files);
    }
    let (mut recorded, mut buckets) = (Vec::new(), Buckets::default());
    for file in &files {
        let code = code_of(&std::fs::read_to_string(file).expect("read a source file"));
        buckets.read(&code);
        recorded.extend(recorded_in(&file.display().to_string(), &code));
    }
    let mut out: BTreeSet<String> = PROMETHEUS_SERIES.iter().map(|s| s.to_string()).collect();
    for Recorded { kind, name } in recorded {
        if kind == "histogram" {
            let series: &[&str] = if buckets.bucketed(&name) { &["_bucket", "_sum", "_count"] } else { &["", "_sum", "_count"] };
            out.extend(series.iter().map(|s| format!("{name}{s}")));
        } else {
            out.insert(name);
        }
    }
    out
}

/// Words of PromQL that are never metric names (keywords, operators and
/// aggregations are case-insensitive).
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "atan2",
    "offset",
    "inf",
    "nan",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "limitk",
    "limit_ratio",
];

/// PromQL's functions (a word followed by `(`).
const FUNCTIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "cos",
    "cosh",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "deg",
    "delta",
    "deriv",
    "double_exponential_smoothing",
    "end",
    "exp",
    "floor",
    "histogram_avg",
    "histogram_count",
    "histogram_fraction",
    "histogram_quantile",
    "histogram_stddev",
    "histogram_stdvar",
    "histogram_sum",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "pi",
    "predict_linear",
    "present_over_time",
    "quantile_over_time",
    "rad",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sin",
    "sinh",
    "sort",
    "sort_by_label",
    "sort_by_label_desc",
    "sort_desc",
    "sqrt",
    "start",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "tan",
    "tanh",
    "time",
    "timestamp",
    "vector",
    "year",
];

/// Words after which a parenthesised list holds label names.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    /// A string literal outside label matchers.
    Str,
    /// A number or a duration (`0.95`, `1e3`, `5m`, `1h30m`).
    Number,
    /// A label matcher block `{…}`, with the value of `__name__="…"` if any.
    Matchers(Option<String>),
    /// A range or subquery `[…]`.
    Range,
    /// A Grafana variable (`$__rate_interval`, `${instance}`).
    Variable,
    Punct(char),
}

/// Reads a quoted string starting at `chars[i]` (the quote); returns its
/// contents and the index after it.
fn read_string(chars: &[char], i: usize) -> Result<(String, usize), String> {
    let quote = chars[i];
    let mut j = i + 1;
    let mut text = String::new();
    while j < chars.len() {
        match chars[j] {
            '\\' if quote != '`' => {
                text.extend(chars.get(j + 1));
                j += 2;
            }
            c if c == quote => return Ok((text, j + 1)),
            c => {
                text.push(c);
                j += 1;
            }
        }
    }
    Err(format!("unterminated string at {i}"))
}

fn tokens(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            i = read_string(&chars, i)?.1;
            out.push(Token::Str);
        } else if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            // Numbers, exponents, hex and durations: digits and letters run together.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '_') {
                let exponent_sign = matches!(chars[i], 'e' | 'E') && matches!(chars.get(i + 1), Some('+' | '-'));
                i += if exponent_sign { 2 } else { 1 };
            }
            out.push(Token::Number);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (is_word_char(chars[i]) || chars[i] == ':') {
                i += 1;
            }
            out.push(Token::Word(chars[start..i].iter().collect()));
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
            }
            out.push(Token::Variable);
        } else if c == '{' {
            // label="value", label=~"regex", …: nothing here is a metric but `__name__`'s value.
            let mut name = None;
            let mut last_word = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unclosed {".into()),
                    Some('}') => break,
                    Some('"' | '\'' | '`') => {
                        let (text, next) = read_string(&chars, i)?;
                        let op: String = chars[..i].iter().rev().skip_while(|c| c.is_whitespace()).take(2).collect();
                        if last_word == "__name__" && op.starts_with('=') && !op.ends_with(['=', '!']) {
                            name = Some(text);
                        }
                        i = next;
                    }
                    Some(c) if is_word_char(*c) => {
                        let start = i;
                        while i < chars.len() && is_word_char(chars[i]) {
                            i += 1;
                        }
                        last_word = chars[start..i].iter().collect();
                    }
                    Some(_) => i += 1,
                }
            }
            i += 1;
            out.push(Token::Matchers(name));
        } else if c == '[' {
            while i < chars.len() && chars[i] != ']' {
                i += 1;
            }
            if i == chars.len() {
                return Err("unclosed [".into());
            }
            i += 1;
            out.push(Token::Range);
        } else if c == '}' || c == ']' {
            return Err(format!("unexpected {c:?} at {i}"));
        } else {
            out.push(Token::Punct(c));
            i += 1;
        }
    }
    Ok(out)
}

/// The metric names a PromQL expression reads, in order, each once.
fn metrics_in(expr: &str) -> Result<Vec<String>, String> {
    let tokens = tokens(expr)?;
    let mut out: Vec<String> = Vec::new();
    let mut add = |name: String| {
        if !out.contains(&name) {
            out.push(name);
        }
    };
    let mut depth = 0i32;
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Punct('(') => depth += 1,
            Token::Punct(')') => {
                depth -= 1;
                if depth < 0 {
                    return Err("unbalanced )".into());
                }
            }
            Token::Matchers(Some(name)) => add(name.clone()),
            Token::Word(w) => {
                let lower = w.to_ascii_lowercase();
                let next = tokens.get(i + 1);
                if LABEL_LISTS.contains(&lower.as_str()) {
                    if next == Some(&Token::Punct('(')) {
                        // The label names up to `)`.
                        let close = tokens[i..].iter().position(|t| *t == Token::Punct(')')).ok_or("unclosed label list")?;
                        i += close;
                    }
                } else if next == Some(&Token::Punct('(')) {
                    if !FUNCTIONS.contains(&w.as_str()) && !KEYWORDS.contains(&lower.as_str()) {
                        return Err(format!("unknown function {w}"));
                    }
                } else if !KEYWORDS.contains(&lower.as_str()) {
                    add(w.clone());
                }
            }
            _ => {}
        }
        i += 1;
    }
    if depth != 0 {
        return Err("unbalanced (".into());
    }
    Ok(out)
}

/// The problems of one expression: `where_` names it in the report.
fn check_expr(where_: &str, expr: &str, exported: &BTreeSet<String>, problems: &mut Vec<String>) {
    match metrics_in(expr) {
        Err(e) => problems.push(format!("{where_}: cannot read `{expr}`: {e}")),
        Ok(names) if names.is_empty() => problems.push(format!("{where_}: no metric in `{expr}`")),
        Ok(names) => {
            for name in names.into_iter().filter(|n| !exported.contains(n)) {
                problems.push(format!("{where_}: {name} is not a series utalk exports (in `{expr}`)"));
            }
        }
    }
}

/// The problems of one dashboard: its refresh, panels without a query, and
/// queries on metrics that do not exist. Rows' nested panels are walked too.
fn check_dashboard(name: &str, dashboard: &serde_json::Value, exported: &BTreeSet<String>) -> Vec<String> {
    fn walk<'a>(panels: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for p in panels.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut problems = Vec::new();
    if dashboard["refresh"] != REFRESH {
        problems.push(format!("{name}: refresh is {}, not \"{REFRESH}\"", dashboard["refresh"]));
    }
    let mut panels = Vec::new();
    walk(&dashboard["panels"], &mut panels);
    for row in dashboard["rows"].as_array().into_iter().flatten() {
        walk(&row["panels"], &mut panels);
    }
    if panels.is_empty() {
        problems.push(format!("{name}: no panels"));
    }
    for p in panels {
        let title = p["title"].as_str().unwrap_or("(untitled)");
        if matches!(p["type"].as_str(), Some("row" | "text")) {
            continue;
        }
        let exprs: Vec<Option<&str>> = p["targets"].as_array().into_iter().flatten().map(|t| t["expr"].as_str()).collect();
        if exprs.is_empty() {
            problems.push(format!("{name}: panel \"{title}\" has no query"));
        }
        for expr in exprs {
            match expr {
                Some(e) if !e.trim().is_empty() => check_expr(&format!("{name}: panel \"{title}\""), e, exported, &mut problems),
                _ => problems.push(format!("{name}: panel \"{title}\" has a target without an expr")),
            }
        }
    }
    problems
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The `expr`s of a Prometheus rules file, each with the name of its alert
/// (or recording rule): `expr: text`, quoted or not, and the block scalars
/// `expr: |` / `expr: >` with the more indented lines after them.
fn rule_exprs(yaml: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut rule = String::from("(no alert)");
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let key = line.trim_start().trim_start_matches("- ");
        i += 1;
        if let Some(name) = key.strip_prefix("alert:").or_else(|| key.strip_prefix("record:")) {
            rule = name.trim().trim_matches(['"', '\'']).to_string();
            continue;
        }
        let Some(value) = key.strip_prefix("expr:") else { continue };
        let value = value.trim();
        // The lines that belong to the value: blank or more indented than the key.
        let mut more = Vec::new();
        while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > indent(line)) {
            more.push(lines[i].trim());
            i += 1;
        }
        let expr = if value.starts_with(['|', '>']) {
            more.join("\n")
        } else if let Some(q) = value.strip_prefix('"') {
            q.strip_suffix('"').unwrap_or(q).replace("\\\"", "\"").replace("\\\\", "\\")
        } else if let Some(q) = value.strip_prefix('\'') {
            q.strip_suffix('\'').unwrap_or(q).replace("''", "'")
        } else {
            let plain = std::iter::once(value).chain(more).collect::<Vec<_>>().join(" ");
            plain.split(" #").next().unwrap_or("").to_string()
        };
        out.push((rule.clone(), expr.trim().to_string()));
    }
    out
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let dir = root().join("ops/grafana");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read ops/grafana")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("read a dashboard");
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not valid JSON: {e}"));
            (name, value)
        })
        .collect()
}

#[test]
fn the_exported_series_are_read_from_the_metrics_macros() {
    let exported = exported();
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "http_request_duration_seconds_count",
        "socket_event_duration_seconds_bucket",
        "store_commit_duration_seconds_bucket",
        "memory_used_ratio",
        "filesystem_avail_bytes",
        // Recorded through a variable in the stock scan.
        "inventory_products_low",
        "inventory_products_negative",
        "up",
    ] {
        assert!(exported.contains(name), "{name} missing from {exported:?}");
    }
    // A bucketed histogram has no series of its bare name.
    assert!(!exported.contains("http_request_duration_seconds"));
}

#[test]
fn dashboards_refresh_every_10s_and_query_only_exported_metrics() {
    let exported = exported();
    let dashboards = dashboards();
    assert!(dashboards.len() >= 3, "the dashboards of ops/grafana: {:?}", dashboards.iter().map(|d| &d.0).collect::<Vec<_>>());
    let problems: Vec<String> = dashboards.iter().flat_map(|(name, d)| check_dashboard(name, d, &exported)).collect();
    assert!(problems.is_empty(), "dashboard problems:\n{}", problems.join("\n"));
}

#[test]
fn alert_rules_query_only_exported_metrics() {
    let mut problems = Vec::new();
    for file in ["utalk-rules.yml", "utalk-slo.yml"] {
        let mut exported = exported();
        let yaml = std::fs::read_to_string(root().join("ops/prometheus").join(file)).expect("read the rules");
        let exprs = rule_exprs(&yaml);
        let key = |l: &str, k: &str| l.trim_start().trim_start_matches("- ").strip_prefix(k).map(|v| v.trim().to_string());
        let alerts = yaml.lines().filter(|l| key(l, "alert:").is_some()).count();
        // A recording rule's series is there for the rules after it to read.
        let recorded: Vec<String> = yaml.lines().filter_map(|l| key(l, "record:")).collect();
        assert!(alerts > 0 && exprs.len() == alerts + recorded.len(), "{file}: {} exprs for {alerts} alerts: {exprs:?}", exprs.len());
        exported.extend(recorded);
        for (rule, expr) in &exprs {
            check_expr(&format!("{file}: {rule}"), expr, &exported, &mut problems);
        }
    }
    assert!(problems.is_empty(), "alert rule problems:\n{}", problems.join("\n"));
}

#[test]
fn the_expression_reader_finds_metrics_not_functions_labels_or_durations() {
    let read = |e: &str| metrics_in(e).unwrap_or_else(|err| panic!("{e}: {err}"));
    assert_eq!(
        read(
            r#"histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="utalk",route=~"/api/v1/(conversations|messages).*"}[5m])))"#
        ),
        ["http_request_duration_seconds_bucket"]
    );
    // Label lists after the aggregation, `without`, `on` and `group_left`; `bool`; `offset`.
    assert_eq!(
        read("sum(rate(a_total[5m])) by (job_name, outcome) / ignoring (code) group_left (store) max without (le) (b_total offset 1h) > bool 0.5"),
        ["a_total", "b_total"]
    );
    // Numbers, exponents and durations are not names; keywords are any case.
    assert_eq!(read("SUM BY (x) (increase(c_total[1h30m] offset -5m)) * 1e-3 + 0.95 - .5 > 0x1F"), ["c_total"]);
    // A matcher's value that looks like a metric, a regex with words, and `__name__`.
    assert_eq!(read(r#"up{job="rate", instance=~"sum|by.*"} and on (instance) {__name__="store_writer_up"}"#), ["up", "store_writer_up"]);
    // Strings given to functions, subqueries and Grafana variables.
    assert_eq!(
        read(r#"label_replace(max_over_time(rate(d_total{a="}"}[$__rate_interval])[1h:5m]), "dst", "$1", "src", "(.*)")"#),
        ["d_total"]
    );
    assert_eq!(read("time() - job_last_success_timestamp_seconds{job_name=\"backup\"} > 1800"), ["job_last_success_timestamp_seconds"]);
    assert_eq!(read("vector(1)"), Vec::<String>::new());
    // Things that are not PromQL are reported rather than guessed at.
    assert!(metrics_in("rates(x_total[5m])").unwrap_err().contains("unknown function rates"));
    assert!(metrics_in("sum(x_total").is_err());
    assert!(metrics_in(r#"x_total{job="utalk}"#).is_err());
}

#[test]
fn the_rules_reader_takes_block_quoted_and_plain_exprs() {
    let yaml = "groups:\n  - name: g\n    rules:\n      - alert: Block\n        expr: |\n          sum(rate(a_total[5m]))\n            / sum(rate(b_total[5m])) > 0.01\n        for: 5m\n      - alert: Quoted\n        expr: \"c_total{job=\\\"utalk\\\"} > 0\"\n      - alert: Plain\n        expr: d_total > 0 # a comment\n        labels:\n          severity: warning\n";
    assert_eq!(
        rule_exprs(yaml),
        [
            ("Block".to_string(), "sum(rate(a_total[5m]))\n/ sum(rate(b_total[5m])) > 0.01".to_string()),
            ("Quoted".to_string(), "c_total{job=\"utalk\"} > 0".to_string()),
            ("Plain".to_string(), "d_total > 0".to_string()),
        ]
    );
}

#[test]
fn the_lint_reports_a_metric_that_does_not_exist() {
    let exported = exported();
    let mut problems = Vec::new();
    check_expr("rule", "sum(rate(http_requests_total[5m])) / sum(rate(made_up_requests_total[5m]))", &exported, &mut problems);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("made_up_requests_total") && !problems[0].contains(": http_requests_total"), "{problems:?}");

    // A dashboard: the wrong refresh, a panel without a query, a made-up
    // metric in a row's nested panel and a histogram's bare name.
    let dashboard = serde_json::json!({
        "refresh": "30s",
        "panels": [
            {"type": "timeseries", "title": "Empty", "targets": []},
            {"type": "row", "title": "A row", "panels": [
                {"type": "timeseries", "title": "Ghost", "targets": [{"expr": "rate(ghost_total{job=\"utalk\"}[5m])"}]},
                {"type": "timeseries", "title": "Bare", "targets": [{"expr": "http_request_duration_seconds"}]},
            ]},
            {"type": "timeseries", "title": "Fine", "targets": [{"expr": "sum by (transport) (socket_connections_active)"}]},
        ]
    });
    let problems = check_dashboard("test.json", &dashboard, &exported);
    let report = problems.join("\n");
    assert_eq!(problems.len(), 4, "{report}");
    assert!(report.contains("refresh is \"30s\""), "{report}");
    assert!(report.contains("panel \"Empty\" has no query"), "{report}");
    assert!(report.contains("panel \"Ghost\": ghost_total is not a series utalk exports"), "{report}");
    assert!(report.contains("panel \"Bare\": http_request_duration_seconds is not"), "{report}");
}

#[test]
fn the_source_reader_takes_literal_and_variable_names() {
    let code = "fn f() {\n    metrics::counter!(\"a_total\", \"x\" => y).increment(1);\n    describe_counter!(\"not_this\");\n    histogram!(\n        \"b_seconds\"\n    ).record(1.0);\n    for (level, name) in [(1, \"c_low\"), (2, \"c_high\")] {\n        let n = level;\n        metrics::gauge!(name, \"store\" => s).set(n);\n    }\n}";
    let recorded = recorded_in("f.rs", code);
    let names: Vec<(&str, &str)> = recorded.iter().map(|r| (r.kind, r.name.as_str())).collect();
    assert_eq!(names, [("counter", "a_total"), ("gauge", "c_low"), ("gauge", "c_high"), ("histogram", "b_seconds")]);
}
