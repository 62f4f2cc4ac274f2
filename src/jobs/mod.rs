//! Background jobs — the seed's Celery tasks — on an in-process scheduler with cron schedules.
//!
//! Every run of a job is claimed by inserting its (job, scheduled time) row into `job_runs`: with
//! several instances on one database each run happens exactly once, and its outcome is kept for
//! `healthcore jobs list`. A failing run is retried with a doubling pause (three attempts), then
//! recorded as failed, logged at `ERROR` and counted — never dropped silently.

mod work;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::Config;
use crate::shutdown::Shutdown;
use crate::store::jobs::{Attempt, RunStatus};
use crate::store::{self, Store};
use crate::telemetry::metrics::{JobLabels, JobOutcomeLabels, Metrics};

/// Attempts at one run before it is recorded as failed.
pub const MAX_ATTEMPTS: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Job {
    AppointmentReminders,
    NoShowPastAppointments,
    OutboxRetention,
    IdempotencyKeyExpiry,
    InboxRetention,
    WebhookRetention,
    NotificationRetention,
    DeadLetterRetention,
    JobRunRetention,
    AuditPartitions,
}

impl Job {
    pub const ALL: [Job; 10] = [
        Job::AppointmentReminders,
        Job::NoShowPastAppointments,
        Job::OutboxRetention,
        Job::IdempotencyKeyExpiry,
        Job::InboxRetention,
        Job::WebhookRetention,
        Job::NotificationRetention,
        Job::DeadLetterRetention,
        Job::JobRunRetention,
        Job::AuditPartitions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Job::AppointmentReminders => "appointment_reminders",
            Job::NoShowPastAppointments => "no_show_past_appointments",
            Job::OutboxRetention => "outbox_retention",
            Job::IdempotencyKeyExpiry => "idempotency_key_expiry",
            Job::InboxRetention => "inbox_retention",
            Job::WebhookRetention => "webhook_retention",
            Job::NotificationRetention => "notification_retention",
            Job::DeadLetterRetention => "dead_letter_retention",
            Job::JobRunRetention => "job_run_retention",
            Job::AuditPartitions => "audit_partitions",
        }
    }

    pub fn parse(name: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|job| job.name() == name)
    }

    /// When it runs: cron with seconds (`sec min hour day-of-month month day-of-week`), UTC.
    pub fn schedule(self) -> &'static str {
        match self {
            Job::AppointmentReminders => "0 */5 * * * *",
            Job::NoShowPastAppointments => "0 7,37 * * * *",
            Job::OutboxRetention => "0 * * * * *",
            Job::IdempotencyKeyExpiry => "0 17 * * * *",
            // Hourly like every job (the HealthCoreJobNotSucceeding alert counts on it): each run
            // then has an hour's rows to remove, an index range away.
            Job::InboxRetention => "0 23 * * * *",
            Job::WebhookRetention => "0 29 * * * *",
            Job::NotificationRetention => "0 31 * * * *",
            Job::DeadLetterRetention => "0 41 * * * *",
            Job::JobRunRetention => "0 47 * * * *",
            Job::AuditPartitions => "0 53 * * * *",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Job::AppointmentReminders => {
                "appointment.reminder_due once per booked appointment starting within HEALTHCORE_REMINDER_WINDOW_HOURS"
            }
            Job::NoShowPastAppointments => {
                "marks booked appointments that ended HEALTHCORE_NO_SHOW_AFTER_HOURS ago as no_show (with its event)"
            }
            Job::OutboxRetention => "removes published events older than HEALTHCORE_OUTBOX_RETENTION_HOURS",
            Job::IdempotencyKeyExpiry => "removes expired Idempotency-Key records",
            Job::InboxRetention => "removes consumer inbox entries older than HEALTHCORE_INBOX_RETENTION_HOURS",
            Job::WebhookRetention => {
                "removes delivered webhooks older than HEALTHCORE_WEBHOOK_RETENTION_DAYS and given-up ones older than HEALTHCORE_DEAD_LETTER_RETENTION_DAYS"
            }
            Job::NotificationRetention => {
                "removes notifications no longer awaiting their webhook, and sent-reminder marks, older than HEALTHCORE_NOTIFICATION_RETENTION_DAYS"
            }
            Job::DeadLetterRetention => "removes dead letters older than HEALTHCORE_DEAD_LETTER_RETENTION_DAYS",
            Job::JobRunRetention => "removes finished job runs older than HEALTHCORE_JOB_RUN_RETENTION_DAYS",
            Job::AuditPartitions => {
                "PostgreSQL: creates the audit trail's partitions for this month and the next two (SQLite has none)"
            }
        }
    }

    fn cron(self) -> cron::Schedule {
        cron::Schedule::from_str(self.schedule()).expect("job schedules are valid cron expressions (tested)")
    }

    /// The first scheduled time after `after`.
    pub fn next_after(self, after: DateTime<Utc>) -> DateTime<Utc> {
        self.cron().after(&after).next().unwrap_or(after + chrono::Duration::days(1))
    }
}

/// How a claimed run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    Succeeded(String),
    Failed(String),
    /// Another instance (or an earlier call) claimed this run.
    AlreadyClaimed,
    /// Shutdown came before the run could finish; it is recorded as failed.
    Interrupted,
}

pub struct Scheduler {
    store: Store,
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    clock: Clock,
}

impl Scheduler {
    pub fn new(store: Store, config: Arc<Config>, metrics: Arc<Metrics>) -> Scheduler {
        Scheduler { store, config, metrics, clock: Clock::default() }
    }

    /// Reads `clock` instead of a clock of its own: the application's, which a test can move.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Runs every job on its schedule until `shutdown`.
    pub async fn run(self, mut shutdown: Shutdown) {
        let now = self.clock.now();
        let mut next: Vec<(Job, DateTime<Utc>)> = Job::ALL.iter().map(|job| (*job, job.next_after(now))).collect();
        loop {
            let Some((index, at)) = next.iter().enumerate().min_by_key(|(_, (_, at))| *at).map(|(i, (_, at))| (i, *at))
            else {
                return;
            };
            let wait = (at - self.clock.now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.recv() => return,
            }
            let job = next[index].0;
            self.run_once(job, at, &mut shutdown).await;
            next[index].1 = job.next_after(at.max(self.clock.now()));
        }
    }

    /// Claims the run of `job` scheduled for `at` and performs it, retrying failures.
    pub async fn run_once(&self, job: Job, at: DateTime<Utc>, shutdown: &mut Shutdown) -> RunOutcome {
        match store::jobs::claim(self.store.db(), job.name(), at, self.clock.now()).await {
            Ok(true) => {}
            Ok(false) => return RunOutcome::AlreadyClaimed,
            Err(err) => {
                tracing::warn!(job = job.name(), error = %err, "could not claim a job run; the next one will try");
                self.count(job, "unclaimed");
                return RunOutcome::Failed(err.to_string());
            }
        }
        // Three attempts at most, so the pause needs no cap of its own.
        let mut backoff = Backoff::new(Duration::from_millis(self.config.jobs.retry_ms), Duration::MAX);
        for attempt in 1..=MAX_ATTEMPTS {
            let started = Instant::now();
            let span = tracing::info_span!("job.run", otel.name = %format_args!("job {}", job.name()), job = job.name(), attempt);
            let result = work::perform(job, &self.store, &self.config, at, self.clock.now()).instrument(span).await;
            let metrics = &self.metrics.jobs;
            metrics
                .duration
                .get_or_create(&JobLabels { job_name: job.name() })
                .observe(started.elapsed().as_secs_f64());
            let error = match result {
                Ok(summary) => {
                    let done = Attempt {
                        status: RunStatus::Succeeded,
                        attempts: attempt,
                        error: None,
                        summary: Some(&summary),
                    };
                    self.record(job, at, done).await;
                    self.count(job, RunStatus::Succeeded.as_str());
                    let now = self.clock.now().timestamp() as f64;
                    metrics.last_success.get_or_create(&JobLabels { job_name: job.name() }).set(now);
                    tracing::info!(job = job.name(), attempt, summary = %summary, "job run succeeded");
                    return RunOutcome::Succeeded(summary);
                }
                Err(err) => format!("{err:#}"),
            };
            if attempt == MAX_ATTEMPTS {
                self.record(
                    job,
                    at,
                    Attempt { status: RunStatus::Failed, attempts: attempt, error: Some(&error), summary: None },
                )
                .await;
                self.count(job, RunStatus::Failed.as_str());
                tracing::error!(job = job.name(), attempts = attempt, error = %error, "job run failed");
                return RunOutcome::Failed(error);
            }
            self.record(
                job,
                at,
                Attempt { status: RunStatus::Running, attempts: attempt, error: Some(&error), summary: None },
            )
            .await;
            self.count(job, "retried");
            let pause = backoff.next_pause();
            let retry_in_ms = pause.as_millis() as u64;
            tracing::warn!(job = job.name(), attempt, error = %error, retry_in_ms, "job run failed; retrying");
            let interrupted = tokio::select! {
                _ = tokio::time::sleep(pause) => false,
                _ = shutdown.recv() => true,
            };
            if interrupted {
                let stopped = Some("interrupted by shutdown");
                self.record(
                    job,
                    at,
                    Attempt { status: RunStatus::Failed, attempts: attempt, error: stopped, summary: None },
                )
                .await;
                self.count(job, RunStatus::Failed.as_str());
                return RunOutcome::Interrupted;
            }
        }
        RunOutcome::Interrupted
    }

    /// Keeps the run's row up to date; a failure to write it is logged, the run goes on.
    async fn record(&self, job: Job, at: DateTime<Utc>, attempt: Attempt<'_>) {
        if let Err(err) = store::jobs::record(self.store.db(), job.name(), at, attempt, self.clock.now()).await {
            tracing::warn!(job = job.name(), error = %err, "could not record a job run");
        }
    }

    /// `outcome`: how the run ended (a `RunStatus`), or `retried`, or `unclaimed` (another instance ran it).
    fn count(&self, job: Job, outcome: &'static str) {
        self.metrics.jobs.runs.get_or_create(&JobOutcomeLabels { job_name: job.name(), outcome }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schedule_parses_and_comes_round() {
        let now = crate::clock::now();
        for job in Job::ALL {
            let next = job.next_after(now);
            assert!(next > now && next - now <= chrono::Duration::hours(1), "{}: {next}", job.name());
            assert_eq!(Job::parse(job.name()), Some(job));
        }
    }
}
