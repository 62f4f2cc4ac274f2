//! `docs/asyncapi.yaml` against the event catalogue in code and the headers the relay really sets.

use std::collections::BTreeSet;

use healthcore::testing::events::{EventType, kafka};
use rdkafka::message::Headers;

fn document() -> serde_json::Value {
    let path = format!("{}/docs/asyncapi.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_event_type_has_a_channel_message_key_and_schema_and_nothing_else_does() {
    let doc = document();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let addresses: BTreeSet<String> =
        doc["channels"].as_object().unwrap().values().map(|c| c["address"].as_str().unwrap().to_owned()).collect();
    let expected: BTreeSet<String> = EventType::ALL.iter().map(|t| t.topic("healthcore")).collect();
    assert_eq!(addresses, expected);
    let messages = doc["components"]["messages"].as_object().unwrap();
    assert_eq!(messages.len(), EventType::ALL.len());
    for message in messages.values() {
        let name = message["name"].as_str().unwrap();
        let event_type = EventType::parse(name).unwrap_or_else(|| panic!("{name} is not an event type"));
        assert_eq!(message["bindings"]["kafka"]["key"]["format"], "uuid", "{name}: keyed by aggregate id");
        let parts = message["payload"]["allOf"].as_array().unwrap();
        assert_eq!(parts[0]["$ref"], "../schemas/events/envelope.v1.json");
        let data = parts[1]["properties"]["data"]["$ref"].as_str().unwrap();
        assert_eq!(data, format!("../schemas/events/{}.v{}.json", event_type.as_str(), event_type.schema_version()));
        assert!(std::path::Path::new(&format!("{}/docs/{data}", env!("CARGO_MANIFEST_DIR"))).exists(), "{data} exists");
    }
    assert_eq!(doc["operations"].as_object().unwrap().len(), EventType::ALL.len());
}

#[test]
fn the_documented_headers_are_the_ones_the_relay_sets() {
    let doc = document();
    let documented: BTreeSet<String> =
        doc["components"]["schemas"]["headers"]["properties"].as_object().unwrap().keys().cloned().collect();
    let event = healthcore::testing::store::outbox::OutboxEvent {
        sequence: 1,
        envelope: healthcore::testing::events::Envelope {
            event_type: EventType::PatientCreated,
            event_id: uuid::Uuid::now_v7(),
            timestamp: chrono::Utc::now(),
            data: serde_json::json!({}),
            metadata: healthcore::testing::events::envelope::Metadata {
                source: "healthcore".into(),
                schema_version: 1,
                correlation_id: "c".into(),
                actor_id: None,
                actor_role: None,
                aggregate_type: "patient".into(),
                aggregate_id: uuid::Uuid::now_v7(),
                aggregate_version: 1,
            },
        },
        payload: "{}".into(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        published: None,
        // A replayed event carries every header there is.
        replay: true,
    };
    let headers =
        kafka::headers(&event.envelope, event.replay, Some("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"));
    let set: BTreeSet<String> = headers.iter().map(|h| h.key.to_owned()).collect();
    assert_eq!(set, documented);
}
