//! The `idempotency_keys` table: the stored outcome of each creating POST that carried a key.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use super::entities::idempotency_key::{self, Column, Entity};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub fingerprint: String,
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub body: String,
}

/// The stored response for (user, key), unless it has expired.
pub async fn find(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<StoredResponse>, DbErr> {
    let row = Entity::find()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Key.eq(key))
        .filter(Column::ExpiresAt.gt(now))
        .one(conn)
        .await?;
    Ok(row.map(|row| StoredResponse {
        fingerprint: row.fingerprint,
        status: u16::try_from(row.status).unwrap_or(200),
        location: row.location,
        etag: row.etag,
        body: row.body,
    }))
}

/// Stores a response. An expired row with the same key is replaced: keys are reusable after expiry.
pub async fn save(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    key: &str,
    response: &StoredResponse,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::UserId.eq(user_id))
        .filter(Column::Key.eq(key))
        .filter(Column::ExpiresAt.lte(now))
        .exec(conn)
        .await?;
    let row = idempotency_key::Model {
        user_id,
        key: key.to_owned(),
        fingerprint: response.fingerprint.clone(),
        status: i32::from(response.status),
        location: response.location.clone(),
        etag: response.etag.clone(),
        body: response.body.clone(),
        created_at: now,
        expires_at,
    };
    Entity::insert(row.into_active_model()).exec_without_returning(conn).await?;
    Ok(())
}

/// Removes expired keys; returns how many. Run by the idempotency-expiry job.
pub async fn delete_expired(conn: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(Entity::delete_many().filter(Column::ExpiresAt.lte(now)).exec(conn).await?.rows_affected)
}
