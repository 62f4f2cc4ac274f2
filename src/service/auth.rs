//! Logging in: username and password in, access token out. Every attempt is audited.

use crate::audit::{AuditOutcome, AuditRecord};
use crate::auth::{Principal, password, token::IssuedToken};
use crate::context::AnonymousContext;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store;

pub async fn login(
    state: &AppState,
    ctx: &AnonymousContext,
    username: &str,
    password_attempt: &str,
) -> AppResult<(IssuedToken, Principal)> {
    let user = store::users::find_by_username(state.store.db(), username).await?;
    // Verify against a decoy hash when the user does not exist, so both paths cost one Argon2 run.
    let stored_hash = user.as_ref().map_or_else(|| state.decoy_password_hash.to_string(), |u| u.password_hash.clone());
    let verified = password::verify_blocking(password_attempt.to_owned(), stored_hash).await;
    let outcome = match &user {
        Some(user) if verified && user.active => {
            Ok(Principal { user_id: user.id, role: user.role, patient_id: user.patient_id })
        }
        _ => Err(AppError::Unauthorized("invalid username or password")),
    };
    let audit_outcome = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Denied };
    state.audit.record(vec![AuditRecord::login(ctx, user.as_ref().map(|u| (u.id, u.role)), audit_outcome)]).await?;
    let label = if outcome.is_ok() { "success" } else { "failure" };
    state
        .store
        .metrics()
        .domain
        .logins
        .get_or_create(&crate::telemetry::metrics::OutcomeLabels { outcome: label })
        .inc();
    let principal = outcome?;
    Ok((state.tokens.issue(&principal), principal))
}
