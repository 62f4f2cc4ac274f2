//! The current time, in one place and at one precision. It sits below every other module so the
//! domain's callers, the store, the jobs, the relay and the consumers all read the same clock.
//!
//! `Clock` is the application's: every request reads it (`AppState::clock`, `RequestContext::clock`),
//! and so do the workers `app` starts beside them (relay, consumers, webhook deliveries, job
//! scheduler: each `with_clock`), so a test can move it forward to see what happens later (an
//! appointment that has started, a job that finds it overdue) without waiting. `now()` is a clock
//! no one moved, for the command line, token times and operators' audit records.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Duration, Utc};

/// The current time at the precision both databases keep (microseconds), so a value read back
/// equals the value written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The application's clock: the process's time, moved by however far a test advanced it. Clones
/// share one offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_micros: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        now() + Duration::microseconds(self.offset_micros.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let micros = by.num_microseconds().expect("an advance of less than 292,000 years");
        self.offset_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_is_ahead_by_the_advance_and_its_clones_with_it() {
        let clock = Clock::default();
        let clone = clock.clone();
        clock.advance(Duration::hours(2));
        let ahead = clone.now() - now();
        assert!(ahead > Duration::minutes(119) && ahead <= Duration::hours(2), "{ahead}");
        assert_eq!(clone.now().timestamp_subsec_nanos() % 1000, 0, "microsecond precision");
    }
}
