//! The `idempotency_keys` table: each creation that carried a key claims it first (a row with
//! status 0, held for a lease), and its transaction turns the claim into the stored resource. What
//! the client is shown again (status, `Location`, `ETag`) is the HTTP layer's, derived from it.
//! The `location` and `etag` columns are no longer written: an earlier version kept the response
//! headers there, and dropping them would break that version during a rolling upgrade.

use crate::domain::UserId;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, sea_query::Expr};

use super::entities::idempotency_key::{self, Column, Entity};

/// The status of a key claimed by a request still running.
const IN_PROGRESS: i32 = 0;
/// The status of a key whose creation committed (any status but `IN_PROGRESS` means so; 201 is
/// what every version has written).
const COMPLETED: i32 = 201;

/// What a completed key remembers: the request's fingerprint and the created resource as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResource {
    pub fingerprint: String,
    pub body: String,
}

/// What a key's row says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// A request with this fingerprint holds the key and has not finished.
    InProgress {
        fingerprint: String,
    },
    Completed(StoredResource),
}

/// The key's state for (user, key), unless its row has expired (a finished response past its
/// time, or a claim whose holder never finished).
pub async fn find(
    conn: &impl ConnectionTrait,
    user_id: UserId,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<KeyState>, DbErr> {
    let row = Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Key.eq(key))
        .filter(Column::ExpiresAt.gt(now))
        .one(conn)
        .await?;
    Ok(row.map(|row| match row.status {
        IN_PROGRESS => KeyState::InProgress { fingerprint: row.fingerprint },
        _ => KeyState::Completed(StoredResource { fingerprint: row.fingerprint, body: row.body }),
    }))
}

/// Claims (user, key) for a request until `lease_until`; `false` if another request holds it or
/// finished with it. An expired row gives its key up: keys are reusable after their time.
pub async fn claim(
    conn: &impl ConnectionTrait,
    user_id: UserId,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
) -> Result<bool, DbErr> {
    Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Key.eq(key))
        .filter(Column::ExpiresAt.lte(now))
        .exec(conn)
        .await?;
    let row = idempotency_key::Model {
        user_id: user_id.into(),
        key: key.to_owned(),
        fingerprint: fingerprint.to_owned(),
        status: IN_PROGRESS,
        location: None,
        etag: None,
        body: String::new(),
        created_at: now,
        expires_at: lease_until,
    };
    match Entity::insert(row.into_active_model()).exec_without_returning(conn).await {
        Ok(_) => Ok(true),
        // (user_id, key) is the table's only unique key.
        Err(err) if matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Turns this request's claim into its stored resource (inside the transaction of the resource);
/// `false` if the claim is no longer this request's (its lease ran out and another took the key).
pub async fn complete(
    conn: &impl ConnectionTrait,
    user_id: UserId,
    key: &str,
    stored: &StoredResource,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let updated = Entity::update_many()
        .col_expr(Column::Status, Expr::value(COMPLETED))
        .col_expr(Column::Body, Expr::value(stored.body.clone()))
        .col_expr(Column::ExpiresAt, Expr::value(expires_at))
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Key.eq(key))
        .filter(Column::Fingerprint.eq(stored.fingerprint.as_str()))
        .filter(Column::Status.eq(IN_PROGRESS))
        .exec(conn)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Gives up this request's claim (it failed: the key may be used again at once).
pub async fn release(conn: &impl ConnectionTrait, user_id: UserId, key: &str, fingerprint: &str) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Key.eq(key))
        .filter(Column::Fingerprint.eq(fingerprint))
        .filter(Column::Status.eq(IN_PROGRESS))
        .exec(conn)
        .await?;
    Ok(())
}

/// Removes expired keys, a batch at a time; returns how many. Run by the idempotency-expiry job.
pub async fn delete_expired(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let condition = sea_orm::Condition::all().add(Column::ExpiresAt.lte(now));
    super::retention::delete_in_batches::<Entity>(conn, &[Column::UserId, Column::Key], condition).await
}
