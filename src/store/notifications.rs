//! The `notifications` table: the patient notifications the notifications consumer prepared.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Select, Set};
use uuid::Uuid;

use super::entities::notification::{self, Column, Entity};
use super::{Page, PageRequest, Selection, fetch_page};
use crate::domain::{AppointmentId, PatientId, PractitionerId};

/// A prepared notification. Ids and times only: the receiving service looks up how to reach the
/// patient, so no contact details or names travel with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: Uuid,
    pub event_id: Uuid,
    pub kind: String,
    pub appointment_id: AppointmentId,
    pub patient_id: PatientId,
    pub practitioner_id: PractitionerId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub correlation_id: String,
    pub delivery_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

fn to_notification(row: notification::Model) -> Result<Notification, DbErr> {
    Ok(Notification {
        id: row.id,
        event_id: row.event_id,
        kind: row.kind,
        appointment_id: AppointmentId::from_uuid(row.appointment_id),
        patient_id: PatientId::from_uuid(row.patient_id),
        practitioner_id: PractitionerId::from_uuid(row.practitioner_id),
        starts_at: row.starts_at,
        ends_at: row.ends_at,
        correlation_id: row.correlation_id,
        delivery_id: row.delivery_id,
        created_at: row.created_at,
    })
}

/// Most notifications in one insert statement (eleven parameters a row).
const MAX_ROWS_PER_INSERT: usize = 500;

/// Records notifications: one statement per `MAX_ROWS_PER_INSERT` of them.
pub async fn insert_all(conn: &impl ConnectionTrait, notifications: &[Notification]) -> Result<(), DbErr> {
    for chunk in notifications.chunks(MAX_ROWS_PER_INSERT) {
        let rows = chunk.iter().map(|n| notification::ActiveModel {
            id: Set(n.id),
            event_id: Set(n.event_id),
            kind: Set(n.kind.clone()),
            appointment_id: Set(n.appointment_id.into()),
            patient_id: Set(n.patient_id.into()),
            practitioner_id: Set(n.practitioner_id.into()),
            starts_at: Set(n.starts_at),
            ends_at: Set(n.ends_at),
            correlation_id: Set(n.correlation_id.clone()),
            delivery_id: Set(n.delivery_id),
            created_at: Set(n.created_at),
        });
        Entity::insert_many(rows).exec_without_returning(conn).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Default)]
pub struct NotificationFilter {
    pub patient_id: Option<PatientId>,
    pub appointment_id: Option<AppointmentId>,
}

fn filtered(filter: &NotificationFilter) -> Select<Entity> {
    let mut query = Entity::find();
    if let Some(id) = filter.patient_id {
        query = query.filter(Column::PatientId.eq(id));
    }
    if let Some(id) = filter.appointment_id {
        query = query.filter(Column::AppointmentId.eq(id));
    }
    query
}

/// Newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &NotificationFilter,
    page: PageRequest,
) -> Result<Page<Notification>, DbErr> {
    let order = |query: Select<Entity>| query.order_by_desc(Column::CreatedAt).order_by_desc(Column::Id);
    fetch_page(conn, filtered(filter), Selection::Filtered, order, page, to_notification).await
}
