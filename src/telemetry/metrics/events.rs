//! The outbox, the relay and the consumers: events written, published, handled, dead-lettered.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::{Histograms, latency_histogram, metric_group};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabels {
    pub event_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PublishLabels {
    pub topic: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabels {
    /// `kafka` or `in_process`.
    pub sink: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub group: &'static str,
    pub event_type: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    pub group: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub target: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    pub group: &'static str,
    pub topic: String,
    pub partition: i32,
}

metric_group! {
    pub struct EventMetrics {
        /// Events committed to the outbox, by event type
        "outbox_events_written" outbox_written: Family<EventTypeLabels, Counter> = Family::default(),
        /// Events the relay sent, by topic and outcome (acked, failed; in-process delivery uses topic in_process)
        "events_published" published: Family<PublishLabels, Counter> = Family::default(),
        /// 1 while this process's relay is the elected publisher
        "relay_leader" relay_leader: Gauge = Gauge::default(),
        /// From an event's record time to the broker's acknowledgement (sink kafka) or its handling by every in-process consumer (sink in_process)
        "event_delivery_latency_seconds" delivery_latency: Histograms<SinkLabels> = Family::new_with_constructor(latency_histogram),
        /// Messages in the Kafka producer's queue, not yet acknowledged
        "producer_queue_messages" producer_queue: Gauge = Gauge::default(),
    }
}

metric_group! {
    pub struct ConsumerMetrics {
        /// Events handled by consumer group, event type and outcome (applied, duplicate, failed)
        "consumer_events" processed: Family<ConsumerLabels, Counter> = Family::default(),
        /// Messages between a Kafka consumer group's position and the partition's end, per partition (from librdkafka statistics every 5 s)
        "consumer_lag_messages" lag: Family<LagLabels, Gauge> = Family::default(),
        /// Time to handle one event (one attempt, effect and inbox in one transaction), by consumer group
        "consumer_handling_duration_seconds" duration: Histograms<GroupLabels> = Family::new_with_constructor(latency_histogram),
        /// Messages a consumer group gave up on
        "consumer_dead_letters" dead_lettered: Family<GroupLabels, Counter> = Family::default(),
        /// Webhook attempts by target (notifications, subscription) and outcome (delivered, retry, failed)
        "webhook_deliveries" webhook_deliveries: Family<DeliveryLabels, Counter> = Family::default(),
    }
}

metric_group! {
    pub struct OutboxMetrics {
        /// Events not yet published (or delivered in-process), as the leading relay last saw
        "outbox_pending_events" pending: Gauge = Gauge::default(),
        /// Age of the oldest unpublished event, as the leading relay last saw (0 when none)
        "outbox_oldest_pending_age_seconds" oldest_pending_age: Gauge<f64, std::sync::atomic::AtomicU64> = Gauge::default(),
    }
}
