//! The consumer groups behind in-process delivery (Kafka off, the embedded default): analytics
//! aggregates, notifications with a signed webhook, integration subscriptions with retries and
//! automatic disabling, the inbox's exactly-once effect, and dead letters.

use chrono::Utc;
use healthcore::testing::consumers::{ConsumerGroup, Consumers, Outcome};
use healthcore::testing::domain::Role;
use healthcore::testing::events::{Envelope, EventType, NewEvent};
use healthcore::testing::shutdown;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, booking, eventually};
use crate::on_both_backends;
use crate::webhook_receiver::{WebhookReceiver, signature_is_valid};

const NOTIFY_SECRET: &str = "notification-secret-0123456789";
const SUBSCRIPTION_SECRET: &str = "subscription-secret-0123456789";

async fn spawn_with_receiver(backend: Backend, extra: &[(&str, &str)]) -> (TestApp, WebhookReceiver) {
    let receiver = WebhookReceiver::start().await;
    let url = receiver.url("/notify");
    let mut settings = vec![
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL", url.as_str()),
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", NOTIFY_SECRET),
        ("HEALTHCORE_WEBHOOK_RETRY_MS", "20"),
    ];
    settings.extend_from_slice(extra);
    (TestApp::spawn_with(backend, &settings).await, receiver)
}

async fn subscribe(app: &TestApp, receiver: &WebhookReceiver, event_types: Value) -> Uuid {
    let body =
        json!({"event_types": event_types, "callback_url": receiver.url("/hook"), "secret": SUBSCRIPTION_SECRET});
    let reply = app.post("/api/v1/integrations/subscriptions", &app.admin_token, body).await.expect(201);
    assert!(reply.body.get("secret").is_none(), "the secret is never returned");
    reply.id()
}

fn today() -> String {
    Utc::now().date_naive().to_string()
}

async fn analytics(app: &TestApp, what: &str, query: &str) -> Value {
    app.get(&format!("/api/v1/analytics/{what}?from={}&to={}{query}", today(), today()), &app.admin_token)
        .await
        .expect(200)
        .body
}

on_both_backends!(
    the_three_consumers_act_on_a_booking_flow_without_kafka,
    a_failing_webhook_is_retried_with_its_attempts_recorded,
    a_subscription_that_keeps_failing_is_disabled_and_can_be_enabled_again,
    a_replayed_event_has_no_second_effect_unless_the_consumer_is_rebuilt,
    an_event_a_consumer_cannot_handle_is_dead_lettered_and_the_stream_moves_on,
    events_that_arrive_together_are_handled_together_and_a_bad_one_holds_up_none,
    an_event_delivered_twice_in_one_batch_takes_effect_once,
    the_effects_of_events_handled_together_add_up,
    a_fhir_subscription_receives_id_only_notification_bundles,
);

async fn the_three_consumers_act_on_a_booking_flow_without_kafka(backend: Backend) {
    let (app, receiver) = spawn_with_receiver(backend, &[]).await;
    let subscription = subscribe(&app, &receiver, json!(["appointment.booked", "patient.created"])).await;
    let practitioner = app.create_practitioner("LIC-CONSUME").await;
    let patient = app.create_patient("Zebulon", "Quixotic").await;
    let token = &app.admin_token;
    let appointment =
        app.post("/api/v1/appointments", token, booking(patient, practitioner, 30, 30)).await.expect(201).id();
    let later = (Utc::now() + chrono::Duration::hours(50)).to_rfc3339();
    let later_end = (Utc::now() + chrono::Duration::hours(50) + chrono::Duration::minutes(30)).to_rfc3339();
    app.post(
        &format!("/api/v1/appointments/{appointment}/reschedule"),
        token,
        json!({"start": later, "end": later_end}),
    )
    .await
    .expect(200);
    app.post(&format!("/api/v1/appointments/{appointment}/cancel"), token, json!({"reason": "feeling better"}))
        .await
        .expect(200);
    let started = app.started_appointment(patient, practitioner, 2).await;
    app.post(&format!("/api/v1/appointments/{started}/complete"), token, json!({})).await.expect(200);
    app.events_settled().await;

    // Analytics: today's counts for this practitioner.
    let patients = analytics(&app, "patients", "").await;
    assert_eq!(patients["total_registered"], 1, "{patients}");
    let appointments = analytics(&app, "appointments", &format!("&practitioner_id={practitioner}")).await;
    assert_eq!(appointments["totals"], json!({"booked": 1, "cancelled": 1, "completed": 1, "no_show": 0}));
    assert_eq!(appointments["days"][0]["practitioner_id"], practitioner.to_string());

    // Notifications: booked, rescheduled, cancelled, each delivered to the webhook, signed.
    let received = receiver.wait_for("/notify", 3).await;
    let kinds: Vec<String> = received.iter().map(|r| r.json()["kind"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kinds, ["appointment_booked", "appointment_rescheduled", "appointment_cancelled"]);
    for request in &received {
        assert!(signature_is_valid(request, NOTIFY_SECRET), "bad signature: {:?}", request.headers);
        assert_eq!(request.json()["patient_id"], patient.to_string());
        let body = String::from_utf8_lossy(&request.body);
        assert!(!body.contains("Zebulon") && !body.contains("Quixotic"), "PHI in a notification: {body}");
        assert!(!request.header("x-correlation-id").is_empty());
    }
    let listed = eventually("notifications to show delivered", || async {
        let reply = app.get(&format!("/api/v1/notifications?appointment_id={appointment}"), token).await.expect(200);
        let items = reply.body["items"].as_array().unwrap().clone();
        items.iter().all(|n| n["status"] == "delivered").then_some(items)
    })
    .await;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0]["delivery"]["attempts"], 1);
    assert_eq!(listed[0]["delivery"]["last_status_code"], 200);
    let audited = app.audit_events(&format!("action=notification.list&patient_id={patient}")).await;
    assert!(!audited.is_empty(), "listing notifications is audited per patient");

    // Integrations: patient.created and appointment.booked only, each the envelope, signed.
    let hooks = receiver.wait_for("/hook", 2).await;
    let types: Vec<String> = hooks.iter().map(|r| r.json()["event_type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types, ["patient.created", "appointment.booked"]);
    for hook in &hooks {
        assert!(signature_is_valid(hook, SUBSCRIPTION_SECRET));
        assert_eq!(hook.header("x-healthcore-event-id"), hook.json()["event_id"].as_str().unwrap());
    }
    let deliveries = eventually("both deliveries recorded as delivered", || async {
        let reply = app
            .get(&format!("/api/v1/integrations/subscriptions/{subscription}/deliveries?status=delivered"), token)
            .await
            .expect(200);
        (reply.body["page"]["total"] == 2).then_some(reply.body)
    })
    .await;
    assert_eq!(deliveries["items"][0]["attempts"], 1);
    app.stop().await;
}

async fn a_fhir_subscription_receives_id_only_notification_bundles(backend: Backend) {
    let base = "https://fhir.hospital.example/fhir/R4";
    let (app, receiver) = spawn_with_receiver(backend, &[("HEALTHCORE_FHIR_BASE_URL", base)]).await;
    let body = json!({
        "event_types": ["patient.created", "appointment.booked"],
        "callback_url": receiver.url("/hook"),
        "secret": SUBSCRIPTION_SECRET,
        "payload": "fhir-id-only",
    });
    let reply = app.post("/api/v1/integrations/subscriptions", &app.admin_token, body).await.expect(201);
    assert_eq!(reply.body["payload"], "fhir-id-only");
    let subscription = reply.id();
    let practitioner = app.create_practitioner("LIC-FHIR-SUB").await;
    let patient = app.create_patient("Zebulon", "Quixotic").await;
    let appointment = app
        .post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 30, 30))
        .await
        .expect(201)
        .id();

    let hooks = receiver.wait_for("/hook", 2).await;
    let expected = [
        ("1", "patient.created", format!("{base}/Patient/{patient}"), "POST"),
        ("2", "appointment.booked", format!("{base}/Appointment/{appointment}"), "POST"),
    ];
    for (hook, (number, topic, focus, method)) in hooks.iter().zip(expected) {
        assert!(signature_is_valid(hook, SUBSCRIPTION_SECRET));
        let bundle = hook.json();
        crate::fhir::received(&bundle);
        let text = bundle.to_string();
        assert!(!text.contains("Zebulon") && !text.contains("Quixotic"), "PHI in a notification: {text}");
        assert_eq!(bundle["type"], "subscription-notification");
        let status = &bundle["entry"][0]["resource"];
        assert_eq!(status["resourceType"], "SubscriptionStatus");
        assert_eq!(status["type"], "event-notification");
        assert_eq!(status["subscription"]["reference"], format!("{base}/Subscription/{subscription}"));
        assert_eq!(status["topic"], format!("https://healthcore.dev/fhir/SubscriptionTopic/{topic}"));
        assert_eq!(status["notificationEvent"][0]["eventNumber"], number);
        assert_eq!(status["notificationEvent"][0]["focus"]["reference"], focus.as_str());
        let named = &bundle["entry"][1];
        assert_eq!(named["fullUrl"], focus.as_str());
        assert_eq!(named["request"]["method"], method);
        assert!(named.get("resource").is_none(), "id-only: the resource is not sent");
    }
    app.stop().await;
}

async fn a_failing_webhook_is_retried_with_its_attempts_recorded(backend: Backend) {
    let (app, receiver) = spawn_with_receiver(backend, &[]).await;
    receiver.answer_next(&[500, 503]);
    let practitioner = app.create_practitioner("LIC-RETRY").await;
    let patient = app.create_patient("Retry", "Patient").await;
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 10, 30)).await.expect(201);
    let attempts = receiver.wait_for("/notify", 3).await;
    let delivery_ids: Vec<&str> = attempts.iter().map(|r| r.header("x-healthcore-delivery-id")).collect();
    assert!(delivery_ids.iter().all(|id| *id == delivery_ids[0]), "one delivery, attempted three times");
    let notification = eventually("the notification to be delivered", || async {
        let reply = app.get(&format!("/api/v1/notifications?patient_id={patient}"), &app.admin_token).await.expect(200);
        let first = reply.body["items"][0].clone();
        (first["status"] == "delivered").then_some(first)
    })
    .await;
    assert_eq!(notification["delivery"]["attempts"], 3);
    assert_eq!(notification["delivery"]["last_status_code"], 200);
    app.stop().await;
}

async fn a_subscription_that_keeps_failing_is_disabled_and_can_be_enabled_again(backend: Backend) {
    let (app, receiver) = spawn_with_receiver(backend, &[("HEALTHCORE_SUBSCRIPTION_DISABLE_AFTER", "3")]).await;
    receiver.answer_always(503);
    let subscription = subscribe(&app, &receiver, json!(["*"])).await;
    app.create_patient("Failing", "Callback").await;
    let path = format!("/api/v1/integrations/subscriptions/{subscription}");
    let disabled = eventually("the subscription to be disabled", || async {
        let reply = app.get(&path, &app.admin_token).await.expect(200);
        (reply.body["active"] == false).then_some(reply.body)
    })
    .await;
    assert_eq!(disabled["consecutive_failures"], 3);
    assert!(disabled["disabled_reason"].as_str().unwrap().contains("3 failed"));
    let attempts_while_failing = receiver.received().len();
    assert_eq!(attempts_while_failing, 3);
    let pending = app.get(&format!("{path}/deliveries"), &app.admin_token).await.expect(200);
    assert_eq!(pending.body["items"][0]["status"], "pending");
    assert_eq!(pending.body["items"][0]["last_status_code"], 503);

    receiver.answer_always(200);
    let enabled = app.post(&format!("{path}/enable"), &app.admin_token, json!({})).await.expect(200);
    assert_eq!(enabled.body["active"], true);
    assert_eq!(enabled.body["consecutive_failures"], 0);
    receiver.wait_for("/hook", 4).await;
    eventually("the held delivery to be delivered", || async {
        let reply = app.get(&format!("{path}/deliveries?status=delivered"), &app.admin_token).await.expect(200);
        (reply.body["page"]["total"] == 1).then_some(())
    })
    .await;
    app.stop().await;
}

async fn a_replayed_event_has_no_second_effect_unless_the_consumer_is_rebuilt(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..3 {
        app.create_patient("Replay", &format!("Patient{i}")).await;
    }
    app.events_settled().await;
    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 3);
    let config = crate::helpers::test_config(&app.database_url(), &[]);
    let since = Utc::now() - chrono::Duration::hours(1);

    // Redelivered to every group: the inbox recognises each event, nothing is counted twice.
    healthcore::cli::events::replay(config.clone(), since, None, false).await.unwrap();
    app.events_settled().await;
    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 3);
    let notifications = app.get("/api/v1/notifications", &app.admin_token).await.expect(200);
    assert_eq!(notifications.body["page"]["total"], 0, "no appointment, no notification");

    // Rebuilt: analytics forgets what it handled and counts the replay afresh, to the same totals.
    healthcore::cli::events::replay(config, since, Some(EventType::PatientCreated), true).await.unwrap();
    app.events_settled().await;
    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 3);
    app.stop().await;
}

async fn an_event_a_consumer_cannot_handle_is_dead_lettered_and_the_stream_moves_on(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HEALTHCORE_CONSUMER_MAX_ATTEMPTS", "2"), ("HEALTHCORE_CONSUMER_RETRY_MS", "5")],
    )
    .await;
    // An appointment.booked whose data lacks the ids the consumers need (as a buggy producer
    // might write it), recorded the way the services record events.
    let practitioner = app.create_practitioner("LIC-DLQ").await;
    let poison = record_together(&app, vec![poison_booking()]).await.remove(0);
    let patient = app.create_patient("After", "Poison").await;
    app.post("/api/v1/appointments", &app.admin_token, booking(patient, practitioner, 5, 30)).await.expect(201);
    app.events_settled().await;

    for group in [ConsumerGroup::Analytics, ConsumerGroup::Notifications] {
        let letters =
            healthcore::testing::store::consumers::dead_letters(app.store.db(), group.as_str(), 10).await.unwrap();
        assert_eq!(letters.len(), 1, "{group:?}: {letters:?}");
        assert_eq!(letters[0].event_id, Some(poison.event_id));
        assert!(letters[0].error.contains("failed after 2 attempts"), "{}", letters[0].error);
    }
    let ready = app.call(reqwest::Method::GET, "/health/ready", None, None).await.expect(200);
    assert_eq!(ready.body["consumers"]["status"], "degraded", "{}", ready.body);
    let integrations =
        healthcore::testing::store::consumers::dead_letters(app.store.db(), "integrations", 10).await.unwrap();
    assert!(integrations.is_empty(), "integrations forwards ids only and handled it");
    // The events after the poison one were handled.
    let appointments = analytics(&app, "appointments", &format!("&practitioner_id={practitioner}")).await;
    assert_eq!(appointments["totals"]["booked"], 1);
    forget_poison(&app, &poison).await;
    app.stop().await;
}

/// An appointment.booked whose data lacks the ids the consumers need.
fn poison_booking() -> NewEvent {
    NewEvent {
        event_type: EventType::AppointmentBooked,
        aggregate_id: Uuid::now_v7(),
        aggregate_version: 1,
        data: json!({"status": "booked"}),
    }
}

/// A patient.created as registering a patient records it.
fn registration() -> NewEvent {
    let patient_id = Uuid::now_v7();
    NewEvent {
        event_type: EventType::PatientCreated,
        aggregate_id: patient_id,
        aggregate_version: 1,
        data: json!({"patient_id": patient_id, "active": true}),
    }
}

/// Records `events` in one transaction, the way the services record theirs: the relay reads them
/// in one round.
async fn record_together(app: &TestApp, events: Vec<NewEvent>) -> Vec<Envelope> {
    let envelopes = envelopes(events);
    let tx = app.store.begin_write().await.unwrap();
    healthcore::testing::store::outbox::append(&tx, &envelopes, None).await.unwrap();
    tx.note_events_recorded(envelopes.iter().map(|e| e.event_type));
    tx.commit().await.unwrap();
    envelopes
}

/// `events` as a request of the admin would have recorded them.
fn envelopes(events: Vec<NewEvent>) -> Vec<Envelope> {
    let ctx = healthcore::testing::context::RequestContext {
        clock: Default::default(),
        principal: healthcore::testing::auth::Principal {
            user_id: healthcore::testing::domain::UserId::from_uuid(Uuid::nil()),
            role: Role::Admin,
            patient_id: None,
        },
        correlation_id: "recorded-by-a-test".into(),
        client_addr: None,
        user_agent: None,
        attempt: Default::default(),
    };
    events.into_iter().map(|event| Envelope::new(event, &ctx, Utc::now())).collect()
}

/// The poison event breaks its schema on purpose; the suite's schema check is for real events.
async fn forget_poison(app: &TestApp, poison: &Envelope) {
    use healthcore::testing::store::entities::outbox_event::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    Entity::delete_many().filter(Column::EventId.eq(poison.event_id)).exec(app.store.db()).await.unwrap();
}

/// When `group` handled `event`, from its inbox.
async fn handled_at(app: &TestApp, group: ConsumerGroup, event: &Envelope) -> chrono::DateTime<Utc> {
    use healthcore::testing::store::entities::consumer_inbox::{Column, Entity};
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let row = Entity::find()
        .filter(Column::ConsumerGroup.eq(group.as_str()))
        .filter(Column::EventId.eq(event.event_id))
        .one(app.store.db())
        .await
        .unwrap();
    row.unwrap_or_else(|| panic!("{group:?} handled {}", event.event_id)).processed_at
}

async fn events_that_arrive_together_are_handled_together_and_a_bad_one_holds_up_none(backend: Backend) {
    let app = TestApp::spawn_with(
        backend,
        &[("HEALTHCORE_CONSUMER_MAX_ATTEMPTS", "2"), ("HEALTHCORE_CONSUMER_RETRY_MS", "5")],
    )
    .await;
    // One transaction for the group's part of a round: one time for every inbox entry.
    let together = record_together(&app, vec![registration(), registration(), registration()]).await;
    app.events_settled().await;
    let first = handled_at(&app, ConsumerGroup::Analytics, &together[0]).await;
    for event in &together[1..] {
        assert_eq!(handled_at(&app, ConsumerGroup::Analytics, event).await, first, "handled in one transaction");
    }
    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 3);

    // A bad event among them: the transaction fails, and each is handled on its own.
    let mixed = record_together(&app, vec![registration(), poison_booking(), registration()]).await;
    app.events_settled().await;
    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 5, "the good events took effect");
    for group in [ConsumerGroup::Analytics, ConsumerGroup::Notifications] {
        let letters =
            healthcore::testing::store::consumers::dead_letters(app.store.db(), group.as_str(), 10).await.unwrap();
        let dead: Vec<Option<Uuid>> = letters.iter().map(|letter| letter.event_id).collect();
        assert_eq!(dead, [Some(mixed[1].event_id)], "{group:?}: only the bad event is dead-lettered");
    }
    assert_ne!(
        handled_at(&app, ConsumerGroup::Analytics, &mixed[0]).await,
        handled_at(&app, ConsumerGroup::Analytics, &mixed[2]).await,
        "after the failure, one transaction each"
    );
    forget_poison(&app, &mixed[1]).await;
    app.stop().await;
}

/// A broker may deliver a message again, even within the batch that holds it the first time: the
/// batch's inbox entries are written together and each event still takes effect once.
async fn an_event_delivered_twice_in_one_batch_takes_effect_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let config = crate::helpers::test_config(&app.database_url(), &[]);
    let consumers = Consumers::new(app.store.clone(), config.consumers.clone(), app.metrics.clone());
    let (_stop, mut shutdown) = shutdown::channel();
    let events = envelopes(vec![registration(), registration()]);
    let none = tracing::Span::none;
    let batch = [(&events[0], none()), (&events[0], none()), (&events[1], none())];
    let outcomes: Vec<Option<Outcome>> = consumers
        .handle_batch(ConsumerGroup::Analytics, &batch, &mut shutdown)
        .await
        .into_iter()
        .map(Result::ok)
        .collect();
    assert_eq!(outcomes, [Some(Outcome::Applied), Some(Outcome::Duplicate), Some(Outcome::Applied)]);
    let again = consumers.handle_batch(ConsumerGroup::Analytics, &[(&events[1], none())], &mut shutdown).await;
    assert_eq!(again.into_iter().map(Result::ok).collect::<Vec<_>>(), [Some(Outcome::Duplicate)]);
    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 2, "two registrations, each counted once");
    app.stop().await;
}

/// Events handled together write their effects together: analytics adds them up per day and
/// practitioner and adds that to what was counted before; each event still gets its own
/// notification and webhook delivery.
async fn the_effects_of_events_handled_together_add_up(backend: Backend) {
    let (app, receiver) = spawn_with_receiver(backend, &[]).await;
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let earlier = record_together(&app, vec![appointment_event(EventType::AppointmentBooked, first)]).await;
    app.events_settled().await;
    let together = record_together(
        &app,
        vec![
            appointment_event(EventType::AppointmentBooked, first),
            registration(),
            appointment_event(EventType::AppointmentBooked, second),
            appointment_event(EventType::AppointmentCancelled, first),
            registration(),
            appointment_event(EventType::AppointmentBooked, first),
        ],
    )
    .await;
    app.events_settled().await;
    for group in ConsumerGroup::ALL {
        let at = handled_at(&app, group, &together[0]).await;
        for event in &together[1..] {
            if group.wants(event.event_type) {
                assert_eq!(handled_at(&app, group, event).await, at, "{group:?} handled them in one transaction");
            }
        }
    }

    assert_eq!(analytics(&app, "patients", "").await["total_registered"], 2);
    let counted = |practitioner: Uuid| {
        let app = &app;
        async move { analytics(app, "appointments", &format!("&practitioner_id={practitioner}")).await["totals"].clone() }
    };
    assert_eq!(counted(first).await, json!({"booked": 3, "cancelled": 1, "completed": 0, "no_show": 0}));
    assert_eq!(counted(second).await, json!({"booked": 1, "cancelled": 0, "completed": 0, "no_show": 0}));

    let notified = receiver.wait_for("/notify", 5).await;
    let mut notified: Vec<String> =
        notified.iter().map(|request| request.json()["event_id"].as_str().unwrap().to_owned()).collect();
    let mut appointment_events: Vec<String> = earlier
        .iter()
        .chain(&together)
        .filter(|event| event.event_type != EventType::PatientCreated)
        .map(|event| event.event_id.to_string())
        .collect();
    notified.sort();
    appointment_events.sort();
    assert_eq!(notified, appointment_events, "one notification delivered per appointment event");
    app.stop().await;
}

/// An appointment event of `practitioner_id` for a new appointment, as the services record it.
fn appointment_event(event_type: EventType, practitioner_id: Uuid) -> NewEvent {
    let appointment_id = Uuid::now_v7();
    let start = Utc::now() + chrono::Duration::days(1);
    let mut data = json!({
        "appointment_id": appointment_id,
        "patient_id": Uuid::now_v7(),
        "practitioner_id": practitioner_id,
        "start": start,
        "end": start + chrono::Duration::minutes(30),
        "status": "booked",
    });
    if event_type == EventType::AppointmentCancelled {
        data["status"] = json!("cancelled");
        data["cancellation_cause"] = json!("requested");
    }
    NewEvent { event_type, aggregate_id: appointment_id, aggregate_version: 1, data }
}

mod validation {
    use super::*;

    async fn a_subscription_is_refused_with_every_broken_rule_named(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let body = json!({"event_types": ["patient.merged"], "callback_url": "ftp://example.org", "secret": "short", "payload": "fhir"});
        let reply = app
            .post("/api/v1/integrations/subscriptions", &app.admin_token, body)
            .await
            .expect_problem(422, "validation");
        let mut fields = reply.field_errors();
        fields.sort();
        assert_eq!(
            fields,
            [
                ("callback_url".into(), "url".into()),
                ("event_types".into(), "one_of".into()),
                ("payload".into(), "one_of".into()),
                ("secret".into(), "length".into())
            ]
        );
        let empty =
            json!({"event_types": [], "callback_url": "https://example.org/hook", "secret": "long-enough-secret-1"});
        let reply = app
            .post("/api/v1/integrations/subscriptions", &app.admin_token, empty)
            .await
            .expect_problem(422, "validation");
        assert_eq!(reply.field_errors(), [("event_types".to_owned(), "length".to_owned())]);
        let null_payload = json!({"event_types": ["*"], "callback_url": "https://example.org/hook", "secret": "long-enough-secret-1", "payload": null});
        let reply = app
            .post("/api/v1/integrations/subscriptions", &app.admin_token, null_payload)
            .await
            .expect_problem(422, "validation");
        assert_eq!(
            reply.field_errors(),
            [("payload".to_owned(), "type".to_owned())],
            "absent means envelope, null is refused"
        );
        let unknown = json!({"event_types": ["*"], "callback_url": "https://example.org", "secret": "long-enough-secret-1", "url": "x"});
        app.post("/api/v1/integrations/subscriptions", &app.admin_token, unknown).await.expect(422);
        let missing = Uuid::now_v7();
        app.get(&format!("/api/v1/integrations/subscriptions/{missing}"), &app.admin_token).await.expect(404);
        app.post(&format!("/api/v1/integrations/subscriptions/{missing}/enable"), &app.admin_token, json!({}))
            .await
            .expect(404);
        let reversed = format!("/api/v1/analytics/patients?from={}&to=2020-01-01", today());
        let reply = app.get(&reversed, &app.admin_token).await.expect_problem(422, "validation");
        assert_eq!(reply.field_errors(), [("from".to_owned(), "order".to_owned())]);
        let reply = app.get("/api/v1/analytics/appointments?from=yesterday", &app.admin_token).await.expect(422);
        assert_eq!(reply.field_errors(), [("from".to_owned(), "date".to_owned())]);
        app.stop().await;
    }

    on_both_backends!(a_subscription_is_refused_with_every_broken_rule_named);
}
