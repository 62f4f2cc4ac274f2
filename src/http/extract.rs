//! Extractors that turn every malformed input into a problem response instead of axum's plain
//! text rejections: bodies, path ids, query parameters, and the caller's identity.

use std::collections::HashMap;
use std::str::FromStr;

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Path, Query, Request, rejection::BytesRejection},
    http::{StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::access_log::CallerSlot;
use super::origin::origin;
use super::problem::Problem;
use crate::context::{AnonymousContext, RequestContext};
use crate::domain::FieldErrors;
use crate::error::{AppError, ProblemCode};
use crate::state::AppState;

/// A JSON body, parsed; `raw` keeps the bytes for idempotency fingerprints.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

fn is_json(parts: &Request) -> bool {
    parts
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(&request) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ProblemCode::UnsupportedMediaType,
                "the body must be JSON (Content-Type: application/json)",
            )
            .into_response());
        }
        let raw = Bytes::from_request(request, state).await.map_err(|rejection| match rejection {
            BytesRejection::FailedToBufferBody(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ProblemCode::PayloadTooLarge,
                    "the request body is larger than the limit",
                )
                .into_response()
            }
            other => Problem::new(other.status(), ProblemCode::BadRequest, "the request body could not be read")
                .into_response(),
        })?;
        // serde would read a JSON array positionally into a struct; every body here is an object.
        let first = raw.iter().find(|b| !b.is_ascii_whitespace());
        if first.is_some_and(|b| *b != b'{' && (b"[\"-0123456789tfn".contains(b))) {
            return Err(AppError::Validation(FieldErrors::single("body", "object", "the body must be a JSON object"))
                .into_response());
        }
        let deserializer = &mut serde_json::Deserializer::from_slice(&raw);
        match serde_path_to_error::deserialize::<_, T>(&mut *deserializer) {
            // One JSON value is the body: `{…} garbage` or `{…}{…}` is not a JSON document.
            Ok(_) if deserializer.end().is_err() => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                ProblemCode::MalformedJson,
                "the body is not valid JSON: there is more after the JSON value",
            )
            .into_response()),
            Ok(value) => Ok(JsonBody { value, raw }),
            Err(err) => {
                let path = err.path().to_string();
                let inner = err.into_inner();
                if inner.is_data() {
                    // Well-formed JSON of the wrong shape: name the field and the rule. serde's
                    // message names a type or an unknown field, never a value the client sent.
                    let (field, rule) = if path == "." { ("body".to_owned(), "shape") } else { (path, "type") };
                    let (field, rule) = match unknown_field(&inner.to_string()) {
                        Some(name) => (name, "unknown_field"),
                        None => (field, rule),
                    };
                    Err(AppError::Validation(FieldErrors::single(&field, rule, type_message(&inner.to_string())))
                        .into_response())
                } else {
                    Err(Problem::new(
                        StatusCode::BAD_REQUEST,
                        ProblemCode::MalformedJson,
                        format!("the body is not valid JSON (line {}, column {})", inner.line(), inner.column()),
                    )
                    .into_response())
                }
            }
        }
    }
}

/// The name of an unknown field, when it looks like a field name; anything else (a value put where
/// a name goes, control characters, a long string) is not repeated back.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let name = rest.split('`').next()?;
    let plain = !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    Some(if plain { name.to_owned() } else { "body".to_owned() })
}

/// What was wrong with a field of the wrong shape, in words of our own: serde's messages quote the
/// value sent (`invalid type: string "Ada …"`), and a value may be patient data.
fn type_message(message: &str) -> String {
    let kinds = [
        ("invalid type", "has the wrong type"),
        ("unknown variant", "is not one of the allowed values"),
        ("invalid value", "has an invalid value"),
        ("invalid length", "has the wrong number of items"),
        ("missing field", "is missing a required field"),
        ("unknown field", "is not a field of this body"),
        ("duplicate field", "is given twice"),
    ];
    kinds
        .iter()
        .find(|(prefix, _)| message.starts_with(prefix))
        .map_or("does not have the expected form", |(_, words)| words)
        .to_owned()
}

/// A UUID path segment, as the id type the route names (`IdPath<PatientId>`); anything else is a
/// 400, never a 500.
pub struct IdPath<Id = Uuid>(pub Id);

impl<S: Send + Sync, Id: FromStr> FromRequestParts<S> for IdPath<Id> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state).await.map_err(|_| {
            Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidId, "the id in the path is missing")
                .into_response()
        })?;
        raw.parse().map(IdPath).map_err(|_| {
            Problem::new(StatusCode::BAD_REQUEST, ProblemCode::InvalidId, "the id in the path must be a UUID")
                .into_response()
        })
    }
}

/// Query parameters as strings; each list endpoint parses them and reports every bad one as 422.
pub struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Query(map)| QueryParams(map))
            .map_err(|_| {
                Problem::new(StatusCode::BAD_REQUEST, ProblemCode::BadRequest, "the query string is malformed")
                    .into_response()
            })
    }
}

/// `If-Match: W/"<version>"` (the ETag a read returned; the strong form `"<version>"` too). `*`,
/// an empty value or no header means "any version"; anything else is not an entity tag and is refused with 400,
/// as `IF_MATCH_PATTERN` tells clients.
pub struct IfMatch(pub Option<i64>);

/// What an `If-Match` header holds, as the OpenAPI document states it: `*` or one of our ETags.
pub const IF_MATCH_PATTERN: &str = r#"^[ \t]*(?:\*|(?:W/)?"[0-9]{1,18}")?[ \t]*$"#;

fn parse_if_match(text: &str) -> Option<Option<i64>> {
    let text = text.trim_matches([' ', '\t']);
    if text.is_empty() || text == "*" {
        return Some(None);
    }
    let quoted = text.strip_prefix("W/").unwrap_or(text).strip_prefix('"')?.strip_suffix('"')?;
    let digits = (1..=18).contains(&quoted.len()) && quoted.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| quoted.parse().ok()).flatten().map(Some)
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        match value.to_str().ok().and_then(parse_if_match) {
            Some(version) => Ok(IfMatch(version)),
            None => {
                Err(AppError::BadRequest("If-Match must be * or the ETag a read returned, such as W/\"3\"".to_owned())
                    .into_response())
            }
        }
    }
}

/// The longest `Idempotency-Key` accepted.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;

/// What an `Idempotency-Key` header holds, as the OpenAPI document states it: visible ASCII.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// The `Idempotency-Key` header, if sent.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        match value.to_str() {
            Ok(key) if (1..=IDEMPOTENCY_KEY_MAX).contains(&key.len()) && key.chars().all(|c| c.is_ascii_graphic()) => {
                Ok(IdempotencyKey(Some(key.to_owned())))
            }
            _ => Err(AppError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"
            ))
            .into_response()),
        }
    }
}

/// The authenticated caller: a valid bearer token is required.
pub struct Caller(pub RequestContext);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .ok_or_else(|| {
                AppError::Unauthorized("a bearer token is required (POST /api/v1/auth/token)").into_response()
            })?;
        let (principal, _account) =
            crate::service::auth::authenticate(state, token.trim()).await.map_err(IntoResponse::into_response)?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            let _ = slot.0.set(principal);
        }
        let AnonymousContext { correlation_id, client_addr, user_agent } = origin(&parts.extensions, &parts.headers);
        let attempt = parts.extensions.get::<crate::context::Attempt>().cloned().unwrap_or_default();
        let clock = state.clock.clone();
        Ok(Caller(RequestContext { principal, clock, correlation_id, client_addr, user_agent, attempt }))
    }
}

/// A caller that has not authenticated (the login endpoint).
pub struct Anonymous(pub AnonymousContext);

impl<S: Send + Sync> FromRequestParts<S> for Anonymous {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Anonymous(origin(&parts.extensions, &parts.headers)))
    }
}

#[cfg(test)]
mod properties {
    use axum::body::Body;
    use proptest::prelude::*;

    use super::*;
    use crate::domain::appointment::BookingInput;
    use crate::domain::patient::PatientInput;

    /// Runs the extractor on a body as a request would carry it.
    fn extract<T: DeserializeOwned>(body: Vec<u8>) -> Result<(), u16> {
        let request = Request::builder()
            .method("POST")
            .uri("/")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body))
            .unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(JsonBody::<T>::from_request(request, &())).map(|_| ()).map_err(|r| r.status().as_u16())
    }

    fn json_like() -> impl Strategy<Value = Vec<u8>> {
        // Random bytes, and JSON-shaped text with random pieces in it.
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            "[\\{\\}\\[\\]\",:0-9a-z \\\\u]{0,120}".prop_map(String::into_bytes),
            (".{0,40}", ".{0,40}").prop_map(|(k, v)| format!("{{\"{k}\": \"{v}\", \"given_name\": 1}}").into_bytes()),
        ]
    }

    proptest! {
        #[test]
        fn any_body_is_parsed_or_refused_with_a_4xx(body in json_like()) {
            for status in [extract::<PatientInput>(body.clone()), extract::<BookingInput>(body)].into_iter().filter_map(Result::err) {
                prop_assert!((400..500).contains(&status), "{status}");
            }
        }

        #[test]
        fn a_valid_body_followed_by_anything_but_whitespace_is_refused(tail in "[^ \\t\\r\\n]{1,20}") {
            let body = format!("{{\"given_name\": \"Ada\"}}{tail}");
            prop_assert_eq!(extract::<PatientInput>(body.into_bytes()), Err(400));
        }
    }
}
