//! Pace for background work that runs beside the live load (data
//! migrations, the search index backfill): after each step it pauses long
//! enough that its steps take at most a given share of the time.

use std::time::Duration;

/// Longest pause: a slow step does not leave the work idle for long.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The pause after a step that took `step`, so that steps take at most
/// `duty` (clamped to 0.01 to 1) of the time.
pub fn pause_after(duty: f64, step: Duration) -> Duration {
    let duty = duty.clamp(0.01, 1.0);
    step.mul_f64((1.0 - duty) / duty).min(MAX_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_keeps_the_steps_to_their_share_of_the_time() {
        assert_eq!(pause_after(0.25, Duration::from_millis(10)), Duration::from_millis(30));
        assert_eq!(pause_after(1.0, Duration::from_millis(10)), Duration::ZERO);
        assert_eq!(pause_after(0.0, Duration::from_secs(1)), MAX_PAUSE, "bounded");
    }
}
