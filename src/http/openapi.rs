//! The OpenAPI document's last pass: the problem responses an operation's shape implies.
//!
//! A handler declares its successes and the refusals of its own use case (409 for a conflict, 422
//! for a rule only it checks). What the shared extractors and middleware answer is the same for
//! every operation that uses them, so it is added here from what the operation declares, rather
//! than repeated (and forgotten) on each handler:
//!
//! | the operation has                | it may answer                                        |
//! |----------------------------------|------------------------------------------------------|
//! | a bearer token (`security`)      | 401 no or bad token, 403 the role may not            |
//! | an id in the path                | 400 not a UUID, 404 no such record                   |
//! | a JSON body                      | 400 not JSON, 413 too large, 415 not JSON content, 422 invalid fields |
//! | query parameters                 | 400 a malformed query string, 422 an invalid value   |
//! | an `If-Match` header             | 412 the record changed since it was read             |
//! | an `Idempotency-Key` header      | 400 a malformed key, 409 the key's first request is still running, 422 the key was used with another body |
//! | anything                         | 503 the database unreachable, every connection busy, or the request past its deadline |

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

use super::extract::{IDEMPOTENCY_KEY_PATTERN, IF_MATCH_PATTERN};
use super::problem::CONTENT_TYPE;

/// Adds to every operation the problem responses its shape implies (see the module's table); a
/// response the handler declared itself is kept (given the implied description if it has none).
/// States the rules of the headers the shared extractors read.
pub fn add_implied_problems(openapi: &mut OpenApi) {
    for item in openapi.paths.paths.values_mut() {
        let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for operation in operations.into_iter().flatten() {
            for parameter in operation.parameters.iter_mut().flatten() {
                if parameter.parameter_in == ParameterIn::Header {
                    let pattern = match parameter.name.to_ascii_lowercase().as_str() {
                        "if-match" => IF_MATCH_PATTERN,
                        "idempotency-key" => IDEMPOTENCY_KEY_PATTERN,
                        _ => continue,
                    };
                    let schema =
                        ObjectBuilder::new().schema_type(SchemaType::Type(Type::String)).pattern(Some(pattern));
                    parameter.schema = Some(schema.into());
                }
            }
            for (status, description) in implied_problems(operation) {
                if let Some(RefOr::T(declared)) = operation.responses.responses.get_mut(status) {
                    // Declared by the handler for its own reasons; say what the shared parts add.
                    if declared.description.is_empty() {
                        declared.description = description.to_owned();
                    }
                } else if !operation.responses.responses.contains_key(status) {
                    let response = ResponseBuilder::new()
                        .description(description)
                        .content(
                            CONTENT_TYPE,
                            ContentBuilder::new().schema(Some(Ref::from_schema_name("Problem"))).build(),
                        )
                        .build();
                    operation.responses.responses.insert(status.to_owned(), response.into());
                }
            }
            for (status, response) in operation.responses.responses.iter_mut() {
                if let RefOr::T(response) = response
                    && response.description.is_empty()
                {
                    response.description = generic_description(status).to_owned();
                }
            }
        }
    }
}

/// What a status says, for a response declared without words (the problem's `type` and `detail`
/// say more).
fn generic_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "created",
        "204" => "done, nothing to return",
        "401" => "not signed in, or the credentials are wrong",
        "409" => "conflicts with another record or with the record's state (see the problem's type)",
        "429" => "too many attempts; retry after the Retry-After seconds",
        _ => "see the problem's type",
    }
}

fn implied_problems(operation: &Operation) -> Vec<(&'static str, &'static str)> {
    let parameters = operation.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn, name: Option<&str>| {
        parameters.iter().any(|p| p.parameter_in == place && name.is_none_or(|n| p.name.eq_ignore_ascii_case(n)))
    };
    let mut problems = Vec::new();
    if operation.security.is_some() {
        problems.push(("401", "no bearer token, or one that is invalid, expired or revoked"));
        problems.push(("403", "the caller's role may not do this"));
    }
    if has(ParameterIn::Path, Some("id")) {
        problems.push(("400", "the id in the path is not a UUID"));
        problems.push(("404", "no record with this id (or one the caller may not see)"));
    }
    if operation.request_body.is_some() {
        problems.push(("400", "the body is not valid JSON"));
        problems.push(("413", "the body is larger than the limit"));
        problems.push(("415", "the body is not JSON (Content-Type: application/json)"));
        problems.push(("422", "invalid fields: `errors` names each field and the rule it broke"));
    }
    if has(ParameterIn::Query, None) {
        problems.push(("400", "the query string is malformed"));
        problems.push(("422", "invalid query parameters: `errors` names each and the rule it broke"));
    }
    if has(ParameterIn::Header, Some("If-Match")) {
        problems.push(("400", "If-Match is neither `*` nor an ETag"));
        problems.push(("412", "the record changed since the version in `If-Match` was read"));
    }
    if has(ParameterIn::Header, Some("Idempotency-Key")) {
        problems.push(("400", "the Idempotency-Key is not 1 to 255 visible ASCII characters"));
        problems.push(("409", "the first request with this Idempotency-Key is still being processed"));
        problems.push(("422", "this Idempotency-Key was used with another body"));
    }
    problems.push(("503", "temporarily unavailable (the database, a full pool, or the request deadline); retry"));
    problems
}
