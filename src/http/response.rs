//! Success responses: resources carry their version as `ETag`; creations add `Location`; stored
//! idempotent responses are replayed byte for byte.

use axum::{
    Json,
    body::Bytes,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::context::RequestContext;
use crate::error::AppResult;
use crate::service::etag;
use crate::service::idempotency::{self, Claim, Disclosure, IdempotencyTicket};
use crate::state::AppState;
use crate::store::idempotency::StoredResponse;

/// A resource the API addresses by id and exposes with its version as the ETag.
pub trait Versioned {
    fn id(&self) -> uuid::Uuid;
    fn version(&self) -> i64;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(impl Versioned for $t {
        fn id(&self) -> uuid::Uuid { self.id }
        fn version(&self) -> i64 { self.version }
    })*};
}
versioned!(crate::domain::Patient, crate::domain::Practitioner, crate::domain::Appointment);

fn with_etag(mut response: Response, version: i64) -> Response {
    if let Ok(value) = HeaderValue::from_str(&etag(version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// 200 with the resource and its ETag.
pub fn resource<T: Serialize + Versioned>(value: T) -> Response {
    let version = value.version();
    with_etag(Json(value).into_response(), version)
}

/// 201 with the resource, its ETag and its Location.
pub fn created<T: Serialize + Versioned>(value: T, location: String) -> Response {
    let version = value.version();
    let mut response = with_etag((StatusCode::CREATED, Json(value)).into_response(), version);
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn replayed(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::CREATED);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    for (name, value) in [(header::LOCATION, stored.location), (header::ETAG, stored.etag)] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// Runs a creating POST under its `Idempotency-Key`, if any: the key is claimed first, so a repeat
/// of the request (also one sent while the first still runs) gets the stored response, audited as
/// a read of what it shows; a different request with the same key gets 422.
#[expect(clippy::too_many_arguments, reason = "the handler's parts, each used once; a struct would only rename them")]
pub async fn create_idempotently<T, F, Fut>(
    state: &AppState,
    ctx: &RequestContext,
    key: Option<String>,
    route: &str,
    raw_body: &Bytes,
    location: fn(uuid::Uuid) -> String,
    disclosure: Disclosure,
    run: F,
) -> AppResult<Response>
where
    T: Serialize + Versioned,
    F: FnOnce(Option<IdempotencyTicket>) -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let ticket = key.map(|key| IdempotencyTicket::new(ctx.principal.user_id, key, route, raw_body)).transpose()?;
    if let Some(ticket) = &ticket
        && let Claim::Replay(stored) = idempotency::claim(state, ticket).await?
    {
        idempotency::audit_replay(state, ctx, disclosure, &stored).await?;
        return Ok(replayed(stored));
    }
    match run(ticket.clone()).await {
        Ok(value) => {
            let location = location(value.id());
            Ok(created(value, location))
        }
        Err(err) => {
            if let Some(ticket) = &ticket {
                idempotency::release(state, ticket).await;
            }
            Err(err)
        }
    }
}
