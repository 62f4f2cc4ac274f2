//! The `appointments` table.

use super::entities::appointment::{self, Column, Entity};
use super::row_counts::CountedTable;
use super::{Page, PageRequest, Selection, fetch_page};
use crate::domain::appointment::MAX_DURATION_HOURS;
use crate::domain::appointment::StoredAppointment;
use crate::domain::{Appointment, AppointmentId, AppointmentStatus, PatientId, PractitionerId, TimeSlot};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::InsertStatement;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, QueryTrait, Select, Statement,
};

#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    pub id: Option<AppointmentId>,
    pub patient_id: Option<PatientId>,
    pub practitioner_id: Option<PractitionerId>,
    pub status: Option<AppointmentStatus>,
    /// Appointments that start at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Appointments that start before this time.
    pub to: Option<DateTime<Utc>>,
}

impl AppointmentFilter {
    /// The participant whose index bounds the list's time (the patient's first: a patient has
    /// fewer appointments than a practitioner), and the other one, if both are named.
    fn participants(&self) -> (Option<ParticipantAppointments>, Option<ParticipantAppointments>) {
        let patient = self.patient_id.map(ParticipantAppointments::of_patient);
        let practitioner = self.practitioner_id.map(ParticipantAppointments::of_practitioner);
        (patient.or(practitioner), patient.and(practitioner))
    }

    /// No condition at all: the list is the whole table.
    fn selects_all(&self) -> bool {
        // Destructured so that a new condition cannot be forgotten here.
        let AppointmentFilter { id, patient_id, practitioner_id, status, from, to } = self;
        id.is_none()
            && patient_id.is_none()
            && practitioner_id.is_none()
            && status.is_none()
            && from.is_none()
            && to.is_none()
    }
}

pub fn to_domain(row: appointment::Model) -> Result<Appointment, DbErr> {
    Ok(Appointment::restore(StoredAppointment {
        status: AppointmentStatus::parse(&row.status)
            .ok_or_else(|| DbErr::Type(format!("appointments.status holds '{}'", row.status)))?,
        slot: TimeSlot::new(row.starts_at, row.ends_at)
            .map_err(|(_, rule)| DbErr::Type(format!("appointment {}: its end {rule}", row.id)))?,
        id: AppointmentId::from_uuid(row.id),
        patient_id: PatientId::from_uuid(row.patient_id),
        practitioner_id: PractitionerId::from_uuid(row.practitioner_id),
        reason: row.reason,
        notes: row.notes,
        cancellation_reason: row.cancellation_reason,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

fn to_row(appointment: &Appointment) -> appointment::Model {
    appointment::Model {
        id: appointment.id().as_uuid(),
        patient_id: appointment.patient_id().as_uuid(),
        practitioner_id: appointment.practitioner_id().as_uuid(),
        starts_at: appointment.slot().start(),
        ends_at: appointment.slot().end(),
        reason: appointment.reason().to_owned(),
        notes: appointment.notes().map(str::to_owned),
        status: appointment.status().as_str().to_owned(),
        cancellation_reason: appointment.cancellation_reason().map(str::to_owned),
        version: appointment.version(),
        created_at: appointment.created_at(),
        updated_at: appointment.updated_at(),
    }
}

pub async fn insert(conn: &impl ConnectionTrait, appointment: &Appointment) -> Result<(), DbErr> {
    Entity::insert(to_row(appointment).into_active_model()).exec_without_returning(conn).await?;
    Ok(())
}

pub async fn find(conn: &impl ConnectionTrait, id: AppointmentId) -> Result<Option<Appointment>, DbErr> {
    Entity::find_by_id(id).one(conn).await?.map(to_domain).transpose()
}

pub async fn find_for_update(conn: &impl ConnectionTrait, id: AppointmentId) -> Result<Option<Appointment>, DbErr> {
    Entity::find_by_id(id).lock_exclusive().one(conn).await?.map(to_domain).transpose()
}

pub async fn update(conn: &impl ConnectionTrait, appointment: &Appointment) -> Result<(), DbErr> {
    to_row(appointment).into_active_model().reset_all().update(conn).await?;
    Ok(())
}

/// Who already holds an overlapping booked slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clash {
    Practitioner,
    Patient,
}

/// The participants of a booking as found while locking them: `None` where no row has the id,
/// otherwise whether it is active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Participants {
    pub practitioner_active: Option<bool>,
    pub patient_active: Option<bool>,
}

/// Locks the practitioner's and the patient's rows for the rest of the transaction, in that order
/// (every booking takes them so, and no two can deadlock), in one round trip. SQLite has no row
/// locks: its write transaction already excludes every other writer.
pub async fn lock_participants(
    conn: &impl ConnectionTrait,
    practitioner_id: PractitionerId,
    patient_id: PatientId,
) -> Result<Participants, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT (SELECT active FROM practitioners WHERE id = $1 FOR UPDATE) AS practitioner_active, \
                    (SELECT active FROM patients WHERE id = $2 FOR UPDATE) AS patient_active"
        }
        _ => {
            "SELECT (SELECT active FROM practitioners WHERE id = ?) AS practitioner_active, \
                    (SELECT active FROM patients WHERE id = ?) AS patient_active"
        }
    };
    let statement =
        Statement::from_sql_and_values(backend, sql, [practitioner_id.as_uuid().into(), patient_id.as_uuid().into()]);
    let row = conn.query_one_raw(statement).await?.ok_or_else(|| DbErr::RecordNotFound("participants".into()))?;
    Ok(Participants {
        practitioner_active: row.try_get("", "practitioner_active")?,
        patient_active: row.try_get("", "patient_active")?,
    })
}

/// The appointments of one participant (a practitioner or a patient), by start time: the
/// participant's id as an equality and the times as plain bounds, a range of the participant's own
/// index (`ix_appointments_{practitioner,patient}_start`), which PostgreSQL estimates from its
/// statistics for any values, so that a prepared statement's plan for any values is sound too.
///
/// They were once written, on PostgreSQL, as comparisons of `(participant, starts_at)` pairs, which
/// the index on start time alone cannot answer. PostgreSQL estimates a range of pairs by its first
/// member, and ids are time-ordered (UUIDv7): for a participant in the middle of the ids a day's
/// window looked like a tenth of the table, and at five million appointments the overlap check and a
/// practitioner's day scanned the table (`scripts/bench-scale`: bookings and calendar days answered
/// 503). The risk the pairs were meant to remove is bounded instead: statistics lag behind the
/// future, so a window beyond the last `ANALYZE` can look all but empty and the planner may read a
/// list's window (a practitioner's calendar) through the index on start time — every participant's
/// appointments in that window, never anyone's history
/// (`the_overlap_check_reads_the_window_not_the_participants_histories`). The overlap check reads
/// the two participants' own (`overlapping`).
///
/// A practitioner's appointments in one status are a range of their own index
/// (`ix_appointments_status_practitioner_start`), with the status as an equality: every condition is
/// one of its columns, so an index scan of any other costs more
/// (`a_practitioners_bookings_read_the_bookings_not_the_history_before_them` holds the planner to
/// it, with a future the statistics do not know). Without it a practitioner's bookings were found
/// by fetching every appointment of theirs to test its status, and booked ones lie at the far end
/// of the history (100,000 appointments: past the statement timeout). Before PostgreSQL has any
/// statistics of the table, both indexes look like a row's read and the index on status and start
/// time wins on its smaller height: a day's calendar then reads every practitioner's bookings of
/// the day (2,002 rows among 21,000 bookings). Testing the status per row within a short window
/// avoids that and, once statistics exist and the window looks empty, hands the read to the index
/// on start time instead (2,006 rows in
/// `the_overlap_check_reads_the_window_not_the_participants_histories`): the equality is kept, for
/// the database that has statistics. A patient's appointments are few enough to test each.
#[derive(Clone, Copy)]
struct ParticipantAppointments {
    column: Column,
    id: uuid::Uuid,
}

impl ParticipantAppointments {
    fn of_practitioner(id: PractitionerId) -> Self {
        ParticipantAppointments { column: Column::PractitionerId, id: id.as_uuid() }
    }

    fn of_patient(id: PatientId) -> Self {
        ParticipantAppointments { column: Column::PatientId, id: id.as_uuid() }
    }

    /// This participant's appointments in `status` (any, if `None`), starting after `after` (if
    /// given) and before `before` (if given); `inclusive` makes `after` a lower bound the start
    /// may equal.
    fn starting(
        self,
        status: Option<AppointmentStatus>,
        after: Option<DateTime<Utc>>,
        inclusive: bool,
        before: Option<DateTime<Utc>>,
    ) -> Condition {
        let mut condition = Condition::all().add(self.column.eq(self.id));
        if let Some(status) = status {
            let has_status_index = matches!(self.column, Column::PractitionerId);
            condition = condition.add(if has_status_index {
                Column::Status.eq(status.as_str())
            } else {
                in_status_unindexed(status)
            });
        }
        if let Some(after) = after {
            let start = Column::StartsAt;
            condition = condition.add(if inclusive { start.gte(after) } else { start.gt(after) });
        }
        if let Some(before) = before {
            condition = condition.add(Column::StartsAt.lt(before));
        }
        condition
    }

    /// This participant's booked appointments that overlap `slot`, other than `except`. No
    /// appointment lasts longer than the domain's maximum, so one that overlaps starts after
    /// `start - maximum`: a range of the participant's own index bounded on both sides, whatever
    /// their history, with the status tested on each row of it (`in_status_unindexed`). With the
    /// status as an equality (as `starting` writes it for a practitioner), a table PostgreSQL has no
    /// statistics of yet made the index on status and start time look as good — and it holds every
    /// participant's bookings in the window (850 rows read a booking in `scripts/bench`;
    /// `the_overlap_check_reads_the_participants_window_before_any_statistics`).
    fn overlapping(self, slot: TimeSlot, except: Option<AppointmentId>) -> Condition {
        let earliest_overlapping_start = slot.start() - Duration::hours(MAX_DURATION_HOURS);
        let mut condition = Condition::all()
            .add(self.column.eq(self.id))
            .add(in_status_unindexed(AppointmentStatus::Booked))
            .add(Column::StartsAt.gt(earliest_overlapping_start))
            .add(Column::StartsAt.lt(slot.end()))
            .add(Column::EndsAt.gt(slot.start()));
        if let Some(id) = except {
            condition = condition.add(Column::Id.ne(id));
        }
        condition
    }
}

/// Appointments in `status`, as a condition beside a participant's (`ParticipantAppointments`)
/// where that alone reads few rows (a patient's, or anyone's in a window bounded on both sides):
/// written as "in none of the other statuses", which no index can answer, so that the planner is
/// offered the participant's index alone. Booked appointments lie mostly in the future, which the
/// statistics do not know: `status = 'booked'` can look all but empty to PostgreSQL, and the index
/// on status would then look like a shortcut — one that reads every booked appointment of every
/// participant. A list by status alone, with no participant, keeps the equality: there that index
/// is the right one.
fn in_status_unindexed(status: AppointmentStatus) -> sea_orm::sea_query::SimpleExpr {
    Column::Status.is_not_in(AppointmentStatus::ALL.into_iter().filter(|other| *other != status).map(|s| s.as_str()))
}

/// Finds a booked appointment of the practitioner or the patient that overlaps `slot`, other than
/// `except`. Correct only while the caller holds the practitioner's and patient's row locks (or the
/// SQLite write lock), so that no overlapping booking can commit in between.
pub async fn find_clash(
    conn: &impl ConnectionTrait,
    practitioner_id: PractitionerId,
    patient_id: PatientId,
    slot: TimeSlot,
    except: Option<AppointmentId>,
) -> Result<Option<Clash>, DbErr> {
    let clashing = Condition::any()
        .add(ParticipantAppointments::of_practitioner(practitioner_id).overlapping(slot, except))
        .add(ParticipantAppointments::of_patient(patient_id).overlapping(slot, except));
    let clash = Entity::find().filter(clashing).limit(1).one(conn).await?;
    Ok(clash
        .map(|row| if row.practitioner_id == practitioner_id.as_uuid() { Clash::Practitioner } else { Clash::Patient }))
}

/// The insert of a new appointment's row, for a unit of work that writes it with its records
/// (`UnitOfWork::insert_last`).
pub fn insertion(appointment: &Appointment) -> InsertStatement {
    Entity::insert(to_row(appointment).into_active_model()).into_query()
}

/// The insert of a new booked appointment unless it clashes (`find_clash`): it writes no row when
/// it does. The same locks as `find_clash` make it correct: the statement starts after they were
/// taken, so it sees every booking that committed before.
pub fn insertion_unless_clash(appointment: &Appointment) -> Result<InsertStatement, DbErr> {
    use sea_orm::sea_query::{Expr, ExprTrait, Query};
    let row = to_row(appointment);
    let (columns, values): (Vec<Column>, Vec<sea_orm::Value>) = [
        (Column::Id, row.id.into()),
        (Column::PatientId, row.patient_id.into()),
        (Column::PractitionerId, row.practitioner_id.into()),
        (Column::StartsAt, row.starts_at.into()),
        (Column::EndsAt, row.ends_at.into()),
        (Column::Reason, row.reason.into()),
        (Column::Notes, row.notes.into()),
        (Column::Status, row.status.into()),
        (Column::CancellationReason, row.cancellation_reason.into()),
        (Column::Version, row.version.into()),
        (Column::CreatedAt, row.created_at.into()),
        (Column::UpdatedAt, row.updated_at.into()),
    ]
    .into_iter()
    .unzip();
    // One `NOT EXISTS` a participant: each an index range scan that stops at its first row, where
    // one condition with `OR` took two bitmap scans and a heap scan of their union (about a tenth
    // more of PostgreSQL's time for the statement).
    let none_overlapping = |participant: ParticipantAppointments| {
        let mut overlapping = Query::select();
        overlapping.expr(Expr::val(1)).from(Entity).cond_where(participant.overlapping(appointment.slot(), None));
        Expr::exists(overlapping).not()
    };
    let mut unless_clash = Query::select();
    unless_clash
        .exprs(values.into_iter().map(Expr::val))
        .and_where(none_overlapping(ParticipantAppointments::of_practitioner(appointment.practitioner_id())))
        .and_where(none_overlapping(ParticipantAppointments::of_patient(appointment.patient_id())));
    let mut insert = Query::insert();
    insert
        .into_table(Entity)
        .columns(columns)
        .select_from(unless_clash)
        .map_err(|err| DbErr::Custom(err.to_string()))?;
    Ok(insert)
}

/// Booked appointments starting after `now` of a patient or of a practitioner, locked for update.
pub async fn future_booked(
    conn: &impl ConnectionTrait,
    patient_id: Option<PatientId>,
    practitioner_id: Option<PractitionerId>,
    now: DateTime<Utc>,
) -> Result<Vec<Appointment>, DbErr> {
    let mut query = Entity::find();
    let participants = [
        patient_id.map(ParticipantAppointments::of_patient),
        practitioner_id.map(ParticipantAppointments::of_practitioner),
    ];
    for participant in participants.into_iter().flatten() {
        let booked = Some(AppointmentStatus::Booked);
        query = query.filter(participant.starting(booked, Some(now), false, None));
    }
    let rows = query.order_by_asc(Column::StartsAt).lock_exclusive().all(conn).await?;
    rows.into_iter().map(to_domain).collect()
}

/// How many booked appointments of this patient start after `now`.
pub async fn count_future_booked(
    conn: &impl ConnectionTrait,
    patient_id: PatientId,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    Entity::find()
        .filter(ParticipantAppointments::of_patient(patient_id).starting(
            Some(AppointmentStatus::Booked),
            Some(now),
            false,
            None,
        ))
        .count(conn)
        .await
}

/// Booked appointments that ended in `ended` (start inclusive, end exclusive), oldest first.
pub async fn overdue_booked(
    conn: &impl ConnectionTrait,
    ended: std::ops::Range<DateTime<Utc>>,
    limit: u64,
) -> Result<Vec<AppointmentId>, DbErr> {
    // One that ended in the range started at most the longest appointment before it: a range of
    // start times (of the index on status and start time, or on start time) as long as `ended`
    // plus eight hours, however long the history.
    let earliest_start = ended.start - Duration::hours(MAX_DURATION_HOURS);
    let rows = Entity::find()
        .filter(Column::Status.eq(AppointmentStatus::Booked.as_str()))
        .filter(Column::StartsAt.gte(earliest_start))
        .filter(Column::StartsAt.lt(ended.end))
        .filter(Column::EndsAt.gte(ended.start))
        .filter(Column::EndsAt.lt(ended.end))
        .order_by_asc(Column::StartsAt)
        .limit(limit)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|row| AppointmentId::from_uuid(row.id)).collect())
}

/// When the earliest appointment of any status starts; `None` when there is none.
pub async fn earliest_start(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(Entity::find().order_by_asc(Column::StartsAt).one(conn).await?.map(|row| row.starts_at))
}

fn filtered(filter: &AppointmentFilter) -> Select<Entity> {
    let mut query = Entity::find();
    if let Some(id) = filter.id {
        query = query.filter(Column::Id.eq(id));
    }
    let (bounded, other) = filter.participants();
    match bounded {
        Some(participant) => {
            query = query.filter(participant.starting(filter.status, filter.from, true, filter.to));
        }
        None => {
            // By status (and time) alone: a range of the index on status and start time, in the
            // list's order, wherever the matches lie in the history.
            if let Some(status) = filter.status {
                query = query.filter(Column::Status.eq(status.as_str()));
            }
            if let Some(from) = filter.from {
                query = query.filter(Column::StartsAt.gte(from));
            }
            if let Some(to) = filter.to {
                query = query.filter(Column::StartsAt.lt(to));
            }
        }
    }
    if let Some(participant) = other {
        query = query.filter(participant.column.eq(participant.id));
    }
    query
}

pub async fn list(
    conn: &impl ConnectionTrait,
    filter: &AppointmentFilter,
    page: PageRequest,
) -> Result<Page<Appointment>, DbErr> {
    let order = |query: Select<Entity>| query.order_by_asc(Column::StartsAt).order_by_asc(Column::Id);
    let selection =
        if filter.selects_all() { Selection::WholeTable(CountedTable::Appointments) } else { Selection::Filtered };
    fetch_page(conn, filtered(filter), selection, order, page, to_domain).await
}
