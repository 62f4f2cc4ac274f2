//! The Kafka side of publishing: producer settings, topic creation, and how an outbox event
//! becomes a message (topic, key, value, CloudEvents binary-mode headers).

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{
    AdminClient, AdminOptions, NewTopic, OwnedResourceSpecifier, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaResult;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

use super::Envelope;
use super::EventType;
use super::alter_configs;

/// Where and how events are published (`KAFKA_*` settings; without them, `Config::kafka` is `None`
/// and events are delivered in-process).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub topic_prefix: String,
    pub message_timeout_ms: u64,
    pub topic_partitions: i32,
    pub replication_factor: i32,
    /// The domain events' topics (`{prefix}.{event_type}`).
    pub event_topics: TopicPolicy,
    /// The consumer groups' dead-letter topics (`{prefix}.dlq.{group}`).
    pub dead_letter_topics: TopicPolicy,
    pub min_insync_replicas: i32,
    /// One of `COMPRESSION_TYPES`.
    pub compression: String,
}

/// What a topic holds, which decides its retention and clean-up policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicClass {
    Events,
    DeadLetters,
}

/// How long a class of topics keeps messages, and how the broker cleans them up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicPolicy {
    pub retention_hours: i64,
    pub cleanup: CleanupPolicy,
}

/// Kafka's `cleanup.policy`. `Compact` keeps only the latest message per key, which no HealthCore
/// topic can afford by default (docs/EVENTS.md, "Topic configuration").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanupPolicy {
    Delete,
    Compact,
    CompactDelete,
}

impl CleanupPolicy {
    pub fn parse(text: &str) -> Option<CleanupPolicy> {
        match text.trim().replace(' ', "").as_str() {
            "delete" => Some(CleanupPolicy::Delete),
            "compact" => Some(CleanupPolicy::Compact),
            "compact,delete" | "delete,compact" => Some(CleanupPolicy::CompactDelete),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// The values of Kafka's topic `compression.type` (`producer`: keep what the producer sent).
pub const COMPRESSION_TYPES: &[&str] = &["lz4", "zstd", "snappy", "gzip", "producer", "uncompressed"];

impl KafkaConfig {
    /// The configuration every topic of `class` is created with and reconciled to at start.
    pub fn topic_configs(&self, class: TopicClass) -> Vec<(&'static str, String)> {
        let policy = match class {
            TopicClass::Events => self.event_topics,
            TopicClass::DeadLetters => self.dead_letter_topics,
        };
        vec![
            ("cleanup.policy", policy.cleanup.as_str().to_owned()),
            ("retention.ms", (policy.retention_hours * 3_600_000).to_string()),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            ("compression.type", self.compression.clone()),
        ]
    }
}

/// The idempotent, all-replicas-acknowledged producer the relay publishes with. librdkafka's
/// defaults would give neither idempotence nor a bounded retry time (300 s), so both are set.
pub fn producer(config: &KafkaConfig) -> KafkaResult<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap_servers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", config.message_timeout_ms.to_string())
        // The relay already hands the producer a whole batch at once; waiting longer for more
        // would only add latency (5 → 1 ms moved p50 record-to-ack from 29 to 23 ms).
        .set("linger.ms", "1")
        .set("compression.type", "lz4")
        .set("client.id", "healthcore-relay")
        .create()
}

/// Creates the topic of every event type that does not exist yet, and brings the configuration of
/// those that do to the settings.
pub async fn ensure_topics(config: &KafkaConfig) -> KafkaResult<()> {
    let topics: Vec<(String, TopicClass)> =
        EventType::ALL.iter().map(|t| (t.topic(&config.topic_prefix), TopicClass::Events)).collect();
    ensure_named_topics(config, &topics).await
}

/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the named topics that do not exist yet, with the configured partitions, replicas and
/// their class's configuration; then reconciles the configuration of every one of them (existing
/// topics may have been created by an older version or by hand). A failed reconciliation is
/// logged, not returned: publishing and consuming work with any configuration.
pub async fn ensure_named_topics(config: &KafkaConfig, topics: &[(String, TopicClass)]) -> KafkaResult<()> {
    let admin: Arc<AdminClient<DefaultClientContext>> =
        Arc::new(ClientConfig::new().set("bootstrap.servers", &config.bootstrap_servers).create()?);
    let wanted: Vec<(String, Vec<(&'static str, String)>)> =
        topics.iter().map(|(name, class)| (name.clone(), config.topic_configs(*class))).collect();
    let new_topics: Vec<NewTopic> = wanted
        .iter()
        .map(|(name, configs)| {
            configs.iter().fold(
                NewTopic::new(name, config.topic_partitions, TopicReplication::Fixed(config.replication_factor)),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT));
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(rdkafka::error::KafkaError::AdminOp(code)).inspect_err(|_| {
                    tracing::warn!(topic, error = %code, "could not create topic");
                });
            }
        }
    }
    if let Err(reason) = reconcile_topic_configs(admin, wanted).await {
        tracing::warn!(error = %reason, "could not reconcile the topics' configuration; they keep what they have");
    }
    Ok(())
}

/// Alters every configuration entry of these topics that differs from what is wanted (each change
/// logged), leaving their other settings alone.
async fn reconcile_topic_configs(
    admin: Arc<AdminClient<DefaultClientContext>>,
    wanted: Vec<(String, Vec<(&'static str, String)>)>,
) -> Result<(), String> {
    let specifiers: Vec<ResourceSpecifier> = wanted.iter().map(|(name, _)| ResourceSpecifier::Topic(name)).collect();
    let options = AdminOptions::new().request_timeout(Some(ADMIN_TIMEOUT));
    let described = admin.describe_configs(&specifiers, &options).await.map_err(|e| e.to_string())?;
    let mut changes = Vec::new();
    for resource in described {
        let resource = resource.map_err(|code| code.to_string())?;
        let OwnedResourceSpecifier::Topic(topic) = &resource.specifier else { continue };
        let Some((_, configs)) = wanted.iter().find(|(name, _)| name == topic) else { continue };
        let differing: Vec<(&'static str, String)> = configs
            .iter()
            .filter(|(key, value)| {
                let current = resource.get(key).and_then(|entry| entry.value.as_deref());
                if current == Some(value.as_str()) {
                    return false;
                }
                tracing::info!(
                    topic,
                    config = key,
                    from = current,
                    to = value,
                    "altering a topic's configuration to the settings"
                );
                true
            })
            .cloned()
            .collect();
        if !differing.is_empty() {
            changes.push((topic.clone(), differing));
        }
    }
    tokio::task::spawn_blocking(move || alter_configs::set_topic_configs(&admin, &changes, ADMIN_TIMEOUT))
        .await
        .map_err(|e| e.to_string())?
}

/// The URI of the JSON Schema an event's `data` follows (`schemas/events/` in the repository).
pub fn data_schema(event_type: EventType) -> String {
    format!("https://healthcore.dev/schemas/events/{}.v{}.json", event_type.as_str(), event_type.schema_version())
}

/// Set (to `true`) on messages `healthcore events replay` sent again.
pub const REPLAY_HEADER: &str = "x-healthcore-replay";

/// CloudEvents 1.0 binary-mode headers, the W3C trace context (`traceparent`: the relay's publish
/// span) and the correlation ID. Ids and types only: nothing here identifies a person.
pub fn headers(envelope: &Envelope, replay: bool, traceparent: Option<&str>) -> OwnedHeaders {
    let metadata = &envelope.metadata;
    let time = envelope.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let subject = format!("{}/{}", metadata.aggregate_type, metadata.aggregate_id);
    let id = envelope.event_id.to_string();
    let version = metadata.aggregate_version.to_string();
    let schema = data_schema(envelope.event_type);
    let mut headers = OwnedHeaders::new_with_capacity(12)
        .insert(Header { key: "ce_specversion", value: Some("1.0") })
        .insert(Header { key: "ce_id", value: Some(id.as_str()) })
        .insert(Header { key: "ce_type", value: Some(envelope.event_type.as_str()) })
        .insert(Header { key: "ce_source", value: Some("/healthcore") })
        .insert(Header { key: "ce_time", value: Some(time.as_str()) })
        .insert(Header { key: "ce_subject", value: Some(subject.as_str()) })
        .insert(Header { key: "ce_dataschema", value: Some(schema.as_str()) })
        .insert(Header { key: "ce_aggregateversion", value: Some(version.as_str()) })
        .insert(Header { key: "content-type", value: Some("application/json") })
        .insert(Header { key: "x-correlation-id", value: Some(metadata.correlation_id.as_str()) });
    if replay {
        headers = headers.insert(Header { key: REPLAY_HEADER, value: Some("true") });
    }
    if let Some(traceparent) = traceparent {
        headers = headers.insert(Header { key: "traceparent", value: Some(traceparent) });
    }
    headers
}
