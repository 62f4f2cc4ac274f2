//! Whole-table row counts the database keeps (`row_counts`, migration 9), so that a list without a
//! filter reports its total without counting a million rows on every page. Triggers keep them in
//! each writing statement's own transaction: a count is exact in whatever snapshot reads it.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};

/// The tables whose total is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountedTable {
    Patients,
    Appointments,
}

impl CountedTable {
    fn name(self) -> &'static str {
        match self {
            CountedTable::Patients => "patients",
            CountedTable::Appointments => "appointments",
        }
    }
}

/// How many rows `table` holds (the sum of its per-connection shares on PostgreSQL).
pub(crate) async fn rows_in(conn: &impl ConnectionTrait, table: CountedTable) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM row_counts WHERE table_name = $1",
        _ => "SELECT COALESCE(SUM(n), 0) AS n FROM row_counts WHERE table_name = ?",
    };
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(backend, sql, [table.name().into()]))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("an aggregate returns one row".into()))?;
    let n: i64 = row.try_get("", "n")?;
    u64::try_from(n).map_err(|_| DbErr::Type(format!("row_counts for {} is negative ({n})", table.name())))
}
