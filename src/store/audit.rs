//! The `audit_events` table: append-only. There is deliberately no update or delete here, and the
//! database refuses both (see the migration's triggers).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, Select};
use uuid::Uuid;

use super::entities::audit_event::{self, Column, Entity};
use super::{Page, PageRequest, fetch_page};
use crate::domain::audit::{AuditOutcome, AuditRecord};
use crate::domain::{PatientId, UserId};

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub patient_id: Option<PatientId>,
    pub actor_id: Option<UserId>,
    pub action: Option<String>,
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

/// Appends records in one multi-row insert.
pub async fn append(conn: &impl ConnectionTrait, records: &[AuditRecord]) -> Result<(), DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    // Bounded statements: well below SQLite's 32,766 bound parameters (12 columns a row), and
    // small enough that the connection's buffers stay small.
    for chunk in records.chunks(200) {
        Entity::insert_many(chunk.iter().map(|r| to_row(r).into_active_model())).exec_without_returning(conn).await?;
    }
    Ok(())
}

/// An audit record as the API returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
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

fn filtered(filter: &AuditFilter) -> Select<Entity> {
    let mut query = Entity::find();
    if let Some(id) = filter.patient_id {
        query = query.filter(Column::PatientId.eq(id));
    }
    if let Some(id) = filter.actor_id {
        query = query.filter(Column::ActorId.eq(id));
    }
    if let Some(action) = &filter.action {
        query = query.filter(Column::Action.eq(action.as_str()));
    }
    if let Some(outcome) = filter.outcome {
        query = query.filter(Column::Outcome.eq(outcome.as_str()));
    }
    if let Some(from) = filter.from {
        query = query.filter(Column::OccurredAt.gte(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(Column::OccurredAt.lt(to));
    }
    query
}

/// Newest first: an auditor usually asks "what happened lately".
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &AuditFilter,
    page: PageRequest,
) -> Result<Page<AuditEvent>, DbErr> {
    let order = |query: Select<Entity>| query.order_by_desc(Column::OccurredAt).order_by_desc(Column::Id);
    fetch_page(conn, filtered(filter), order, page, to_event).await
}
