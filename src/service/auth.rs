//! Logging in: username and password in, access token out. Every attempt whose credentials were
//! checked is audited.

use crate::audit::{AuditOutcome, AuditRecord};
use crate::auth::{Principal, token::IssuedToken};
use crate::context::AnonymousContext;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store;

/// A username that can name an account: what `users::valid_username` allows to be created. Anything
/// else (control characters, NUL, overlong) names no account and never reaches the database.
fn could_be_username(username: &str) -> bool {
    super::users::valid_username(username)
}

pub async fn login(
    state: &AppState,
    ctx: &AnonymousContext,
    username: &str,
    password_attempt: &str,
) -> AppResult<(IssuedToken, Principal)> {
    let user = if could_be_username(username) {
        store::users::find_by_username(state.store.db(), username).await?
    } else {
        None
    };
    // Verify against a decoy hash when the user does not exist, so both paths cost one Argon2 run.
    let stored_hash = user.as_ref().map_or_else(|| state.decoy_password_hash.to_string(), |u| u.password_hash.clone());
    let count = |outcome: &'static str| {
        let labels = crate::telemetry::metrics::OutcomeLabels { outcome };
        state.store.metrics().domain.logins.get_or_create(&labels).inc();
    };
    let Ok(verified) = state.passwords.verify(password_attempt.to_owned(), stored_hash).await else {
        // Shed, not checked: no authentication attempt took place, so nothing to audit.
        count("busy");
        return Err(AppError::Overloaded {
            detail: "too many sign-ins are being checked right now; retry shortly",
            retry_after_seconds: 1,
        });
    };
    let outcome = match &user {
        Some(user) if verified && user.active => {
            Ok(Principal { user_id: user.id, role: user.role, patient_id: user.patient_id })
        }
        _ => Err(AppError::Unauthorized("invalid username or password")),
    };
    let audit_outcome = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Denied };
    state.audit.record(vec![AuditRecord::login(ctx, user.as_ref().map(|u| (u.id, u.role)), audit_outcome)]).await?;
    count(if outcome.is_ok() { "success" } else { "failure" });
    let principal = outcome?;
    Ok((state.tokens.issue(&principal), principal))
}
