//! One request, one trace: the spans of a booking, captured by an in-memory exporter on the real
//! subscriber, run from the HTTP request through its database statements and outbox write to the
//! relay and every consumer group's handling, each span's parent a span of the same trace. Once
//! with the consumers in-process, once through a real Kafka-protocol broker, where the trace crosses
//! the broker in the message's `traceparent` header.

use std::collections::HashMap;

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use reqwest::Method;
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, booking, eventually};
use crate::kafka_consumers::{settings, start_groups, stop_groups};

const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// Installs the real subscriber with spans going to memory (this test process's only subscriber).
fn capture_spans() -> (SdkTracerProvider, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    healthcore::testing::telemetry::try_init(
        "info",
        healthcore::testing::telemetry::LogFormat::Json,
        std::io::sink,
        Some(&provider),
    )
    .expect("this test process installs the only subscriber");
    (provider, exporter)
}

/// Books an appointment with the caller's `traceparent`; returns the appointment id.
async fn book(app: &TestApp) -> Uuid {
    let practitioner = app.create_practitioner("TR-1").await;
    let patient = app.create_patient("Trace", "Subject").await;
    app.call_with(
        Method::POST,
        "/api/v1/appointments",
        Some(&app.admin_token),
        Some(booking(patient, practitioner, 24, 30)),
        &[("traceparent", &format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01")), ("x-correlation-id", "traced-booking")],
    )
    .await
    .expect(201)
    .id()
}

/// The finished spans of the caller's trace, by span id.
fn spans_of_the_trace(exporter: &InMemorySpanExporter) -> HashMap<SpanId, SpanData> {
    let trace = TraceId::from_hex(CALLER_TRACE).unwrap();
    exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .filter(|span| span.span_context.trace_id() == trace)
        .map(|span| (span.span_context.span_id(), span))
        .collect()
}

fn named<'a>(spans: &'a HashMap<SpanId, SpanData>, name: &str) -> Vec<&'a SpanData> {
    spans.values().filter(|span| span.name == name).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key.as_str() == key).map(|kv| kv.value.to_string())
}

/// Whether `ancestor` is on the parent chain of `span`.
fn descends_from(spans: &HashMap<SpanId, SpanData>, span: &SpanData, ancestor: SpanId) -> bool {
    let mut parent = span.parent_span_id;
    while let Some(next) = spans.get(&parent) {
        if parent == ancestor {
            return true;
        }
        parent = next.parent_span_id;
    }
    parent == ancestor
}

/// What both paths share: the server span continues the caller, every other span's parent is a
/// span of this trace, the statements and the outbox write are children of the request, and each
/// consumer group's handling of the booking descends from the outbox write.
fn assert_connected(spans: &HashMap<SpanId, SpanData>) -> SpanId {
    let server = named(spans, "POST /api/v1/appointments");
    assert_eq!(server.len(), 1, "one server span: {:?}", spans.values().map(|s| &s.name).collect::<Vec<_>>());
    let server = server[0];
    assert_eq!(server.span_kind, SpanKind::Server);
    assert_eq!(server.parent_span_id, SpanId::from_hex(CALLER_SPAN).unwrap(), "the caller's span is the parent");
    assert_eq!(attribute(server, "http.route").as_deref(), Some("/api/v1/appointments"));
    assert_eq!(attribute(server, "http.response.status_code").as_deref(), Some("201"));
    for span in spans.values().filter(|s| s.span_context.span_id() != server.span_context.span_id()) {
        assert!(spans.contains_key(&span.parent_span_id), "{} has a parent outside the trace", span.name);
    }

    let statements: Vec<&SpanData> = spans.values().filter(|s| s.span_kind == SpanKind::Client).collect();
    let server_id = server.span_context.span_id();
    let insert = statements
        .iter()
        .find(|s| s.name == "insert appointments" && descends_from(spans, s, server_id))
        .expect("the booking's INSERT is a span of the request");
    assert_eq!(attribute(insert, "db.collection.name").as_deref(), Some("appointments"));
    assert!(insert.end_time > insert.start_time, "a statement span has its real duration");

    let write = named(spans, "outbox.write");
    assert_eq!(write.len(), 1);
    let write = write[0].span_context.span_id();
    assert!(descends_from(spans, spans.get(&write).unwrap(), server_id));
    assert!(statements.iter().any(|s| s.name == "insert outbox_events" && s.parent_span_id == write));

    for group in ["analytics", "notifications", "integrations"] {
        let handled = named(spans, &format!("{group} appointment.booked"));
        assert!(!handled.is_empty(), "{group} handled the booking within the trace");
        assert!(handled.iter().all(|span| descends_from(spans, span, write)), "{group} continues the outbox write");
        // A booking has an effect for these two; integrations has none without a subscription
        // (the inbox entries of a batch are one statement, a span of its first event's handling).
        if group != "integrations" {
            assert!(
                handled.iter().any(|span| statements.iter().any(|s| s.parent_span_id == span.span_context.span_id())),
                "{group}'s statements are spans of its handling"
            );
        }
    }
    for span in spans.values() {
        for kv in &span.attributes {
            let value = kv.value.to_string();
            assert!(!value.contains("Trace") && !value.contains("Subject"), "a name in {}: {kv:?}", span.name);
        }
    }
    write
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_one_trace_from_the_request_to_the_in_process_consumers() {
    let (provider, exporter) = capture_spans();
    let app = TestApp::spawn(Backend::Sqlite).await;
    book(&app).await;
    app.events_settled().await;
    provider.force_flush().unwrap();
    let spans = spans_of_the_trace(&exporter);
    let write = assert_connected(&spans);
    let delivered = named(&spans, "appointment.booked deliver");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].parent_span_id, write, "the relay continues from the stored traceparent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_is_one_trace_across_the_kafka_broker() {
    let (provider, exporter) = capture_spans();
    let servers = std::env::var("HEALTHCORE_TEST_KAFKA").expect("./scripts/test starts a broker");
    let prefix = format!("hc{}", Uuid::new_v4().simple());
    let receiver = crate::webhook_receiver::WebhookReceiver::start().await;
    let webhook = receiver.url("/notifications");
    let settings = settings(&servers, &prefix, &webhook);
    let app = TestApp::spawn_with(Backend::Sqlite, &settings).await;
    let (stop, tasks) = start_groups(&app, &settings, &healthcore::testing::consumers::ConsumerGroup::ALL);
    book(&app).await;
    let spans = eventually("every group handled the booking", || {
        let _ = provider.force_flush();
        let spans = spans_of_the_trace(&exporter);
        let done = ["analytics", "notifications", "integrations"]
            .iter()
            .all(|group| !named(&spans, &format!("{group} appointment.booked")).is_empty());
        std::future::ready(done.then_some(spans))
    })
    .await;
    let write = assert_connected(&spans);
    let published = named(&spans, &format!("{prefix}.appointment.booked publish"));
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].span_kind, SpanKind::Producer);
    assert_eq!(published[0].parent_span_id, write, "the relay continues from the stored traceparent");
    let processed = named(&spans, &format!("{prefix}.appointment.booked process"));
    assert_eq!(processed.len(), 3, "one consumer span per group");
    for span in processed {
        assert_eq!(span.span_kind, SpanKind::Consumer);
        assert_eq!(span.parent_span_id, published[0].span_context.span_id(), "the header carried the publish span");
    }
    stop_groups(stop, tasks).await;
    app.stop().await;
}
