//! Patient use cases.

use sea_orm::DbErr;
use uuid::Uuid;

use super::appointments::{Participant, cancel_future_appointments};
use super::idempotency::IdempotencyTicket;
use super::unit_of_work::UnitOfWork;
use super::{authorize, check_version};
use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::domain::patient::{PatientInput, PatientPatchInput};
use crate::domain::{Mrn, Patient, PatientDraft, PatientId, PatientPatch};
use crate::error::{AppError, AppResult};
use crate::events::{self, EventType};
use crate::state::AppState;
use crate::store::patients::PatientFilter;
use crate::store::{self, Page, PageRequest};

pub async fn register(
    state: &AppState,
    ctx: &RequestContext,
    input: PatientInput,
    ticket: Option<IdempotencyTicket>,
) -> AppResult<Patient> {
    authorize(state, ctx, Action::PatientCreate, AuditAction::PatientCreate, Subject::none("patient")).await?;
    let now = state.clock.now();
    let draft = PatientDraft::parse(&input, now.date_naive())?;
    // MRNs are random; a collision with an existing one is retried with a new number.
    for _attempt in 0..5 {
        let patient = Patient {
            id: PatientId::generate(),
            mrn: Mrn::generate(rand::random()),
            given_name: draft.given_name.clone(),
            family_name: draft.family_name.clone(),
            birth_date: draft.birth_date,
            sex: draft.sex,
            email: draft.email.clone(),
            phone: draft.phone.clone(),
            address: draft.address.clone(),
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut work = UnitOfWork::adding(&state.store);
        work.insert(store::patients::insertion(&patient));
        work.audit(AuditRecord::new(
            ctx,
            AuditAction::PatientCreate,
            Subject::patient(patient.id),
            AuditOutcome::Success,
        ));
        work.event(ctx, events::patient(EventType::PatientCreated, &patient));
        work.remember(ticket.as_ref(), &patient)?;
        match work.end(Registering::from).await {
            Ok(()) => return Ok(patient),
            Err(Registering::MrnTaken) => continue,
            Err(Registering::Failed(err)) => return Err(err),
        }
    }
    Err(AppError::Internal(anyhow::anyhow!("could not generate a unique MRN in 5 attempts")))
}

/// Why one attempt to register did not: its random MRN was taken (try another), or anything else.
enum Registering {
    MrnTaken,
    Failed(AppError),
}

impl From<AppError> for Registering {
    fn from(err: AppError) -> Self {
        Registering::Failed(err)
    }
}

impl From<DbErr> for Registering {
    fn from(err: DbErr) -> Self {
        if store::is_unique_violation(&err, "patients", "mrn") {
            Registering::MrnTaken
        } else {
            Registering::Failed(err.into())
        }
    }
}

pub async fn get(state: &AppState, ctx: &RequestContext, id: PatientId) -> AppResult<Patient> {
    authorize(state, ctx, Action::PatientRead, AuditAction::PatientRead, Subject::patient(id)).await?;
    let patient = store::patients::find(state.store.db(), id).await?.ok_or(AppError::NotFound("patient"))?;
    state
        .audit
        .record(vec![AuditRecord::new(ctx, AuditAction::PatientRead, Subject::patient(id), AuditOutcome::Success)])
        .await?;
    Ok(patient)
}

pub async fn list(
    state: &AppState,
    ctx: &RequestContext,
    mut filter: PatientFilter,
    page: PageRequest,
) -> AppResult<Page<Patient>> {
    if !ctx.principal.may_at_all(Action::PatientRead) {
        authorize(state, ctx, Action::PatientRead, AuditAction::PatientList, Subject::none("patient")).await?;
    }
    if !ctx.principal.may(Action::PatientRead, None) {
        // A patient user sees exactly its own record; an unlinked one sees nothing.
        filter.only = Some(ctx.principal.patient_id.unwrap_or(PatientId::from_uuid(Uuid::nil())));
    }
    let page = store::patients::list(state.store.db(), &filter, page).await?;
    let mut records: Vec<AuditRecord> = page
        .items
        .iter()
        .map(|p| AuditRecord::new(ctx, AuditAction::PatientList, Subject::patient(p.id), AuditOutcome::Success))
        .collect();
    if records.is_empty() {
        records.push(AuditRecord::new(ctx, AuditAction::PatientList, Subject::none("patient"), AuditOutcome::Success));
    }
    state.audit.record(records).await?;
    Ok(page)
}

pub async fn update(
    state: &AppState,
    ctx: &RequestContext,
    id: PatientId,
    input: PatientPatchInput,
    expected_version: Option<i64>,
) -> AppResult<Patient> {
    authorize(state, ctx, Action::PatientUpdate, AuditAction::PatientUpdate, Subject::patient(id)).await?;
    let now = state.clock.now();
    let patch = PatientPatch::parse(&input, now.date_naive())?;
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<Patient> = async {
        let mut patient =
            store::patients::find_for_update(work.tx(), id).await?.ok_or(AppError::NotFound("patient"))?;
        check_version(expected_version, patient.version)?;
        let changed = patch.apply(&mut patient);
        if !changed.is_empty() {
            patient.version += 1;
            patient.updated_at = now;
            store::patients::update(work.tx(), &patient).await?;
            work.event(ctx, events::patient_updated(&patient, &changed));
        }
        work.audit(AuditRecord::new(ctx, AuditAction::PatientUpdate, Subject::patient(id), AuditOutcome::Success));
        Ok(patient)
    }
    .await;
    work.end(changed).await
}

/// `DELETE` keeps the record and marks it inactive; future booked appointments are cancelled.
pub async fn deactivate(
    state: &AppState,
    ctx: &RequestContext,
    id: PatientId,
    expected_version: Option<i64>,
) -> AppResult<Patient> {
    set_active(state, ctx, id, false, expected_version).await
}

pub async fn reactivate(
    state: &AppState,
    ctx: &RequestContext,
    id: PatientId,
    expected_version: Option<i64>,
) -> AppResult<Patient> {
    set_active(state, ctx, id, true, expected_version).await
}

async fn set_active(
    state: &AppState,
    ctx: &RequestContext,
    id: PatientId,
    active: bool,
    expected_version: Option<i64>,
) -> AppResult<Patient> {
    let action = if active { AuditAction::PatientReactivate } else { AuditAction::PatientDeactivate };
    authorize(state, ctx, Action::PatientDeactivate, action, Subject::patient(id)).await?;
    let now = state.clock.now();
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<Patient> = async {
        let mut patient =
            store::patients::find_for_update(work.tx(), id).await?.ok_or(AppError::NotFound("patient"))?;
        check_version(expected_version, patient.version)?;
        work.audit(AuditRecord::new(ctx, action, Subject::patient(id), AuditOutcome::Success));
        if patient.active != active {
            patient.active = active;
            patient.version += 1;
            patient.updated_at = now;
            store::patients::update(work.tx(), &patient).await?;
            let event_type = if active { EventType::PatientReactivated } else { EventType::PatientDeleted };
            work.event(ctx, events::patient(event_type, &patient));
            if !active {
                cancel_future_appointments(&mut work, ctx, Participant::Patient(id)).await?;
            }
        }
        Ok(patient)
    }
    .await;
    work.end(changed).await
}
