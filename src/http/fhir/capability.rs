//! What the FHIR interface supports, declared once: the CapabilityStatement lists it, each search
//! accepts exactly the parameters declared for its type, and a test holds the routes to it.

use serde_json::{Value, json};

/// A search parameter: its name, FHIR type and what it matches here.
#[derive(Debug, Clone, Copy)]
pub struct SearchParam {
    pub name: &'static str,
    pub kind: &'static str,
    pub documentation: &'static str,
}

/// A resource type and what may be done with it.
#[derive(Debug, Clone, Copy)]
pub struct ResourceSupport {
    pub resource_type: &'static str,
    /// FHIR's type-level and instance-level interactions: `read`, `search-type`, `create`, `update`,
    /// `patch`.
    pub interactions: &'static [&'static str],
    pub search: &'static [SearchParam],
    pub documentation: &'static str,
}

const fn param(name: &'static str, kind: &'static str, documentation: &'static str) -> SearchParam {
    SearchParam { name, kind, documentation }
}

const ID: SearchParam = param("_id", "token", "the resource's id");

/// Paging and format parameters every search accepts besides its own.
pub const RESULT_PARAMETERS: [&str; 3] = ["_count", "_offset", "_format"];

pub const RESOURCES: [ResourceSupport; 4] = [
    ResourceSupport {
        resource_type: "Patient",
        interactions: &["read", "search-type"],
        search: &[
            ID,
            param("identifier", "token", "the MRN (system https://healthcore.dev/fhir/sid/mrn), exactly"),
            param("name", "string", "start of the family or the given name, case-insensitive"),
            param("family", "string", "start of the family name, case-insensitive"),
            param("given", "string", "start of the given name, case-insensitive"),
            param("birthdate", "date", "birth date; prefixes eq, ge, gt, le, lt; YYYY, YYYY-MM or YYYY-MM-DD"),
            param("active", "token", "true or false"),
        ],
        documentation: "Patients: read and search (every access is audited)",
    },
    ResourceSupport {
        resource_type: "Practitioner",
        interactions: &["read", "search-type"],
        search: &[
            ID,
            param("identifier", "token", "the licence number (system https://healthcore.dev/fhir/sid/licence)"),
            param("name", "string", "start of the family or the given name, case-insensitive"),
            param("active", "token", "true or false"),
        ],
        documentation: "Practitioners: read and search",
    },
    ResourceSupport {
        resource_type: "Appointment",
        interactions: &["read", "search-type", "create", "update", "patch"],
        search: &[
            ID,
            param("patient", "reference", "the patient taking part (Patient/<id> or <id>)"),
            param("practitioner", "reference", "the practitioner taking part (Practitioner/<id> or <id>)"),
            param("actor", "reference", "either participant (Patient/<id> or Practitioner/<id>)"),
            param("date", "date", "the start; prefixes eq, ge, gt, le, lt; a date or an instant"),
            param("status", "token", "booked, cancelled, fulfilled or noshow"),
        ],
        documentation: "Appointments: book with create (status booked); update to move the slot or change the \
                        status, or a JSON Patch of /status (cancelled needs cancelationReason); the REST API's \
                        rules and locks",
    },
    ResourceSupport {
        resource_type: "AuditEvent",
        interactions: &["read", "search-type"],
        search: &[
            ID,
            param("patient", "reference", "records about this patient (Patient/<id> or <id>)"),
            param("agent", "reference", "records of this user's actions (the user's id)"),
            param("date", "date", "when it was recorded; prefixes eq, ge, gt, le, lt"),
            param("action", "token", "C, R, U, D or E"),
        ],
        documentation: "The audit trail (admins and auditors), each record in the shape of IHE's Basic Audit Log \
                        Patterns",
    },
];

pub fn support(resource_type: &str) -> &'static ResourceSupport {
    RESOURCES.iter().find(|r| r.resource_type == resource_type).expect("a declared resource type")
}

/// The CapabilityStatement of this server.
pub fn statement(base_url: &str, published: &str) -> Value {
    let resources: Vec<Value> = RESOURCES
        .iter()
        .map(|r| {
            json!({
                "type": r.resource_type,
                "documentation": r.documentation,
                "interaction": r.interactions.iter().map(|code| json!({"code": code})).collect::<Vec<_>>(),
                "versioning": "versioned",
                "readHistory": false,
                "updateCreate": false,
                "searchParam": r.search.iter().map(|p| json!({
                    "name": p.name,
                    "type": p.kind,
                    "documentation": p.documentation,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published,
        "publisher": "HealthCore",
        "kind": "instance",
        "software": {"name": "HealthCore", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "HealthCore FHIR R4 interface", "url": base_url},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Bearer tokens from POST /api/v1/auth/token; the role matrix of the REST API \
                              (docs/SECURITY.md). Unknown search parameters are ignored and left out of the \
                              self link, or refused with 400 under Prefer: handling=strict.",
            "security": {
                "cors": false,
                "description": "OAuth-style bearer token (HS256 JWT) in the Authorization header",
            },
            "resource": resources,
        }],
    })
}
