//! Logging in (username and password in, access token out) and authenticating each request. Every
//! attempt whose credentials were checked is audited.

use crate::audit::{AuditOutcome, AuditRecord};
use crate::auth::throttle::Scope;
use crate::auth::{Principal, token::IssuedToken};
use crate::context::AnonymousContext;
use crate::domain::UserId;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::{self, users::User};

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
    let metrics = &state.metrics;
    let count = |outcome: &'static str| {
        metrics.domain.logins.get_or_create(&crate::telemetry::metrics::OutcomeLabels { outcome }).inc();
    };
    let address = ctx.client_addr.as_deref();
    if let Err(locked) = state.login_throttle.check(username, address) {
        count("throttled");
        let retry_after_seconds = locked.retry_after.as_secs_f64().ceil() as u64;
        if locked.first_refusal {
            let record =
                AuditRecord::login(ctx, None, AuditOutcome::Denied, state.clock.now()).because(match locked.scope {
                    Scope::Account => "throttled_account",
                    Scope::Address => "throttled_address",
                });
            state.audit.record(vec![record]).await?;
        }
        return Err(AppError::TooManyAttempts { retry_after_seconds });
    }
    let user = if could_be_username(username) {
        store::users::find_by_username(state.store.db(), username).await?
    } else {
        None
    };
    // Verify against a decoy hash when the user does not exist, so both paths cost one Argon2 run.
    let stored_hash = user.as_ref().map_or_else(|| state.decoy_password_hash.to_string(), |u| u.password_hash.clone());
    let Ok(verified) = state.passwords.verify(password_attempt.to_owned(), stored_hash).await else {
        // Shed, not checked: no authentication attempt took place, so nothing to audit.
        count("busy");
        return Err(AppError::Overloaded {
            detail: "too many sign-ins are being checked right now; retry shortly",
            retry_after_seconds: 1,
        });
    };
    let (outcome, reason) = match &user {
        Some(user) if verified && user.active => (Ok(user), None),
        Some(_) if verified => (Err(AppError::Unauthorized("invalid username or password")), Some("inactive_user")),
        Some(_) => (Err(AppError::Unauthorized("invalid username or password")), Some("invalid_credentials")),
        None => (Err(AppError::Unauthorized("invalid username or password")), Some("unknown_user")),
    };
    match &outcome {
        Ok(_) => state.login_throttle.succeeded(username),
        Err(_) => {
            for (scope, _) in state.login_throttle.failed(username, address) {
                let labels = crate::telemetry::metrics::ScopeLabels { scope: scope.as_str() };
                metrics.domain.login_lockouts.get_or_create(&labels).inc();
            }
        }
    }
    let audit_outcome = if outcome.is_ok() { AuditOutcome::Success } else { AuditOutcome::Denied };
    let mut record = AuditRecord::login(ctx, user.as_ref().map(|u| (u.id, u.role)), audit_outcome, state.clock.now());
    record.reason = reason.map(str::to_owned);
    state.audit.record(vec![record]).await?;
    count(if outcome.is_ok() { "success" } else { "failure" });
    let user = outcome?;
    let principal = Principal { user_id: user.id, role: user.role, patient_id: user.patient_id };
    Ok((state.tokens.issue(&principal, user.token_version), principal))
}

/// The account behind a bearer token, if the token is valid and the account still agrees with it:
/// it exists, is active, and has not changed since the token was issued (role, linked patient,
/// password: any change increments its token version). A deactivated, demoted or deleted user's
/// token stops working on the next request, not when it expires.
pub async fn authenticate(state: &AppState, token: &str) -> AppResult<(Principal, User)> {
    let claimed = state.tokens.verify(token).ok_or(AppError::Unauthorized("the bearer token is invalid or expired"))?;
    let user = account(state, claimed.principal.user_id).await?;
    match user {
        Some(user)
            if user.active
                && user.token_version == claimed.token_version
                && user.role == claimed.principal.role
                && user.patient_id == claimed.principal.patient_id =>
        {
            Ok((claimed.principal, user))
        }
        _ => Err(AppError::Unauthorized("the bearer token is no longer valid; sign in again")),
    }
}

/// The account as it is now: from the cache while this instance hears of every change to accounts
/// (`cache::follow_account_changes`), from the database otherwise.
async fn account(state: &AppState, id: UserId) -> AppResult<Option<User>> {
    let db = state.store.db();
    if state.account_changes.heard() {
        Ok(state.cache.users.get_or_load(id, || store::users::find(db, id)).await?)
    } else {
        Ok(store::users::find(db, id).await?)
    }
}

/// The signed-in account (`/auth/me`): the one the token was just checked against.
pub async fn me(state: &AppState, ctx: &crate::context::RequestContext) -> AppResult<User> {
    account(state, ctx.principal.user_id)
        .await?
        .ok_or(AppError::Unauthorized("the user of this token no longer exists"))
}
