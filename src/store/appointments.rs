//! The `appointments` table.

use super::entities::appointment::{self, Column, Entity};
use super::row_counts::CountedTable;
use super::{Page, PageRequest, Selection, fetch_page};
use crate::domain::appointment::MAX_DURATION_HOURS;
use crate::domain::appointment::StoredAppointment;
use crate::domain::{Appointment, AppointmentId, AppointmentStatus, PatientId, PractitionerId, TimeSlot};
use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::{Expr, InsertStatement};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Select, Statement,
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
    participants(conn, practitioner_id, patient_id, " FOR UPDATE").await
}

/// The participants as they are now, unlocked: why the database refused a `booking`.
pub async fn read_participants(
    conn: &impl ConnectionTrait,
    practitioner_id: PractitionerId,
    patient_id: PatientId,
) -> Result<Participants, DbErr> {
    participants(conn, practitioner_id, patient_id, "").await
}

async fn participants(
    conn: &impl ConnectionTrait,
    practitioner_id: PractitionerId,
    patient_id: PatientId,
    postgres_lock: &str,
) -> Result<Participants, DbErr> {
    let backend = conn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT (SELECT active FROM practitioners WHERE id = $1{postgres_lock}) AS practitioner_active, \
                    (SELECT active FROM patients WHERE id = $2{postgres_lock}) AS patient_active"
        ),
        _ => "SELECT (SELECT active FROM practitioners WHERE id = ?) AS practitioner_active, \
                     (SELECT active FROM patients WHERE id = ?) AS patient_active"
            .to_owned(),
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
/// 503).
///
/// A participant's booked appointments (the overlap check, a calendar, the upcoming ones) are a
/// range of an index that holds only booked appointments, one for each kind of participant
/// (`ix_appointments_booked_{practitioner,patient}`, migration 19), and the query states its
/// predicate as written (`BOOKED`). Booked appointments lie in the future, which statistics lag
/// behind: a window beyond the last `ANALYZE` looks all but empty, every index able to read it
/// then looks as cheap as any other, and the planner chose by an index's height alone: with the
/// status tested per row and statistics older than the window, the index on start time (1,700 rows
/// read a booking at `scripts/bench-scale`'s size); with the status as an equality and no
/// statistics, the one on status and start time (850 rows a booking in `scripts/bench`, 2,002 a
/// day's calendar) — each holds every participant's bookings in the window. The booked index of
/// the participant holds a part of the rows the others hold, so it is never the dearer to descend
/// nor estimated to match more; the other kind's booked index is out of the contest, its predicate
/// naming its own participant column (`IS NOT NULL`, which only a condition on that column
/// implies). The contest is held in all three states of the statistics, none, stale and current
/// (`the_overlap_check_reads_the_participants_window_*`). Other statuses: a practitioner's are a
/// range of `ix_appointments_status_practitioner_start`, the status as an equality; a patient's
/// are few enough to test each (`in_status_unindexed`).
#[derive(Clone, Copy)]
struct ParticipantAppointments {
    column: Column,
    id: uuid::Uuid,
}

/// The predicate of the booked-appointment indexes (migration 19), stated as written by a query
/// that is to read them: a prepared statement's parameters imply nothing once PostgreSQL plans it
/// for any values (from its sixth run on a connection), and SQLite looks for the predicate as
/// written. "In none of the other statuses", so that no index on the status can answer it (see
/// `in_status_unindexed`). Changing it needs a migration that builds the indexes, and the
/// constraints against overlaps (migration 21), again.
pub(super) const BOOKED: &str = "status NOT IN ('cancelled', 'completed', 'no_show')";

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
            condition = condition.add(match (status, self.column) {
                (AppointmentStatus::Booked, _) => Expr::cust(BOOKED),
                (_, Column::PractitionerId) => Column::Status.eq(status.as_str()),
                _ => in_status_unindexed(status),
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
    /// `start - maximum`: a range of the participant's booked index bounded on both sides, whatever
    /// their history and whoever else is booked then.
    fn overlapping(self, slot: TimeSlot, except: Option<AppointmentId>) -> Condition {
        let earliest_overlapping_start = slot.start() - Duration::hours(MAX_DURATION_HOURS);
        let mut condition = self
            .starting(Some(AppointmentStatus::Booked), Some(earliest_overlapping_start), false, Some(slot.end()))
            .add(Column::EndsAt.gt(slot.start()));
        if let Some(id) = except {
            condition = condition.add(Column::Id.ne(id));
        }
        condition
    }
}

/// Appointments in `status`, as a condition beside a patient's (`ParticipantAppointments`), who
/// has few enough to test each: written as "in none of the other statuses", which no index can
/// answer, so that the planner is offered the patient's index alone. A status's rows can look all
/// but empty to PostgreSQL when they lie beyond its statistics, and an index on the status would
/// then look like a shortcut — one that reads every participant's appointments in it. A list by
/// status alone, with no participant, keeps the equality: there that index is the right one.
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

/// The constraint (PostgreSQL) or the triggers' name (SQLite) that refuses a practitioner's booked
/// appointment overlapping another of theirs (migration 21).
pub const PRACTITIONER_OVERLAP: &str = "ex_appointments_practitioner_overlap";
/// The same for a patient's.
pub const PATIENT_OVERLAP: &str = "ex_appointments_patient_overlap";

/// Why the database refused a `booking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingRefused {
    /// The participant already holds a booked appointment that overlaps it.
    Overlap(Clash),
    /// The practitioner or the patient does not exist or is inactive (a read tells which).
    Participant,
}

/// The insert of a new booked appointment, which the database itself refuses (`booking_refused`)
/// unless both participants exist and are active and neither holds an overlapping booking:
///
/// - The patient's id is written through a read of the patient's row that finds it only when it
///   is active and the practitioner's row is too, each locked for share on PostgreSQL until the
///   transaction ends, the practitioner's first (the order every booking, rescheduling and
///   deactivation takes them in). A deactivation locks the row for update, so either it waits for
///   the booking to commit and then cancels it with the participant's other future bookings, or
///   the booking waits for it and finds the row inactive. A participant missing or inactive leaves
///   the nil id, which no patient has and the foreign key refuses. (A NULL, refused by the column,
///   was tried first: PostgreSQL then writes the whole failing row into its own log, the visit's
///   reason and notes among it; a foreign key's refusal names the key alone.)
/// - The overlap is refused by the exclusion constraints of migration 21 (triggers on SQLite,
///   whose write transaction excludes every other writer): PostgreSQL waits for an overlapping
///   booking not yet committed and sees every one committed, with no lock taken for it, so the
///   bookings of one practitioner at different times do not wait for each other.
///
/// So a booking by staff is this one statement with its records (`UnitOfWork::adding`), where it
/// was a transaction of four round trips holding the practitioner's row locked for update.
pub fn booking(appointment: &Appointment) -> Result<InsertStatement, DbErr> {
    use super::entities::{patient, practitioner};
    use sea_orm::sea_query::{Func, Query, SubQueryStatement};
    let row = to_row(appointment);
    let practitioner_bookable = Query::select()
        .expr(Expr::val(1))
        .from(practitioner::Entity)
        .and_where(practitioner::Column::Id.eq(row.practitioner_id))
        .and_where(practitioner::Column::Active.eq(true))
        .lock_shared()
        .take();
    let patient_if_bookable = Query::select()
        .column(patient::Column::Id)
        .from(patient::Entity)
        .and_where(patient::Column::Id.eq(row.patient_id))
        .and_where(patient::Column::Active.eq(true))
        .and_where(Expr::exists(practitioner_bookable))
        .lock_shared()
        .take();
    let bookable_patient = Expr::SubQuery(None, Box::new(SubQueryStatement::SelectStatement(patient_if_bookable)));
    let (columns, values): (Vec<Column>, Vec<Expr>) = [
        (Column::Id, Expr::val(row.id)),
        (Column::PatientId, Expr::from(Func::coalesce([bookable_patient, Expr::val(uuid::Uuid::nil())]))),
        (Column::PractitionerId, Expr::val(row.practitioner_id)),
        (Column::StartsAt, Expr::val(row.starts_at)),
        (Column::EndsAt, Expr::val(row.ends_at)),
        (Column::Reason, Expr::val(row.reason)),
        (Column::Notes, Expr::val(row.notes)),
        (Column::Status, Expr::val(row.status)),
        (Column::CancellationReason, Expr::val(row.cancellation_reason)),
        (Column::Version, Expr::val(row.version)),
        (Column::CreatedAt, Expr::val(row.created_at)),
        (Column::UpdatedAt, Expr::val(row.updated_at)),
    ]
    .into_iter()
    .unzip();
    let mut insert = Query::insert();
    insert.into_table(Entity).columns(columns).values(values).map_err(|err| DbErr::Custom(err.to_string()))?;
    Ok(insert)
}

/// What refused a `booking`, if the database did for one of the reasons it checks.
pub fn booking_refused(err: &DbErr) -> Option<BookingRefused> {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::error::ErrorKind;
    let (DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner))) = err else {
        return None;
    };
    let refusal = inner.as_database_error()?;
    // PostgreSQL names the constraint; SQLite's trigger raises its name as the message.
    let by = |name: &str| refusal.constraint() == Some(name) || refusal.message() == name;
    if by(PRACTITIONER_OVERLAP) {
        Some(BookingRefused::Overlap(Clash::Practitioner))
    } else if by(PATIENT_OVERLAP) {
        Some(BookingRefused::Overlap(Clash::Patient))
    } else if refusal.kind() == ErrorKind::ForeignKeyViolation {
        Some(BookingRefused::Participant)
    } else {
        None
    }
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
            // list's order, wherever the matches lie in the history. The status is written into
            // the statement, a statement per status: planned for any status (from a statement's
            // sixth run on a connection, once a common status's count had made the plans for the
            // values look dear), the count became a sequential scan that stops at its bound's
            // row, and for a rare status read the whole table (`scripts/bench-scale`: p99 1.2 s
            // and a 503 at five million appointments).
            if let Some(status) = filter.status {
                query = query.filter(Expr::cust(format!("status = '{}'", status.as_str())));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The booked indexes' predicate, written by hand for PostgreSQL and SQLite to find as written,
    /// names every status but booked: a status added to the domain must be added to it (and the
    /// indexes built again), or its appointments would be read as booked.
    #[test]
    fn the_booked_predicate_names_every_other_status() {
        let others: Vec<String> = AppointmentStatus::ALL
            .into_iter()
            .filter(|status| *status != AppointmentStatus::Booked)
            .map(|status| format!("'{}'", status.as_str()))
            .collect();
        assert_eq!(BOOKED, format!("status NOT IN ({})", others.join(", ")));
    }
}
