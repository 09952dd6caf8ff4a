//! The per-event metrics of Socket.IO events, with their handles resolved
//! once: looking a labelled series up by name costs a hash, a lock and an
//! allocation for the label, on every event of every socket.

use metrics::{Counter, Histogram};
use std::sync::OnceLock;

/// The events clients may send; any other name counts as `unknown`, so that
/// a client-chosen name never becomes a series (or a span name) of its own.
const NAMES: [&str; 9] = [
    "conversation:join",
    "conversation:leave",
    "message:send",
    "message:read",
    "conversation:rate",
    "typing:start",
    "typing:stop",
    "presence:set",
    "unknown",
];

/// The series of one event name.
pub(super) struct EventMetrics {
    /// The label: a known name, or `unknown`.
    pub(super) label: &'static str,
    /// `socket_events_total{event}`.
    pub(super) counted: Counter,
    /// `socket_event_duration_seconds{event}`: the handler's own time.
    pub(super) timed: Histogram,
    /// `socket_ack_duration_seconds{event}`: from the event's arrival to its
    /// ack, a durable write's wait included.
    pub(super) acked: Histogram,
}

/// Resolved on the first event, when the server has installed its recorder.
static METRICS: OnceLock<Vec<EventMetrics>> = OnceLock::new();

/// The series of the event `name`.
pub(super) fn of(name: &str) -> &'static EventMetrics {
    let all = METRICS.get_or_init(|| {
        NAMES
            .iter()
            .map(|&label| EventMetrics {
                label,
                counted: metrics::counter!("socket_events_total", "event" => label),
                timed: metrics::histogram!("socket_event_duration_seconds", "event" => label),
                acked: metrics::histogram!("socket_ack_duration_seconds", "event" => label),
            })
            .collect()
    });
    let i = NAMES.iter().position(|n| *n == name).unwrap_or(NAMES.len() - 1);
    &all[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_keep_their_label_and_others_are_unknown() {
        assert_eq!(of("message:send").label, "message:send");
        assert_eq!(of("typing:stop").label, "typing:stop");
        assert_eq!(of("unknown").label, "unknown");
        assert_eq!(of("Message:Send").label, "unknown");
        assert_eq!(of("").label, "unknown");
    }
}
