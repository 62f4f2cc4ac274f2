//! The outbox relay: publishes committed events to Kafka in the order they were recorded and marks
//! each published only after the broker acknowledged it. Without Kafka the same loop delivers them
//! in-process: each event is handed to the consumer groups (`consumers`) and marked delivered once
//! they have all handled it.
//!
//! One relay publishes at a time. On PostgreSQL the relay that holds a session advisory lock is
//! the leader; if its process dies the lock goes with its connection and another relay takes over
//! on its next round. On SQLite (one process) the relay in that process is the leader.
//!
//! A round: read the oldest pending events (up to the batch size), hand them all to the producer,
//! await the acknowledgements in order, and mark the acknowledged prefix published with its
//! partition and offset. Anything after a failure stays pending and is sent again after a back-off:
//! delivery is at-least-once, and consumers de-duplicate on `event_id`.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sea_orm::DbErr;
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::clock::Clock;
use crate::config::{KafkaConfig, RelayConfig};
use crate::events::kafka;
use crate::shutdown::Shutdown;
use crate::state::RelayState;
use crate::store::outbox::{self, OutboxEvent, Published};
use crate::store::{Backend, Store};
use crate::telemetry::metrics::{Metrics, PublishLabels, SinkLabels};
use crate::telemetry::traces;

/// An arbitrary constant naming "the relay leader" among PostgreSQL advisory locks.
const LEADER_LOCK_KEY: i64 = 0x4843_5245_4c41; // "HCRELA"
/// After a failed round: 100 ms, doubling, at most 30 s.
const RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// How often the leader refreshes the backlog gauges (a count of the pending rows).
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// In-process rounds are shorter: each consumer group handles a round's events in one transaction.
const IN_PROCESS_BATCH: u64 = 500;

/// Where the relay sends events.
enum Sink {
    Kafka {
        producer: FutureProducer,
        kafka: KafkaConfig,
    },
    /// No broker: straight to this process's consumer groups.
    InProcess(Box<dyn LocalConsumers>),
}

/// The consumer groups of this process, as the relay sees them when there is no broker. `app`
/// wires `consumers::Consumers` in, so the relay knows nothing of the consumers.
#[async_trait::async_trait]
pub trait LocalConsumers: Send + Sync {
    /// Hands events, in order, to every group that wants them (a group that gives up on one
    /// dead-letters it), each event's handling continuing its span in `spans`. Returns how many,
    /// from the first, every group had: fewer than all when stopping, and the rest stay pending.
    async fn deliver(
        &self,
        events: &[OutboxEvent],
        spans: &[tracing::Span],
        shutdown: &mut Shutdown,
    ) -> Result<usize, DbErr>;
}

pub struct Relay {
    store: Store,
    sink: Sink,
    config: RelayConfig,
    wake: watch::Receiver<u64>,
    state: watch::Sender<RelayState>,
    metrics: std::sync::Arc<Metrics>,
    clock: Clock,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("database: {0}")]
    Database(#[from] DbErr),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

impl Relay {
    pub fn new(
        store: Store,
        kafka: KafkaConfig,
        config: RelayConfig,
        wake: watch::Receiver<u64>,
        metrics: std::sync::Arc<Metrics>,
    ) -> Result<Relay, RelayError> {
        let producer = kafka::producer(&kafka)?;
        let (state, _) = watch::channel(RelayState::default());
        Ok(Relay {
            store,
            sink: Sink::Kafka { producer, kafka },
            config,
            wake,
            state,
            metrics,
            clock: Clock::default(),
        })
    }

    /// A relay that delivers to the consumers in this process (Kafka disabled).
    pub fn in_process(
        store: Store,
        consumers: Box<dyn LocalConsumers>,
        config: RelayConfig,
        wake: watch::Receiver<u64>,
        metrics: std::sync::Arc<Metrics>,
    ) -> Relay {
        let (state, _) = watch::channel(RelayState::default());
        Relay { store, sink: Sink::InProcess(consumers), config, wake, state, metrics, clock: Clock::default() }
    }

    /// Reads `clock` instead of a clock of its own: the application's, which a test can move.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn state(&self) -> watch::Receiver<RelayState> {
        self.state.subscribe()
    }

    /// Publishes until `shutdown` resolves, then waits up to `grace` for in-flight
    /// acknowledgements; anything unacknowledged stays pending for the next relay.
    pub async fn run(self, mut shutdown: Shutdown, grace: Duration) {
        let mut leadership = Leadership::new(&self.store);
        // Topics are created beside publishing, not before it: a broker that is slow to answer admin
        // requests must not hold events back where the topics already exist.
        let topics = match &self.sink {
            Sink::Kafka { kafka, .. } => Some(tokio::spawn(create_topics_until_done(kafka.clone(), shutdown.clone()))),
            Sink::InProcess(_) => None,
        };
        let mut backoff = RETRY;
        let poll = Duration::from_millis(self.config.poll_ms);
        let mut last_gauges: Option<tokio::time::Instant> = None;
        let mut listener = CommitListener::new(&self.store);
        let mut wake = self.wake.clone();
        while !shutdown.is_shutdown() {
            let leader = leadership.ensure().await;
            self.state.send_modify(|s| s.leader = leader);
            self.metrics.events.relay_leader.set(i64::from(leader));
            if !leader {
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.recv() => {}
                }
                continue;
            }
            // Listen before reading pending rows: a commit after this point is notified, one before
            // it is read by the round below, so no wake-up falls between the two.
            listener.ensure_listening().await;
            if last_gauges.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
                last_gauges = Some(tokio::time::Instant::now());
                self.update_backlog_gauges().await;
            }
            // Seen before reading: a commit after this point changes it again and wakes the wait below.
            wake.borrow_and_update();
            match self.round(&mut shutdown.clone()).await {
                Ok(0) => {
                    backoff.reset();
                    tokio::select! {
                        _ = wake.changed() => {}
                        _ = listener.next() => {}
                        _ = tokio::time::sleep(poll) => {}
                        _ = shutdown.recv() => {}
                    }
                }
                Ok(_) => backoff.reset(),
                Err(err) => {
                    let pause = backoff.next_pause();
                    tracing::warn!(error = %err, retry_in_ms = pause.as_millis() as u64, "publishing failed; events stay pending");
                    self.state.send_modify(|s| s.last_error = Some(err.to_string()));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = shutdown.recv() => {}
                    }
                }
            }
        }
        if let Some(topics) = topics {
            topics.abort();
        }
        if let Sink::Kafka { producer, .. } = self.sink {
            // Dropping a producer purges its queue: flush what is in flight first.
            let _ = tokio::task::spawn_blocking(move || producer.flush(grace)).await;
        }
        tracing::info!("relay stopped");
    }

    /// The backlog as the leader sees it, for the outbox gauges.
    async fn update_backlog_gauges(&self) {
        let Ok(backlog) = outbox::backlog(self.store.db()).await else { return };
        let gauges = &self.metrics.outbox;
        gauges.pending.set(i64::try_from(backlog.pending).unwrap_or(i64::MAX));
        let age = backlog.oldest.map_or(0.0, |oldest| (self.clock.now() - oldest).as_seconds_f64().max(0.0));
        gauges.oldest_pending_age.set(age);
    }

    /// One round; returns how many events were published or delivered.
    pub async fn round(&self, shutdown: &mut Shutdown) -> Result<usize, RelayError> {
        match &self.sink {
            Sink::Kafka { producer, kafka } => self.publish_round(producer, kafka).await,
            Sink::InProcess(consumers) => self.deliver_round(consumers.as_ref(), shutdown).await,
        }
    }

    /// Hands each pending event to every consumer group that wants it, in recorded order. A group
    /// that gives up on an event dead-letters it and the others still get it; an event is marked
    /// delivered once every group is done with it.
    async fn deliver_round(
        &self,
        consumers: &dyn LocalConsumers,
        shutdown: &mut Shutdown,
    ) -> Result<usize, RelayError> {
        let events = outbox::pending(self.store.db(), self.config.batch_size.min(IN_PROCESS_BATCH)).await?;
        let spans: Vec<tracing::Span> = events
            .iter()
            .map(|event| {
                let span = tracing::info_span!(
                    "outbox.deliver",
                    otel.name = %format_args!("{} deliver", event.envelope.event_type.as_str()),
                    event_type = event.envelope.event_type.as_str(),
                    event_id = %event.envelope.event_id,
                );
                traces::continue_trace(&span, event.traceparent.as_deref());
                span
            })
            .collect();
        // Stopping: the events after those every group had stay pending (groups that handled
        // them skip them next time).
        let done = consumers.deliver(&events, &spans, shutdown).await?;
        drop(spans);
        let delivered: Vec<i64> = events[..done].iter().map(|event| event.sequence).collect();
        let now = self.clock.now();
        outbox::mark_delivered(self.store.db(), &delivered, now).await?;
        let latency = self.metrics.events.delivery_latency.get_or_create(&SinkLabels { sink: "in_process" }).clone();
        for event in events.iter().take(delivered.len()) {
            latency.observe((now - event.envelope.timestamp).as_seconds_f64().max(0.0));
        }
        if !delivered.is_empty() {
            let labels = PublishLabels { topic: "in_process".to_owned(), outcome: "delivered" };
            self.metrics.events.published.get_or_create(&labels).inc_by(delivered.len() as u64);
        }
        Ok(delivered.len())
    }

    async fn publish_round(&self, producer: &FutureProducer, kafka: &KafkaConfig) -> Result<usize, RelayError> {
        let events = outbox::pending(self.store.db(), self.config.batch_size).await?;
        if events.is_empty() {
            return Ok(0);
        }
        let topics: Vec<String> = events.iter().map(|e| e.envelope.event_type.topic(&kafka.topic_prefix)).collect();
        let keys: Vec<String> = events.iter().map(|e| e.envelope.metadata.aggregate_id.to_string()).collect();
        let mut deliveries = Vec::with_capacity(events.len());
        let mut spans = Vec::with_capacity(events.len());
        for (index, event) in events.iter().enumerate() {
            let span = publish_span(event, &topics[index]);
            let traceparent = traces::traceparent(&span);
            let record = FutureRecord::to(&topics[index])
                .key(&keys[index])
                .payload(&event.payload)
                .headers(kafka::headers(&event.envelope, event.replay, traceparent.as_deref()));
            match producer.send_result(record) {
                Ok(delivery) => {
                    deliveries.push(delivery);
                    spans.push(span);
                }
                // The local queue is full: publish what was queued, the rest next round.
                Err((err, _)) => {
                    tracing::debug!(error = %err, "producer queue full");
                    break;
                }
            }
        }
        let mut published = Vec::with_capacity(deliveries.len());
        let mut failure = None;
        for ((event, delivery), span) in events.iter().zip(deliveries).zip(&spans) {
            match delivery.await {
                Ok(Ok(ack)) => {
                    published.push(Published { sequence: event.sequence, partition: ack.partition, offset: ack.offset })
                }
                Ok(Err((err, _))) => {
                    traces::mark_error(span, "the broker did not acknowledge the event");
                    failure = Some(err);
                    break;
                }
                Err(_) => break,
            }
        }
        // Each publish span ends here, at the acknowledgement (or the failure) of its batch.
        drop(spans);
        // Only the acknowledged prefix: a later event of the same aggregate must not be marked
        // before an earlier one that failed.
        outbox::mark_published(self.store.db(), &published, self.clock.now()).await?;
        let metrics = &self.metrics;
        metrics.events.producer_queue.set(i64::from(producer.in_flight_count()));
        let now = self.clock.now();
        let latency = metrics.events.delivery_latency.get_or_create(&SinkLabels { sink: "kafka" }).clone();
        for event in events.iter().take(published.len()) {
            latency.observe((now - event.envelope.timestamp).as_seconds_f64().max(0.0));
        }
        for topic in &topics[..published.len()] {
            metrics.events.published.get_or_create(&PublishLabels { topic: topic.clone(), outcome: "acked" }).inc();
        }
        if failure.is_some() {
            let topic = topics[published.len()].clone();
            metrics.events.published.get_or_create(&PublishLabels { topic, outcome: "failed" }).inc();
        }
        if !published.is_empty() {
            self.state.send_modify(|s| s.last_error = None);
        }
        match failure {
            Some(err) => Err(err.into()),
            None => Ok(published.len()),
        }
    }
}

/// The span of one event's publication: a producer span continuing the trace of the request that
/// recorded it (its stored `traceparent`); consumers continue from this span.
fn publish_span(event: &outbox::OutboxEvent, topic: &str) -> tracing::Span {
    let span = tracing::info_span!(
        "outbox.publish",
        otel.name = %format_args!("{topic} publish"),
        otel.kind = "producer",
        event_type = event.envelope.event_type.as_str(),
        event_id = %event.envelope.event_id,
    );
    traces::continue_trace(&span, event.traceparent.as_deref());
    if traces::is_recorded(&span) {
        tracing_opentelemetry::OpenTelemetrySpanExt::set_attribute(&span, "messaging.system", "kafka");
        tracing_opentelemetry::OpenTelemetrySpanExt::set_attribute(
            &span,
            "messaging.destination.name",
            topic.to_owned(),
        );
    }
    span
}

async fn create_topics_until_done(kafka: KafkaConfig, mut shutdown: Shutdown) {
    let mut backoff = RETRY;
    loop {
        // Creating (10 s), describing (10 s) and altering (11 s) the topics are each bounded; this
        // bounds the whole, with room for all three.
        match tokio::time::timeout(Duration::from_secs(40), kafka::ensure_topics(&kafka)).await {
            Ok(Ok(())) => return,
            Ok(Err(err)) => tracing::warn!(error = %err, "could not create topics yet"),
            Err(_) => tracing::warn!("creating topics timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_pause()) => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// The shortest gap between two notifications from one process: under load a `NOTIFY` per commit
/// burst would be hundreds a second, each a round trip and a turn on PostgreSQL's notification lock.
const NOTIFY_GAP: Duration = Duration::from_millis(5);

/// On PostgreSQL, tells relays in other processes that this one committed events: at most one
/// `NOTIFY` per `NOTIFY_GAP`, sent after the commits on a pooled connection, so that request
/// transactions never take PostgreSQL's notification lock (a `NOTIFY` inside them serializes their
/// commits). Nothing is sent while this process's own relay leads: it was woken directly.
pub async fn notify_other_processes(
    store: Store,
    mut committed: watch::Receiver<u64>,
    local_relay: Option<watch::Receiver<RelayState>>,
    mut shutdown: Shutdown,
) {
    if store.backend() != Backend::Postgres {
        return;
    }
    loop {
        tokio::select! {
            changed = committed.changed() => if changed.is_err() { return },
            _ = shutdown.recv() => return,
        }
        committed.borrow_and_update();
        if local_relay.as_ref().is_some_and(|relay| relay.borrow().leader) {
            continue;
        }
        if let Err(err) = outbox::notify_relays(store.db()).await {
            tracing::debug!(error = %err, "could not notify other relays; they poll");
        }
        tokio::time::sleep(NOTIFY_GAP).await;
    }
}

/// The options of a connection of the relay's own (its leadership, its listener): the database URL
/// with the same server-side limits as the pool's.
fn own_connection_options(store: &Store) -> Option<sea_orm::sqlx::postgres::PgConnectOptions> {
    let options: sea_orm::sqlx::postgres::PgConnectOptions = store.url().parse().ok()?;
    Some(crate::store::with_server_limits(options, store.db().limits()))
}

/// Wake-ups from commits in other processes: PostgreSQL `LISTEN` on the outbox channel. The poll
/// interval stays as the fallback if the listening connection is lost; a listener that may have
/// gone silent (the pool was replaced after a fault since it connected) is replaced too.
struct CommitListener {
    db: crate::store::Db,
    options: Option<sea_orm::sqlx::postgres::PgConnectOptions>,
    listener: Option<(sea_orm::sqlx::postgres::PgListener, u64)>,
}

impl CommitListener {
    fn new(store: &Store) -> CommitListener {
        let options = (store.backend() == Backend::Postgres).then(|| own_connection_options(store)).flatten();
        CommitListener { db: store.db().clone(), options, listener: None }
    }

    /// (Re)connects and listens, if there is something to listen to and it is not listening yet.
    async fn ensure_listening(&mut self) {
        let Some(options) = &self.options else { return };
        let generation = self.db.generation();
        if self.listener.as_ref().is_some_and(|(_, since)| *since == generation) {
            return;
        }
        self.listener = None;
        let limits = self.db.limits();
        let pool = sea_orm::sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(limits.acquire)
            .connect_lazy_with(options.clone());
        let connect = async {
            let mut listener = sea_orm::sqlx::postgres::PgListener::connect_with(&pool).await?;
            listener.listen(outbox::NOTIFY_CHANNEL).await?;
            Ok::<_, sea_orm::sqlx::Error>(listener)
        };
        if let Ok(Ok(listener)) = tokio::time::timeout(limits.acquire + limits.round_trip(), connect).await {
            self.listener = Some((listener, generation));
        }
    }

    /// Resolves on the next notification; never while not listening.
    async fn next(&mut self) {
        let Some((listener, _)) = self.listener.as_mut() else { return std::future::pending().await };
        if listener.recv().await.is_err() {
            self.listener = None;
        }
    }
}

/// Who may publish: the holder of the PostgreSQL advisory lock, held on a connection of its own.
enum Leadership {
    Single,
    Advisory {
        options: Box<sea_orm::sqlx::postgres::PgConnectOptions>,
        limits: crate::store::DbLimits,
        connection: Option<sea_orm::sqlx::PgConnection>,
    },
}

impl Leadership {
    fn new(store: &Store) -> Leadership {
        match (store.backend(), own_connection_options(store)) {
            (Backend::Postgres, Some(options)) => {
                Leadership::Advisory { options: Box::new(options), limits: store.db().limits(), connection: None }
            }
            _ => Leadership::Single,
        }
    }

    /// Whether this relay leads now: keeps the lock while its connection answers (within the
    /// round-trip deadline), else tries to take it. A leader whose connection stopped answering
    /// gives up at once; the server releases the lock when it notices the session is gone (its
    /// TCP keepalives), and then a relay takes over.
    async fn ensure(&mut self) -> bool {
        use sea_orm::sqlx::{ConnectOptions, Connection, Row};
        let Leadership::Advisory { options, limits, connection } = self else { return true };
        if let Some(held) = connection {
            if matches!(tokio::time::timeout(limits.round_trip(), held.ping()).await, Ok(Ok(()))) {
                return true;
            }
            tracing::warn!("lost the relay leadership connection");
            *connection = None;
        }
        let attempt = async {
            let mut candidate = options.connect().await?;
            let acquired = sea_orm::sqlx::query("SELECT pg_try_advisory_lock($1)")
                .bind(LEADER_LOCK_KEY)
                .fetch_one(&mut candidate)
                .await?
                .get::<bool, _>(0);
            Ok::<_, sea_orm::sqlx::Error>((candidate, acquired))
        };
        let Ok(Ok((candidate, acquired))) = tokio::time::timeout(limits.acquire + limits.round_trip(), attempt).await
        else {
            return false;
        };
        if acquired {
            tracing::info!("this relay is now the leader");
            *connection = Some(candidate);
        }
        acquired
    }
}
