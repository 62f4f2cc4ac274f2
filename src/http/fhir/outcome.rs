//! Errors in FHIR's words: every problem response to a request under `/fhir/` leaves as an
//! OperationOutcome with the same status, one issue per invalid field (its FHIRPath in
//! `expression`), and the correlation ID as an extension. The response's extensions (the problem
//! type the audit middleware records) are kept.

use axum::{
    body::{Body, to_bytes},
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};
use serde_json::{Value, json};

use super::CONTENT_TYPE;
use crate::http::{correlation, problem};

/// The URL of the extension that carries the request's correlation ID.
pub const CORRELATION_EXTENSION: &str = "https://healthcore.dev/fhir/StructureDefinition/correlation-id";

/// Our problem bodies are small; anything larger is not one of them.
const PROBLEM_MAX_BYTES: usize = 64 * 1024;

/// FHIR's issue type for a response status.
fn issue_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid",
        401 => "login",
        403 => "forbidden",
        404 | 405 => "not-found",
        406 | 415 => "not-supported",
        409 | 412 => "conflict",
        413 => "too-long",
        429 => "throttled",
        503 | 504 | 408 => "transient",
        _ => "exception",
    }
}

/// An OperationOutcome of one error, with the request's correlation ID.
fn error(code: &str, diagnostics: &str) -> Value {
    let mut outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    });
    if let Some(id) = correlation::current() {
        outcome["extension"] = json!([{"url": CORRELATION_EXTENSION, "valueString": id}]);
    }
    outcome
}

/// The OperationOutcome that says what a problem body says.
fn from_problem(status: StatusCode, problem: &Value) -> Value {
    let code = issue_code(status);
    let detail = problem["detail"].as_str().unwrap_or("the request failed");
    let fields = problem["errors"].as_array().cloned().unwrap_or_default();
    let issues: Vec<Value> = if fields.is_empty() {
        vec![json!({"severity": "error", "code": code, "diagnostics": detail})]
    } else {
        fields
            .iter()
            .map(|field| {
                let message = field["message"].as_str().unwrap_or_default();
                let rule = field["rule"].as_str().unwrap_or_default();
                json!({
                    "severity": "error",
                    "code": code,
                    "diagnostics": format!("{message} (rule: {rule})"),
                    "expression": [field["field"].as_str().unwrap_or_default()],
                })
            })
            .collect()
    };
    let mut outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
    if let Some(id) = problem["correlation_id"].as_str() {
        outcome["extension"] = json!([{"url": CORRELATION_EXTENSION, "valueString": id}]);
    }
    outcome
}

fn is_problem(response: &Response) -> bool {
    response.headers().get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes() == problem::CONTENT_TYPE.as_bytes())
}

/// `_format`, or an `Accept` header, that asks for something other than JSON: FHIR's XML and
/// RDF are not served.
fn wants_other_format(request: &Request) -> bool {
    let format = request.uri().query().is_some_and(|query| {
        form_urlencoded::parse(query.as_bytes())
            .filter(|(name, _)| name == "_format")
            .any(|(_, value)| !matches!(value.as_ref(), "json" | "application/json" | "application/fhir+json"))
    });
    let accept = request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| {
        let types = accept.split(',').map(|t| t.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        !types.into_iter().any(|t| {
            t.is_empty() || t == "*/*" || t == "application/*" || t == "application/json" || t.ends_with("+json")
        })
    });
    format || accept
}

pub async fn middleware(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/fhir/") {
        return next.run(request).await;
    }
    if wants_other_format(&request) {
        let body = error("not-supported", "only JSON is served: application/fhir+json (or _format=json)");
        return super::respond(StatusCode::NOT_ACCEPTABLE, &body);
    }
    let response = next.run(request).await;
    if !is_problem(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let problem: Value = match to_bytes(body, PROBLEM_MAX_BYTES).await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => Value::Null,
    };
    let body = serde_json::to_vec(&from_problem(parts.status, &problem)).unwrap_or_default();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_invalid_field_is_an_issue_with_its_path() {
        let problem = json!({
            "detail": "the request has invalid fields: Appointment.start",
            "correlation_id": "abc",
            "errors": [{"field": "Appointment.start", "rule": "in_future", "message": "must be in the future"}],
        });
        let outcome = from_problem(StatusCode::UNPROCESSABLE_ENTITY, &problem);
        assert_eq!(outcome["issue"][0]["expression"], json!(["Appointment.start"]));
        assert_eq!(outcome["issue"][0]["code"], "invalid");
        assert_eq!(outcome["extension"][0]["valueString"], "abc");
        let plain = from_problem(StatusCode::CONFLICT, &json!({"detail": "overlaps"}));
        assert_eq!(plain["issue"][0]["code"], "conflict");
        assert_eq!(plain["issue"][0]["diagnostics"], "overlaps");
    }
}
