//! Idempotent creation: a request claims its key before its use case runs, so a retry sent while
//! the first attempt is still running waits for it and gets the same answer (ten parallel retries
//! of one booking got one 201 and nine 409 double-bookings). The claim becomes the stored resource
//! in the same transaction as the resource (`UnitOfWork::remember`), so a key is never remembered
//! for a write that rolled back, and a write that committed is never repeated; a request that
//! fails gives its claim up, so the key can be retried at once. How a replay looks on the wire is
//! the HTTP layer's (`http::response`).

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::context::RequestContext;
use crate::domain::{AppointmentId, PatientId, UserId};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, WriteTx, idempotency::KeyState, idempotency::StoredResource};

/// How often a retry looks whether the request holding its key has finished.
const POLL: Duration = Duration::from_millis(25);

/// A client's idempotency key together with what identifies its request.
#[derive(Debug, Clone)]
pub struct IdempotencyTicket {
    pub user_id: UserId,
    pub key: String,
    /// SHA-256 over route and body: the same key with another request is refused.
    pub fingerprint: String,
    /// Until when the created resource is remembered for replays.
    pub expires_at: DateTime<Utc>,
}

impl IdempotencyTicket {
    /// The ticket of `key` for the request `route` with `body`.
    pub fn new(user_id: UserId, key: String, route: &str, body: &[u8], expires_at: DateTime<Utc>) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update([0]);
        hasher.update(body);
        IdempotencyTicket { user_id, key, fingerprint: hex::encode(hasher.finalize()), expires_at }
    }
}

/// What a request with a key does: run (it holds the key now), or answer as the first did.
pub enum Claim {
    Run,
    Replay(StoredResource),
}

fn mismatch() -> AppError {
    AppError::IdempotencyMismatch("this Idempotency-Key was already used for a different request".into())
}

/// Claims the ticket's key, or waits for the request that holds it and returns its response. A
/// holder that vanished (its process died) loses the key when its lease ends: the request deadline
/// plus a second. The wait itself is bounded by this request's own deadline.
pub async fn claim(state: &AppState, ticket: &IdempotencyTicket) -> AppResult<Claim> {
    let lease = Span::milliseconds(i64::try_from(state.config.request_timeout_ms).unwrap_or(i64::MAX / 2) + 1000);
    loop {
        let tx = state.store.begin_write().await?;
        let at = state.clock.now();
        let claimed =
            store::idempotency::claim(&tx, ticket.user_id, &ticket.key, &ticket.fingerprint, at, at + lease).await;
        let claimed = tx.end(claimed).await?;
        if claimed {
            return Ok(Claim::Run);
        }
        match store::idempotency::find(state.store.db(), ticket.user_id, &ticket.key, state.clock.now()).await? {
            Some(KeyState::Completed(stored)) if stored.fingerprint == ticket.fingerprint => {
                return Ok(Claim::Replay(stored));
            }
            Some(KeyState::Completed(_)) => return Err(mismatch()),
            Some(KeyState::InProgress { fingerprint }) if fingerprint != ticket.fingerprint => return Err(mismatch()),
            // Still running (or it just expired, and the next claim takes it).
            _ => tokio::time::sleep(POLL).await,
        }
    }
}

/// Gives the claim up after the use case failed, so that a retry runs at once. If this fails too
/// (the database is gone), the lease ends it.
pub async fn release(state: &AppState, ticket: &IdempotencyTicket) {
    let released = async {
        let tx = state.store.begin_write().await?;
        let given_up = store::idempotency::release(&tx, ticket.user_id, &ticket.key, &ticket.fingerprint).await;
        tx.end(given_up).await
    };
    if let Err(err) = released.await {
        tracing::warn!(error = %err, "could not release an idempotency key; its lease will");
    }
}

/// Completes the ticket's claim with the created resource, inside the creation's transaction.
pub(super) async fn complete(tx: &WriteTx, ticket: &IdempotencyTicket, body: String) -> AppResult<()> {
    let stored = StoredResource { fingerprint: ticket.fingerprint.clone(), body };
    if store::idempotency::complete(tx, ticket.user_id, &ticket.key, &stored, ticket.expires_at).await? {
        Ok(())
    } else {
        Err(AppError::IdempotencyKeyInUse)
    }
}

/// What a replayed creation shows the client again, for the audit record of that disclosure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disclosure {
    Patient,
    Appointment,
    /// No patient data (a practitioner).
    Nothing,
}

/// A replay returns the created resource again: for patient data that is a read, and audited as one.
pub async fn audit_replay(
    state: &AppState,
    ctx: &RequestContext,
    disclosure: Disclosure,
    stored: &StoredResource,
) -> AppResult<()> {
    let body: serde_json::Value = serde_json::from_str(&stored.body).map_err(|e| AppError::Internal(e.into()))?;
    let id = |field: &str| body[field].as_str().and_then(|v| v.parse::<Uuid>().ok());
    let (action, subject) = match (disclosure, id("id")) {
        (Disclosure::Patient, Some(patient)) => {
            (AuditAction::PatientRead, Subject::patient(PatientId::from_uuid(patient)))
        }
        (Disclosure::Appointment, Some(appointment)) => {
            let patient = PatientId::from_uuid(id("patient_id").unwrap_or_default());
            (AuditAction::AppointmentRead, Subject::appointment(AppointmentId::from_uuid(appointment), patient))
        }
        _ => return Ok(()),
    };
    let record = AuditRecord::new(ctx, action, subject, AuditOutcome::Success).because("idempotent_replay");
    state.audit.record(vec![record]).await
}
