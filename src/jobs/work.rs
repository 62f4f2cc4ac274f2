//! What each job does. Changes are made as HealthCore itself: no actor in their events
//! (`metadata.actor_id` and `actor_role` are null) and audit records, and a correlation ID naming the
//! job run, so a run can be followed through logs, audit trail and events.

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};

use super::Job;
use crate::audit::{AuditAction, AuditRecord, Subject};
use crate::config::Config;
use crate::domain::audit::Month;
use crate::domain::{Appointment, AppointmentId, AppointmentStatus};
use crate::events::{self, Envelope, EventType};
use crate::store::{self, Backend, Store, WriteTx, retention};

/// Rows handled per query, so one run never holds a huge result in memory.
const BATCH: u64 = 500;

/// Runs `job`, scheduled for `at`, as of `now` (the scheduler's clock).
pub async fn perform(
    job: Job,
    store: &Store,
    config: &Config,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<String> {
    let correlation_id = format!("job-{}-{}", job.name(), at.format("%Y%m%dT%H%M%SZ"));
    match job {
        Job::AppointmentReminders => {
            let window = Duration::hours(config.jobs.reminder_window_hours);
            let sent = send_reminders(store, now, now + window, &correlation_id).await?;
            Ok(format!("{sent} reminders"))
        }
        Job::NoShowPastAppointments => {
            let cutoff = now - Duration::hours(config.jobs.no_show_after_hours);
            let marked = mark_no_shows(store, cutoff, now, &correlation_id).await?;
            Ok(format!("{marked} marked no_show"))
        }
        Job::OutboxRetention => {
            let cutoff = now - Duration::hours(config.relay.retention_hours);
            let removed = store::outbox::delete_published_before(store.db(), cutoff).await?;
            Ok(format!("{removed} published events removed"))
        }
        Job::IdempotencyKeyExpiry => {
            let removed = store::idempotency::delete_expired(store.db(), now).await?;
            Ok(format!("{removed} expired keys removed"))
        }
        Job::InboxRetention => {
            let cutoff = now - Duration::hours(config.retention.inbox_hours);
            let removed = retention::delete_inbox_entries_before(store.db(), cutoff).await?;
            Ok(format!("{removed} inbox entries removed"))
        }
        Job::WebhookRetention => {
            let (delivered, failed) =
                (Duration::days(config.retention.webhook_days), Duration::days(config.retention.dead_letter_days));
            let removed = retention::delete_finished_deliveries(store.db(), now - delivered, now - failed).await?;
            Ok(format!("{removed} finished webhook deliveries removed"))
        }
        Job::NotificationRetention => {
            let cutoff = now - Duration::days(config.retention.notification_days);
            let notifications = retention::delete_notifications_before(store.db(), cutoff).await?;
            let marks = retention::delete_reminder_marks_before(store.db(), cutoff).await?;
            Ok(format!("{notifications} notifications and {marks} reminder marks removed"))
        }
        Job::DeadLetterRetention => {
            let cutoff = now - Duration::days(config.retention.dead_letter_days);
            let removed = retention::delete_dead_letters_before(store.db(), cutoff).await?;
            Ok(format!("{removed} dead letters removed"))
        }
        Job::AuditPartitions => {
            if store.backend() != Backend::Postgres {
                return Ok("SQLite keeps the audit trail in one table".into());
            }
            let months = [Month::of(now), Month::of(now).next(), Month::of(now).next().next()];
            for month in months {
                store::audit::ensure_partition(store.db(), month).await?;
            }
            Ok(format!("audit partitions {} to {} in place", months[0], months[2]))
        }
        Job::JobRunRetention => {
            let cutoff = now - Duration::days(config.retention.job_run_days);
            let removed = retention::delete_job_runs_before(store.db(), cutoff).await?;
            Ok(format!("{removed} finished job runs removed"))
        }
    }
}

async fn send_reminders(
    store: &Store,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    correlation_id: &str,
) -> anyhow::Result<usize> {
    let mut sent = 0;
    loop {
        let due = store::jobs::reminders_due(store.db(), from, to, BATCH).await?;
        let batch = due.len();
        for candidate in due {
            if send_reminder(store, &candidate, correlation_id, from).await? {
                sent += 1;
            }
        }
        if (batch as u64) < BATCH {
            return Ok(sent);
        }
    }
}

/// Sends `candidate`'s reminder, in a transaction of its own, unless it needs none any more;
/// whether it was sent.
async fn send_reminder(
    store: &Store,
    candidate: &Appointment,
    correlation_id: &str,
    from: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let tx = store.begin_write().await?;
    let sent: anyhow::Result<bool> = async {
        let Some(envelope) = reminder_due(&tx, candidate, correlation_id, from).await? else {
            return Ok(false);
        };
        store::outbox::append(&tx, std::slice::from_ref(&envelope), current_traceparent().as_deref()).await?;
        tx.note_events_recorded([EventType::AppointmentReminderDue]);
        Ok(true)
    }
    .await;
    // Ended, not dropped, on an error too (`WriteTx::end`): a dropped transaction counts as an
    // interruption and has the next connections released pinged.
    tx.end(sent).await.context("sending a reminder")
}

/// The reminder event of `candidate`, noted as sent in `tx`, if under its row lock it is still
/// booked at the time it was found for, and not reminded of already.
async fn reminder_due(
    tx: &WriteTx,
    candidate: &Appointment,
    correlation_id: &str,
    from: DateTime<Utc>,
) -> anyhow::Result<Option<Envelope>> {
    // Re-read under the row lock: it may have been cancelled or moved meanwhile.
    let Some(appointment) = store::appointments::find_for_update(tx, candidate.id()).await? else {
        return Ok(None);
    };
    if appointment.status() != AppointmentStatus::Booked || appointment.slot().start() != candidate.slot().start() {
        return Ok(None);
    }
    let envelope = Envelope::system(events::appointment_reminder_due(&appointment), correlation_id, from);
    let noted = store::jobs::note_reminder(
        tx,
        appointment.id(),
        appointment.slot().start(),
        envelope.event_id,
        envelope.timestamp,
    )
    .await?;
    Ok(noted.then_some(envelope))
}

/// How much of the past one statement of the no-show job looks through: a day of a hospital's
/// appointments, bounded however far back the job has to start.
const NO_SHOW_WINDOW: Duration = Duration::days(1);

/// Marks booked appointments that ended before `cutoff` no-show, a window of end times at a time
/// from where the job got to last time (the earliest appointment before the first run, or
/// after `jobs run --from-the-start`); each finished window is recorded, so a run cut short
/// resumes there.
async fn mark_no_shows(
    store: &Store,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    correlation_id: &str,
) -> anyhow::Result<usize> {
    let job = Job::NoShowPastAppointments.name();
    let swept = match store::jobs::swept_before(store.db(), job).await? {
        Some(swept) => Some(swept),
        None => store::appointments::earliest_start(store.db()).await?,
    };
    // With no appointment at all, nothing ended before the cutoff.
    let mut from = swept.unwrap_or(cutoff);
    let mut marked = 0;
    loop {
        let until = (from + NO_SHOW_WINDOW).min(cutoff);
        if from < until {
            marked += mark_no_shows_ended_in(store, from..until, cutoff, now, correlation_id).await?;
        }
        // No booked appointment that ended before `until` is left, and none can appear: bookings
        // and reschedules are for the future, and the cutoff lies at least an hour back. So no run
        // need look further back than this. (Appointments written into the table directly, with an
        // end before it, are found by `healthcore jobs run no_show_past_appointments --from-the-start`.)
        store::jobs::note_swept(store.db(), job, until, now).await?;
        if until >= cutoff {
            return Ok(marked);
        }
        from = until;
    }
}

async fn mark_no_shows_ended_in(
    store: &Store,
    ended: std::ops::Range<DateTime<Utc>>,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    correlation_id: &str,
) -> anyhow::Result<usize> {
    let mut marked = 0;
    loop {
        let overdue = store::appointments::overdue_booked(store.db(), ended.clone(), BATCH).await?;
        let batch = overdue.len();
        for id in overdue {
            if mark_no_show(store, id, cutoff, now, correlation_id).await? {
                marked += 1;
            }
        }
        if (batch as u64) < BATCH {
            return Ok(marked);
        }
    }
}

/// Marks appointment `id` no-show, in a transaction of its own, if under its row lock it is still
/// booked and ended before `cutoff`; whether it was marked.
async fn mark_no_show(
    store: &Store,
    id: AppointmentId,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    correlation_id: &str,
) -> anyhow::Result<bool> {
    let tx = store.begin_write().await?;
    let marked: anyhow::Result<bool> = async {
        // Re-read under the row lock: it may have been cancelled, concluded or moved meanwhile.
        let overdue = store::appointments::find_for_update(&tx, id).await?.filter(|appointment| {
            appointment.status() == AppointmentStatus::Booked && appointment.slot().end() < cutoff
        });
        let Some(mut appointment) = overdue else {
            return Ok(false);
        };
        appointment.conclude(AppointmentStatus::NoShow, now).context("marking an overdue appointment no-show")?;
        store::appointments::update(&tx, &appointment).await?;
        let subject = Subject::appointment(appointment.id(), appointment.patient_id());
        let record = AuditRecord::system(AuditAction::AppointmentNoShow, subject, correlation_id, now);
        store::audit::append(&tx, &[record]).await?;
        let event = events::appointment(EventType::AppointmentNoShow, &appointment);
        let traceparent = current_traceparent();
        store::outbox::append(&tx, &[Envelope::system(event, correlation_id, now)], traceparent.as_deref()).await?;
        tx.note_events_recorded([EventType::AppointmentNoShow]);
        Ok(true)
    }
    .await;
    // Ended, not dropped, on an error too, as `send_reminder`'s.
    tx.end(marked).await.context("marking a no-show")
}

/// The trace context of the job's run, stored with the events it records.
fn current_traceparent() -> Option<String> {
    crate::telemetry::traces::traceparent(&tracing::Span::current())
}
