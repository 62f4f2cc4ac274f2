//! Publishing to Kafka: against librdkafka's mock cluster for fault injection (the broker going
//! down in the middle of a stream of writes), and against a real Kafka-protocol broker (tansu,
//! started by `scripts/test`) for keys, headers, bodies and order as the contract specifies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use healthcore::testing::events::EventType;
use healthcore::testing::store::outbox;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::mocking::MockCluster;
use rdkafka::{Offset, TopicPartitionList};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, booking};
use crate::on_both_backends;

const PARTITIONS: i32 = 3;

/// A message as read back from the broker.
#[derive(Debug, Clone)]
struct Received {
    topic: String,
    key: String,
    value: serde_json::Value,
    headers: HashMap<String, String>,
}

/// A message's headers as text.
pub fn headers_of(message: &impl Message) -> HashMap<String, String> {
    message
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads every partition of every topic under `prefix` from the beginning until `expected`
/// distinct event ids were seen (or 30 s pass).
async fn read_back(servers: &str, prefix: &str, expected: usize) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", format!("test-{}", Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    // Every partition the broker has, whether the relay created the topic or the broker did.
    let mut assignment = TopicPartitionList::new();
    for event_type in EventType::ALL {
        let topic = event_type.topic(prefix);
        let partitions = match consumer.fetch_metadata(Some(&topic), Duration::from_secs(5)) {
            Ok(metadata) => metadata.topics().first().map_or(0, |t| t.partitions().len() as i32),
            Err(_) => 0,
        };
        for partition in 0..partitions.max(PARTITIONS) {
            assignment.add_partition_offset(&topic, partition, Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut received = Vec::new();
    let mut ids = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids.len() < expected && Instant::now() < deadline {
        let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await else { continue };
        let headers = headers_of(&message);
        let value: serde_json::Value = serde_json::from_slice(message.payload().unwrap()).unwrap();
        ids.insert(value["event_id"].as_str().unwrap().to_owned());
        received.push(Received {
            topic: message.topic().to_owned(),
            key: String::from_utf8_lossy(message.key().unwrap()).into_owned(),
            value,
            headers,
        });
    }
    assert_eq!(ids.len(), expected, "read {} of {expected} events back", ids.len());
    received
}

/// The distinct event ids under `prefix` on the broker, read until `expected` were seen.
pub async fn event_ids_on_broker(servers: &str, prefix: &str, expected: usize) -> HashSet<String> {
    read_back(servers, prefix, expected)
        .await
        .into_iter()
        .map(|m| m.value["event_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits (bounded) until the relay has published every recorded event.
pub async fn drained(app: &TestApp, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let backlog = outbox::backlog(app.store.db()).await.unwrap();
        if backlog.pending == 0 {
            return outbox::after(app.store.db(), 0, 100_000).await.unwrap().len();
        }
        assert!(Instant::now() < deadline, "{} events still pending after {within:?}", backlog.pending);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Within a topic (Kafka orders per partition, and a key always maps to one partition) the
/// versions of an aggregate never go back; across all topics they have no gaps. At-least-once
/// may repeat an event, never reorder or lose one. Across topics there is no order: consumers
/// reading several order by `aggregate_version`.
fn assert_ordered_per_key(received: &[Received]) {
    let mut per_topic: BTreeMap<(&str, &str), Vec<i64>> = BTreeMap::new();
    let mut per_key: BTreeMap<&str, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for message in received {
        assert_eq!(message.key, message.value["metadata"]["aggregate_id"].as_str().unwrap(), "key = aggregate id");
        let version = message.value["metadata"]["aggregate_version"].as_i64().unwrap();
        per_topic.entry((&message.topic, &message.key)).or_default().push(version);
        per_key.entry(&message.key).or_default().insert(version);
    }
    for ((topic, key), versions) in per_topic {
        assert!(versions.windows(2).all(|w| w[0] <= w[1]), "{topic} {key}: versions out of order {versions:?}");
    }
    for (key, versions) in per_key {
        let versions: Vec<i64> = versions.into_iter().collect();
        assert_eq!(versions, (1..=versions.len() as i64).collect::<Vec<_>>(), "{key}: a version is missing");
    }
}

pub fn kafka_settings<'a>(servers: &'a str, prefix: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("KAFKA_BOOTSTRAP_SERVERS", servers),
        ("KAFKA_TOPIC_PREFIX", prefix),
        ("HEALTHCORE_KAFKA_TOPIC_PARTITIONS", "3"),
        ("HEALTHCORE_KAFKA_MESSAGE_TIMEOUT_MS", "2000"),
        ("HEALTHCORE_RELAY_POLL_MS", "50"),
    ]
}

async fn a_broker_outage_delays_events_but_loses_none_and_fails_no_request(backend: Backend) {
    let cluster = MockCluster::new(1).unwrap();
    let servers = cluster.bootstrap_servers();
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let app = TestApp::spawn_with(backend, &kafka_settings(&servers, &prefix)).await;
    let token = app.admin_token.clone();
    let practitioner = app.create_practitioner("MD-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    drained(&app, Duration::from_secs(20)).await;

    cluster.broker_down(1).unwrap();
    for i in 0..20 {
        app.patch(&format!("/api/v1/patients/{patient}"), &token, json!({"phone": format!("+1 555 01{i:02}")}))
            .await
            .expect(200);
    }
    let booked =
        app.post("/api/v1/appointments", &token, booking(patient, practitioner, 24, 30)).await.expect(201).id();
    app.post(&format!("/api/v1/appointments/{booked}/cancel"), &token, json!({"reason": "r"})).await.expect(200);
    // While the broker is away the instance stays ready and says why events wait.
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        let ready = app.call(Method::GET, "/health/ready", None, None).await.expect(200);
        if ready.body["kafka"]["status"] == "degraded" || Instant::now() > deadline {
            break ready;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.body["kafka"]["status"], "degraded", "{:#}", ready.body);
    assert!(ready.body["outbox"]["pending"].as_u64().unwrap() >= 22, "{:#}", ready.body);

    cluster.broker_up(1).unwrap();
    let total = drained(&app, Duration::from_secs(60)).await;
    let received = read_back(&servers, &prefix, total).await;
    assert_ordered_per_key(&received);
    let ready = app.call(Method::GET, "/health/ready", None, None).await.expect(200);
    assert_eq!(ready.body["kafka"]["status"], "healthy", "{:#}", ready.body);
    app.stop().await;
}

async fn produce_errors_are_retried_until_the_broker_accepts(backend: Backend) {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let cluster = MockCluster::new(1).unwrap();
    let servers = cluster.bootstrap_servers();
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let app = TestApp::spawn_with(backend, &kafka_settings(&servers, &prefix)).await;
    drained(&app, Duration::from_secs(20)).await;
    let errors = [RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 6];
    cluster.request_errors(RDKafkaApiKey::Produce, &errors);
    for i in 0..5 {
        app.create_patient("Retry", &format!("Number{i}")).await;
    }
    let total = drained(&app, Duration::from_secs(60)).await;
    let received = read_back(&servers, &prefix, total).await;
    assert_eq!(
        received
            .iter()
            .filter(|m| m.topic.ends_with("patient.created"))
            .map(|m| &m.value["event_id"])
            .collect::<HashSet<_>>()
            .len(),
        5
    );
    app.stop().await;
}

/// The real broker started by `scripts/test` (tansu speaks the Kafka protocol).
fn real_broker() -> String {
    std::env::var("HEALTHCORE_TEST_KAFKA")
        .expect("HEALTHCORE_TEST_KAFKA names the test broker; ./scripts/test starts one and sets it")
}

async fn every_event_reaches_its_topic_with_key_headers_and_body_as_specified(backend: Backend) {
    let servers = real_broker();
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let app = TestApp::spawn_with(backend, &kafka_settings(&servers, &prefix)).await;
    let token = app.admin_token.clone();
    let practitioner = app.create_practitioner("MD-1").await;
    let patient = app.create_patient("Ada", "Lovelace").await;
    app.patch(&format!("/api/v1/patients/{patient}"), &token, json!({"phone": "+1 555 0100"})).await.expect(200);
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let booked = app
        .call_with(
            Method::POST,
            "/api/v1/appointments",
            Some(&token),
            Some(booking(patient, practitioner, 24, 30)),
            &[("traceparent", traceparent), ("x-correlation-id", "flow-7")],
        )
        .await
        .expect(201)
        .id();
    app.post(&format!("/api/v1/appointments/{booked}/cancel"), &token, json!({"reason": "r"})).await.expect(200);

    let total = drained(&app, Duration::from_secs(30)).await;
    let recorded = outbox::after(app.store.db(), 0, 1000).await.unwrap();
    let received = read_back(&servers, &prefix, total).await;
    assert_ordered_per_key(&received);
    for event in &recorded {
        let id = event.envelope.event_id.to_string();
        let message =
            received.iter().find(|m| m.value["event_id"] == id.as_str()).expect("every recorded event was published");
        assert_eq!(message.topic, format!("{prefix}.{}", event.envelope.event_type.as_str()));
        assert_eq!(message.key, event.envelope.metadata.aggregate_id.to_string());
        assert_eq!(
            message.value,
            serde_json::from_str::<serde_json::Value>(&event.payload).unwrap(),
            "the body is the recorded envelope"
        );
        let h = &message.headers;
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_id"], id);
        assert_eq!(h["ce_type"], event.envelope.event_type.as_str());
        assert_eq!(h["ce_source"], "/healthcore");
        assert_eq!(
            h["ce_subject"],
            format!("{}/{}", event.envelope.metadata.aggregate_type, event.envelope.metadata.aggregate_id)
        );
        assert_eq!(chrono::DateTime::parse_from_rfc3339(&h["ce_time"]).unwrap(), event.envelope.timestamp);
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["x-correlation-id"], event.envelope.metadata.correlation_id);
    }
    let booked_message = received.iter().find(|m| m.topic.ends_with(".appointment.booked")).unwrap();
    // The message continues the caller's trace from the relay's publish span.
    let sent = &booked_message.headers["traceparent"];
    assert!(sent.starts_with("00-0af7651916cd43dd8448eb211c80319c-"), "{sent}");
    let recorded_booking = recorded.iter().find(|e| e.envelope.event_type.as_str() == "appointment.booked").unwrap();
    assert_ne!(Some(sent), recorded_booking.traceparent.as_ref(), "the publish span is the parent, not the write");
    assert_eq!(booked_message.headers["x-correlation-id"], "flow-7");
    // Nothing in keys or headers identifies a person.
    for message in &received {
        let visible = format!("{} {:?}", message.key, message.headers);
        assert!(!visible.contains("Lovelace") && !visible.contains("555 0100"), "{visible}");
    }
    // Published rows remember where the broker put them.
    let published = outbox::after(app.store.db(), 0, 1000).await.unwrap();
    assert!(published.iter().all(|e| e.published.is_some()));
    app.stop().await;
}

on_both_backends!(every_event_reaches_its_topic_with_key_headers_and_body_as_specified);

mod mock {
    use super::*;
    on_both_backends!(
        a_broker_outage_delays_events_but_loses_none_and_fails_no_request,
        produce_errors_are_retried_until_the_broker_accepts
    );
}
