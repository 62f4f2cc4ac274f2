//! `Idempotency-Key` on creating POSTs. The stored response is written in the same transaction as
//! the resource it describes, so a key is never remembered for a write that rolled back, and a
//! write that committed is never repeated.

use chrono::Duration;
use sea_orm::ConnectionTrait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::now;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, idempotency::StoredResponse};

pub const KEY_MAX: usize = 255;

/// A client's idempotency key together with what identifies its request.
#[derive(Debug, Clone)]
pub struct IdempotencyTicket {
    pub user_id: Uuid,
    pub key: String,
    /// SHA-256 over route and body: the same key with another request is refused.
    pub fingerprint: String,
}

impl IdempotencyTicket {
    pub fn new(user_id: Uuid, key: String, route: &str, body: &[u8]) -> AppResult<Self> {
        if key.is_empty() || key.len() > KEY_MAX || !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(AppError::BadRequest(format!(
                "the Idempotency-Key header must be 1 to {KEY_MAX} visible ASCII characters"
            )));
        }
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        Ok(IdempotencyTicket { user_id, key, fingerprint: hex::encode(hasher.finalize()) })
    }
}

/// The stored response for this key, if the same request was made before; an error if the key was
/// used for a different request.
pub async fn replay(state: &AppState, ticket: &IdempotencyTicket) -> AppResult<Option<StoredResponse>> {
    let stored = store::idempotency::find(state.store.db(), ticket.user_id, &ticket.key, now()).await?;
    match stored {
        Some(stored) if stored.fingerprint != ticket.fingerprint => {
            Err(AppError::IdempotencyMismatch("this Idempotency-Key was already used for a different request".into()))
        }
        other => Ok(other),
    }
}

/// Stores the response of a successful create inside its transaction.
pub async fn remember(
    state: &AppState,
    conn: &impl ConnectionTrait,
    ticket: &IdempotencyTicket,
    location: String,
    etag: String,
    body: &impl serde::Serialize,
) -> AppResult<()> {
    let response = StoredResponse {
        fingerprint: ticket.fingerprint.clone(),
        status: 201,
        location: Some(location),
        etag: Some(etag),
        body: serde_json::to_string(body).map_err(|e| AppError::Internal(e.into()))?,
    };
    let now = now();
    let expires_at = now + Duration::seconds(state.config.idempotency_ttl_seconds);
    store::idempotency::save(conn, ticket.user_id, &ticket.key, &response, now, expires_at).await.map_err(|err| {
        if err.sql_err().is_some() {
            AppError::conflict(
                "idempotency-key-in-use",
                "another request with this Idempotency-Key is in progress; retry it",
            )
        } else {
            err.into()
        }
    })
}
