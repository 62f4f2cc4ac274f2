//! Every event the suite emits is checked against the versioned JSON Schemas in
//! `schemas/events/`: the envelope against `envelope.v1.json`, `data` against `{type}.v1.json`.
//! `TestApp::stop` calls this for the database of every test.

use std::collections::HashMap;
use std::sync::OnceLock;

use healthcore::testing::events::EventType;
use healthcore::testing::store::Store;
use jsonschema::Validator;

fn load(name: &str) -> Validator {
    let path = format!("{}/schemas/events/{name}.v1.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    jsonschema::options().should_validate_formats(true).build(&schema).unwrap_or_else(|e| panic!("{path}: {e}"))
}

struct Schemas {
    envelope: Validator,
    data: HashMap<EventType, Validator>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| Schemas {
        envelope: load("envelope"),
        data: EventType::ALL.into_iter().map(|t| (t, load(t.as_str()))).collect(),
    })
}

pub async fn assert_events_match_schemas(store: &Store) {
    let events =
        healthcore::testing::store::outbox::after(store.db(), 0, 100_000).await.expect("the outbox is readable");
    let schemas = schemas();
    for event in events {
        let value: serde_json::Value = serde_json::from_str(&event.payload).unwrap();
        if let Err(error) = schemas.envelope.validate(&value) {
            panic!("event {} does not match envelope.v1.json: {error}\n{value:#}", event.sequence);
        }
        let event_type = event.envelope.event_type;
        if let Err(error) = schemas.data[&event_type].validate(&value["data"]) {
            panic!("{} data does not match its schema: {error}\n{:#}", event_type.as_str(), value["data"]);
        }
    }
}

#[test]
fn every_event_type_has_a_schema_file_and_every_file_a_type() {
    let folder = format!("{}/schemas/events", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> =
        std::fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    let mut expected: Vec<String> =
        EventType::ALL.iter().map(|t| format!("{}.v{}.json", t.as_str(), t.schema_version())).collect();
    expected.push("envelope.v1.json".into());
    expected.sort();
    assert_eq!(files, expected);
    assert_eq!(schemas().data.len(), EventType::ALL.len());
}
