//! Listing the notifications the notifications consumer prepared, with their delivery status.
//! A notification names a patient and an appointment time, so every listing is audited per patient.

use std::collections::{BTreeSet, HashMap};

use super::authorize;
use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::domain::PatientId;
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::notifications::{self, Notification, NotificationFilter};
use crate::store::webhooks::{self, Delivery};
use crate::store::{Page, PageRequest};

pub async fn list(
    state: &AppState,
    ctx: &RequestContext,
    filter: NotificationFilter,
    page: PageRequest,
) -> AppResult<(Page<Notification>, HashMap<uuid::Uuid, Delivery>)> {
    let subject = Subject { resource_type: "notification", resource_id: None, patient_id: filter.patient_id };
    ctx.concerns(None, filter.patient_id);
    authorize(state, ctx, Action::NotificationRead, AuditAction::NotificationList, subject).await?;
    let db = state.store.db();
    let page = notifications::list(db, &filter, page).await?;
    let delivery_ids: Vec<uuid::Uuid> = page.items.iter().filter_map(|n| n.delivery_id).collect();
    let deliveries = webhooks::find_many(db, &delivery_ids).await?.into_iter().map(|d| (d.id, d)).collect();
    let patients: BTreeSet<PatientId> = page.items.iter().map(|n| n.patient_id).collect();
    let mut records: Vec<AuditRecord> = patients
        .into_iter()
        .map(|patient_id| {
            let subject = Subject { resource_type: "notification", resource_id: None, patient_id: Some(patient_id) };
            AuditRecord::new(ctx, AuditAction::NotificationList, subject, AuditOutcome::Success)
        })
        .collect();
    if records.is_empty() {
        records.push(AuditRecord::new(ctx, AuditAction::NotificationList, subject, AuditOutcome::Success));
    }
    state.audit.record(records).await?;
    Ok((page, deliveries))
}
