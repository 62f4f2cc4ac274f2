//! The retention jobs remove what their setting lets go and nothing else: each table keeps every
//! row younger than its retention, pending work is never removed, and the audit trail is never
//! touched. Time moves by the application's clock, which stamps the rows and which the jobs read.

use std::sync::Arc;

use chrono::Duration;
use healthcore::testing::jobs::{Job, RunOutcome, Scheduler};
use healthcore::testing::store::consumers::{DeadLetter, add_dead_letter};
use healthcore::testing::store::entities::{
    appointment_reminder, audit_event, consumer_inbox, dead_letter, job_run, notification, webhook_delivery,
};
use healthcore::testing::{shutdown, store::Store};
use sea_orm::{EntityTrait, PaginatorTrait};

use crate::helpers::{Backend, TestApp, booking, test_config};
use crate::on_both_backends;
use crate::webhook_receiver::WebhookReceiver;

const RETENTION_JOBS: [Job; 5] = [
    Job::InboxRetention,
    Job::WebhookRetention,
    Job::NotificationRetention,
    Job::DeadLetterRetention,
    Job::JobRunRetention,
];

/// Rows per table, in the order the retention ages below grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    job_runs: u64,
    inbox: u64,
    deliveries: u64,
    notifications: u64,
    reminder_marks: u64,
    dead_letters: u64,
    audit: u64,
}

async fn counts(store: &Store) -> Counts {
    let db = store.db();
    Counts {
        job_runs: job_run::Entity::find().count(db).await.unwrap(),
        inbox: consumer_inbox::Entity::find().count(db).await.unwrap(),
        deliveries: webhook_delivery::Entity::find().count(db).await.unwrap(),
        notifications: notification::Entity::find().count(db).await.unwrap(),
        reminder_marks: appointment_reminder::Entity::find().count(db).await.unwrap(),
        dead_letters: dead_letter::Entity::find().count(db).await.unwrap(),
        audit: audit_event::Entity::find().count(db).await.unwrap(),
    }
}

/// Runs every retention job as the scheduler would at the application clock's time; returns the
/// job runs this added (one each).
async fn run_retention(jobs: &Scheduler, app: &TestApp) -> u64 {
    let (_stop, mut stopping) = shutdown::channel();
    for job in RETENTION_JOBS {
        let outcome = jobs.run_once(job, app.clock.now(), &mut stopping).await;
        assert!(matches!(outcome, RunOutcome::Succeeded(_)), "{}: {outcome:?}", job.name());
    }
    RETENTION_JOBS.len() as u64
}

async fn each_retention_job_removes_only_what_its_setting_lets_go(backend: Backend) {
    let receiver = WebhookReceiver::start().await;
    let webhook = receiver.url("/notify");
    let settings = [
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL", webhook.as_str()),
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", "retention-test-secret-012"),
        // A refused webhook stays pending through every step below (one retry per step at most).
        ("HEALTHCORE_WEBHOOK_MAX_ATTEMPTS", "50"),
        ("HEALTHCORE_WEBHOOK_RETRY_MS", "3600000"),
        // Growing ages, so each step below lets exactly one more kind of row go.
        ("HEALTHCORE_JOB_RUN_RETENTION_DAYS", "5"),
        ("HEALTHCORE_INBOX_RETENTION_HOURS", "200"),
        ("HEALTHCORE_WEBHOOK_RETENTION_DAYS", "10"),
        ("HEALTHCORE_NOTIFICATION_RETENTION_DAYS", "20"),
        ("HEALTHCORE_DEAD_LETTER_RETENTION_DAYS", "40"),
    ];
    let app = TestApp::spawn_with(backend, &settings).await;
    let jobs =
        Scheduler::new(app.store.clone(), Arc::new(test_config(&app.database_url(), &settings)), app.metrics.clone())
            .with_clock(app.clock.clone());

    // Day 0: a booking (inbox entries, a delivered notification webhook), its reminder (a mark and
    // another notification), a dead letter, and the first job runs.
    let practitioner = app.create_practitioner("LIC-KEEP").await;
    let patient = app.create_patient("Kept", "Long").await;
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 12, 30)).await.expect(201);
    let (_stop, mut stopping) = shutdown::channel();
    assert!(matches!(
        jobs.run_once(Job::AppointmentReminders, app.clock.now(), &mut stopping).await,
        RunOutcome::Succeeded(summary) if summary == "1 reminders"
    ));
    app.events_settled().await;
    receiver.wait_for("/notify", 2).await;
    crate::helpers::eventually("both notification webhooks delivered", || async {
        let deliveries = webhook_delivery::Entity::find().all(app.store.db()).await.unwrap();
        (deliveries.len() == 2 && deliveries.iter().all(|d| d.status == "delivered")).then_some(())
    })
    .await;
    // A third notification whose webhook the receiver refuses: pending, so never removed.
    receiver.answer_always(503);
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 48, 30)).await.expect(201);
    app.events_settled().await;
    receiver.wait_for("/notify", 3).await;
    let letter = DeadLetter {
        consumer_group: "analytics".into(),
        event_id: None,
        event_type: None,
        payload: "not an event".into(),
        error: "unreadable".into(),
        failed_at: app.clock.now(),
    };
    add_dead_letter(app.store.db(), &letter).await.unwrap();
    let day_0 = counts(&app.store).await;
    assert!(day_0.inbox > 0 && day_0.audit > 0, "{day_0:?}");
    assert_eq!((day_0.deliveries, day_0.notifications, day_0.reminder_marks, day_0.dead_letters), (3, 3, 1, 1));
    assert_eq!(day_0.job_runs, 1);

    // Day 4: younger than every retention; nothing goes, and this step's own runs are recorded.
    app.clock.advance(Duration::days(4));
    let step = run_retention(&jobs, &app).await;
    let day_4 = counts(&app.store).await;
    assert_eq!(day_4, Counts { job_runs: day_0.job_runs + step, ..day_0 });

    // Day 6: day 0's job run is older than 5 days; day 4's are not.
    app.clock.advance(Duration::days(2));
    run_retention(&jobs, &app).await;
    let day_6 = counts(&app.store).await;
    assert_eq!(day_6, Counts { job_runs: 2 * step, ..day_0 });

    // Every later step keeps its own runs and the previous step's. Day 9 (216 hours): the inbox
    // entries are older than 200 hours.
    app.clock.advance(Duration::days(3));
    run_retention(&jobs, &app).await;
    let day_9 = counts(&app.store).await;
    assert_eq!(day_9, Counts { job_runs: 2 * step, inbox: 0, ..day_0 });

    // Day 11: the delivered webhooks are older than 10 days; the pending one and the notifications
    // stay.
    app.clock.advance(Duration::days(2));
    run_retention(&jobs, &app).await;
    let day_11 = counts(&app.store).await;
    assert_eq!(day_11, Counts { job_runs: 2 * step, inbox: 0, deliveries: 1, ..day_0 });

    // Day 21: notifications and the reminder mark are older than 20 days (and day 11's runs than 5);
    // the notification still awaiting its webhook stays.
    app.clock.advance(Duration::days(10));
    run_retention(&jobs, &app).await;
    let day_21 = counts(&app.store).await;
    assert_eq!(
        day_21,
        Counts { job_runs: step, inbox: 0, deliveries: 1, notifications: 1, reminder_marks: 0, ..day_0 }
    );

    // Day 41: the dead letter is older than 40 days. The pending webhook and its notification are
    // still there, and the audit trail is as it was on day 0.
    app.clock.advance(Duration::days(20));
    run_retention(&jobs, &app).await;
    let day_41 = counts(&app.store).await;
    assert_eq!(
        day_41,
        Counts {
            job_runs: step,
            inbox: 0,
            deliveries: 1,
            notifications: 1,
            reminder_marks: 0,
            dead_letters: 0,
            audit: day_0.audit
        }
    );
    app.stop().await;
}

on_both_backends!(each_retention_job_removes_only_what_its_setting_lets_go);
