//! The JSON log line: one object per event with `timestamp`, `level`, `target`, `message`, the
//! fields of every enclosing span (so `correlation_id`, set on the request span, is a top-level key
//! of every line written while serving the request), `trace_id` and `span_id` of the innermost
//! traced span, and the event's own fields, all as real JSON values. An event field wins over a
//! span field of the same name. Span fields that only steer OpenTelemetry (`otel.*`) are left out.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A span's fields as JSON, kept in the span's extensions by `SpanFieldsLayer`.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}").into());
    }
}

/// Records span fields as JSON when the span is created (and when fields are recorded later).
pub struct SpanFieldsLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanFieldsLayer {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        fields.retain(|name, _| !name.starts_with("otel."));
        span.extensions_mut().insert(SpanFields(fields));
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(SpanFields(fields)) = extensions.get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(fields));
            fields.retain(|name, _| !name.starts_with("otel."));
        }
    }
}

/// Formats each event as one JSON object on one line.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert("timestamp".into(), chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true).into());
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("target".into(), metadata.target().into());
        if let Some(scope) = ctx.event_scope() {
            let mut trace = None;
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(SpanFields(fields)) = extensions.get::<SpanFields>() {
                    line.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                if let Some(otel) = extensions.get::<tracing_opentelemetry::OtelData>() {
                    trace = otel.trace_id().zip(otel.span_id()).or(trace);
                }
            }
            if let Some((trace_id, span_id)) = trace {
                line.insert("trace_id".into(), trace_id.to_string().into());
                line.insert("span_id".into(), span_id.to_string().into());
            }
        }
        let mut fields = Map::new();
        event.record(&mut JsonVisitor(&mut fields));
        line.insert("message".into(), fields.remove("message").unwrap_or(Value::String(String::new())));
        line.extend(fields);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}
