//! Reading the analytics consumer's daily aggregates (admins). Counts only: nothing identifies a
//! patient, so reads are not part of the patient-data audit trail.

use chrono::NaiveDate;

use super::authorize;
use crate::audit::{AuditAction, Subject};
use crate::auth::Action;
use crate::context::RequestContext;
use crate::domain::PractitionerId;
use crate::domain::validation::FieldErrors;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::analytics::{self, DailyAppointments, DailyPatients};

/// The longest range one request may ask for.
pub const MAX_DAYS: i64 = 366;

/// A checked `from`–`to` range (both inclusive); the last 30 days up to `today` by default.
pub fn range(from: Option<NaiveDate>, to: Option<NaiveDate>, today: NaiveDate) -> AppResult<(NaiveDate, NaiveDate)> {
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to - chrono::Duration::days(29));
    if from > to {
        return Err(AppError::Validation(FieldErrors::single("from", "order", "must not be after `to`")));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(AppError::Validation(FieldErrors::single(
            "from",
            "range",
            format!("the range may span at most {MAX_DAYS} days"),
        )));
    }
    Ok((from, to))
}

fn subject() -> Subject {
    Subject { resource_type: "analytics", resource_id: None, patient_id: None }
}

pub async fn patients(
    state: &AppState,
    ctx: &RequestContext,
    from: NaiveDate,
    to: NaiveDate,
) -> AppResult<Vec<DailyPatients>> {
    authorize(state, ctx, Action::AnalyticsRead, AuditAction::AnalyticsRead, subject()).await?;
    Ok(analytics::daily_patients(state.store.db(), from, to).await?)
}

pub async fn appointments(
    state: &AppState,
    ctx: &RequestContext,
    from: NaiveDate,
    to: NaiveDate,
    practitioner_id: Option<PractitionerId>,
) -> AppResult<Vec<DailyAppointments>> {
    authorize(state, ctx, Action::AnalyticsRead, AuditAction::AnalyticsRead, subject()).await?;
    Ok(analytics::daily_appointments(state.store.db(), from, to, practitioner_id).await?)
}
