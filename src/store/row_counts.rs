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

/// The number of rows `table` holds, as a scalar subquery (the sum of its per-connection shares
/// on PostgreSQL): a list's page selects it beside its rows, so that the total costs no statement
/// of its own.
pub(crate) fn rows_in_sql(table: CountedTable, backend: DbBackend) -> String {
    let sum = match backend {
        DbBackend::Postgres => "CAST(COALESCE(SUM(n), 0) AS BIGINT)",
        _ => "COALESCE(SUM(n), 0)",
    };
    format!("(SELECT {sum} FROM row_counts WHERE table_name = '{}')", table.name())
}

/// How many rows `table` holds.
pub(crate) async fn rows_in(conn: &impl ConnectionTrait, table: CountedTable) -> Result<u64, DbErr> {
    let backend = conn.get_database_backend();
    let sql = format!("SELECT {} AS n", rows_in_sql(table, backend));
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("an aggregate returns one row".into()))?;
    let n: i64 = row.try_get("", "n")?;
    counted(table, n)
}

/// A kept count as a number of rows.
pub(crate) fn counted(table: CountedTable, n: i64) -> Result<u64, DbErr> {
    u64::try_from(n).map_err(|_| DbErr::Type(format!("row_counts for {} is negative ({n})", table.name())))
}
