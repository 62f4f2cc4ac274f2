//! Practitioner use cases. Reading practitioners is open to every signed-in user and is not
//! audited (it is not patient data); every change is made by an admin and audited.

use super::appointments::{Participant, cancel_future_appointments};
use super::idempotency::IdempotencyTicket;
use super::unit_of_work::UnitOfWork;
use super::{authorize, check_version};
use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::domain::practitioner::{PractitionerInput, PractitionerPatchInput};
use crate::domain::{Practitioner, PractitionerDraft, PractitionerId, PractitionerPatch};
use crate::error::{AppError, AppResult, ProblemCode};
use crate::events::{self, EventType};
use crate::state::AppState;
use crate::store::practitioners::PractitionerFilter;
use crate::store::{self, Page, PageRequest};

fn subject(id: PractitionerId) -> Subject {
    Subject { resource_type: "practitioner", resource_id: Some(id.as_uuid()), patient_id: None }
}

fn duplicate_licence(err: sea_orm::DbErr) -> AppError {
    if store::is_unique_violation(&err, "practitioners", "licence_number") {
        AppError::conflict(
            ProblemCode::DuplicateLicenceNumber,
            "a practitioner with this licence number already exists",
        )
    } else {
        err.into()
    }
}

pub async fn create(
    state: &AppState,
    ctx: &RequestContext,
    input: PractitionerInput,
    ticket: Option<IdempotencyTicket>,
) -> AppResult<Practitioner> {
    authorize(state, ctx, Action::PractitionerWrite, AuditAction::PractitionerCreate, Subject::none("practitioner"))
        .await?;
    let draft = PractitionerDraft::parse(&input)?;
    let now = state.clock.now();
    let practitioner = Practitioner {
        id: PractitionerId::generate(),
        licence_number: draft.licence_number,
        given_name: draft.given_name,
        family_name: draft.family_name,
        role: draft.role,
        specialty: draft.specialty,
        active: true,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let mut work = UnitOfWork::adding(&state.store);
    work.insert(store::practitioners::insertion(&practitioner));
    work.audit(AuditRecord::new(ctx, AuditAction::PractitionerCreate, subject(practitioner.id), AuditOutcome::Success));
    work.event(ctx, events::practitioner(EventType::PractitionerCreated, &practitioner, None));
    work.remember(ticket.as_ref(), &practitioner)?;
    work.end(duplicate_licence).await?;
    Ok(practitioner)
}

pub async fn get(state: &AppState, ctx: &RequestContext, id: PractitionerId) -> AppResult<Practitioner> {
    authorize(state, ctx, Action::PractitionerRead, AuditAction::PractitionerRead, subject(id)).await?;
    let db = state.store.db();
    let found = state.cache.practitioners.get_or_load(id, || store::practitioners::find(db, id)).await?;
    found.ok_or(AppError::NotFound("practitioner"))
}

pub async fn list(
    state: &AppState,
    ctx: &RequestContext,
    filter: PractitionerFilter,
    page: PageRequest,
) -> AppResult<Page<Practitioner>> {
    authorize(state, ctx, Action::PractitionerRead, AuditAction::PractitionerList, Subject::none("practitioner"))
        .await?;
    Ok(store::practitioners::list(state.store.db(), &filter, page).await?)
}

pub async fn update(
    state: &AppState,
    ctx: &RequestContext,
    id: PractitionerId,
    input: PractitionerPatchInput,
    expected_version: Option<i64>,
) -> AppResult<Practitioner> {
    authorize(state, ctx, Action::PractitionerWrite, AuditAction::PractitionerUpdate, subject(id)).await?;
    let patch = PractitionerPatch::parse(&input)?;
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<Practitioner> = async {
        let mut practitioner =
            store::practitioners::find_for_update(work.tx(), id).await?.ok_or(AppError::NotFound("practitioner"))?;
        check_version(expected_version, practitioner.version)?;
        let changed = patch.apply(&mut practitioner);
        if !changed.is_empty() {
            practitioner.version += 1;
            practitioner.updated_at = state.clock.now();
            store::practitioners::update(work.tx(), &practitioner).await.map_err(duplicate_licence)?;
            work.event(ctx, events::practitioner(EventType::PractitionerUpdated, &practitioner, Some(&changed)));
        }
        work.audit(AuditRecord::new(ctx, AuditAction::PractitionerUpdate, subject(id), AuditOutcome::Success));
        Ok(practitioner)
    }
    .await;
    let practitioner = work.end(changed).await?;
    state.cache.practitioners.invalidate(id);
    Ok(practitioner)
}

pub async fn set_active(
    state: &AppState,
    ctx: &RequestContext,
    id: PractitionerId,
    active: bool,
    expected_version: Option<i64>,
) -> AppResult<Practitioner> {
    let action = if active { AuditAction::PractitionerReactivate } else { AuditAction::PractitionerDeactivate };
    authorize(state, ctx, Action::PractitionerWrite, action, subject(id)).await?;
    let mut work = UnitOfWork::begin(&state.store).await?;
    let changed: AppResult<Practitioner> = async {
        let mut practitioner =
            store::practitioners::find_for_update(work.tx(), id).await?.ok_or(AppError::NotFound("practitioner"))?;
        check_version(expected_version, practitioner.version)?;
        work.audit(AuditRecord::new(ctx, action, subject(id), AuditOutcome::Success));
        if practitioner.active != active {
            practitioner.active = active;
            practitioner.version += 1;
            practitioner.updated_at = state.clock.now();
            store::practitioners::update(work.tx(), &practitioner).await?;
            let event_type = if active { EventType::PractitionerReactivated } else { EventType::PractitionerDeleted };
            work.event(ctx, events::practitioner(event_type, &practitioner, None));
            if !active {
                cancel_future_appointments(&mut work, ctx, Participant::Practitioner(id)).await?;
            }
        }
        Ok(practitioner)
    }
    .await;
    let practitioner = work.end(changed).await?;
    state.cache.practitioners.invalidate(id);
    Ok(practitioner)
}
