//! The current time, in one place and at one precision. It sits below every other module so the
//! domain's callers, the store, the jobs, the relay and the consumers all read the same clock.

use chrono::{DateTime, Utc};

/// The current time at the precision both databases keep (microseconds), so a value read back
/// equals the value written.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
