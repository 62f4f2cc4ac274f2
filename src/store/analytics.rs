//! The analytics consumer's own tables: daily counters, incremented once per event.

use crate::domain::PractitionerId;
use chrono::NaiveDate;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::analytics_daily_appointments as appointments;
use super::entities::analytics_daily_patients as patients;

pub async fn count_patient_registered(conn: &impl ConnectionTrait, day: NaiveDate) -> Result<(), DbErr> {
    let row = patients::ActiveModel { day: Set(day), registered: Set(1) };
    patients::Entity::insert(row)
        .on_conflict(
            OnConflict::column(patients::Column::Day)
                .value(patients::Column::Registered, Expr::col((patients::Entity, patients::Column::Registered)).add(1))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Which appointment counter an event moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentCounter {
    Booked,
    Cancelled,
    Completed,
    NoShow,
}

impl AppointmentCounter {
    fn column(self) -> appointments::Column {
        match self {
            AppointmentCounter::Booked => appointments::Column::Booked,
            AppointmentCounter::Cancelled => appointments::Column::Cancelled,
            AppointmentCounter::Completed => appointments::Column::Completed,
            AppointmentCounter::NoShow => appointments::Column::NoShow,
        }
    }
}

pub async fn count_appointment(
    conn: &impl ConnectionTrait,
    day: NaiveDate,
    practitioner_id: PractitionerId,
    counter: AppointmentCounter,
) -> Result<(), DbErr> {
    let one = |c: AppointmentCounter| Set(i64::from(c == counter));
    let row = appointments::ActiveModel {
        day: Set(day),
        practitioner_id: Set(practitioner_id.into()),
        booked: one(AppointmentCounter::Booked),
        cancelled: one(AppointmentCounter::Cancelled),
        completed: one(AppointmentCounter::Completed),
        no_show: one(AppointmentCounter::NoShow),
    };
    let column = counter.column();
    appointments::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([appointments::Column::Day, appointments::Column::PractitionerId])
                .value(column, Expr::col((appointments::Entity, column)).add(1))
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DailyPatients {
    pub date: NaiveDate,
    pub registered: i64,
}

pub async fn daily_patients(
    conn: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<DailyPatients>, DbErr> {
    let rows = patients::Entity::find()
        .filter(patients::Column::Day.gte(from))
        .filter(patients::Column::Day.lte(to))
        .order_by_asc(patients::Column::Day)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|row| DailyPatients { date: row.day, registered: row.registered }).collect())
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DailyAppointments {
    pub date: NaiveDate,
    #[schema(value_type = uuid::Uuid)]
    pub practitioner_id: PractitionerId,
    pub booked: i64,
    pub cancelled: i64,
    pub completed: i64,
    pub no_show: i64,
}

pub async fn daily_appointments(
    conn: &impl ConnectionTrait,
    from: NaiveDate,
    to: NaiveDate,
    practitioner_id: Option<PractitionerId>,
) -> Result<Vec<DailyAppointments>, DbErr> {
    let mut query = appointments::Entity::find()
        .filter(appointments::Column::Day.gte(from))
        .filter(appointments::Column::Day.lte(to));
    if let Some(id) = practitioner_id {
        query = query.filter(appointments::Column::PractitionerId.eq(id));
    }
    let rows = query
        .order_by_asc(appointments::Column::Day)
        .order_by_asc(appointments::Column::PractitionerId)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| DailyAppointments {
            date: row.day,
            practitioner_id: PractitionerId::from_uuid(row.practitioner_id),
            booked: row.booked,
            cancelled: row.cancelled,
            completed: row.completed,
            no_show: row.no_show,
        })
        .collect())
}

/// Empties the aggregates, before a replay rebuilds them.
pub async fn reset(conn: &impl ConnectionTrait) -> Result<(), DbErr> {
    patients::Entity::delete_many().exec(conn).await?;
    appointments::Entity::delete_many().exec(conn).await?;
    Ok(())
}
