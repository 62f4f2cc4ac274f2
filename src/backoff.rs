//! The one retry pause policy: the first pause, doubling after each failure, never longer than a
//! cap. The relay, the consumers, the dead-letter writer, the webhook worker and the jobs all use
//! it, each with its own first pause and cap.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, cap: Duration) -> Backoff {
        Backoff { first, cap, next: first }
    }

    /// The pause before the next attempt; the one after it is twice as long (up to the cap).
    pub fn next_pause(&mut self) -> Duration {
        let pause = self.next;
        self.next = self.next.saturating_mul(2).min(self.cap);
        pause
    }

    /// After a success: the next failure waits the first pause again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The pause after `failures` failures in a row (1: the first pause), for retries whose
    /// schedule is kept in the database rather than in a running loop.
    pub fn after_failures(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.first.saturating_mul(1 << doublings).min(self.cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_up_to_the_cap_and_start_over_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let pauses: Vec<u128> = (0..4).map(|_| backoff.next_pause().as_millis()).collect();
        assert_eq!(pauses, [100, 200, 350, 350]);
        backoff.reset();
        assert_eq!(backoff.next_pause(), Duration::from_millis(100));
    }

    #[test]
    fn the_pause_after_n_failures_matches_the_running_loop() {
        let policy = Backoff::new(Duration::from_secs(1), Duration::from_secs(3600));
        let mut running = policy;
        for failures in 1..=20 {
            assert_eq!(policy.after_failures(failures), running.next_pause(), "after {failures} failures");
        }
        assert_eq!(policy.after_failures(1000), Duration::from_secs(3600));
    }
}
