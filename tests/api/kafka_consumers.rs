//! The consumer groups as `healthcore consume --group NAME` runs them: reading their topics from a
//! real Kafka-protocol broker (tansu, started by `scripts/test`), and dead-lettering what they
//! cannot read to `{prefix}.dlq.{group}`.

use std::collections::HashMap;
use std::time::Duration;

use healthcore::testing::consumers::kafka::{DLQ_ERROR_HEADER, KafkaConsumer, dlq_topic};
use healthcore::testing::consumers::{ConsumerGroup, Consumers};
use healthcore::testing::events::kafka::TopicClass;
use healthcore::testing::shutdown;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, booking, eventually, test_config};
use crate::on_both_backends;
use crate::webhook_receiver::{WebhookReceiver, signature_is_valid};

const SECRET: &str = "kafka-consumer-test-secret";

fn broker() -> String {
    std::env::var("HEALTHCORE_TEST_KAFKA")
        .expect("HEALTHCORE_TEST_KAFKA names the test broker; ./scripts/test starts one and sets it")
}

/// The app (publishing through its relay) and the settings its consumer processes share.
pub fn settings<'a>(servers: &'a str, prefix: &'a str, webhook: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("KAFKA_BOOTSTRAP_SERVERS", servers),
        ("KAFKA_TOPIC_PREFIX", prefix),
        ("HEALTHCORE_KAFKA_TOPIC_PARTITIONS", "3"),
        ("HEALTHCORE_RELAY_POLL_MS", "50"),
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_URL", webhook),
        ("HEALTHCORE_NOTIFICATIONS_WEBHOOK_SECRET", SECRET),
        ("HEALTHCORE_CONSUMER_MAX_ATTEMPTS", "2"),
        ("HEALTHCORE_CONSUMER_RETRY_MS", "5"),
    ]
}

/// Starts consumer groups the way `healthcore consume` does, with their webhook worker.
pub fn start_groups(
    app: &TestApp,
    settings: &[(&str, &str)],
    groups: &[ConsumerGroup],
) -> (shutdown::Stop, Vec<tokio::task::JoinHandle<()>>) {
    let config = test_config(&app.database_url(), settings);
    let (stop, stopping) = shutdown::channel();
    let mut tasks = Vec::new();
    for group in groups {
        let consumers = Consumers::new(app.store.clone(), config.consumers.clone(), app.metrics.clone());
        if group.sends_webhooks() {
            let worker = healthcore::testing::consumers::delivery::DeliveryWorker::new(
                app.store.clone(),
                config.consumers.webhook.clone(),
                consumers.deliveries_recorded(),
                app.metrics.clone(),
            )
            .unwrap();
            tasks.push(tokio::spawn(worker.run(stopping.clone())));
        }
        let consumer = KafkaConsumer::new(consumers, *group, config.kafka.clone().unwrap()).unwrap();
        let stopping = stopping.clone();
        tasks.push(tokio::spawn(async move { consumer.run(stopping).await.unwrap() }));
    }
    (stop, tasks)
}

pub async fn stop_groups(stop: shutdown::Stop, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.stop();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(15), task).await.expect("a consumer stops").unwrap();
    }
}

on_both_backends!(
    the_three_groups_consume_a_booking_flow_from_the_broker,
    unreadable_messages_go_to_the_dead_letter_topic_and_the_group_moves_on,
);

async fn the_three_groups_consume_a_booking_flow_from_the_broker(backend: Backend) {
    let (servers, prefix) = (broker(), format!("hc{}", Uuid::new_v4().simple()));
    let receiver = WebhookReceiver::start().await;
    let webhook = receiver.url("/notify");
    let settings = settings(&servers, &prefix, &webhook);
    let app = TestApp::spawn_with(backend, &settings).await;
    let token = app.admin_token.clone();
    let body =
        json!({"event_types": ["appointment.cancelled"], "callback_url": receiver.url("/hook"), "secret": SECRET});
    let subscription = app.post("/api/v1/integrations/subscriptions", &token, body).await.expect(201).id();
    let (stop, tasks) = start_groups(&app, &settings, &ConsumerGroup::ALL);

    let practitioner = app.create_practitioner("LIC-KAFKA-CONSUME").await;
    let patient = app.create_patient("Kafka", "Consumer").await;
    let appointment =
        app.post("/api/v1/appointments", &token, booking(patient, practitioner, 20, 30)).await.expect(201).id();
    app.post(&format!("/api/v1/appointments/{appointment}/cancel"), &token, json!({"reason": "r"})).await.expect(200);

    let today = chrono::Utc::now().date_naive();
    let totals = eventually("analytics to count the booking and the cancellation", || async {
        let path = format!("/api/v1/analytics/appointments?from={today}&to={today}&practitioner_id={practitioner}");
        let reply = app.get(&path, &token).await.expect(200);
        let totals = reply.body["totals"].clone();
        // Topics are consumed in any order: wait for both counts.
        (totals["cancelled"] == 1 && totals["booked"] == 1).then_some(totals)
    })
    .await;
    assert_eq!(totals, json!({"booked": 1, "cancelled": 1, "completed": 0, "no_show": 0}));
    let path = format!("/api/v1/analytics/patients?from={today}&to={today}");
    assert_eq!(app.get(&path, &token).await.expect(200).body["total_registered"], 1);

    let notifications = receiver.wait_for("/notify", 2).await;
    assert!(notifications.iter().all(|n| signature_is_valid(n, SECRET)));
    // One topic per event type: across topics the group sees events in any order, and the
    // receiver orders one appointment's notifications by its version.
    let mut by_version: Vec<(i64, String)> = notifications
        .iter()
        .map(|n| (n.json()["appointment_version"].as_i64().unwrap(), n.json()["kind"].as_str().unwrap().to_owned()))
        .collect();
    by_version.sort();
    assert_eq!(by_version, [(1, "appointment_booked".to_owned()), (2, "appointment_cancelled".to_owned())]);

    let hooks = receiver.wait_for("/hook", 1).await;
    assert_eq!(hooks[0].json()["event_type"], "appointment.cancelled");
    assert_eq!(hooks[0].json()["data"]["appointment_id"], appointment.to_string());
    eventually("the integration delivery to be recorded", || async {
        let path = format!("/api/v1/integrations/subscriptions/{subscription}/deliveries?status=delivered");
        (app.get(&path, &token).await.expect(200).body["page"]["total"] == 1).then_some(())
    })
    .await;
    // librdkafka's statistics (every 5 s) set the lag of each partition the groups consume.
    eventually("the consumer lag gauges", || async {
        let text = app.client.get(app.url("/metrics")).send().await.ok()?.text().await.ok()?;
        text.lines()
            .any(|l| l.starts_with(r#"healthcore_consumer_lag_messages{group="analytics""#) && l.ends_with(" 0"))
            .then_some(())
    })
    .await;
    stop_groups(stop, tasks).await;
    app.stop().await;
}

/// Reads a topic's messages (every partition, from the beginning) until `expected` arrived.
async fn read_topic(servers: &str, topic: &str, expected: usize) -> Vec<(Vec<u8>, HashMap<String, String>)> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", format!("test-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..3 {
        assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while received.len() < expected && tokio::time::Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await else { continue };
        received.push((message.payload().unwrap_or_default().to_vec(), crate::kafka::headers_of(&message)));
    }
    assert_eq!(received.len(), expected, "messages on {topic}");
    received
}

async fn unreadable_messages_go_to_the_dead_letter_topic_and_the_group_moves_on(backend: Backend) {
    let (servers, prefix) = (broker(), format!("hc{}", Uuid::new_v4().simple()));
    let receiver = WebhookReceiver::start().await;
    let webhook = receiver.url("/notify");
    let settings = settings(&servers, &prefix, &webhook);
    let app = TestApp::spawn_with(backend, &settings).await;
    let kafka = test_config(&app.database_url(), &settings).kafka.unwrap();
    let topic = format!("{prefix}.patient.created");
    let topics = [(topic.clone(), TopicClass::Events)];
    healthcore::testing::events::kafka::ensure_named_topics(&kafka, &topics).await.unwrap();

    // Ahead of a real event on the same partition: a body that is not an envelope, and an
    // envelope from a producer whose schema is newer than this build's.
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &servers).create().unwrap();
    let key = Uuid::now_v7().to_string();
    let newer = json!({
        "event_type": "patient.created", "event_id": Uuid::now_v7(), "timestamp": "2026-01-01T00:00:00Z",
        "data": {"patient_id": key, "active": true, "loyalty_tier": "gold"},
        "metadata": {"source": "healthcore", "schema_version": 2, "correlation_id": "c", "actor_id": null,
            "actor_role": null, "aggregate_type": "patient", "aggregate_id": key, "aggregate_version": 1}
    })
    .to_string();
    for body in ["{not json", newer.as_str()] {
        let record = FutureRecord::to(&topic).key(&key).payload(body).partition(0);
        producer.send(record, Duration::from_secs(10)).await.unwrap();
    }
    let (stop, tasks) = start_groups(&app, &settings, &[ConsumerGroup::Analytics]);
    app.create_patient("After", "Poison").await;

    let today = chrono::Utc::now().date_naive();
    eventually("the real event after the unreadable ones to be counted", || async {
        let path = format!("/api/v1/analytics/patients?from={today}&to={today}");
        (app.get(&path, &app.admin_token).await.expect(200).body["total_registered"] == 1).then_some(())
    })
    .await;
    let dead = read_topic(&servers, &dlq_topic(&prefix, ConsumerGroup::Analytics), 2).await;
    let errors: Vec<&str> = dead.iter().map(|(_, headers)| headers[DLQ_ERROR_HEADER].as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("not a HealthCore event envelope")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("schema version 2") && e.contains("newer")), "{errors:?}");
    for (body, headers) in &dead {
        assert_eq!(headers["x-dlq-original-topic"], topic);
        assert_eq!(headers["x-dlq-consumer-group"], "analytics");
        assert!(body == b"{not json" || body == newer.as_bytes(), "the original body is kept");
    }
    stop_groups(stop, tasks).await;
    app.stop().await;
}

/// A group stopped while it waits out a database outage must not move its offset past the event it
/// could not handle: the next run of the group handles it. PostgreSQL only: it is the database that
/// can be cut off from a running process (see `outage`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_a_stop_interrupts_during_a_database_outage_is_handled_by_the_next_run() {
    let (servers, prefix) = (broker(), format!("hc{}", Uuid::new_v4().simple()));
    let receiver = WebhookReceiver::start().await;
    let webhook = receiver.url("/notify");
    let settings = settings(&servers, &prefix, &webhook);
    let app = TestApp::spawn_with(Backend::Postgres, &settings).await;
    app.create_patient("Stopped", "Midway").await;
    app.events_settled().await;

    crate::outage::set_reachable(&app, false).await;
    let (stop, tasks) = start_groups(&app, &settings, &[ConsumerGroup::Analytics]);
    eventually("the group to meet the outage", || async {
        let text = app.client.get(app.url("/metrics")).send().await.ok()?.text().await.ok()?;
        text.lines()
            .any(|l| {
                l.starts_with(r#"healthcore_consumer_events_total{group="analytics",event_type="patient.created",outcome="unavailable"}"#)
            })
            .then_some(())
    })
    .await;
    stop_groups(stop, tasks).await;
    crate::outage::set_reachable(&app, true).await;

    let (stop, tasks) = start_groups(&app, &settings, &[ConsumerGroup::Analytics]);
    let today = chrono::Utc::now().date_naive();
    eventually("the next run to count the registration", || async {
        let path = format!("/api/v1/analytics/patients?from={today}&to={today}");
        // The first requests after the outage may meet connections it cut (503).
        let reply = app.get(&path, &app.admin_token).await;
        (reply.status == 200 && reply.body["total_registered"] == 1).then_some(())
    })
    .await;
    stop_groups(stop, tasks).await;
    app.stop().await;
}
