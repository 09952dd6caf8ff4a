//! What the bot says outside business hours: when the business opens, in
//! the customer's language and the workspace's zone, and whether a
//! conversation has heard it already this closed period (the note goes
//! with the bot's first answer of each closed period, not with every one).

use crate::bot::knowledge::Lang;
use std::collections::HashMap;
use std::sync::Mutex;
use utalk_storage::{BusinessHours, Timestamp};
use uuid::Uuid;

const DAYS_ES: [&str; 7] = ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"];
const DAYS_EN: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const MONTHS_EN: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Conversations remembered as told; past this, those whose closed period is over are forgotten first.
const MAX_TOLD: usize = 100_000;

/// The next opening for `{opens}`: "hoy a las 09:00 (CET)", "tomorrow at
/// 09:00 (CET)", "el lunes a las 09:00 (CET)", "on Monday 28 Dec at 09:00
/// (CET)" (a date past the coming week); "más adelante" / "later" when no
/// opening is known.
pub fn opens_text(hours: &BusinessHours, now: Timestamp, opens: Option<Timestamp>, lang: Lang) -> String {
    let (Some(at), Some(today)) = (opens.and_then(|o| hours.local(o)), hours.local(now)) else {
        return if lang == Lang::En { "later".into() } else { "más adelante".into() };
    };
    let time = format!("{:02}:{:02} ({})", at.hour, at.minute, at.zone);
    let days = at.day_number - today.day_number;
    let weekday = at.weekday as usize % 7;
    match (lang, days) {
        (Lang::Es, 0) => format!("hoy a las {time}"),
        (Lang::Es, 1) => format!("mañana a las {time}"),
        (Lang::Es, 2..=6) => format!("el {} a las {time}", DAYS_ES[weekday]),
        (Lang::Es, _) => format!("el {} {}/{} a las {time}", DAYS_ES[weekday], at.day, at.month),
        (Lang::En, 0) => format!("today at {time}"),
        (Lang::En, 1) => format!("tomorrow at {time}"),
        (Lang::En, 2..=6) => format!("on {} at {time}", DAYS_EN[weekday]),
        (Lang::En, _) => {
            let month = MONTHS_EN[(at.month as usize).saturating_sub(1) % 12];
            format!("on {} {} {month} at {time}", DAYS_EN[weekday], at.day)
        }
    }
}

/// The conversations told of the current closed period, by the opening they were told of.
#[derive(Default)]
pub struct Told {
    told: Mutex<HashMap<Uuid, Option<Timestamp>>>,
}

impl Told {
    /// Whether `conversation` has not yet heard of the closed period that
    /// ends at `opens`; it counts as told from now on. A restart forgets,
    /// so a customer may hear it once more.
    pub fn first_time(&self, conversation: Uuid, opens: Option<Timestamp>, now: Timestamp) -> bool {
        let Ok(mut told) = self.told.lock() else { return true };
        if told.get(&conversation) == Some(&opens) {
            return false;
        }
        if told.len() >= MAX_TOLD {
            told.retain(|_, o| o.is_some_and(|o| o > now));
            if told.len() >= MAX_TOLD {
                told.clear();
            }
        }
        told.insert(conversation, opens);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("a time")
    }

    fn madrid() -> BusinessHours {
        let d = vec!["09:00-18:00".to_string()];
        let none = Vec::new();
        BusinessHours::new("Europe/Madrid", [&d, &d, &d, &d, &d, &none, &none], &[]).expect("valid")
    }

    #[test]
    fn the_opening_reads_naturally_in_both_languages() {
        let h = madrid();
        // Thursday 2026-12-24, 20:00 in Madrid.
        let now = t("2026-12-24T19:00:00Z");
        let at = |s| Some(t(s));
        assert_eq!(opens_text(&h, now, at("2026-12-24T21:00:00Z"), Lang::Es), "hoy a las 22:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2026-12-25T08:00:00Z"), Lang::Es), "mañana a las 09:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2026-12-25T08:00:00Z"), Lang::En), "tomorrow at 09:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2026-12-28T08:00:00Z"), Lang::Es), "el lunes a las 09:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2026-12-28T08:00:00Z"), Lang::En), "on Monday at 09:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2027-01-04T08:00:00Z"), Lang::Es), "el lunes 4/1 a las 09:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2027-01-04T08:00:00Z"), Lang::En), "on Monday 4 Jan at 09:00 (CET)");
        assert_eq!(opens_text(&h, now, at("2027-07-05T07:00:00Z"), Lang::En), "on Monday 5 Jul at 09:00 (CEST)");
        assert_eq!(opens_text(&h, now, None, Lang::Es), "más adelante");
        assert_eq!(opens_text(&BusinessHours::always_open(), now, at("2026-12-25T08:00:00Z"), Lang::En), "later");
    }

    #[test]
    fn each_closed_period_is_told_once_per_conversation() {
        let told = Told::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let now = t("2026-12-24T19:00:00Z");
        let tomorrow = Some(t("2026-12-25T08:00:00Z"));
        assert!(told.first_time(a, tomorrow, now));
        assert!(!told.first_time(a, tomorrow, now));
        assert!(told.first_time(b, tomorrow, now), "another conversation");
        assert!(told.first_time(a, Some(t("2026-12-26T08:00:00Z")), now), "the next closed period");
    }
}
