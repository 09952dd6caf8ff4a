//! Business hours: when a workspace is open, in its own time zone, with its
//! holidays. Pure time arithmetic, no storage: it lives beside [`time`]
//! because the KPI rollups of this crate count agent waits in business
//! time; the bot and the assigner ask it whether the business is open.
//!
//! An opening interval runs from the first instant the wall clock of the
//! zone shows its start on that date to the first instant it shows its
//! end. So on the day clocks go forward an interval that starts in the
//! skipped hour starts when the clock jumps past it (09:00-18:00 is then
//! as long as ever; 01:00-04:00 is an hour shorter), and on the day they go
//! back the repeated hour counts once, the first time (01:00-04:00 is an
//! hour longer, since its end comes an hour later). Intervals never cross
//! midnight: one past it is written as two, one on each day.
//!
//! Every search is bounded: an opening is looked for over the holidays and
//! a couple of weeks past them ([`HORIZON_DAYS`]), and a duration over at
//! most [`MAX_SPAN_DAYS`]; a calendar that never opens answers `None`.
//!
//! [`time`]: crate::time

use crate::time::Timestamp;
use chrono::{Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Timelike};
use chrono_tz::Tz;
use std::collections::BTreeSet;

/// Most opening intervals on one day.
pub const MAX_INTERVALS_PER_DAY: usize = 8;
/// Most holidays.
pub const MAX_HOLIDAYS: usize = 500;
/// How many days ahead an opening is looked for: past every holiday, and
/// two weeks more (a week holds every weekday; DST can empty one day).
pub const HORIZON_DAYS: u64 = MAX_HOLIDAYS as u64 + 14;
/// The longest span a business duration is measured over (ten years); the
/// time past it is not counted (only a damaged record would ask for more).
pub const MAX_SPAN_DAYS: u64 = 3_660;

/// The weekdays' names in configuration, Monday first.
pub const WEEKDAYS: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

const DAY_SECS: u32 = 86_400;

/// Why business hours cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoursError {
    /// The time zone is not in the IANA database.
    #[error("timezone: `{0}` is not an IANA time zone such as Europe/Madrid or America/Mexico_City")]
    UnknownZone(String),
    /// An interval does not read as `HH:MM-HH:MM`.
    #[error("{day}: `{text}` is not an interval such as 09:00-18:00 (HH:MM or HH:MM:SS, 24:00 for the end of the day)")]
    BadInterval {
        /// The weekday.
        day: &'static str,
        /// The interval as written.
        text: String,
    },
    /// An interval ends at or before its start (one past midnight among them).
    #[error("{day}: `{text}` does not end after it starts; an interval past midnight is written as two, e.g. 22:00-24:00 and 00:00-02:00 on the next day")]
    EndNotAfterStart {
        /// The weekday.
        day: &'static str,
        /// The interval as written.
        text: String,
    },
    /// Two intervals of one day overlap.
    #[error("{day}: `{first}` and `{second}` overlap")]
    Overlap {
        /// The weekday.
        day: &'static str,
        /// One interval.
        first: String,
        /// The other.
        second: String,
    },
    /// A day has too many intervals.
    #[error("{day}: at most {MAX_INTERVALS_PER_DAY} intervals a day")]
    TooManyIntervals {
        /// The weekday.
        day: &'static str,
    },
    /// A holiday is not a date.
    #[error("holidays: `{0}` is not a date such as 2026-12-25")]
    BadHoliday(String),
    /// A holiday is listed twice.
    #[error("holidays: {0} is listed twice")]
    DuplicateHoliday(String),
    /// Too many holidays.
    #[error("holidays: at most {MAX_HOLIDAYS} dates")]
    TooManyHolidays,
    /// No weekday has an interval.
    #[error("no weekday has opening hours, so the business would never open (leave timezone unset to be always open)")]
    NeverOpen,
}

/// An interval of a day, in seconds since the wall clock's midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    start: u32,
    end: u32,
}

#[derive(Debug, Clone)]
struct Calendar {
    zone: Tz,
    /// Monday first, each day's intervals sorted.
    week: [Vec<Span>; 7],
    holidays: BTreeSet<NaiveDate>,
}

/// A time as the workspace's clock shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime {
    /// Days since 0001-01-01 (to tell today from tomorrow).
    pub day_number: i64,
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
    /// Day of the month.
    pub day: u32,
    /// 0 is Monday.
    pub weekday: u32,
    /// Hour, 0–23.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// The zone's abbreviation then, e.g. `CET` or `CEST`.
    pub zone: String,
}

/// When the business is open. The default is always open (no hours configured).
#[derive(Debug, Clone, Default)]
pub struct BusinessHours {
    calendar: Option<Calendar>,
}

/// Reads `HH:MM` or `HH:MM:SS` (24:00 allowed) as seconds since midnight.
fn clock(text: &str) -> Option<u32> {
    let parts: Vec<&str> = text.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let n = |i: usize| parts.get(i).map_or(Some(0), |p| p.parse::<u32>().ok());
    let (h, m, s) = (n(0)?, n(1)?, n(2)?);
    if m > 59 || s > 59 || h > 24 || (h == 24 && (m, s) != (0, 0)) {
        return None;
    }
    Some(h * 3600 + m * 60 + s)
}

fn interval(day: &'static str, text: &str) -> Result<Span, HoursError> {
    let bad = || HoursError::BadInterval { day, text: text.to_string() };
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let (start, end) = (clock(a.trim()).ok_or_else(bad)?, clock(b.trim()).ok_or_else(bad)?);
    if end <= start {
        return Err(HoursError::EndNotAfterStart { day, text: text.to_string() });
    }
    Ok(Span { start, end })
}

impl BusinessHours {
    /// Always open: what a workspace without business hours gets.
    pub fn always_open() -> BusinessHours {
        BusinessHours::default()
    }

    /// Hours in `zone` (an IANA name), with each weekday's intervals
    /// (`week[0]` is Monday; none is closed all day) and the holidays
    /// (`YYYY-MM-DD`, dates of the zone, closed all day).
    pub fn new(zone: &str, week: [&[String]; 7], holidays: &[String]) -> Result<BusinessHours, HoursError> {
        let zone: Tz = zone.trim().parse().map_err(|_| HoursError::UnknownZone(zone.to_string()))?;
        let mut days: [Vec<Span>; 7] = Default::default();
        for (i, texts) in week.iter().enumerate() {
            let day = WEEKDAYS[i];
            if texts.len() > MAX_INTERVALS_PER_DAY {
                return Err(HoursError::TooManyIntervals { day });
            }
            let mut spans: Vec<(Span, &String)> = texts.iter().map(|t| interval(day, t).map(|s| (s, t))).collect::<Result<_, _>>()?;
            spans.sort();
            if let Some(w) = spans.windows(2).find(|w| w[1].0.start < w[0].0.end) {
                return Err(HoursError::Overlap { day, first: w[0].1.clone(), second: w[1].1.clone() });
            }
            days[i] = spans.into_iter().map(|(s, _)| s).collect();
        }
        if days.iter().all(Vec::is_empty) {
            return Err(HoursError::NeverOpen);
        }
        if holidays.len() > MAX_HOLIDAYS {
            return Err(HoursError::TooManyHolidays);
        }
        let mut set = BTreeSet::new();
        for h in holidays {
            let date = NaiveDate::parse_from_str(h.trim(), "%Y-%m-%d").map_err(|_| HoursError::BadHoliday(h.clone()))?;
            if !set.insert(date) {
                return Err(HoursError::DuplicateHoliday(h.clone()));
            }
        }
        Ok(BusinessHours { calendar: Some(Calendar { zone, week: days, holidays: set }) })
    }

    /// Whether hours are configured (otherwise it is always open).
    pub fn is_configured(&self) -> bool {
        self.calendar.is_some()
    }

    /// The IANA name of the zone, when hours are configured.
    pub fn zone_name(&self) -> Option<&'static str> {
        self.calendar.as_ref().map(|c| c.zone.name())
    }

    /// Whether the business is open at `at`.
    pub fn is_open(&self, at: Timestamp) -> bool {
        let Some(c) = &self.calendar else { return true };
        let Some(date) = c.date_of(at) else { return false };
        // A period belongs to the date it starts on; its instants all show that
        // date, but looking at the neighbours costs little and spares the proof.
        [date.pred_opt(), Some(date), date.succ_opt()]
            .into_iter()
            .flatten()
            .any(|d| c.periods(d).iter().any(|&(s, e)| s <= at.millis() && at.millis() < e))
    }

    /// When the business next opens at or after `after`: the start of the
    /// first opening that begins then or later (an opening going on at
    /// `after` is not one; its successor is). `None` when always open, or
    /// when no opening comes within [`HORIZON_DAYS`].
    pub fn next_opening(&self, after: Timestamp) -> Option<Timestamp> {
        let c = self.calendar.as_ref()?;
        let first = c.date_of(after)?.pred_opt()?;
        c.merged(first).find(|&(s, _)| s >= after.millis()).map(|(s, _)| Timestamp(s))
    }

    /// When the opening going on at `at` ends; `None` when closed at `at`,
    /// always open, or open past [`HORIZON_DAYS`] without a break.
    pub fn closes_at(&self, at: Timestamp) -> Option<Timestamp> {
        let c = self.calendar.as_ref()?;
        let first = c.date_of(at)?.pred_opt()?;
        let (s, e) = c.merged(first).find(|&(_, e)| e > at.millis())?;
        (s <= at.millis() && !c.open_past_horizon(first, e)).then_some(Timestamp(e))
    }

    /// The open time between `from` and `to`, in milliseconds (0 when `to`
    /// is not after `from`); the whole span when always open. At most
    /// [`MAX_SPAN_DAYS`] from `from` are counted.
    pub fn business_ms(&self, from: Timestamp, to: Timestamp) -> u64 {
        let span = u64::try_from(to.millis().saturating_sub(from.millis())).unwrap_or(0);
        let Some(c) = &self.calendar else { return span };
        let (Some(first), Some(last)) = (c.date_of(from).and_then(|d| d.pred_opt()), c.date_of(to).and_then(|d| d.succ_opt())) else {
            return 0;
        };
        let mut total = 0u64;
        let mut date = first;
        for _ in 0..=MAX_SPAN_DAYS {
            for (s, e) in c.periods(date) {
                let (s, e) = (s.max(from.millis()), e.min(to.millis()));
                total += u64::try_from(e - s).unwrap_or(0);
            }
            match date.succ_opt() {
                Some(next) if date < last => date = next,
                _ => break,
            }
        }
        total
    }

    /// `at` as the workspace's clock shows it; `None` without hours.
    pub fn local(&self, at: Timestamp) -> Option<LocalTime> {
        let c = self.calendar.as_ref()?;
        let t = c.zone.timestamp_millis_opt(at.millis()).single()?;
        Some(LocalTime {
            day_number: i64::from(t.num_days_from_ce()),
            year: t.year(),
            month: t.month(),
            day: t.day(),
            weekday: t.weekday().num_days_from_monday(),
            hour: t.hour(),
            minute: t.minute(),
            zone: t.format("%Z").to_string(),
        })
    }
}

impl Calendar {
    fn date_of(&self, at: Timestamp) -> Option<NaiveDate> {
        self.zone.timestamp_millis_opt(at.millis()).single().map(|t| t.date_naive())
    }

    /// The first instant (ms) at which the wall clock shows `date` plus `secs` or later.
    fn instant(&self, date: NaiveDate, secs: u32) -> Option<i64> {
        let naive = date.and_hms_opt(0, 0, 0)?.checked_add_signed(TimeDelta::seconds(i64::from(secs)))?;
        match self.zone.from_local_datetime(&naive) {
            LocalResult::Single(t) => Some(t.timestamp_millis()),
            LocalResult::Ambiguous(first, _) => Some(first.timestamp_millis()),
            // Skipped by a change of offset: the clock jumps past it, at the
            // first whole minute it shows after (offsets change on whole
            // minutes; a whole day was skipped once, so look two days ahead).
            LocalResult::None => {
                let minute = naive.with_second(0)?;
                (1..=2 * 1440).find_map(|m| {
                    let later: NaiveDateTime = minute.checked_add_signed(TimeDelta::minutes(m))?;
                    match self.zone.from_local_datetime(&later) {
                        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.timestamp_millis()),
                        LocalResult::None => None,
                    }
                })
            }
        }
    }

    /// The open periods `[start, end)` (ms) of intervals on `date`, in order; none on a holiday.
    fn periods(&self, date: NaiveDate) -> Vec<(i64, i64)> {
        if self.holidays.contains(&date) {
            return Vec::new();
        }
        let spans = &self.week[date.weekday().num_days_from_monday() as usize];
        spans
            .iter()
            .filter_map(|s| Some((self.instant(date, s.start)?, self.instant(date, s.end.min(DAY_SECS))?)))
            .filter(|(s, e)| e > s)
            .collect()
    }

    /// The openings from `first` on, for [`HORIZON_DAYS`], periods that touch made one.
    fn merged(&self, first: NaiveDate) -> impl Iterator<Item = (i64, i64)> + '_ {
        let mut days = (0..HORIZON_DAYS).filter_map(move |i| first.checked_add_days(Days::new(i)));
        let mut pending: std::vec::IntoIter<(i64, i64)> = Vec::new().into_iter();
        let mut current: Option<(i64, i64)> = None;
        std::iter::from_fn(move || loop {
            let next = match pending.next() {
                Some(p) => Some(p),
                None => match days.next() {
                    Some(d) => {
                        pending = self.periods(d).into_iter();
                        continue;
                    }
                    None => None,
                },
            };
            match (current, next) {
                (Some((s, e)), Some((ns, ne))) if ns <= e => current = Some((s, e.max(ne))),
                (Some(done), Some(p)) => {
                    current = Some(p);
                    return Some(done);
                }
                (None, Some(p)) => current = Some(p),
                (done, None) => {
                    current = None;
                    return done;
                }
            }
        })
    }

    /// Whether an opening ending at `end` was only cut by the search's horizon from `first`.
    fn open_past_horizon(&self, first: NaiveDate, end: i64) -> bool {
        first.checked_add_days(Days::new(HORIZON_DAYS)).and_then(|d| self.instant(d, 0)).is_none_or(|limit| end >= limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("a time")
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// Hours in `zone` with the same intervals `days` on Monday..Friday, `weekend` on Saturday and Sunday.
    fn hours(zone: &str, days: &[&str], weekend: &[&str], holidays: &[&str]) -> BusinessHours {
        let (d, w) = (strings(days), strings(weekend));
        BusinessHours::new(zone, [&d, &d, &d, &d, &d, &w, &w], &strings(holidays)).expect("valid hours")
    }

    fn err(week: [&[&str]; 7], holidays: &[&str]) -> HoursError {
        let w: Vec<Vec<String>> = week.iter().map(|d| strings(d)).collect();
        BusinessHours::new("Europe/Madrid", [&w[0], &w[1], &w[2], &w[3], &w[4], &w[5], &w[6]], &strings(holidays)).expect_err("refused")
    }

    const H: i64 = 3_600_000;

    #[test]
    fn always_open_without_hours() {
        let h = BusinessHours::always_open();
        assert!(!h.is_configured());
        assert!(h.is_open(t("2026-12-25T03:00:00Z")));
        assert_eq!(h.next_opening(t("2026-12-25T03:00:00Z")), None);
        assert_eq!(h.closes_at(t("2026-12-25T03:00:00Z")), None);
        assert_eq!(h.business_ms(t("2026-12-25T03:00:00Z"), t("2026-12-26T03:00:00Z")), 24 * H as u64);
        assert_eq!(h.business_ms(t("2026-12-26T03:00:00Z"), t("2026-12-25T03:00:00Z")), 0);
    }

    #[test]
    fn open_in_the_zone_winter_and_summer() {
        let h = hours("Europe/Madrid", &["09:00-14:00", "16:00-19:00"], &[], &[]);
        assert_eq!(h.zone_name(), Some("Europe/Madrid"));
        // Winter: UTC+1. Monday 2026-01-12.
        assert!(!h.is_open(t("2026-01-12T07:59:59Z")));
        assert!(h.is_open(t("2026-01-12T08:00:00Z")));
        assert!(h.is_open(t("2026-01-12T12:59:59Z")));
        assert!(!h.is_open(t("2026-01-12T13:00:00Z")), "lunch");
        assert!(h.is_open(t("2026-01-12T15:00:00Z")));
        assert!(!h.is_open(t("2026-01-12T18:00:00Z")));
        // Summer: UTC+2. Monday 2026-07-13.
        assert!(h.is_open(t("2026-07-13T07:00:00Z")));
        assert!(!h.is_open(t("2026-07-13T06:59:00Z")));
        // Saturday.
        assert!(!h.is_open(t("2026-07-18T10:00:00Z")));
        assert_eq!(h.next_opening(t("2026-01-12T13:30:00Z")), Some(t("2026-01-12T15:00:00Z")));
        assert_eq!(h.closes_at(t("2026-01-12T10:00:00Z")), Some(t("2026-01-12T13:00:00Z")));
        assert_eq!(h.closes_at(t("2026-01-12T13:30:00Z")), None, "closed");
        // Friday evening: Monday morning.
        assert_eq!(h.next_opening(t("2026-01-16T18:00:00Z")), Some(t("2026-01-19T08:00:00Z")));
        // Open now: the next opening is the one after this.
        assert_eq!(h.next_opening(t("2026-01-12T09:00:00Z")), Some(t("2026-01-12T15:00:00Z")));
        // Exactly at an opening: that one.
        assert_eq!(h.next_opening(t("2026-01-12T08:00:00Z")), Some(t("2026-01-12T08:00:00Z")));
    }

    #[test]
    fn business_time_skips_nights_weekends_and_lunch() {
        let h = hours("Europe/Madrid", &["09:00-14:00", "16:00-19:00"], &[], &[]);
        // Friday 18:00 (local) to Monday 10:00: one hour on Friday, one on Monday.
        assert_eq!(h.business_ms(t("2026-01-16T17:00:00Z"), t("2026-01-19T09:00:00Z")), 2 * H as u64);
        // Inside one interval: wall time.
        assert_eq!(h.business_ms(t("2026-01-12T09:00:00Z"), t("2026-01-12T09:00:30Z")), 30_000);
        // Across lunch: 13:00-17:00 local is one hour before and one after.
        assert_eq!(h.business_ms(t("2026-01-12T12:00:00Z"), t("2026-01-12T16:00:00Z")), 2 * H as u64);
        // A whole week: 8 h × 5.
        assert_eq!(h.business_ms(t("2026-01-12T00:00:00Z"), t("2026-01-19T00:00:00Z")), 40 * H as u64);
        // Wholly closed: nothing.
        assert_eq!(h.business_ms(t("2026-01-17T00:00:00Z"), t("2026-01-18T23:00:00Z")), 0);
        assert_eq!(h.business_ms(t("2026-01-13T00:00:00Z"), t("2026-01-12T00:00:00Z")), 0);
    }

    #[test]
    fn spring_forward_keeps_whole_intervals_and_shortens_those_over_the_gap() {
        // Europe/Madrid skips 02:00-03:00 on Sunday 2026-03-29.
        let h = hours("Europe/Madrid", &["09:00-18:00"], &["01:00-04:00"], &[]);
        let day = (t("2026-03-29T00:00:00Z"), t("2026-03-30T00:00:00Z"));
        assert_eq!(h.business_ms(day.0, day.1), 2 * H as u64, "01:00-04:00 lasts two hours that day");
        // The Saturday before is three hours.
        assert_eq!(h.business_ms(t("2026-03-28T00:00:00Z"), t("2026-03-29T00:00:00Z")), 3 * H as u64);
        // 01:00 CET is 00:00Z; 04:00 CEST is 02:00Z.
        assert!(h.is_open(t("2026-03-29T00:00:00Z")));
        assert!(h.is_open(t("2026-03-29T01:59:59Z")));
        assert!(!h.is_open(t("2026-03-29T02:00:00Z")));
        // Monday 09:00 is now CEST.
        assert_eq!(h.next_opening(t("2026-03-29T02:00:00Z")), Some(t("2026-03-30T07:00:00Z")));
        // An interval starting in the gap starts when the clock jumps past it.
        let g = hours("Europe/Madrid", &["09:00-18:00"], &["02:30-03:30"], &[]);
        assert_eq!(g.next_opening(t("2026-03-28T20:00:00Z")), Some(t("2026-03-29T01:00:00Z")));
        assert_eq!(g.business_ms(day.0, day.1), 30 * 60_000);
        // One wholly in the gap does not open that day.
        let w = hours("Europe/Madrid", &["09:00-18:00"], &["02:00-02:59"], &[]);
        assert_eq!(w.business_ms(day.0, day.1), 0);
        assert_eq!(w.next_opening(t("2026-03-28T20:00:00Z")), Some(t("2026-03-30T07:00:00Z")));
    }

    #[test]
    fn fall_back_counts_the_repeated_hour_once() {
        // Europe/Madrid repeats 02:00-03:00 on Sunday 2026-10-25.
        let h = hours("Europe/Madrid", &["09:00-18:00"], &["01:00-04:00"], &[]);
        // 01:00 CEST is 23:00Z the day before; 04:00 CET is 03:00Z.
        assert_eq!(h.business_ms(t("2026-10-24T12:00:00Z"), t("2026-10-25T12:00:00Z")), 4 * H as u64);
        assert!(h.is_open(t("2026-10-25T02:30:00Z")), "the second 02:30");
        assert!(!h.is_open(t("2026-10-25T03:00:00Z")));
        // An interval ending in the repeated hour ends the first time the clock shows it.
        let e = hours("Europe/Madrid", &["09:00-18:00"], &["01:00-02:30"], &[]);
        assert_eq!(e.closes_at(t("2026-10-25T00:00:00Z")), Some(t("2026-10-25T00:30:00Z")));
        assert!(!e.is_open(t("2026-10-25T01:15:00Z")), "the second 02:15 is past its end");
        // A weekday after the change is UTC+1 again.
        assert_eq!(h.next_opening(t("2026-10-25T04:00:00Z")), Some(t("2026-10-26T08:00:00Z")));
        // And in the Americas (New York changes on 2026-11-01).
        let ny = hours("America/New_York", &["09:00-17:00"], &["00:00-24:00"], &[]);
        assert_eq!(ny.business_ms(t("2026-11-01T04:00:00Z"), t("2026-11-02T05:00:00Z")), 25 * H as u64);
        assert_eq!(ny.business_ms(t("2026-03-08T05:00:00Z"), t("2026-03-09T04:00:00Z")), 23 * H as u64);
    }

    #[test]
    fn holidays_are_closed_all_day_in_the_zone() {
        // Friday 2026-12-25 closed.
        let h = hours("Europe/Madrid", &["09:00-18:00"], &[], &["2026-12-25"]);
        assert!(!h.is_open(t("2026-12-25T10:00:00Z")));
        assert!(h.is_open(t("2026-12-24T10:00:00Z")));
        assert_eq!(h.next_opening(t("2026-12-24T17:00:00Z")), Some(t("2026-12-28T08:00:00Z")));
        assert_eq!(h.business_ms(t("2026-12-24T00:00:00Z"), t("2026-12-29T00:00:00Z")), 18 * H as u64);
        // The date is the zone's: 23:30Z on the 24th is already the 25th in Madrid.
        let late = hours("Europe/Madrid", &["00:00-24:00"], &["00:00-24:00"], &["2026-12-25"]);
        assert!(late.is_open(t("2026-12-24T22:59:59Z")));
        assert!(!late.is_open(t("2026-12-24T23:30:00Z")));
    }

    #[test]
    fn touching_intervals_and_midnight_make_one_opening() {
        let h = hours("UTC", &["00:00-24:00"], &[], &[]);
        // Open from Monday 00:00 to Saturday 00:00 without a break.
        assert_eq!(h.closes_at(t("2026-01-12T10:00:00Z")), Some(t("2026-01-17T00:00:00Z")));
        assert_eq!(h.next_opening(t("2026-01-13T10:00:00Z")), Some(t("2026-01-19T00:00:00Z")));
        let split = hours("UTC", &["09:00-12:00", "12:00-14:00"], &[], &[]);
        assert_eq!(split.closes_at(t("2026-01-12T10:00:00Z")), Some(t("2026-01-12T14:00:00Z")));
        // Always open by the week: open, and never closing within the horizon.
        let all = hours("UTC", &["00:00-24:00"], &["00:00-24:00"], &[]);
        assert!(all.is_open(t("2026-01-12T10:00:00Z")));
        assert_eq!(all.closes_at(t("2026-01-12T10:00:00Z")), None);
        assert_eq!(all.next_opening(t("2026-01-12T10:00:00Z")), None);
    }

    #[test]
    fn seconds_are_allowed_in_intervals() {
        let h = hours("UTC", &["09:00:30-09:01"], &[], &[]);
        assert!(!h.is_open(t("2026-01-12T09:00:29Z")));
        assert!(h.is_open(t("2026-01-12T09:00:30Z")));
        assert_eq!(h.business_ms(t("2026-01-12T00:00:00Z"), t("2026-01-13T00:00:00Z")), 30_000);
    }

    #[test]
    fn a_calendar_that_never_opens_answers_none_and_stops() {
        // Refused by `new`; built by hand to show the searches are bounded.
        let c = Calendar { zone: Tz::UTC, week: Default::default(), holidays: BTreeSet::new() };
        let h = BusinessHours { calendar: Some(c) };
        assert!(!h.is_open(t("2026-01-12T10:00:00Z")));
        assert_eq!(h.next_opening(t("2026-01-12T10:00:00Z")), None);
        assert_eq!(h.closes_at(t("2026-01-12T10:00:00Z")), None);
        assert_eq!(h.business_ms(Timestamp(i64::MIN), Timestamp(i64::MAX)), 0);
        // Holidays over every open day of the horizon: no opening found, none invented.
        let monday = strings(&["09:00-10:00"]);
        let mondays: Vec<String> = (0..MAX_HOLIDAYS as u64)
            .filter_map(|i| NaiveDate::from_ymd_opt(2026, 1, 12)?.checked_add_days(Days::new(7 * i)))
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect();
        let none: Vec<String> = Vec::new();
        let h = BusinessHours::new("UTC", [&monday, &none, &none, &none, &none, &none, &none], &mondays).expect("valid");
        assert_eq!(h.next_opening(t("2026-01-12T00:00:00Z")), None);
        // Ten years at most are counted, however far apart the times are.
        let open = hours("UTC", &["00:00-24:00"], &["00:00-24:00"], &[]);
        assert!(open.business_ms(t("2000-01-01T00:00:00Z"), t("2100-01-01T00:00:00Z")) <= (MAX_SPAN_DAYS + 1) * 24 * H as u64);
    }

    #[test]
    fn bad_hours_are_refused_with_the_reason() {
        let none: &[&str] = &[];
        let bad = |d: &[&str]| err([d, none, none, none, none, none, none], &[]);
        for text in ["9-18", "09:00", "09:00-18", "25:00-26:00", "09:60-10:00", "24:01-24:02", "0900-1800", "09:00-18:00:0"] {
            assert!(matches!(bad(&[text]), HoursError::BadInterval { day: "monday", .. }), "{text}");
        }
        assert!(matches!(bad(&["22:00-02:00"]), HoursError::EndNotAfterStart { .. }), "past midnight");
        assert!(matches!(bad(&["10:00-10:00"]), HoursError::EndNotAfterStart { .. }));
        assert_eq!(
            bad(&["11:00-13:00", "09:00-12:00"]),
            HoursError::Overlap { day: "monday", first: "09:00-12:00".into(), second: "11:00-13:00".into() }
        );
        let many: Vec<String> = (0..9).map(|i| format!("{:02}:00-{:02}:30", i, i)).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(bad(&many), HoursError::TooManyIntervals { day: "monday" });
        assert_eq!(err([none; 7], &[]), HoursError::NeverOpen);
        let ok: &[&str] = &["09:00-10:00"];
        assert_eq!(err([ok, none, none, none, none, none, none], &["2026-02-30"]), HoursError::BadHoliday("2026-02-30".into()));
        assert_eq!(
            err([ok, none, none, none, none, none, none], &["2026-12-25", "2026-12-25"]),
            HoursError::DuplicateHoliday("2026-12-25".into())
        );
        let lots: Vec<String> = (0..=MAX_HOLIDAYS as u64)
            .filter_map(|i| NaiveDate::from_ymd_opt(2026, 1, 1)?.checked_add_days(Days::new(i)))
            .map(|d| d.to_string())
            .collect();
        let lots: Vec<&str> = lots.iter().map(String::as_str).collect();
        assert_eq!(err([ok, none, none, none, none, none, none], &lots), HoursError::TooManyHolidays);
        let w = strings(ok);
        assert_eq!(
            BusinessHours::new("Mars/Olympus", [&w, &w, &w, &w, &w, &w, &w], &[]).expect_err("refused"),
            HoursError::UnknownZone("Mars/Olympus".into())
        );
        assert!(HoursError::NeverOpen.to_string().contains("never open"));
    }

    #[test]
    fn local_time_shows_the_zone() {
        let h = hours("Europe/Madrid", &["09:00-18:00"], &[], &[]);
        let l = h.local(t("2026-12-28T08:00:00Z")).expect("local");
        assert_eq!((l.year, l.month, l.day, l.weekday, l.hour, l.minute, l.zone.as_str()), (2026, 12, 28, 0, 9, 0, "CET"));
        assert_eq!(h.local(t("2026-12-29T08:00:00Z")).map(|m| m.day_number - l.day_number), Some(1));
        assert_eq!(BusinessHours::always_open().local(t("2026-12-28T08:00:00Z")), None);
    }
}
