//! Reading a statement's rows into models.
//!
//! SeaORM's derived `FromQueryResult` finds every column by its name: a hash of the name and a
//! comparison per column per row, and for a NULL in an `Option` column an error (with its text
//! formatted) that is then turned into `None`. Under a list of patients that was about a tenth of
//! the server's time (BENCHMARKS.md). A model on a hot path reads its columns by position instead:
//! `Entity::find()` selects them in the order of the entity's `Column` enum (`Column::iter()`), so
//! `Column::X as usize` is where column X is. The decoding itself is sqlx's, as with SeaORM.

use super::entities;
use sea_orm::sqlx::{self, Postgres, Sqlite};
use sea_orm::{DbErr, FromQueryResult, QueryResult};

/// A model read from a row whose columns are the entity's, in the order of its `Column` enum
/// (what `Entity::find()` selects; extra columns after them are ignored).
pub(crate) trait ReadRow: Sized {
    fn read_row(row: &QueryResult) -> Result<Self, DbErr>;
}

/// A model of a cold path: read by SeaORM's derived, by-name `FromQueryResult`.
macro_rules! read_by_name {
    ($($model:ty),* $(,)?) => {$(
        impl ReadRow for $model {
            fn read_row(row: &QueryResult) -> Result<Self, DbErr> {
                <$model as FromQueryResult>::from_query_result(row, "")
            }
        }
    )*};
}
read_by_name!(
    entities::appointment::Model,
    entities::audit_event::Model,
    entities::integration_subscription::Model,
    entities::notification::Model,
    entities::practitioner::Model,
    entities::user::Model,
    entities::webhook_delivery::Model,
);

/// The value of the column at position `at` of `row`: NULL is `None` for an `Option<T>` and an
/// error otherwise, a value of another type an error (sqlx's checks, as SeaORM's by-name read).
pub(crate) fn column<T>(row: &QueryResult, at: usize) -> Result<T, DbErr>
where
    T: sqlx::Type<Postgres>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>,
{
    use sqlx::Row;
    let read = if let Some(row) = row.try_as_pg_row() {
        row.try_get::<T, _>(at)
    } else if let Some(row) = row.try_as_sqlite_row() {
        row.try_get::<T, _>(at)
    } else {
        return Err(DbErr::Type("a row from neither PostgreSQL nor SQLite".into()));
    };
    // sqlx's decode errors name the column and the types, never the value.
    read.map_err(|err| DbErr::Type(format!("column {at}: {err}")))
}
