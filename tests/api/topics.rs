//! The topics HealthCore creates carry the retention, clean-up, replication and compression
//! settings of their class (domain events, dead letters), and the configuration of topics that
//! already exist is brought to the settings at start without touching the operator's other
//! settings — on the real Kafka-protocol broker `scripts/test` starts (tansu).

use std::collections::BTreeMap;
use std::time::Duration;

use healthcore::testing::consumers::ConsumerGroup;
use healthcore::testing::events::EventType;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::dashboards::ConsumerProcess;
use crate::helpers::{Backend, TestApp, eventually};

const WATCHED: [&str; 5] =
    ["retention.ms", "cleanup.policy", "min.insync.replicas", "compression.type", "max.message.bytes"];

fn admin(servers: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new().set("bootstrap.servers", servers).create().unwrap()
}

/// The watched configuration entries of a topic, as the broker describes them.
async fn configuration(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Option<BTreeMap<String, String>> {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(5)));
    let described = admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &options).await.ok()?;
    let resource = described.into_iter().next()?.ok()?;
    Some(WATCHED.iter().filter_map(|key| Some((key.to_string(), resource.get(key)?.value.clone()?))).collect())
}

fn entries(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_topic_gets_its_class_settings_and_existing_topics_are_reconciled() {
    let servers = std::env::var("HEALTHCORE_TEST_KAFKA").expect("./scripts/test starts a broker");
    let prefix = format!("hc{}", uuid::Uuid::new_v4().simple());
    let admin = admin(&servers);
    // A topic from before: other retention and compression, and a setting of the operator's own.
    let existing = EventType::PatientCreated.topic(&prefix);
    let old = NewTopic::new(&existing, 3, TopicReplication::Fixed(1))
        .set("retention.ms", "1000")
        .set("cleanup.policy", "compact")
        .set("compression.type", "gzip")
        .set("max.message.bytes", "2000000");
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    admin.create_topics(&[old], &options).await.unwrap().remove(0).unwrap();

    let settings = [
        ("KAFKA_BOOTSTRAP_SERVERS", servers.as_str()),
        ("KAFKA_TOPIC_PREFIX", prefix.as_str()),
        ("HEALTHCORE_KAFKA_EVENTS_RETENTION_HOURS", "48"),
        ("HEALTHCORE_KAFKA_DEAD_LETTER_RETENTION_HOURS", "100"),
        ("HEALTHCORE_KAFKA_COMPRESSION", "zstd"),
    ];
    let app = TestApp::spawn_with(Backend::Sqlite, &settings).await;
    let events = entries(&[
        ("retention.ms", "172800000"),
        ("cleanup.policy", "delete"),
        ("min.insync.replicas", "1"),
        ("compression.type", "zstd"),
    ]);
    for event_type in EventType::ALL {
        let topic = event_type.topic(&prefix);
        let mut wanted = events.clone();
        if topic == existing {
            wanted.insert("max.message.bytes".into(), "2000000".into());
        }
        eventually(&format!("{topic} configured as {wanted:?}"), || async {
            let mut found = configuration(&admin, &topic).await?;
            // Only what was set explicitly is compared beyond the four: the broker's defaults vary.
            found.retain(|key, _| wanted.contains_key(key));
            (found == wanted).then_some(())
        })
        .await;
    }

    // A consumer group's process creates its dead-letter topic with the dead letters' settings.
    let consumer = ConsumerProcess::start(&app, ConsumerGroup::Analytics, &settings);
    let dead_letters = format!("{prefix}.dlq.analytics");
    let wanted = entries(&[
        ("retention.ms", "360000000"),
        ("cleanup.policy", "delete"),
        ("min.insync.replicas", "1"),
        ("compression.type", "zstd"),
    ]);
    eventually(&format!("{dead_letters} configured as {wanted:?}"), || async {
        let mut found = configuration(&admin, &dead_letters).await?;
        found.retain(|key, _| wanted.contains_key(key));
        (found == wanted).then_some(())
    })
    .await;
    drop(consumer);
    app.stop().await;
}
