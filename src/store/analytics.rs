//! The analytics consumer's own tables: daily counters, incremented by what the events of a
//! transaction add up to.

use std::collections::BTreeMap;

use crate::domain::PractitionerId;
use chrono::NaiveDate;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;
use utoipa::ToSchema;

use super::entities::analytics_daily_appointments as appointments;
use super::entities::analytics_daily_patients as patients;

/// Which appointment counter an event moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppointmentCounter {
    Booked,
    Cancelled,
    Completed,
    NoShow,
}

impl AppointmentCounter {
    const ALL: [AppointmentCounter; 4] = [
        AppointmentCounter::Booked,
        AppointmentCounter::Cancelled,
        AppointmentCounter::Completed,
        AppointmentCounter::NoShow,
    ];

    /// Its place in `ALL` and in a tally's counts.
    fn index(self) -> usize {
        self as usize
    }

    fn column(self) -> appointments::Column {
        match self {
            AppointmentCounter::Booked => appointments::Column::Booked,
            AppointmentCounter::Cancelled => appointments::Column::Cancelled,
            AppointmentCounter::Completed => appointments::Column::Completed,
            AppointmentCounter::NoShow => appointments::Column::NoShow,
        }
    }
}

/// Registrations per day, gathered over the events of one transaction so that the table takes
/// one statement however many events there were. Kept sorted: concurrent transactions then lock
/// the rows they share in the same order.
#[derive(Debug, Default)]
pub struct RegistrationTally(BTreeMap<NaiveDate, i64>);

impl RegistrationTally {
    pub fn count(&mut self, day: NaiveDate) {
        *self.0.entry(day).or_default() += 1;
    }
}

/// Appointment counts per day and practitioner, gathered like `RegistrationTally`.
#[derive(Debug, Default)]
pub struct AppointmentTally(BTreeMap<(NaiveDate, PractitionerId), [i64; 4]>);

impl AppointmentTally {
    pub fn count(&mut self, day: NaiveDate, practitioner_id: PractitionerId, counter: AppointmentCounter) {
        self.0.entry((day, practitioner_id)).or_default()[counter.index()] += 1;
    }
}

/// `column = table.column + excluded.column`: an upsert that adds what the new row carries.
fn add_excluded<C: sea_orm::ColumnTrait + Copy>(
    on_conflict: &mut OnConflict,
    table: impl sea_orm::Iden + Copy + 'static,
    column: C,
) {
    on_conflict.value(column, Expr::col((table, column)).add(Expr::col((Alias::new("excluded"), column))));
}

/// Most rows in one counting statement (at most six parameters a row).
const MAX_TALLY_ROWS: usize = 1_000;

/// Adds the tally's registrations to the daily counts: one statement per `MAX_TALLY_ROWS` days.
pub async fn add_registrations(conn: &impl ConnectionTrait, tally: &RegistrationTally) -> Result<(), DbErr> {
    let rows: Vec<_> =
        tally.0.iter().map(|(day, n)| patients::ActiveModel { day: Set(*day), registered: Set(*n) }).collect();
    for chunk in rows.chunks(MAX_TALLY_ROWS) {
        let mut on_conflict = OnConflict::column(patients::Column::Day);
        add_excluded(&mut on_conflict, patients::Entity, patients::Column::Registered);
        patients::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(on_conflict)
            .exec_without_returning(conn)
            .await?;
    }
    Ok(())
}

/// Adds the tally's appointment counts to the daily counts per practitioner: one statement per
/// `MAX_TALLY_ROWS` days and practitioners.
pub async fn add_appointments(conn: &impl ConnectionTrait, tally: &AppointmentTally) -> Result<(), DbErr> {
    let rows: Vec<_> = tally
        .0
        .iter()
        .map(|((day, practitioner_id), [booked, cancelled, completed, no_show])| appointments::ActiveModel {
            day: Set(*day),
            practitioner_id: Set((*practitioner_id).into()),
            booked: Set(*booked),
            cancelled: Set(*cancelled),
            completed: Set(*completed),
            no_show: Set(*no_show),
        })
        .collect();
    for chunk in rows.chunks(MAX_TALLY_ROWS) {
        let mut on_conflict = OnConflict::columns([appointments::Column::Day, appointments::Column::PractitionerId]);
        for counter in AppointmentCounter::ALL {
            add_excluded(&mut on_conflict, appointments::Entity, counter.column());
        }
        appointments::Entity::insert_many(chunk.iter().cloned())
            .on_conflict(on_conflict)
            .exec_without_returning(conn)
            .await?;
    }
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
