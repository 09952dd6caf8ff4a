//! Timestamps: milliseconds since the Unix epoch on disk, RFC 3339 UTC in JSON.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time with millisecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
    /// Milliseconds since the epoch.
    pub fn millis(self) -> i64 {
        self.0
    }
    /// This time plus `secs` seconds.
    pub fn plus_secs(self, secs: i64) -> Self {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1000)))
    }
    /// RFC 3339 in UTC with milliseconds, e.g. `2026-11-23T10:45:30.123Z`.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339().as_str().to_owned()
    }
    /// The same text as [`Timestamp::to_rfc3339`], kept on the stack: every
    /// message view and log line writes a time, and this costs no allocation
    /// and none of the formatting machinery.
    pub fn rfc3339(self) -> Rfc3339 {
        let secs = self.0.div_euclid(1000);
        let ms = self.0.rem_euclid(1000);
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let mut out = Rfc3339 { buf: [0; RFC3339_MAX], len: 0 };
        if (0..=9999).contains(&y) {
            out.digits(y, 4);
        } else {
            // Years outside four digits print as `{:04}` prints them; at
            // most ten characters for any i64 of milliseconds.
            let mut text = [0u8; 16];
            let mut cursor = std::io::Cursor::new(&mut text[..]);
            // Sixteen bytes hold any such year, so the write cannot fail.
            let _ = std::io::Write::write_fmt(&mut cursor, format_args!("{y:04}"));
            let n = cursor.position() as usize;
            out.bytes(&text[..n]);
        }
        out.bytes(b"-");
        out.digits(m, 2);
        out.bytes(b"-");
        out.digits(d, 2);
        out.bytes(b"T");
        out.digits(sod / 3600, 2);
        out.bytes(b":");
        out.digits((sod % 3600) / 60, 2);
        out.bytes(b":");
        out.digits(sod % 60, 2);
        out.bytes(b".");
        out.digits(ms, 3);
        out.bytes(b"Z");
        out
    }
    /// Parses RFC 3339 (`Z` or a numeric offset; fractions to the millisecond).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ')
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
        let (y, mo, d, h, mi, se) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut i = 19;
        let mut ms = 0i64;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let frac = s.get(start..i)?;
            if frac.is_empty() {
                return None;
            }
            let digits: String = frac.chars().chain("000".chars()).take(3).collect();
            ms = digits.parse().ok()?;
        }
        let offset = match b.get(i)? {
            b'Z' | b'z' if i + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let o = oh * 3600 + om * 60;
                if *sign == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
        Some(Timestamp(secs * 1000 + ms))
    }
}

/// The longest RFC 3339 text a [`Timestamp`] makes: a ten-character year
/// and the twenty characters after it.
const RFC3339_MAX: usize = 32;

/// RFC 3339 text of a [`Timestamp`], held in place.
#[derive(Clone, Copy)]
pub struct Rfc3339 {
    buf: [u8; RFC3339_MAX],
    len: usize,
}

impl Rfc3339 {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and punctuation are ever written.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
    /// `v` (0 ≤ v < 10^width) in `width` digits, zero-padded.
    fn digits(&mut self, mut v: i64, width: usize) {
        for i in (0..width).rev() {
            self.buf[self.len + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.len += width;
    }
}

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

// Howard Hinnant's civil-date algorithms: exact for the proleptic Gregorian calendar.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.rfc3339().as_str())
        } else {
            s.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            Timestamp::parse_rfc3339(&s).ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 time"))
        } else {
            i64::deserialize(d).map(Timestamp)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = Timestamp(1_795_430_730_123);
        let s = t.to_rfc3339();
        assert_eq!(s, "2026-11-23T10:45:30.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-23T11:45:30.123+01:00"), Some(t));
        assert_eq!(Timestamp::parse_rfc3339("1970-01-01T00:00:00Z"), Some(Timestamp(0)));
        assert_eq!(Timestamp(-1).to_rfc3339(), "1969-12-31T23:59:59.999Z");
    }

    /// The text as `format!` wrote it before the text was built in place.
    fn formatted(t: Timestamp) -> String {
        let secs = t.0.div_euclid(1000);
        let ms = t.0.rem_euclid(1000);
        let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", sod / 3600, (sod % 3600) / 60, sod % 60)
    }

    #[test]
    fn rfc3339_in_place_writes_what_format_wrote_for_any_time() {
        let mut cases = vec![
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
            0,
            -1,
            1,
            253_402_300_799_999,
            253_402_300_800_000,
            -62_167_219_200_000,
            -62_167_219_200_001,
        ];
        // A spread over the whole range, and every millisecond digit.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push(x as i64);
            cases.push((x % 10_000_000_000_000) as i64 - 5_000_000_000_000);
        }
        for c in cases {
            let t = Timestamp(c);
            assert_eq!(t.rfc3339().as_str(), formatted(t), "{c}");
            assert_eq!(t.to_rfc3339(), formatted(t), "{c}");
            assert_eq!(t.rfc3339().to_string(), formatted(t), "{c}");
        }
    }

    #[test]
    fn bad_times_are_refused() {
        for s in ["", "2026-13-01T00:00:00Z", "2026-11-23 10:45", "2026-11-23T10:45:30", "2026-11-23T10:45:30.Z", "x026-11-23T10:45:30Z"] {
            assert_eq!(Timestamp::parse_rfc3339(s), None, "{s}");
        }
    }
}
