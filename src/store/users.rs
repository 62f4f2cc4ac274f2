//! The `users` table: accounts that can obtain access tokens.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use super::entities::user::{self, Column, Entity};
use crate::domain::{PatientId, Role, UserId};

#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub patient_id: Option<PatientId>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    /// Incremented by every change to the account; tokens issued before it are no longer valid.
    pub token_version: i64,
}

fn to_domain(row: user::Model) -> Result<User, DbErr> {
    Ok(User {
        role: row.role.parse().map_err(DbErr::Type)?,
        id: UserId::from_uuid(row.id),
        username: row.username,
        password_hash: row.password_hash,
        patient_id: row.patient_id.map(PatientId::from_uuid),
        active: row.active,
        created_at: row.created_at,
        token_version: row.token_version,
    })
}

/// The PostgreSQL channel on which every change to an account names its id: a trigger on `users`
/// notifies it for each row updated or deleted, by whatever path (see
/// `cache::follow_account_changes`).
pub const CHANGES_CHANNEL: &str = "healthcore_users";

/// Writes the account's role, link, activation, password hash and token version.
pub async fn update(conn: &impl ConnectionTrait, user: &User) -> Result<(), DbErr> {
    use sea_orm::ActiveModelTrait;
    to_row(user).into_active_model().reset_all().update(conn).await?;
    Ok(())
}

/// Reads the account and, on PostgreSQL, locks it until the transaction ends.
pub async fn find_for_update(conn: &impl ConnectionTrait, id: UserId) -> Result<Option<User>, DbErr> {
    use sea_orm::QuerySelect;
    Entity::find_by_id(id).lock_exclusive().one(conn).await?.map(to_domain).transpose()
}

/// Active administrators other than `except`: the last one may not be removed.
pub async fn other_active_admins(conn: &impl ConnectionTrait, except: UserId) -> Result<u64, DbErr> {
    Entity::find()
        .filter(Column::Role.eq(Role::Admin.as_str()))
        .filter(Column::Active.eq(true))
        .filter(Column::Id.ne(except))
        .count(conn)
        .await
}

/// Every account, by username, a page at a time.
pub async fn list(conn: &impl ConnectionTrait, page: super::PageRequest) -> Result<super::Page<User>, DbErr> {
    use sea_orm::QueryOrder;
    let order = |query: sea_orm::Select<Entity>| query.order_by_asc(Column::Username).order_by_asc(Column::Id);
    super::fetch_page(conn, Entity::find(), super::Selection::Filtered, order, page, to_domain).await
}

fn to_row(user: &User) -> user::Model {
    user::Model {
        id: user.id.as_uuid(),
        username: user.username.clone(),
        password_hash: user.password_hash.clone(),
        role: user.role.as_str().to_owned(),
        patient_id: user.patient_id.map(Uuid::from),
        active: user.active,
        created_at: user.created_at,
        token_version: user.token_version,
    }
}

pub async fn insert(conn: &impl ConnectionTrait, user: &User) -> Result<(), DbErr> {
    Entity::insert(to_row(user).into_active_model()).exec_without_returning(conn).await?;
    Ok(())
}

pub async fn find_by_username(conn: &impl ConnectionTrait, username: &str) -> Result<Option<User>, DbErr> {
    Entity::find().filter(Column::Username.eq(username)).one(conn).await?.map(to_domain).transpose()
}

pub async fn find(conn: &impl ConnectionTrait, id: UserId) -> Result<Option<User>, DbErr> {
    Entity::find_by_id(id).one(conn).await?.map(to_domain).transpose()
}

pub async fn count(conn: &impl ConnectionTrait) -> Result<u64, DbErr> {
    Entity::find().count(conn).await
}
