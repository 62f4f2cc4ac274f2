//! The `audit_events` table: append-only. There is deliberately no update or delete here, and the
//! database refuses both (see the migration's triggers).

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, InsertStatement, OnConflict};
use sea_orm::sqlx::postgres::{PgArguments, Postgres};
use sea_orm::sqlx::{self, Arguments};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait, Select, Statement,
};
use uuid::Uuid;

use super::entities::audit_event::{self, Column, Entity};
use super::{Backend, Page, PageRequest, Selection, Store, fetch_page};
use crate::domain::audit::{AuditAction, AuditOutcome, AuditRecord, Month};
use crate::domain::{PatientId, Role, UserId};

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub id: Option<Uuid>,
    pub patient_id: Option<PatientId>,
    pub actor_id: Option<UserId>,
    pub action: Option<String>,
    /// Any of these actions (FHIR's `action` code stands for several).
    pub actions: Option<Vec<&'static str>>,
    pub outcome: Option<AuditOutcome>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

fn to_row(record: &AuditRecord) -> audit_event::Model {
    audit_event::Model {
        id: record.id,
        occurred_at: record.occurred_at,
        actor_id: record.actor_id.map(Uuid::from),
        actor_role: record.actor_role.map(|r| r.as_str().to_owned()),
        action: record.action.as_str().to_owned(),
        resource_type: record.resource_type.to_owned(),
        resource_id: record.resource_id,
        patient_id: record.patient_id.map(Uuid::from),
        outcome: record.outcome.as_str().to_owned(),
        correlation_id: record.correlation_id.clone(),
        client_addr: record.client_addr.clone(),
        user_agent: record.user_agent.clone(),
        reason: record.reason.clone(),
    }
}

/// Most records in one insert statement: well below SQLite's 32,766 bound parameters (13 columns
/// a row), and small enough that the connection's buffers stay small.
pub const MAX_ROWS_PER_INSERT: usize = 200;

/// Appends records in multi-row inserts of at most `MAX_ROWS_PER_INSERT` rows.
pub async fn append(conn: &impl ConnectionTrait, records: &[AuditRecord]) -> Result<(), DbErr> {
    for chunk in records.chunks(MAX_ROWS_PER_INSERT) {
        conn.execute(&insertion(chunk)).await?;
    }
    Ok(())
}

/// The insert of `records` (at most `MAX_ROWS_PER_INSERT`, at least one), for a caller that
/// writes it together with other rows (`store::insert_together`).
pub fn insertion(records: &[AuditRecord]) -> InsertStatement {
    debug_assert!(!records.is_empty() && records.len() <= MAX_ROWS_PER_INSERT);
    Entity::insert_many(records.iter().map(|r| to_row(r).into_active_model())).into_query()
}

/// On PostgreSQL a batch of any size is one statement: each column's values as one array
/// parameter, which the server turns into rows. One round trip, no `BEGIN`/`COMMIT` (the statement
/// is its own transaction) and one prepared plan whatever the batch's size. The arrays travel in
/// PostgreSQL's binary format, so the server reads each UUID and time as it stores it; the batch as
/// one JSON text, before, spent about a quarter of PostgreSQL's time under list patients lexing and
/// parsing it. (`COPY` was measured first: sqlx sends its data and its end as two writes, and on
/// TCP the second waits for the server's delayed acknowledgement of the first — about 40 ms per
/// batch, which every audited read waited on. BENCHMARKS.md, issue 14.)
const INSERT_FROM_ARRAYS: &str = "INSERT INTO audit_events (id, occurred_at, actor_id, actor_role, action, \
     resource_type, resource_id, patient_id, outcome, correlation_id, client_addr, user_agent, reason) \
     SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::text[], \
     $7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[])";

/// Appends a batch of records as a transaction of its own: on PostgreSQL `INSERT_FROM_ARRAYS`, on
/// SQLite the multi-row inserts of `append` in one write transaction.
pub async fn append_batch(store: &Store, records: &[AuditRecord]) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    match store.backend() {
        Backend::Postgres => store.db().execute_with(INSERT_FROM_ARRAYS, columns(records)?).await.map(drop),
        Backend::Sqlite => {
            let tx = store.begin_write().await?;
            append(&tx, records).await?;
            tx.commit().await
        }
    }
}

/// The parameters of `INSERT_FROM_ARRAYS`: one array per column, in its order. PostgreSQL text
/// cannot hold NUL at all (a client's `User-Agent` is any text): it becomes U+FFFD in the texts a
/// request brings (the names of actions, roles and outcomes are the code's own).
fn columns(records: &[AuditRecord]) -> Result<PgArguments, DbErr> {
    fn add<'a, T>(
        arguments: &mut PgArguments,
        records: &'a [AuditRecord],
        value: impl Fn(&'a AuditRecord) -> T,
    ) -> Result<(), DbErr>
    where
        Vec<T>: sqlx::Encode<'a, Postgres> + sqlx::Type<Postgres>,
    {
        let column: Vec<T> = records.iter().map(value).collect();
        arguments.add(column).map_err(|error| DbErr::Custom(format!("audit records as arrays: {error}")))
    }
    let mut arguments = PgArguments::default();
    add(&mut arguments, records, |r| r.id)?;
    add(&mut arguments, records, |r| r.occurred_at)?;
    add(&mut arguments, records, |r| r.actor_id.map(Uuid::from))?;
    add(&mut arguments, records, |r| r.actor_role.map(Role::as_str))?;
    add(&mut arguments, records, |r| r.action.as_str())?;
    add(&mut arguments, records, |r| r.resource_type)?;
    add(&mut arguments, records, |r| r.resource_id)?;
    add(&mut arguments, records, |r| r.patient_id.map(Uuid::from))?;
    add(&mut arguments, records, |r| r.outcome.as_str())?;
    add(&mut arguments, records, |r| without_nul(&r.correlation_id))?;
    add(&mut arguments, records, |r| r.client_addr.as_deref().map(without_nul))?;
    add(&mut arguments, records, |r| r.user_agent.as_deref().map(without_nul))?;
    add(&mut arguments, records, |r| r.reason.as_deref().map(without_nul))?;
    Ok(arguments)
}

/// `value` as PostgreSQL text can hold it: NUL becomes U+FFFD (copied only when there is one).
fn without_nul(value: &str) -> Cow<'_, str> {
    if value.contains('\0') { Cow::Owned(value.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(value) }
}

/// An audit record as the API returns it (and as an archive holds it, one JSON line each).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEvent {
    pub id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub actor_role: Option<String>,
    pub action: String,
    pub resource_type: String,
    pub resource_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub outcome: AuditOutcome,
    pub correlation_id: String,
    pub client_addr: Option<String>,
    pub user_agent: Option<String>,
    /// Why the attempt ended as it did, for refusals and errors: a problem type (`validation`,
    /// `not-found`, `stale-version`…) or a reason of the sign-in (`invalid_credentials`,
    /// `throttled`…).
    pub reason: Option<String>,
}

fn to_event(row: audit_event::Model) -> Result<AuditEvent, DbErr> {
    Ok(AuditEvent {
        outcome: AuditOutcome::parse(&row.outcome)
            .ok_or_else(|| DbErr::Type(format!("audit_events.outcome holds '{}'", row.outcome)))?,
        id: row.id,
        occurred_at: row.occurred_at,
        actor_id: row.actor_id,
        actor_role: row.actor_role,
        action: row.action,
        resource_type: row.resource_type,
        resource_id: row.resource_id,
        patient_id: row.patient_id,
        correlation_id: row.correlation_id,
        client_addr: row.client_addr,
        user_agent: row.user_agent,
        reason: row.reason,
    })
}

/// The actions the trail holds a record of for every patient or appointment shown: its bulk (a
/// list of twenty patients writes twenty). `ix_audit_events_by_action` leaves them out, so that
/// the records of reads cost it nothing to write; a list of one of them alone finds its page among
/// the newest records anyway.
pub const BULK_ACTIONS: [AuditAction; 4] =
    [AuditAction::AppointmentList, AuditAction::AppointmentRead, AuditAction::PatientList, AuditAction::PatientRead];

/// `BULK_ACTIONS` left out, as SQL with the names written out: the predicate of
/// `ix_audit_events_by_action`, and the condition a query states to be read by it. A planner can
/// use a partial index only where the query's own conditions imply its predicate, and a prepared
/// statement's parameters imply nothing once PostgreSQL plans it for any values (from its sixth
/// run on a connection); SQLite looks for the predicate as written.
pub fn not_a_bulk_action() -> String {
    let names = BULK_ACTIONS.map(|action| format!("'{}'", action.as_str())).join(", ");
    format!("action NOT IN ({names})")
}

/// The predicate of `ix_audit_events_unsuccessful` (migration 16), stated by a query for a
/// non-success outcome as written, for the reasons given at `not_a_bulk_action`.
const UNSUCCESSFUL: &str = "outcome <> 'success'";

fn filtered(filter: &AuditFilter) -> Select<Entity> {
    let mut query = Entity::find();
    if let Some(id) = filter.id {
        query = query.filter(Column::Id.eq(id));
    }
    if let Some(id) = filter.patient_id {
        query = query.filter(Column::PatientId.eq(id));
    }
    if let Some(id) = filter.actor_id {
        query = query.filter(Column::ActorId.eq(id));
    }
    if let Some(action) = &filter.action {
        query = query.filter(Column::Action.eq(action.as_str()));
        if !BULK_ACTIONS.iter().any(|bulk| bulk.as_str() == action) {
            query = query.filter(Expr::cust(not_a_bulk_action()));
        }
    }
    if let Some(actions) = &filter.actions {
        query = query.filter(Column::Action.is_in(actions.iter().copied()));
        if !actions.iter().any(|action| BULK_ACTIONS.iter().any(|bulk| bulk.as_str() == *action)) {
            query = query.filter(Expr::cust(not_a_bulk_action()));
        }
    }
    if let Some(outcome) = filter.outcome {
        query = query.filter(Column::Outcome.eq(outcome.as_str()));
        if outcome != AuditOutcome::Success {
            query = query.filter(Expr::cust(UNSUCCESSFUL));
        }
    }
    if let Some(from) = filter.from {
        query = query.filter(Column::OccurredAt.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(Column::OccurredAt.lt(to));
    }
    query
}

pub async fn find(conn: &impl ConnectionTrait, id: Uuid) -> Result<Option<AuditEvent>, DbErr> {
    Entity::find().filter(Column::Id.eq(id)).one(conn).await?.map(to_event).transpose()
}

/// Newest first: an auditor usually asks "what happened lately".
pub async fn list(store: &Store, filter: &AuditFilter, page: PageRequest) -> Result<Page<AuditEvent>, DbErr> {
    let order = |query: Select<Entity>| query.order_by_desc(Column::OccurredAt).order_by_desc(Column::Id);
    if store.backend() != Backend::Postgres {
        return fetch_page(store.db(), filtered(filter), Selection::Filtered, order, page, to_event).await;
    }
    let tx = store.begin_read().await?;
    let listed = async {
        tx.execute_unprepared(PAGES_WALK_AN_INDEX_IN_ORDER).await?;
        fetch_page(&tx, filtered(filter), Selection::Filtered, order, page, to_event).await
    }
    .await;
    tx.end(listed).await
}

/// The trail's lists read their page by walking an index in the list's order, never by reading
/// every match and sorting it. A patient or clinician can have thousands of records in a window
/// where most have a handful (the patients a ward list shows first are disclosed with every view
/// of it); planned for any values, or with statistics from before they got busy, PostgreSQL
/// expects the handful, and sorting a handful looks cheaper than merging the monthly partitions'
/// index walks: it then read all 18,800 records of such a patient for a page of twenty. Every
/// filter of the trail has an index in time order to walk (the filter's column, then
/// `occurred_at`), or walks `occurred_at` itself.
const PAGES_WALK_AN_INDEX_IN_ORDER: &str = "SET LOCAL enable_sort = off";

/// The records of `[from, to)` after `after` in id order (UUIDv7: the order they were written), at
/// most `limit`: an export reads a month this way, a page at a time.
pub async fn page_between(
    conn: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<Uuid>,
    limit: u64,
) -> Result<Vec<AuditEvent>, DbErr> {
    let mut query = filtered(&AuditFilter { from: Some(from), to: Some(to), ..Default::default() });
    if let Some(after) = after {
        query = query.filter(Column::Id.gt(after));
    }
    query.order_by_asc(Column::Id).limit(limit).all(conn).await?.into_iter().map(to_event).collect()
}

/// How many records lie in `[from, to)`.
pub async fn count_between(conn: &impl ConnectionTrait, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<u64, DbErr> {
    filtered(&AuditFilter { from: Some(from), to: Some(to), ..Default::default() }).count(conn).await
}

/// When the oldest record still in the table was written.
pub async fn oldest(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(Entity::find().order_by_asc(Column::OccurredAt).limit(1).one(conn).await?.map(|row| row.occurred_at))
}

/// Writes archived records back, skipping those still present; returns how many were written.
pub async fn restore(conn: &impl ConnectionTrait, events: &[AuditEvent]) -> Result<u64, DbErr> {
    let mut written = 0;
    for chunk in events.chunks(200) {
        let rows = chunk.iter().map(|event| {
            audit_event::Model {
                id: event.id,
                occurred_at: event.occurred_at,
                actor_id: event.actor_id,
                actor_role: event.actor_role.clone(),
                action: event.action.clone(),
                resource_type: event.resource_type.clone(),
                resource_id: event.resource_id,
                patient_id: event.patient_id,
                outcome: event.outcome.as_str().to_owned(),
                correlation_id: event.correlation_id.clone(),
                client_addr: event.client_addr.clone(),
                user_agent: event.user_agent.clone(),
                reason: event.reason.clone(),
            }
            .into_active_model()
        });
        written += Entity::insert_many(rows)
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .exec_without_returning(conn)
            .await?;
    }
    Ok(written)
}

/// The partition that holds (or held) a month's records on PostgreSQL.
pub fn partition_name(month: Month) -> String {
    format!("audit_events_{}", month.first_day().format("%Y_%m"))
}

/// Creates a month's partition on PostgreSQL if it does not exist (with the tables' owner's
/// rights, through the migration's function); returns its name.
pub async fn ensure_partition(conn: &impl ConnectionTrait, month: Month) -> Result<String, DbErr> {
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT healthcore_ensure_audit_partition($1)",
        [month.first_day().into()],
    );
    let row = conn.query_one_raw(statement).await?.ok_or_else(|| DbErr::RecordNotFound("a partition".into()))?;
    row.try_get_by_index(0)
}

/// Detaches a month's partition from the audit trail on PostgreSQL: its records leave the table
/// (and every query) but stay in `partition_name(month)` until the tables' owner drops it. Only
/// the owner may; returns whether it was attached.
pub async fn detach_partition(conn: &impl ConnectionTrait, month: Month) -> Result<bool, DbErr> {
    let name = partition_name(month);
    let attached = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT 1 FROM pg_inherits WHERE inhparent = 'audit_events'::regclass AND inhrelid = to_regclass($1)",
        [name.clone().into()],
    );
    if conn.query_one_raw(attached).await?.is_none() {
        return Ok(false);
    }
    conn.execute_unprepared(&format!("ALTER TABLE audit_events DETACH PARTITION \"{name}\"")).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_loses_only_nul_on_its_way_to_postgresql() {
        assert_eq!(without_nul("probe\0/1"), "probe\u{FFFD}/1");
        assert!(matches!(without_nul("ward-tablet/2.1 \\N \t"), Cow::Borrowed("ward-tablet/2.1 \\N \t")));
    }
}
