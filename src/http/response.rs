//! Success responses: resources carry their version as `ETag`; creations add `Location`; a
//! creation repeated under its `Idempotency-Key` is answered again from the stored resource.

use axum::{
    Json,
    body::Bytes,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::context::RequestContext;
use crate::error::AppResult;
use crate::service::idempotency::{self, Claim, Disclosure, IdempotencyTicket};
use crate::state::AppState;
use crate::store::idempotency::StoredResource;

/// A resource the API addresses by id and exposes with its version as the ETag.
pub trait Versioned {
    fn id(&self) -> uuid::Uuid;
    fn version(&self) -> i64;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(impl Versioned for $t {
        fn id(&self) -> uuid::Uuid { self.id.as_uuid() }
        fn version(&self) -> i64 { self.version }
    })*};
}
versioned!(crate::domain::Patient, crate::domain::Practitioner);

impl Versioned for crate::domain::Appointment {
    fn id(&self) -> uuid::Uuid {
        self.id().as_uuid()
    }

    fn version(&self) -> i64 {
        self.version()
    }
}

/// A resource's version as the strong ETag the API sends and `If-Match` compares (`"3"`).
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}

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

/// A creation answered again from its stored resource: the same status, body, `Location` and
/// `ETag` as the first time, marked `Idempotent-Replayed`.
fn replayed(stored: StoredResource, collection: &str) -> Response {
    let resource: serde_json::Value = serde_json::from_str(&stored.body).unwrap_or_default();
    let id = resource["id"].as_str().and_then(|id| id.parse::<uuid::Uuid>().ok());
    let version = resource["version"].as_i64();
    let mut response = (StatusCode::CREATED, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    let location = id.map(|id| format!("{collection}/{id}"));
    for (name, value) in [(header::LOCATION, location), (header::ETAG, version.map(etag))] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// Runs a creating POST to `collection` under its `Idempotency-Key`, if any: the key is claimed
/// first, so a repeat of the request (also one sent while the first still runs) gets the stored
/// resource, audited as a read of what it shows; a different request with the same key gets 422.
pub async fn create_idempotently<T, F, Fut>(
    state: &AppState,
    ctx: &RequestContext,
    key: Option<String>,
    collection: &str,
    raw_body: &Bytes,
    disclosure: Disclosure,
    run: F,
) -> AppResult<Response>
where
    T: Serialize + Versioned,
    F: FnOnce(Option<IdempotencyTicket>) -> Fut,
    Fut: Future<Output = AppResult<T>>,
{
    let expires_at = state.clock.now() + chrono::Duration::seconds(state.config.idempotency_ttl_seconds);
    let route = format!("POST {collection}");
    let ticket = key.map(|key| IdempotencyTicket::new(ctx.principal.user_id, key, &route, raw_body, expires_at));
    if let Some(ticket) = &ticket
        && let Claim::Replay(stored) = idempotency::claim(state, ticket).await?
    {
        idempotency::audit_replay(state, ctx, disclosure, &stored).await?;
        return Ok(replayed(stored, collection));
    }
    match run(ticket.clone()).await {
        Ok(value) => {
            let location = format!("{collection}/{}", value.id());
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
