//! The JSON line format: one object per event carrying service, version and
//! environment, timestamp, level and target, the fields of every span in
//! scope (so a request's `request_id` appears on everything logged while
//! handling it) and the event's own fields.
//!
//! Written straight into the line's buffer: a log line at info is on the
//! socket's message path, where building a `serde_json::Value` map per event
//! (and reparsing each span's fields) cost more CPU than the message itself.
//! Span fields are rendered once, when the span is made or recorded, as a
//! JSON fragment; when a name appears twice the innermost wins (the event
//! over its spans, a child span over its parent), as it did with a map.
//!
//! Fields whose names say they hold secrets (password, token, secret,
//! authorization, cookie) are replaced by `[redacted]` whatever their value.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Whether a field name suggests a secret (ASCII case ignored, no allocation).
///
/// Asked for every field of every line: each position is first matched on
/// its letter, and only the words starting with it are compared.
pub fn is_sensitive(name: &str) -> bool {
    let n = name.as_bytes();
    let at = |i: usize, word: &[u8]| n.get(i..i + word.len()).is_some_and(|w| w.eq_ignore_ascii_case(word));
    (0..n.len()).any(|i| match n[i].to_ascii_lowercase() {
        b'p' => at(i, b"password"),
        b't' => at(i, b"token"),
        b's' => at(i, b"secret"),
        b'a' => at(i, b"authorization") || at(i, b"api_key") || at(i, b"apikey"),
        b'c' => at(i, b"cookie"),
        _ => false,
    })
}

/// Names judged per thread, remembered by address; a name whose slot another
/// took is judged again.
const NAME_SLOTS: usize = 256;

thread_local! {
    static NAMES: std::cell::RefCell<[(usize, usize, bool); NAME_SLOTS]> = const { std::cell::RefCell::new([(0, 0, false); NAME_SLOTS]) };
}

/// [`is_sensitive`] for a field's name, remembered: every line names its
/// fields again, and names are `'static` strings (the same text at the same
/// address), so a name is judged once per thread.
fn sensitive_name(name: &'static str) -> bool {
    let (addr, len) = (name.as_ptr() as usize, name.len());
    // Names are at least byte-aligned and mostly far apart: the address's
    // low bits, mixed, spread them over the slots.
    let slot = (addr ^ (addr >> 8) ^ len.wrapping_mul(31)) % NAME_SLOTS;
    NAMES
        .try_with(|names| {
            let mut names = names.borrow_mut();
            let (a, l, sensitive) = names[slot];
            if a == addr && l == len {
                return sensitive;
            }
            let sensitive = is_sensitive(name);
            names[slot] = (addr, len, sensitive);
            sensitive
        })
        .unwrap_or_else(|_| is_sensitive(name))
}

/// Whether a byte must be escaped inside a JSON string.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The position of the first byte of `s` that must be escaped.
///
/// Every value of every line goes through it, and nearly all of them (ids,
/// names, codes) have no such byte: it tests eight bytes at a time.
fn first_to_escape(s: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A high bit set in a byte of the result: that byte is zero.
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut chunks = s.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Bytes under 0x20 (their three top bits clear, ASCII or not), '"', '\\'.
        let control = zero_byte(x & (0xE0 * ONES));
        if control | zero_byte(x ^ (b'"' as u64 * ONES)) | zero_byte(x ^ (b'\\' as u64 * ONES)) != 0 {
            // The test can flag a byte past the first that matches; find it exactly.
            return chunk.iter().position(|&b| needs_escape(b)).map(|p| i * 8 + p);
        }
    }
    let done = s.len() - chunks.remainder().len();
    chunks.remainder().iter().position(|&b| needs_escape(b)).map(|p| done + p)
}

/// Writes `s` as the inside of a JSON string.
fn escape(w: &mut dyn fmt::Write, s: &str) -> fmt::Result {
    // Most values (ids, names, codes) need no escape: one write.
    let Some(first) = first_to_escape(s.as_bytes()) else {
        return w.write_str(s);
    };
    let mut start = 0;
    for (i, b) in s.bytes().enumerate().skip(first) {
        let esc: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        w.write_str(&s[start..i])?;
        if esc.is_empty() {
            write!(w, "\\u{b:04x}")?;
        } else {
            w.write_str(esc)?;
        }
        start = i + 1;
    }
    w.write_str(&s[start..])
}

/// Most bytes of one value in a line; past it the value ends with `…`. A
/// value can come from outside (a header, a message's text in an error).
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// A `fmt::Write` that escapes what goes through it, up to
/// [`MAX_VALUE_BYTES`], so values are written into the line without a
/// `String` of their own.
struct Escaping<'a> {
    w: &'a mut dyn fmt::Write,
    left: usize,
}

impl<'a> Escaping<'a> {
    fn new(w: &'a mut dyn fmt::Write) -> Self {
        Escaping { w, left: MAX_VALUE_BYTES }
    }
}

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.left == 0 {
            return Ok(());
        }
        if s.len() <= self.left {
            self.left -= s.len();
            return escape(self.w, s);
        }
        let mut end = self.left;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.left = 0;
        escape(self.w, &s[..end])?;
        self.w.write_str("…")
    }
}

/// Writes fields as `"name":value` pairs separated by commas, each preceded
/// by a comma unless `first`; `skip` names fields to leave out.
struct Pairs<'a, 'b> {
    w: &'a mut dyn fmt::Write,
    first: bool,
    skip: &'b dyn Fn(&str) -> bool,
    result: fmt::Result,
}

impl Pairs<'_, '_> {
    fn key(&mut self, field: &Field) -> Option<bool> {
        let name = field.name();
        if self.result.is_err() || (self.skip)(name) {
            return None;
        }
        let open = if self.first { "\"" } else { ",\"" };
        self.first = false;
        self.result = self.w.write_str(open).and_then(|_| escape(self.w, name)).and_then(|_| self.w.write_str("\":"));
        if sensitive_name(name) {
            self.result = self.result.and_then(|_| self.w.write_str("\"[redacted]\""));
            return None;
        }
        Some(self.result.is_ok())
    }

    fn raw(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.key(field) == Some(true) {
            self.result = self.w.write_fmt(value);
        }
    }
}

impl Visit for Pairs<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) == Some(true) {
            self.result = self.w.write_char('"').and_then(|_| Escaping::new(self.w).write_str(value)).and_then(|_| self.w.write_char('"'));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) == Some(true) {
            self.result = self.w.write_str(itoa::Buffer::new().format(value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) == Some(true) {
            self.result = self.w.write_str(itoa::Buffer::new().format(value));
        }
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity.
        if value.is_finite() {
            self.raw(field, format_args!("{value}"));
        } else {
            self.raw(field, format_args!("null"));
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.raw(field, format_args!("{value}"));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) == Some(true) {
            self.result =
                self.w.write_char('"').and_then(|_| write!(Escaping::new(self.w), "{value:?}")).and_then(|_| self.w.write_char('"'));
        }
    }
}

/// How a span's fields are kept: the JSON fragment `"a":1,"b":"x"` (no
/// braces), without the `otel.*` fields, which only name exported spans.
pub struct SpanFields;

fn not_logged(name: &str) -> bool {
    name.starts_with("otel.")
}

impl<'w> FormatFields<'w> for SpanFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut pairs = Pairs { w: &mut writer, first: true, skip: &not_logged, result: Ok(()) };
        fields.record(&mut pairs);
        pairs.result
    }

    /// A field recorded after the span was made replaces the pair of that
    /// name, so a fragment never holds a name twice (each output layer
    /// records into the same fragment).
    fn add_fields(&self, current: &'w mut FormattedFields<Self>, fields: &tracing::span::Record<'_>) -> fmt::Result {
        let mut added = String::new();
        let mut pairs = Pairs { w: &mut added, first: true, skip: &not_logged, result: Ok(()) };
        fields.record(&mut pairs);
        pairs.result?;
        if added.is_empty() {
            return Ok(());
        }
        let mut kept = String::with_capacity(current.fields.len() + added.len() + 1);
        for (name, value) in pairs_of(&current.fields).filter(|(n, _)| !pairs_of(&added).any(|(a, _)| a == *n)) {
            write!(kept, "\"{name}\":{value},")?;
        }
        kept.push_str(&added);
        current.fields = kept;
        Ok(())
    }
}

/// Splits a fragment written by [`SpanFields`] into its `(name, raw value)`
/// pairs. Names are field names (no quotes or escapes in them); values are
/// JSON scalars, strings escaped as [`escape`] writes them.
fn pairs_of(fragment: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = fragment;
    std::iter::from_fn(move || {
        let body = rest.strip_prefix(',').unwrap_or(rest).strip_prefix('"')?;
        let name_end = body.find("\":")?;
        let (name, after) = (&body[..name_end], &body[name_end + 2..]);
        let value_len = if after.starts_with('"') {
            let b = after.as_bytes();
            let mut i = 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            (i + 1).min(b.len())
        } else {
            after.find(',').unwrap_or(after.len())
        };
        rest = &after[value_len..];
        Some((name, &after[..value_len]))
    })
}

/// The JSON line format.
pub struct JsonLines {
    /// `{"service":"utalk","version":…,"environment":…`, escaped once.
    prefix: String,
}

impl JsonLines {
    /// A format naming the service, its version and `environment`.
    pub fn new(environment: &str) -> Self {
        let mut prefix = format!("{{\"service\":\"utalk\",\"version\":\"{}\",\"environment\":\"", env!("CARGO_PKG_VERSION"));
        // Writing to a String cannot fail.
        let _ = escape(&mut prefix, environment);
        prefix.push('"');
        Self { prefix }
    }
}

impl<S> FormatEvent<S, SpanFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, SpanFields>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let w: &mut dyn fmt::Write = &mut writer;
        w.write_str(&self.prefix)?;
        w.write_str(",\"timestamp\":\"")?;
        w.write_str(utalk_storage::Timestamp::now().rfc3339().as_str())?;
        w.write_str("\",\"level\":\"")?;
        w.write_str(meta.level().as_str())?;
        w.write_str("\",\"target\":\"")?;
        escape(w, meta.target())?;
        w.write_char('"')?;
        if let Some(scope) = ctx.event_scope() {
            // The innermost value of a name wins: the event's over its spans',
            // a child span's over its parent's. Walked from the event out,
            // keeping the first of each name.
            let spans: Vec<_> = scope.collect();
            let exts: Vec<_> = spans.iter().map(|s| s.extensions()).collect();
            let mut seen: Vec<&str> = meta.fields().iter().map(|f| f.name()).collect();
            let mut kept: Vec<(&str, &str)> = Vec::new();
            for fields in exts.iter().filter_map(|e| e.get::<FormattedFields<SpanFields>>()) {
                for (name, value) in pairs_of(&fields.fields) {
                    if !seen.contains(&name) {
                        seen.push(name);
                        kept.push((name, value));
                    }
                }
            }
            // Outermost first, as the spans nest.
            for (name, value) in kept.iter().rev() {
                write!(w, ",\"{name}\":{value}")?;
            }
        }
        let mut pairs = Pairs { w, first: false, skip: &|_| false, result: Ok(()) };
        event.record(&mut pairs);
        pairs.result?;
        writeln!(writer, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_names_are_sensitive() {
        for n in [
            "password",
            "refreshToken",
            "jwt_secret",
            "Authorization",
            "api_key",
            "APIKEY",
            "set_cookie",
            "x_token",
            "ppassword",
            "secre_secret",
        ] {
            assert!(is_sensitive(n), "{n}");
        }
        for n in ["email", "request_id", "status", "", "p", "tok", "passwor", "api", "conversation_id", "secre"] {
            assert!(!is_sensitive(n), "{n}");
        }
    }

    #[test]
    fn a_name_is_judged_the_same_from_memory() {
        for _ in 0..3 {
            for n in ["password", "request_id", "jwt_secret", "conversation_id", "x", ""] {
                assert_eq!(sensitive_name(n), is_sensitive(n), "{n}");
            }
        }
        // Names sharing a slot (four times as many as there are slots), secret
        // and plain in turn, take turns in it and are still told apart.
        let words: Vec<&'static str> = (0..4 * NAME_SLOTS)
            .map(|i| &*Box::leak(format!("field_{i}_{}", if i % 2 == 0 { "token" } else { "count" }).into_boxed_str()))
            .collect();
        for w in words.iter().chain(words.iter().rev()) {
            assert_eq!(sensitive_name(w), w.ends_with("token"), "{w}");
        }
    }

    #[test]
    fn the_first_byte_to_escape_is_found_eight_at_a_time_as_one_by_one() {
        let one_by_one = |s: &[u8]| s.iter().position(|&b| needs_escape(b));
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"plain-uuid-0123456789abcdef".to_vec(), "ñandú €".as_bytes().to_vec()];
        // Every byte value at every position of a 19-byte string, among plain
        // bytes and with a second special byte after it.
        for b in 0..=255u8 {
            for at in 0..19 {
                let mut v = b"abcdefghijklmnopqrs".to_vec();
                v[at] = b;
                cases.push(v.clone());
                v[18] = b'"';
                cases.push(v);
            }
        }
        for c in &cases {
            assert_eq!(first_to_escape(c), one_by_one(c), "{c:?}");
        }
    }

    #[test]
    fn escaping_makes_valid_json_strings() {
        // Plain, escapes from the first byte, from the middle, at the end.
        for nasty in ["a\"b\\c\nd\re\tf\u{1}g ñ 😀", "\"x", "plain ñ 😀", "id-1234\u{7}", "", "\\"] {
            let mut s = String::from("\"");
            escape(&mut s, nasty).expect("escape");
            s.push('"');
            assert_eq!(serde_json::from_str::<String>(&s).expect("valid JSON"), nasty);
        }
    }

    #[derive(Clone, Default)]
    struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("sink").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_json_object_with_span_fields_and_the_innermost_value_wins() {
        use tracing_subscriber::layer::SubscriberExt;
        // Two outputs, as with a log file beside stdout: both record into each span's one fragment.
        let (sink, file) = (Sink::default(), Sink::default());
        let layer = |out: Sink| {
            use tracing_subscriber::Layer;
            tracing_subscriber::fmt::layer()
                .fmt_fields(SpanFields)
                .event_format(JsonLines::new("a \"b\""))
                .with_writer(move || out.clone())
                .boxed()
        };
        let subscriber = tracing_subscriber::registry().with(vec![layer(sink.clone()), layer(file.clone())]);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(
                "request",
                request_id = "r1",
                user_id = tracing::field::Empty,
                otel.name = "GET /x",
                password = "p",
                depth = 1
            );
            let _o = outer.enter();
            outer.record("user_id", "u0");
            outer.record("user_id", "u1");
            let inner = tracing::info_span!("inner", request_id = "r2", depth = 2);
            let _i = inner.enter();
            tracing::info!(depth = 3, token = "t", ratio = 0.5, bad = f64::NAN, ok = true, note = %"a\"b\n", "hello {}", 1);
        });
        let text = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf8");
        assert_eq!(text.lines().count(), 1, "{text}");
        let line: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text.trim_end()).expect("one JSON object");
        let get = |k: &str| line.get(k).cloned().unwrap_or_default();
        assert_eq!(get("service"), "utalk");
        assert_eq!(get("environment"), "a \"b\"");
        assert_eq!(get("level"), "INFO");
        assert_eq!(get("message"), "hello 1");
        assert_eq!(get("request_id"), "r2", "the child span's value");
        assert_eq!(get("depth"), 3, "the event's value");
        assert_eq!(get("user_id"), "u1", "a field recorded after the span was made");
        assert_eq!(get("password"), "[redacted]");
        assert_eq!(get("token"), "[redacted]");
        assert_eq!(get("ratio"), 0.5);
        assert_eq!(get("bad"), serde_json::Value::Null);
        assert_eq!(get("ok"), true);
        assert_eq!(get("note"), "a\"b\n");
        assert!(!line.contains_key("otel.name"));
        assert!(get("timestamp").as_str().is_some_and(|t| utalk_storage::Timestamp::parse_rfc3339(t).is_some()));
        for key in ["\"request_id\":", "\"depth\":", "\"user_id\":"] {
            assert_eq!(text.matches(key).count(), 1, "{key} once in {text}");
        }
        let second = String::from_utf8(file.0.lock().expect("sink").clone()).expect("utf8");
        assert_eq!(second.matches("\"user_id\":").count(), 1, "{second}");
        assert!(second.contains("\"user_id\":\"u1\""), "{second}");
    }

    #[test]
    fn a_long_value_is_cut_at_a_character_boundary_and_marked() {
        let mut s = String::new();
        let long = "ñ".repeat(MAX_VALUE_BYTES);
        Escaping::new(&mut s).write_str(&long).expect("write");
        assert!(s.len() <= MAX_VALUE_BYTES + "…".len(), "{}", s.len());
        assert!(s.ends_with('…'));
        let mut short = String::new();
        Escaping::new(&mut short).write_str("corto").expect("write");
        assert_eq!(short, "corto");
    }

    #[test]
    fn fragments_split_into_their_pairs() {
        let f = r#""a":1,"b":"x,\"y\":2","c":true,"d":"\\","e":-1.5"#;
        let got: Vec<_> = pairs_of(f).collect();
        assert_eq!(got, vec![("a", "1"), ("b", r#""x,\"y\":2""#), ("c", "true"), ("d", r#""\\""#), ("e", "-1.5")]);
        assert_eq!(pairs_of("").count(), 0);
    }
}
