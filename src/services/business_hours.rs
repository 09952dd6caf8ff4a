//! Business hours now: whether the business is open and when that changes,
//! from the calendar the configuration describes (always open without one).

use utalk_storage::{BusinessHours, Timestamp};

/// Whether the business is open at a time, and when that changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursNow {
    /// The time asked about.
    pub now: Timestamp,
    /// Open then.
    pub open: bool,
    /// When it next opens (after the current opening, when open); none when always open or no opening is in sight.
    pub next_opening: Option<Timestamp>,
    /// When the current opening ends; none when closed or always open.
    pub closes_at: Option<Timestamp>,
}

/// The state of `hours` at `now`.
pub fn at(hours: &BusinessHours, now: Timestamp) -> HoursNow {
    HoursNow { now, open: hours.is_open(now), next_opening: hours.next_opening(now), closes_at: hours.closes_at(now) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_closed_and_always_open() {
        let d = vec!["09:00-18:00".to_string()];
        let none = Vec::new();
        let h = BusinessHours::new("Europe/Madrid", [&d, &d, &d, &d, &d, &none, &none], &[]).unwrap();
        let t = |s| Timestamp::parse_rfc3339(s).unwrap();
        let closed = at(&h, t("2026-01-17T10:00:00Z"));
        assert_eq!((closed.open, closed.next_opening, closed.closes_at), (false, Some(t("2026-01-19T08:00:00Z")), None));
        let open = at(&h, t("2026-01-19T10:00:00Z"));
        assert_eq!(
            (open.open, open.next_opening, open.closes_at),
            (true, Some(t("2026-01-20T08:00:00Z")), Some(t("2026-01-19T17:00:00Z")))
        );
        let always = at(&BusinessHours::always_open(), t("2026-01-17T10:00:00Z"));
        assert_eq!((always.open, always.next_opening, always.closes_at), (true, None, None));
    }
}
