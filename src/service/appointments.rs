//! Appointment use cases. Booked appointments of one participant never overlap, which the database
//! itself enforces (migration 21): a booking by staff is one statement it refuses on an overlap or
//! a participant who may not be booked. The other writes take row locks in one global order —
//! practitioner, then patient, then appointment — so concurrent requests serialize without
//! deadlocking, and their checks see every booking committed before them (a booking by staff locks
//! the two rows for share, in the same order, until it commits).

use uuid::Uuid;

use super::idempotency::IdempotencyTicket;
use super::unit_of_work::UnitOfWork;
use super::{authorize, check_version};
use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::domain::appointment::{
    BookingDraft, BookingInput, BookingWindow, CancelInput, RescheduleInput, parse_cancellation_reason, parse_slot,
};
use crate::domain::{Appointment, AppointmentId, AppointmentStatus, FieldErrors, PatientId, PractitionerId, TimeSlot};
use crate::error::{AppError, AppResult, ProblemCode};
use crate::events::{self, CancellationCause, EventType};
use crate::state::AppState;
use crate::store::appointments::{AppointmentFilter, BookingRefused, Clash, Participants};
use crate::store::{self, Page, PageRequest, WriteTx};
use sea_orm::DbErr;

fn window(state: &AppState, now: chrono::DateTime<chrono::Utc>) -> BookingWindow {
    BookingWindow { now, horizon_days: state.config.booking_horizon_days }
}

/// Locks the practitioner's and the patient's rows (one round trip) and checks both may be booked.
async fn lock_participants(tx: &WriteTx, practitioner_id: PractitionerId, patient_id: PatientId) -> AppResult<()> {
    bookable(store::appointments::lock_participants(tx, practitioner_id, patient_id).await?)
}

/// Refuses a booking of a participant who does not exist (422) or is inactive (409).
fn bookable(participants: Participants) -> AppResult<()> {
    let practitioner_active = participants
        .practitioner_active
        .ok_or_else(|| AppError::invalid("practitioner_id", "exists", "no practitioner has this id"))?;
    let patient_active = participants
        .patient_active
        .ok_or_else(|| AppError::invalid("patient_id", "exists", "no patient has this id"))?;
    if !practitioner_active {
        return Err(AppError::conflict(
            ProblemCode::InactivePractitioner,
            "the practitioner is inactive and cannot be booked",
        ));
    }
    if !patient_active {
        return Err(AppError::conflict(ProblemCode::InactivePatient, "the patient is inactive and cannot be booked"));
    }
    Ok(())
}

/// Refuses a slot that overlaps a booked appointment of either participant (other than `except`);
/// correct while `lock_participants` holds their rows.
async fn check_no_clash(
    tx: &WriteTx,
    practitioner_id: PractitionerId,
    patient_id: PatientId,
    slot: TimeSlot,
    except: Option<AppointmentId>,
) -> AppResult<()> {
    match store::appointments::find_clash(tx, practitioner_id, patient_id, slot, except).await? {
        Some(clash) => Err(double_booking(clash)),
        None => Ok(()),
    }
}

fn double_booking(clash: Clash) -> AppError {
    AppError::conflict(
        ProblemCode::DoubleBooking,
        match clash {
            Clash::Practitioner => "the practitioner already has a booked appointment that overlaps this time",
            Clash::Patient => "the patient already has a booked appointment that overlaps this time",
        },
    )
}

pub async fn book(
    state: &AppState,
    ctx: &RequestContext,
    input: BookingInput,
    ticket: Option<IdempotencyTicket>,
) -> AppResult<Appointment> {
    let now = state.clock.now();
    if !ctx.principal.may_at_all(Action::AppointmentBook) {
        authorize(state, ctx, Action::AppointmentBook, AuditAction::AppointmentBook, Subject::none("appointment"))
            .await?;
    }
    ctx.concerns(None, input.patient_id);
    let draft = BookingDraft::parse(&input, window(state, now))?;
    authorize(
        state,
        ctx,
        Action::AppointmentBook,
        AuditAction::AppointmentBook,
        Subject { resource_type: "appointment", resource_id: None, patient_id: Some(draft.patient_id) },
    )
    .await?;
    let appointment = Appointment::book(draft, now);
    if ctx.principal.role == crate::domain::Role::Patient {
        book_within_the_limit(state, ctx, &appointment, ticket.as_ref(), now).await?;
    } else {
        book_in_one_statement(state, ctx, &appointment, ticket.as_ref()).await?;
    }
    Ok(appointment)
}

/// How often a booking is tried when the database refused a participant who, read right after,
/// may be booked (deactivated and reactivated in between).
const BOOKING_ATTEMPTS: u32 = 3;

/// A booking by staff: the appointment, its audit record and its event as one statement, which
/// the database refuses for a participant who may not be booked or an overlap
/// (`store::appointments::booking`); refusals are named as the checks under locks name them.
async fn book_in_one_statement(
    state: &AppState,
    ctx: &RequestContext,
    appointment: &Appointment,
    ticket: Option<&IdempotencyTicket>,
) -> AppResult<()> {
    for _ in 0..BOOKING_ATTEMPTS {
        let mut work = UnitOfWork::adding(&state.store);
        work.insert(store::appointments::booking(appointment)?);
        record_booking(&mut work, ctx, appointment, ticket)?;
        match work.end(Booking::from).await {
            Ok(()) => return Ok(()),
            Err(Booking::Failed(err)) => return Err(err),
            Err(Booking::Refused(BookingRefused::Overlap(clash))) => return Err(double_booking(clash)),
            Err(Booking::Refused(BookingRefused::Participant)) => {
                let (practitioner, patient) = (appointment.practitioner_id(), appointment.patient_id());
                bookable(store::appointments::read_participants(state.store.db(), practitioner, patient).await?)?;
            }
        }
    }
    Err(AppError::Overloaded {
        detail: "a participant was deactivated and reactivated during each attempt to book; try again",
        retry_after_seconds: 1,
    })
}

/// A booking by a patient for themselves, who may hold only so many future ones: the count
/// must see every booking of theirs, so their row is locked for update while it is taken, and the
/// checks run in that transaction.
async fn book_within_the_limit(
    state: &AppState,
    ctx: &RequestContext,
    appointment: &Appointment,
    ticket: Option<&IdempotencyTicket>,
    now: chrono::DateTime<chrono::Utc>,
) -> AppResult<()> {
    let (practitioner_id, patient_id) = (appointment.practitioner_id(), appointment.patient_id());
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<()> = async {
        lock_participants(work.tx(), practitioner_id, patient_id).await?;
        // A patient booking for themselves could otherwise fill a practitioner's calendar; staff
        // bookings are not limited (a course of therapy is booked ahead), but count. A clash is
        // reported first.
        check_no_clash(work.tx(), practitioner_id, patient_id, appointment.slot(), None).await?;
        let limit = state.config.patient_future_bookings_max;
        if store::appointments::count_future_booked(work.tx(), patient_id, now).await? >= limit {
            return Err(AppError::conflict(
                ProblemCode::BookingLimit,
                format!(
                    "a patient may hold at most {limit} future appointments booked by themselves; cancel one first"
                ),
            ));
        }
        record_booking(&mut work, ctx, appointment, ticket)?;
        work.insert_last(store::appointments::booking(appointment)?).await?;
        Ok(())
    }
    .await;
    work.end(changed).await
}

/// What a booking writes beside the appointment, either way it is made: its audit record, its
/// event and, with an `Idempotency-Key`, the answer to remember.
fn record_booking<'a, Change>(
    work: &mut UnitOfWork<'a, Change>,
    ctx: &RequestContext,
    appointment: &Appointment,
    ticket: Option<&'a IdempotencyTicket>,
) -> AppResult<()> {
    let subject = Subject::appointment(appointment.id(), appointment.patient_id());
    work.audit(AuditRecord::new(ctx, AuditAction::AppointmentBook, subject, AuditOutcome::Success));
    work.event(ctx, events::appointment(EventType::AppointmentBooked, appointment));
    work.remember(ticket, appointment)
}

/// How a booking in one statement ended, when it did not succeed.
enum Booking {
    Refused(BookingRefused),
    Failed(AppError),
}

impl From<DbErr> for Booking {
    fn from(err: DbErr) -> Self {
        match store::appointments::booking_refused(&err) {
            Some(refused) => Booking::Refused(refused),
            None => Booking::Failed(err.into()),
        }
    }
}

impl From<AppError> for Booking {
    fn from(err: AppError) -> Self {
        Booking::Failed(err)
    }
}

/// Loads an appointment and checks the caller may act on it; refusals are audited.
async fn load_authorized(
    state: &AppState,
    ctx: &RequestContext,
    id: AppointmentId,
    action: Action,
    audit_action: AuditAction,
) -> AppResult<Appointment> {
    if !ctx.principal.may_at_all(action) {
        authorize(
            state,
            ctx,
            action,
            audit_action,
            Subject { resource_type: "appointment", resource_id: Some(id.as_uuid()), patient_id: None },
        )
        .await?;
    }
    let appointment =
        store::appointments::find(state.store.db(), id).await?.ok_or(AppError::NotFound("appointment"))?;
    ctx.concerns(Some(id.as_uuid()), Some(appointment.patient_id()));
    authorize(state, ctx, action, audit_action, Subject::appointment(id, appointment.patient_id())).await?;
    Ok(appointment)
}

pub async fn get(state: &AppState, ctx: &RequestContext, id: AppointmentId) -> AppResult<Appointment> {
    let appointment = load_authorized(state, ctx, id, Action::AppointmentRead, AuditAction::AppointmentRead).await?;
    let subject = Subject::appointment(id, appointment.patient_id());
    state
        .audit
        .record(vec![AuditRecord::new(ctx, AuditAction::AppointmentRead, subject, AuditOutcome::Success)])
        .await?;
    Ok(appointment)
}

pub async fn list(
    state: &AppState,
    ctx: &RequestContext,
    mut filter: AppointmentFilter,
    page: PageRequest,
) -> AppResult<Page<Appointment>> {
    ctx.concerns(None, filter.patient_id);
    if !ctx.principal.may(Action::AppointmentRead, None) {
        match (ctx.principal.may_at_all(Action::AppointmentRead), filter.patient_id) {
            // A patient user lists its own appointments, whether or not it names itself.
            (true, None) => {
                filter.patient_id = Some(ctx.principal.patient_id.unwrap_or(PatientId::from_uuid(Uuid::nil())))
            }
            (true, Some(asked)) if ctx.principal.may(Action::AppointmentRead, Some(asked)) => {}
            (_, asked) => {
                let subject = Subject { resource_type: "appointment", resource_id: None, patient_id: asked };
                authorize(state, ctx, Action::AppointmentRead, AuditAction::AppointmentList, subject).await?;
            }
        }
    }
    let page = store::appointments::list(state.store.db(), &filter, page).await?;
    let mut records: Vec<AuditRecord> = page
        .items
        .iter()
        .map(|a| {
            AuditRecord::new(
                ctx,
                AuditAction::AppointmentList,
                Subject::appointment(a.id(), a.patient_id()),
                AuditOutcome::Success,
            )
        })
        .collect();
    if records.is_empty() {
        records.push(AuditRecord::new(
            ctx,
            AuditAction::AppointmentList,
            Subject { resource_type: "appointment", resource_id: None, patient_id: filter.patient_id },
            AuditOutcome::Success,
        ));
    }
    state.audit.record(records).await?;
    Ok(page)
}

pub async fn reschedule(
    state: &AppState,
    ctx: &RequestContext,
    id: AppointmentId,
    input: RescheduleInput,
    expected_version: Option<i64>,
) -> AppResult<Appointment> {
    let current =
        load_authorized(state, ctx, id, Action::AppointmentReschedule, AuditAction::AppointmentReschedule).await?;
    let now = state.clock.now();
    let mut errors = FieldErrors::new();
    let slot = parse_slot(&mut errors, input.start, input.end, window(state, now));
    let slot = errors.into_result(|| slot)?.expect("a slot exists when no field error was reported");
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<Appointment> = async {
        lock_participants(work.tx(), current.practitioner_id(), current.patient_id()).await?;
        check_no_clash(work.tx(), current.practitioner_id(), current.patient_id(), slot, Some(id)).await?;
        let mut appointment =
            store::appointments::find_for_update(work.tx(), id).await?.ok_or(AppError::NotFound("appointment"))?;
        check_version(expected_version, appointment.version())?;
        let (previous_start, previous_end) = (appointment.slot().start(), appointment.slot().end());
        appointment.reschedule(slot, now)?;
        store::appointments::update(work.tx(), &appointment).await?;
        let subject = Subject::appointment(id, appointment.patient_id());
        work.audit(AuditRecord::new(ctx, AuditAction::AppointmentReschedule, subject, AuditOutcome::Success));
        work.event(ctx, events::appointment_rescheduled(&appointment, previous_start, previous_end));
        Ok(appointment)
    }
    .await;
    work.end(changed).await
}

/// The three status transitions share one shape: lock, check version, apply, save, audit.
#[derive(Debug)]
pub enum Transition {
    Cancel(CancelInput),
    Complete,
    NoShow,
}

pub async fn transition(
    state: &AppState,
    ctx: &RequestContext,
    id: AppointmentId,
    transition: Transition,
    expected_version: Option<i64>,
) -> AppResult<Appointment> {
    let (action, audit_action) = match &transition {
        Transition::Cancel(_) => (Action::AppointmentCancel, AuditAction::AppointmentCancel),
        Transition::Complete => (Action::AppointmentConclude, AuditAction::AppointmentComplete),
        Transition::NoShow => (Action::AppointmentConclude, AuditAction::AppointmentNoShow),
    };
    load_authorized(state, ctx, id, action, audit_action).await?;
    let reason = match &transition {
        Transition::Cancel(input) => Some(parse_cancellation_reason(input)?),
        _ => None,
    };
    let now = state.clock.now();
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<Appointment> = async {
        let mut appointment =
            store::appointments::find_for_update(work.tx(), id).await?.ok_or(AppError::NotFound("appointment"))?;
        check_version(expected_version, appointment.version())?;
        match transition {
            Transition::Cancel(_) => appointment.cancel(reason.unwrap_or_default(), now)?,
            Transition::Complete => appointment.conclude(AppointmentStatus::Completed, now)?,
            Transition::NoShow => appointment.conclude(AppointmentStatus::NoShow, now)?,
        }
        store::appointments::update(work.tx(), &appointment).await?;
        let event = match appointment.status() {
            AppointmentStatus::Completed => events::appointment(EventType::AppointmentCompleted, &appointment),
            AppointmentStatus::NoShow => events::appointment(EventType::AppointmentNoShow, &appointment),
            _ => events::appointment_cancelled(&appointment, CancellationCause::Requested),
        };
        let subject = Subject::appointment(id, appointment.patient_id());
        work.audit(AuditRecord::new(ctx, audit_action, subject, AuditOutcome::Success));
        work.event(ctx, event);
        Ok(appointment)
    }
    .await;
    work.end(changed).await
}

/// Whose appointments a deactivation cancels.
#[derive(Debug, Clone, Copy)]
pub enum Participant {
    Patient(PatientId),
    Practitioner(PractitionerId),
}

/// Cancels the future booked appointments of a patient or practitioner being deactivated, inside
/// the deactivation's unit of work (each cancellation audited and published).
pub(super) async fn cancel_future_appointments(
    work: &mut UnitOfWork<'_>,
    ctx: &RequestContext,
    participant: Participant,
) -> AppResult<()> {
    let now = ctx.clock.now();
    let (patient_id, practitioner_id, reason, cause) = match participant {
        Participant::Patient(id) => (Some(id), None, "patient deactivated", CancellationCause::PatientDeactivated),
        Participant::Practitioner(id) => {
            (None, Some(id), "practitioner deactivated", CancellationCause::PractitionerDeactivated)
        }
    };
    for mut appointment in store::appointments::future_booked(work.tx(), patient_id, practitioner_id, now).await? {
        appointment.cancel(reason.to_owned(), now)?;
        store::appointments::update(work.tx(), &appointment).await?;
        let subject = Subject::appointment(appointment.id(), appointment.patient_id());
        work.audit(AuditRecord::new(ctx, AuditAction::AppointmentCancel, subject, AuditOutcome::Success));
        work.event(ctx, events::appointment_cancelled(&appointment, cause));
    }
    Ok(())
}
