//! User accounts: created and changed by administrators over the API or by an operator on the
//! command line (`healthcore user …`), and, on first start, the initial administrator. Every change
//! is audited and increments the account's token version, so that tokens issued before it stop
//! working on the next request; the last active administrator cannot be removed.

use crate::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::auth::password::{self, PasswordWork};
use crate::clock::now;
use crate::context::RequestContext;
use crate::domain::validation::{CharRanges, in_ranges};
use crate::domain::{PatientId, Role, UserId};
use crate::error::{AppError, ProblemCode};
use crate::service::unit_of_work::UnitOfWork;
use crate::store::{self, Page, PageRequest, Store, WriteTx, users::User};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username must be 3 to 64 characters of letters, digits, '.', '_', '-' or '@'")]
    InvalidUsername,
    #[error("password {0}")]
    WeakPassword(String),
    #[error("a user named '{0}' already exists")]
    Duplicate(String),
    #[error("a patient user needs --patient-id of an existing patient")]
    PatientRequired,
    #[error("only patient users are linked to a patient record")]
    PatientNotAllowed,
    #[error("no patient has id {0}")]
    UnknownPatient(PatientId),
    #[error("no such user")]
    NotFound,
    #[error("this is the last active administrator; make another one first")]
    LastAdmin,
    #[error("every password-hashing slot is busy; retry shortly")]
    Busy,
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
    /// A failure of the unit of work the change ran in (the database, at begin or commit).
    #[error(transparent)]
    Work(#[from] AppError),
}

impl From<UserError> for AppError {
    fn from(err: UserError) -> AppError {
        match err {
            UserError::InvalidUsername => AppError::invalid("username", "username", err.to_string()),
            UserError::WeakPassword(_) => AppError::invalid("password", "password", err.to_string()),
            UserError::Duplicate(_) => {
                AppError::conflict(ProblemCode::DuplicateUsername, "another user has this username")
            }
            UserError::PatientRequired => {
                AppError::invalid("patient_id", "required", "a patient user is linked to a patient")
            }
            UserError::PatientNotAllowed => {
                AppError::invalid("patient_id", "not_allowed", "only patient users are linked to a patient")
            }
            UserError::UnknownPatient(_) => AppError::invalid("patient_id", "exists", "no patient has this id"),
            UserError::NotFound => AppError::NotFound("user"),
            UserError::LastAdmin => AppError::conflict(ProblemCode::LastAdmin, err.to_string()),
            UserError::Busy => {
                AppError::Overloaded { detail: "every password-hashing slot is busy", retry_after_seconds: 1 }
            }
            UserError::Database(err) => err.into(),
            UserError::Work(err) => err,
        }
    }
}

/// How long a username is, in characters, and which characters it is made of.
pub const USERNAME_LENGTH: std::ops::RangeInclusive<usize> = 3..=64;
pub const USERNAME_CHARACTERS: CharRanges =
    &[('0', '9'), ('A', 'Z'), ('a', 'z'), ('.', '.'), ('_', '_'), ('-', '-'), ('@', '@')];

pub(crate) fn valid_username(username: &str) -> bool {
    USERNAME_LENGTH.contains(&username.chars().count()) && username.chars().all(|c| in_ranges(c, USERNAME_CHARACTERS))
}

/// Who changes an account: an administrator over the API, or an operator with the command line
/// (who reaches the database directly, so is not an account of HealthCore's).
#[derive(Clone, Copy)]
pub enum Changer<'a> {
    Admin(&'a RequestContext),
    Operator,
}

impl Changer<'_> {
    fn record(&self, action: AuditAction, user_id: Option<UserId>) -> AuditRecord {
        let subject = Subject::user(user_id);
        match self {
            Changer::Admin(ctx) => AuditRecord::new(ctx, action, subject, AuditOutcome::Success),
            Changer::Operator => AuditRecord::operator(action, subject),
        }
    }
}

/// Hashes a new password: bounded like every login when a request asks (`PasswordWork`), directly
/// on the command line.
async fn hash(passwords: Option<&PasswordWork>, text: &str) -> Result<String, UserError> {
    password::validate_new_password(text).map_err(UserError::WeakPassword)?;
    match passwords {
        Some(work) => work.hash(text.to_owned()).await.map_err(|_| UserError::Busy),
        None => Ok(password::hash_blocking(text.to_owned()).await),
    }
}

async fn check_link(tx: &WriteTx, role: Role, patient_id: Option<PatientId>) -> Result<(), UserError> {
    match (role, patient_id) {
        (Role::Patient, None) => Err(UserError::PatientRequired),
        (Role::Patient, Some(id)) if store::patients::find(tx, id).await?.is_none() => {
            Err(UserError::UnknownPatient(id))
        }
        (Role::Patient, Some(_)) => Ok(()),
        (_, Some(_)) => Err(UserError::PatientNotAllowed),
        (_, None) => Ok(()),
    }
}

pub async fn create(
    store: &Store,
    username: &str,
    role: Role,
    patient_id: Option<PatientId>,
    password_text: &str,
) -> Result<User, UserError> {
    create_by(store, None, Changer::Operator, username, role, patient_id, password_text).await
}

pub async fn create_by(
    store: &Store,
    passwords: Option<&PasswordWork>,
    by: Changer<'_>,
    username: &str,
    role: Role,
    patient_id: Option<PatientId>,
    password_text: &str,
) -> Result<User, UserError> {
    if !valid_username(username) {
        return Err(UserError::InvalidUsername);
    }
    let password_hash = hash(passwords, password_text).await?;
    let user = User {
        id: UserId::generate(),
        username: username.to_owned(),
        password_hash,
        role,
        patient_id,
        active: true,
        created_at: now(),
        token_version: 0,
    };
    let mut work = UnitOfWork::begin(store).await?;
    let changed: Result<(), UserError> = async {
        check_link(work.tx(), role, patient_id).await?;
        if let Err(err) = store::users::insert(work.tx(), &user).await {
            return Err(if store::is_unique_violation(&err, "users", "username") {
                UserError::Duplicate(username.to_owned())
            } else {
                err.into()
            });
        }
        work.audit(by.record(AuditAction::UserCreate, Some(user.id)));
        Ok(())
    }
    .await;
    work.end(changed).await?;
    Ok(user)
}

/// A change to an existing account.
#[derive(Debug, Clone)]
pub enum AccountChange {
    Role { role: Role, patient_id: Option<PatientId> },
    Active(bool),
    Password(String),
}

impl AccountChange {
    fn action(&self) -> AuditAction {
        match self {
            AccountChange::Role { .. } => AuditAction::UserRoleChange,
            AccountChange::Active(true) => AuditAction::UserActivate,
            AccountChange::Active(false) => AuditAction::UserDeactivate,
            AccountChange::Password(_) => AuditAction::UserPasswordReset,
        }
    }
}

/// Applies a change and increments the token version; every instance hears of it and stops
/// accepting the account's older tokens on its next request.
pub async fn change(
    store: &Store,
    passwords: Option<&PasswordWork>,
    by: Changer<'_>,
    id: UserId,
    change: AccountChange,
) -> Result<User, UserError> {
    let new_hash = match &change {
        AccountChange::Password(text) => Some(hash(passwords, text).await?),
        _ => None,
    };
    let mut work = UnitOfWork::begin(store).await?;
    let changed: Result<User, UserError> = async {
        let mut user = store::users::find_for_update(work.tx(), id).await?.ok_or(UserError::NotFound)?;
        let unchanged = match &change {
            AccountChange::Role { role, patient_id } => user.role == *role && user.patient_id == *patient_id,
            AccountChange::Active(active) => user.active == *active,
            AccountChange::Password(_) => false,
        };
        if unchanged {
            // Nothing changes, so nothing ends: the account's tokens stay valid.
            return Ok(user);
        }
        let was_active_admin = user.active && user.role == Role::Admin;
        match &change {
            AccountChange::Role { role, patient_id } => {
                check_link(work.tx(), *role, *patient_id).await?;
                (user.role, user.patient_id) = (*role, *patient_id);
            }
            AccountChange::Active(active) => user.active = *active,
            AccountChange::Password(_) => user.password_hash = new_hash.unwrap_or_default(),
        }
        let still_active_admin = user.active && user.role == Role::Admin;
        if was_active_admin && !still_active_admin && store::users::other_active_admins(work.tx(), id).await? == 0 {
            return Err(UserError::LastAdmin);
        }
        user.token_version += 1;
        store::users::update(work.tx(), &user).await?;
        // The commit also tells every instance (a trigger on `users` notifies on PostgreSQL).
        work.audit(by.record(change.action(), Some(id)));
        Ok(user)
    }
    .await;
    work.end(changed).await
}

/// The account named `username`, for the command line.
pub async fn find_by_username(store: &Store, username: &str) -> Result<User, UserError> {
    store::users::find_by_username(store.db(), username).await?.ok_or(UserError::NotFound)
}

pub async fn list(store: &Store, page: PageRequest) -> Result<Page<User>, UserError> {
    Ok(store::users::list(store.db(), page).await?)
}

/// What happened to the initial administrator at start-up.
pub enum FirstAdmin {
    /// Users existed already; nothing was done.
    NotNeeded,
    /// Created with the password from `HEALTHCORE_ADMIN_PASSWORD`.
    CreatedWithConfiguredPassword,
    /// Created with this generated password, to be shown once.
    CreatedWithGeneratedPassword(String),
}

pub async fn ensure_first_admin(store: &Store, configured_password: Option<&str>) -> Result<FirstAdmin, UserError> {
    if store::users::count(store.db()).await? > 0 {
        return Ok(FirstAdmin::NotNeeded);
    }
    let (password_text, outcome) = match configured_password {
        Some(configured) => (configured.to_owned(), FirstAdmin::CreatedWithConfiguredPassword),
        None => {
            let generated = password::generate();
            (generated.clone(), FirstAdmin::CreatedWithGeneratedPassword(generated))
        }
    };
    match create(store, "admin", Role::Admin, None, &password_text).await {
        Ok(_) => Ok(outcome),
        // Another instance created it between our count and our insert.
        Err(UserError::Duplicate(_)) => Ok(FirstAdmin::NotNeeded),
        Err(err) => Err(err),
    }
}

/// The administrator's use cases over the API: authorized (admins only; a refusal is audited),
/// audited, and the instance's cached account dropped at once.
pub mod admin {
    use super::*;
    use crate::auth::Action;
    use crate::error::AppResult;
    use crate::state::AppState;

    pub async fn create(
        state: &AppState,
        ctx: &RequestContext,
        username: &str,
        role: Role,
        patient_id: Option<PatientId>,
        password_text: &str,
    ) -> AppResult<User> {
        super::super::authorize(state, ctx, Action::UserManage, AuditAction::UserCreate, Subject::user(None)).await?;
        let by = Changer::Admin(ctx);
        Ok(create_by(&state.store, Some(&state.passwords), by, username, role, patient_id, password_text).await?)
    }

    pub async fn change(state: &AppState, ctx: &RequestContext, id: UserId, change: AccountChange) -> AppResult<User> {
        super::super::authorize(state, ctx, Action::UserManage, change.action(), Subject::user(Some(id))).await?;
        let user = super::change(&state.store, Some(&state.passwords), Changer::Admin(ctx), id, change).await?;
        state.cache.users.invalidate(id);
        Ok(user)
    }

    pub async fn get(state: &AppState, ctx: &RequestContext, id: UserId) -> AppResult<User> {
        super::super::authorize(state, ctx, Action::UserManage, AuditAction::UserRead, Subject::user(Some(id))).await?;
        let user = store::users::find(state.store.db(), id).await?.ok_or(AppError::NotFound("user"))?;
        state.audit.record(vec![Changer::Admin(ctx).record(AuditAction::UserRead, Some(id))]).await?;
        Ok(user)
    }

    pub async fn list(state: &AppState, ctx: &RequestContext, page: PageRequest) -> AppResult<Page<User>> {
        super::super::authorize(state, ctx, Action::UserManage, AuditAction::UserList, Subject::user(None)).await?;
        let page = super::list(&state.store, page).await?;
        state.audit.record(vec![Changer::Admin(ctx).record(AuditAction::UserList, None)]).await?;
        Ok(page)
    }

    /// Any signed-in user changes their own password, proving the current one; their other tokens
    /// (another device, a stolen one) stop working.
    pub async fn change_own_password(
        state: &AppState,
        ctx: &RequestContext,
        current: &str,
        new: &str,
    ) -> AppResult<User> {
        let id = ctx.principal.user_id;
        let user = store::users::find(state.store.db(), id).await?.ok_or(AppError::NotFound("user"))?;
        let verified = state
            .passwords
            .verify(current.to_owned(), user.password_hash.clone())
            .await
            .map_err(|_| AppError::from(UserError::Busy))?;
        if !verified {
            let record = Changer::Admin(ctx).record(AuditAction::UserPasswordChange, Some(id));
            let record = AuditRecord { outcome: AuditOutcome::Denied, ..record }.because("invalid_credentials");
            state.audit.record(vec![record]).await?;
            return Err(AppError::invalid("current_password", "matches", "is not the current password"));
        }
        let changed = AccountChange::Password(new.to_owned());
        let user = super::change(&state.store, Some(&state.passwords), Changer::Admin(ctx), id, changed).await?;
        state.cache.users.invalidate(id);
        Ok(user)
    }
}
