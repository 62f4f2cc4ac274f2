//! `healthcore consume --group NAME`: one consumer group reading its topics from Kafka.
//!
//! At-least-once: an offset is committed only after its message was handled (or dead-lettered),
//! and the inbox turns redeliveries into no-ops. A message that cannot be handled — not an
//! envelope, an unknown type, a newer schema version, or still failing after the configured
//! attempts — is copied to `{prefix}.dlq.{group}` with the reason in the `x-dlq-error` header, and
//! the group moves on.

use std::time::Duration;

use std::sync::Arc;

use rdkafka::Message;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::statistics::Statistics;

use super::{ConsumerGroup, Consumers, MAX_TOGETHER, Rejection, decode};
use crate::backoff::Backoff;
use crate::config::KafkaConfig;
use crate::events::Envelope;
use crate::events::kafka::{self as events_kafka, TopicClass};
use crate::shutdown::Shutdown;
use crate::telemetry::traces;

pub const DLQ_ERROR_HEADER: &str = "x-dlq-error";

/// The dead-letter topic of a group: `{prefix}.dlq.{group}`.
pub fn dlq_topic(prefix: &str, group: ConsumerGroup) -> String {
    format!("{prefix}.dlq.{}", group.as_str())
}

/// The Kafka consumer group id of a HealthCore group: `{prefix}.{group}`.
pub fn group_id(prefix: &str, group: ConsumerGroup) -> String {
    format!("{prefix}.{}", group.as_str())
}

/// How often librdkafka reports statistics, from which the lag gauges are set.
const STATISTICS_INTERVAL_MS: u32 = 5_000;

/// Receives librdkafka's statistics and sets `healthcore_consumer_lag_messages` per partition.
struct LagReporter {
    group: ConsumerGroup,
    metrics: Arc<crate::telemetry::metrics::Metrics>,
}

impl ClientContext for LagReporter {
    fn stats(&self, statistics: Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                // -1 (unknown) for partitions this member does not consume; the internal
                // partition -1 is librdkafka's, not the broker's.
                if *partition < 0 || stats.consumer_lag < 0 {
                    continue;
                }
                let labels = crate::telemetry::metrics::LagLabels {
                    group: self.group.as_str(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                self.metrics.consumers.lag.get_or_create(&labels).set(stats.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for LagReporter {}

pub struct KafkaConsumer {
    consumers: Consumers,
    group: ConsumerGroup,
    kafka: KafkaConfig,
    consumer: StreamConsumer<LagReporter>,
    dlq: FutureProducer,
}

impl KafkaConsumer {
    pub fn new(consumers: Consumers, group: ConsumerGroup, kafka: KafkaConfig) -> anyhow::Result<KafkaConsumer> {
        let reporter = LagReporter { group, metrics: consumers.metrics().clone() };
        let consumer: StreamConsumer<LagReporter> = ClientConfig::new()
            .set("bootstrap.servers", &kafka.bootstrap_servers)
            .set("group.id", group_id(&kafka.topic_prefix, group))
            .set("client.id", format!("healthcore-{}", group.as_str()))
            // Offsets are committed by hand, after handling; a new group starts from the oldest
            // retained message so it sees the history it was deployed to build.
            .set("enable.auto.commit", "false")
            // An offset is stored only once its message was handled or dead-lettered: librdkafka's
            // default stores it on receipt, and the commit on leaving the group would then skip a
            // message a stop interrupted.
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS.to_string())
            .create_with_context(reporter)?;
        let dlq = events_kafka::producer(&kafka)?;
        Ok(KafkaConsumer { consumers, group, kafka, consumer, dlq })
    }

    pub fn topics(&self) -> Vec<String> {
        self.group.event_types().iter().map(|t| t.topic(&self.kafka.topic_prefix)).collect()
    }

    /// Consumes until `shutdown`; the message in hand is finished (or left uncommitted) first.
    pub async fn run(self, mut shutdown: Shutdown) -> anyhow::Result<()> {
        let dlq_topic = dlq_topic(&self.kafka.topic_prefix, self.group);
        let mut topics: Vec<(String, TopicClass)> =
            self.topics().into_iter().map(|topic| (topic, TopicClass::Events)).collect();
        topics.push((dlq_topic.clone(), TopicClass::DeadLetters));
        events_kafka::ensure_named_topics(&self.kafka, &topics).await?;
        let subscribed = self.topics();
        let names: Vec<&str> = subscribed.iter().map(String::as_str).collect();
        self.consumer.subscribe(&names)?;
        tracing::info!(group = self.group.as_str(), topics = names.len(), "consuming");
        loop {
            let first = tokio::select! {
                received = self.consumer.recv() => received,
                _ = shutdown.recv() => break,
            };
            let mut batch = match first {
                Ok(message) => vec![message],
                Err(err) => {
                    tracing::warn!(group = self.group.as_str(), error = %err, "Kafka consumer error");
                    continue;
                }
            };
            // What has already arrived joins the batch (a zero timeout polls once and never waits).
            while batch.len() < MAX_TOGETHER {
                match tokio::time::timeout(Duration::ZERO, self.consumer.recv()).await {
                    Ok(Ok(message)) => batch.push(message),
                    Ok(Err(err)) => {
                        tracing::warn!(group = self.group.as_str(), error = %err, "Kafka consumer error");
                        break;
                    }
                    Err(_) => break,
                }
            }
            // Interrupted: what it stored is committed on leaving, below.
            if !self.process(&batch, &dlq_topic, &mut shutdown).await {
                break;
            }
            if let Err(err) = self.consumer.commit_consumer_state(CommitMode::Async) {
                tracing::warn!(group = self.group.as_str(), error = %err, "could not commit offsets");
            }
        }
        // Whatever was handled is committed before leaving the group.
        if let Err(err) = self.consumer.commit_consumer_state(CommitMode::Sync) {
            tracing::debug!(error = %err, "final offset commit");
        }
        tracing::info!(group = self.group.as_str(), "consumer stopped");
        Ok(())
    }

    /// Handles a batch of messages (together where it can, see `Consumers::handle_batch`) or
    /// dead-letters them, storing each one's offset once it is done with; false if shutdown
    /// interrupted it (the rest left unstored, so redelivered).
    async fn process(&self, batch: &[BorrowedMessage<'_>], dlq_topic: &str, shutdown: &mut Shutdown) -> bool {
        let spans: Vec<tracing::Span> = batch.iter().map(|message| self.process_span(message)).collect();
        let decoded: Vec<Result<Envelope, Rejection>> =
            batch.iter().map(|message| decode(message.payload().unwrap_or_default())).collect();
        let events: Vec<(&Envelope, tracing::Span)> = decoded
            .iter()
            .zip(&spans)
            .filter_map(|(decoded, span)| decoded.as_ref().ok().map(|envelope| (envelope, span.clone())))
            .collect();
        let mut results = self.consumers.handle_batch(self.group, &events, shutdown).await.into_iter();
        for ((message, decoded), span) in batch.iter().zip(&decoded).zip(&spans) {
            let rejection = match decoded {
                Err(rejection) => rejection.clone(),
                Ok(envelope) => match results.next() {
                    None => return false,
                    Some(Ok(outcome)) => {
                        tracing::debug!(group = self.group.as_str(), event_id = %envelope.event_id, ?outcome, "handled");
                        self.store_offset(message);
                        continue;
                    }
                    Some(Err(rejection)) => rejection,
                },
            };
            span.in_scope(|| {
                tracing::error!(
                    group = self.group.as_str(),
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %rejection,
                    "message dead-lettered"
                )
            });
            if !self.send_to_dlq(message, dlq_topic, &rejection, shutdown).await {
                return false;
            }
            self.store_offset(message);
        }
        true
    }

    /// The consumer span of one message, continuing the trace its `traceparent` header carries.
    fn process_span(&self, message: &BorrowedMessage<'_>) -> tracing::Span {
        let span = tracing::info_span!(
            "kafka.process",
            otel.name = %format_args!("{} process", message.topic()),
            otel.kind = "consumer",
            group = self.group.as_str(),
        );
        let traceparent = message
            .headers()
            .and_then(|headers| headers.iter().find(|h| h.key == "traceparent"))
            .and_then(|h| h.value)
            .and_then(|v| std::str::from_utf8(v).ok());
        traces::continue_trace(&span, traceparent);
        span
    }

    /// Marks the message done: the next commit moves the group past it.
    fn store_offset(&self, message: &BorrowedMessage<'_>) {
        if let Err(err) = self.consumer.store_offset_from_message(message) {
            tracing::warn!(group = self.group.as_str(), error = %err, "could not store an offset");
        }
    }

    /// Copies the message to the DLQ, retrying until the broker takes it: the offset must not move
    /// past a message that is neither handled nor dead-lettered.
    async fn send_to_dlq(
        &self,
        message: &BorrowedMessage<'_>,
        dlq_topic: &str,
        rejection: &Rejection,
        shutdown: &mut Shutdown,
    ) -> bool {
        let error = rejection.to_string();
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
        loop {
            let mut headers = OwnedHeaders::new();
            if let Some(original) = message.headers() {
                for header in original.iter() {
                    headers = headers.insert(Header { key: header.key, value: header.value });
                }
            }
            headers = headers
                .insert(Header { key: DLQ_ERROR_HEADER, value: Some(error.as_str()) })
                .insert(Header { key: "x-dlq-consumer-group", value: Some(self.group.as_str()) })
                .insert(Header { key: "x-dlq-original-topic", value: Some(message.topic()) })
                .insert(Header { key: "x-dlq-original-partition", value: Some(partition.as_str()) })
                .insert(Header { key: "x-dlq-original-offset", value: Some(offset.as_str()) });
            let mut record =
                FutureRecord::to(dlq_topic).payload(message.payload().unwrap_or_default()).headers(headers);
            if let Some(key) = message.key() {
                record = record.key(key);
            }
            match self.dlq.send(record, Duration::from_secs(5)).await {
                Ok(_) => {
                    self.consumers.count_dead_letter(self.group);
                    return true;
                }
                Err((err, _)) => tracing::warn!(error = %err, "could not write to the dead-letter topic; will retry"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_pause()) => {}
                _ = shutdown.recv() => return false,
            }
        }
    }
}
