//! The consumers of domain events: `analytics`, `notifications` and `integrations`.
//!
//! Each group handles events inside a database transaction that also records (group, event id) in
//! the inbox, so a redelivered event is recognised and skipped: delivery is at-least-once, the
//! effect exactly-once. Events that arrive together share one transaction (`handle_batch`). The
//! same handling runs behind Kafka (`healthcore consume --group NAME`, see `kafka`) and in-process
//! when Kafka is off (the relay's in-process sink, see `relay`).
//!
//! Webhooks are not sent while handling: the handler records the delivery in the same transaction
//! and the `delivery` worker sends it afterwards, with retries, so a slow receiver never holds up
//! the stream.

pub mod analytics;
pub mod delivery;
mod effects;
pub mod integrations;
pub mod kafka;
pub mod notifications;

use std::time::Duration;

use sea_orm::DbErr;
use serde::Deserialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::ConsumerConfig;
use crate::events::{Envelope, EventType};
use crate::shutdown::Shutdown;
use crate::store::outbox::OutboxEvent;
use crate::store::{self, Store, WriteTx};
use crate::telemetry::metrics::{ConsumerLabels, GroupLabels, Metrics};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerGroup {
    Analytics,
    Notifications,
    Integrations,
}

impl ConsumerGroup {
    pub const ALL: [ConsumerGroup; 3] =
        [ConsumerGroup::Analytics, ConsumerGroup::Notifications, ConsumerGroup::Integrations];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerGroup::Analytics => "analytics",
            ConsumerGroup::Notifications => "notifications",
            ConsumerGroup::Integrations => "integrations",
        }
    }

    pub fn parse(value: &str) -> Option<ConsumerGroup> {
        ConsumerGroup::ALL.into_iter().find(|g| g.as_str() == value)
    }

    /// The event types this group subscribes to.
    pub fn event_types(self) -> &'static [EventType] {
        match self {
            ConsumerGroup::Analytics => &analytics::EVENT_TYPES,
            ConsumerGroup::Notifications => &notifications::EVENT_TYPES,
            ConsumerGroup::Integrations => &EventType::ALL,
        }
    }

    pub fn wants(self, event_type: EventType) -> bool {
        self.event_types().contains(&event_type)
    }

    /// Whether this group's effects include webhooks for the delivery worker.
    pub fn sends_webhooks(self) -> bool {
        matches!(self, ConsumerGroup::Notifications | ConsumerGroup::Integrations)
    }
}

/// What handling one event came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// The inbox already held it: a redelivery, skipped.
    Duplicate,
    /// Not a type this group handles.
    Ignored,
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Our own database is away: retried for as long as it takes, never dead-lettered.
    #[error("database unavailable: {0}")]
    Unavailable(DbErr),
    /// This event cannot be handled (now): counts as a failed attempt.
    #[error("{0}")]
    Failed(String),
}

impl From<DbErr> for HandleError {
    fn from(err: DbErr) -> HandleError {
        if store::is_unavailable(&err) { HandleError::Unavailable(err) } else { HandleError::Failed(err.to_string()) }
    }
}

/// Why a message was given up on, for the dead-letter header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not a HealthCore event envelope: {0}")]
    Malformed(String),
    #[error("unknown event type '{0}'")]
    UnknownType(String),
    #[error("schema version {found} of {event_type} is newer than the version {known} this consumer understands")]
    NewerSchema { event_type: String, found: u64, known: u32 },
    #[error("failed after {attempts} attempts: {error}")]
    Exhausted { attempts: u32, error: String },
}

/// Reads a message value as an envelope, refusing (rather than misreading) an event type or a
/// schema version this build does not know.
pub fn decode(payload: &[u8]) -> Result<Envelope, Rejection> {
    #[derive(Deserialize)]
    struct Head {
        event_type: String,
        metadata: HeadMetadata,
    }
    #[derive(Deserialize)]
    struct HeadMetadata {
        schema_version: u64,
    }
    let head: Head = serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let event_type = EventType::parse(&head.event_type).ok_or(Rejection::UnknownType(head.event_type.clone()))?;
    if head.metadata.schema_version > u64::from(event_type.schema_version()) {
        return Err(Rejection::NewerSchema {
            event_type: head.event_type,
            found: head.metadata.schema_version,
            known: event_type.schema_version(),
        });
    }
    serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))
}

/// Reads an event's `data` as the shape a handler expects.
pub(crate) fn data<T: serde::de::DeserializeOwned>(envelope: &Envelope) -> Result<T, HandleError> {
    T::deserialize(&envelope.data).map_err(|e| {
        HandleError::Failed(format!("{} data does not match its schema: {e}", envelope.event_type.as_str()))
    })
}

/// The most events a group handles in one transaction: enough that a busy group pays one commit
/// for many, few enough that the transaction stays short (on SQLite it holds the only write lock).
pub const MAX_TOGETHER: usize = 100;

/// Handles events for the consumer groups, sharing the store and the retry policy.
#[derive(Clone)]
pub struct Consumers {
    store: Store,
    config: ConsumerConfig,
    metrics: std::sync::Arc<Metrics>,
    /// Wakes the delivery worker when a handler recorded a webhook.
    deliveries: std::sync::Arc<tokio::sync::Notify>,
    clock: Clock,
}

impl Consumers {
    pub fn new(store: Store, config: ConsumerConfig, metrics: std::sync::Arc<Metrics>) -> Consumers {
        Consumers { store, config, metrics, deliveries: Default::default(), clock: Clock::default() }
    }

    /// Reads `clock` instead of a clock of its own: the application's, which a test can move.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn metrics(&self) -> &std::sync::Arc<Metrics> {
        &self.metrics
    }

    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    pub fn deliveries_recorded(&self) -> std::sync::Arc<tokio::sync::Notify> {
        self.deliveries.clone()
    }

    /// One attempt, counted by outcome (a failed one too).
    pub async fn handle(&self, group: ConsumerGroup, envelope: &Envelope) -> Result<Outcome, HandleError> {
        let result = self.apply_together(group, &[(envelope, tracing::Span::current())]).await;
        match result {
            Ok(outcomes) => Ok(outcomes[0]),
            Err(err) => {
                if group.wants(envelope.event_type) {
                    let outcome = if matches!(err, HandleError::Unavailable(_)) { "unavailable" } else { "failed" };
                    self.count(group, envelope, outcome);
                }
                Err(err)
            }
        }
    }

    /// Handles `events` for `group` in order, up to `MAX_TOGETHER` in one transaction, so that a
    /// busy group pays one commit for what arrived together; if a transaction fails, its events
    /// are handled each on its own with retries (`handle_with_retries`), so one bad event cannot
    /// hold up the others. Each event's handling is a span continuing the span beside it. One
    /// result per event, in order; fewer if `shutdown` came first (the rest are left unhandled).
    pub async fn handle_batch(
        &self,
        group: ConsumerGroup,
        events: &[(&Envelope, tracing::Span)],
        shutdown: &mut Shutdown,
    ) -> Vec<Result<Outcome, Rejection>> {
        let mut results = Vec::with_capacity(events.len());
        for together in events.chunks(MAX_TOGETHER) {
            if together.len() > 1 {
                match self.apply_together(group, together).await {
                    Ok(outcomes) => {
                        results.extend(outcomes.into_iter().map(Ok));
                        continue;
                    }
                    Err(err) => {
                        tracing::debug!(group = group.as_str(), error = %err, "handling together failed; one by one")
                    }
                }
            }
            for (envelope, span) in together {
                match self.handle_with_retries(group, envelope, shutdown).instrument(span.clone()).await {
                    Some(result) => results.push(result),
                    None => return results,
                }
            }
        }
        results
    }

    /// Every effect and inbox entry of `events` commits together, or none does; the applied and
    /// duplicate ones are counted once it committed.
    async fn apply_together(
        &self,
        group: ConsumerGroup,
        events: &[(&Envelope, tracing::Span)],
    ) -> Result<Vec<Outcome>, HandleError> {
        let mut outcomes = vec![Outcome::Ignored; events.len()];
        if !events.iter().any(|(envelope, _)| group.wants(envelope.event_type)) {
            return Ok(outcomes);
        }
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let tx = self.store.begin_write().await?;
        let written = self.write_together(&tx, group, events, &mut outcomes, now).await;
        let recorded_webhooks = tx.end(written).await?;
        if recorded_webhooks {
            self.deliveries.notify_one();
        }
        // Every event of the transaction took effect when it committed.
        let took = started.elapsed().as_secs_f64();
        let duration = self.metrics.consumers.duration.get_or_create(&GroupLabels { group: group.as_str() }).clone();
        for ((envelope, _), outcome) in events.iter().zip(&outcomes) {
            let counted = match outcome {
                Outcome::Applied => "applied",
                Outcome::Duplicate => "duplicate",
                Outcome::Ignored => continue,
            };
            duration.observe(took);
            self.count(group, envelope, counted);
        }
        Ok(outcomes)
    }

    /// Claims `events` in the inbox and writes the effects of those not handled before, in `tx`,
    /// setting each one's outcome; whether webhooks were recorded.
    async fn write_together(
        &self,
        tx: &WriteTx,
        group: ConsumerGroup,
        events: &[(&Envelope, tracing::Span)],
        outcomes: &mut [Outcome],
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, HandleError> {
        let subscribers = match group {
            ConsumerGroup::Integrations => integrations::subscribers(tx).await?,
            _ => Vec::new(),
        };
        // Each wanted event's handling is a span continuing the span beside it (the others have none).
        let spans: Vec<Option<tracing::Span>> = events
            .iter()
            .map(|(envelope, parent)| {
                group.wants(envelope.event_type).then(|| {
                    tracing::info_span!(
                        parent: parent,
                        "consumer.handle",
                        otel.name = %format_args!("{} {}", group.as_str(), envelope.event_type.as_str()),
                        group = group.as_str(),
                        event_type = envelope.event_type.as_str(),
                        event_id = %envelope.event_id,
                        correlation_id = %envelope.metadata.correlation_id,
                    )
                })
            })
            .collect();
        // One inbox statement for the whole transaction (a span of the first event's handling);
        // what the inbox already held is a redelivery.
        let wanted: Vec<Uuid> = events
            .iter()
            .zip(&spans)
            .filter(|(_, span)| span.is_some())
            .map(|((envelope, _), _)| envelope.event_id)
            .collect();
        let first = spans.iter().flatten().next().cloned().unwrap_or_else(tracing::Span::none);
        let mut claimed = store::consumers::claim_all(tx, group.as_str(), &wanted, now).instrument(first).await?;
        let mut effects = effects::Effects::default();
        for (((envelope, _), span), outcome) in events.iter().zip(&spans).zip(outcomes.iter_mut()) {
            let Some(span) = span else { continue };
            if !claimed.remove(&envelope.event_id) {
                *outcome = Outcome::Duplicate;
                continue;
            }
            // Each event's effect is gathered, and written with the others' below.
            let applied = match group {
                ConsumerGroup::Analytics => analytics::apply(envelope, span, &mut effects),
                ConsumerGroup::Notifications => {
                    notifications::apply(envelope, &self.config.webhook, now, span, &mut effects)
                }
                ConsumerGroup::Integrations => {
                    let base = &self.config.fhir_base_url;
                    integrations::apply(tx, envelope, &subscribers, base, span, &mut effects)
                        .instrument(span.clone())
                        .await
                }
            };
            match applied {
                Ok(()) => *outcome = Outcome::Applied,
                Err(err) => {
                    if let HandleError::Failed(_) = err {
                        crate::telemetry::traces::mark_error(span, "handling failed");
                    }
                    return Err(err);
                }
            }
        }
        Ok(effects.write(tx, now).await?)
    }

    fn count(&self, group: ConsumerGroup, envelope: &Envelope, outcome: &'static str) {
        let labels = ConsumerLabels { group: group.as_str(), event_type: envelope.event_type.as_str(), outcome };
        self.metrics.consumers.processed.get_or_create(&labels).inc();
    }

    /// Hands outbox events, in recorded order, to every group that wants them (see
    /// `handle_batch`), each event's handling continuing its span in `spans`; a group that gives
    /// up on one dead-letters it and the others still get it. Returns how many events, from the
    /// first, every group is done with: fewer than all if stopping came first.
    pub async fn deliver(
        &self,
        events: &[OutboxEvent],
        spans: &[tracing::Span],
        shutdown: &mut Shutdown,
    ) -> Result<usize, DbErr> {
        let mut done = events.len();
        for group in ConsumerGroup::ALL {
            let batch: Vec<(&Envelope, tracing::Span)> =
                events[..done].iter().zip(spans).map(|(event, span)| (&event.envelope, span.clone())).collect();
            let results = self.handle_batch(group, &batch, shutdown).await;
            done = results.len();
            for (event, result) in events.iter().zip(results) {
                if let Err(rejection) = result {
                    let event_type = Some(event.envelope.event_type.as_str());
                    let event_id = Some(event.envelope.event_id);
                    self.dead_letter(group, event_id, event_type, &event.payload, &rejection).await?;
                }
            }
        }
        Ok(done)
    }

    /// Handles an event, retrying failures with a doubling pause. Gives up (for the dead letters)
    /// after the configured attempts; waits out a database outage however long it lasts, unless
    /// `shutdown` comes first (`None`: the event is left unhandled for the next run).
    pub async fn handle_with_retries(
        &self,
        group: ConsumerGroup,
        envelope: &Envelope,
        shutdown: &mut Shutdown,
    ) -> Option<Result<Outcome, Rejection>> {
        let mut attempts = 0;
        let mut backoff = Backoff::new(Duration::from_millis(self.config.retry_ms), Duration::from_secs(30));
        loop {
            match self.handle(group, envelope).await {
                Ok(outcome) => return Some(Ok(outcome)),
                Err(HandleError::Unavailable(err)) => {
                    tracing::warn!(
                        group = group.as_str(),
                        event_id = %envelope.event_id,
                        correlation_id = %envelope.metadata.correlation_id,
                        error = %err,
                        "database unavailable; will retry"
                    );
                }
                Err(HandleError::Failed(error)) => {
                    attempts += 1;
                    tracing::warn!(
                        group = group.as_str(),
                        event_id = %envelope.event_id,
                        correlation_id = %envelope.metadata.correlation_id,
                        attempts,
                        %error,
                        "handling an event failed"
                    );
                    if attempts >= self.config.max_attempts {
                        return Some(Err(Rejection::Exhausted { attempts, error }));
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff.next_pause()) => {}
                _ = shutdown.recv() => return None,
            }
        }
    }

    pub fn count_dead_letter(&self, group: ConsumerGroup) {
        self.metrics.consumers.dead_lettered.get_or_create(&GroupLabels { group: group.as_str() }).inc();
    }

    /// Records a message given up on in-process (Kafka mode sends it to the DLQ topic instead).
    pub async fn dead_letter(
        &self,
        group: ConsumerGroup,
        event_id: Option<Uuid>,
        event_type: Option<&str>,
        payload: &str,
        rejection: &Rejection,
    ) -> Result<(), DbErr> {
        tracing::error!(group = group.as_str(), event_id = ?event_id, error = %rejection, "event dead-lettered");
        self.count_dead_letter(group);
        let letter = store::consumers::DeadLetter {
            consumer_group: group.as_str().to_owned(),
            event_id,
            event_type: event_type.map(str::to_owned),
            payload: payload.to_owned(),
            error: rejection.to_string(),
            failed_at: self.clock.now(),
        };
        store::consumers::add_dead_letter(self.store.db(), &letter).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_schema_versions_and_unknown_types_are_refused_not_misread() {
        let newer = br#"{"event_type":"patient.created","metadata":{"schema_version":2}}"#;
        assert!(matches!(decode(newer), Err(Rejection::NewerSchema { found: 2, known: 1, .. })));
        let unknown = br#"{"event_type":"patient.merged","metadata":{"schema_version":1}}"#;
        assert_eq!(decode(unknown), Err(Rejection::UnknownType("patient.merged".into())));
        assert!(matches!(decode(b"not json"), Err(Rejection::Malformed(_))));
    }

    #[test]
    fn every_group_has_a_name_that_parses_back() {
        for group in ConsumerGroup::ALL {
            assert_eq!(ConsumerGroup::parse(group.as_str()), Some(group));
            assert!(!group.event_types().is_empty());
        }
    }
}
