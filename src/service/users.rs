//! User accounts: created from the command line (`healthcore user create`) and, on first start,
//! the initial administrator.

use uuid::Uuid;

use super::now;
use crate::auth::password;
use crate::domain::Role;
use crate::store::{self, Store, users::User};

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
    UnknownPatient(Uuid),
    #[error(transparent)]
    Database(#[from] sea_orm::DbErr),
}

pub(crate) fn valid_username(username: &str) -> bool {
    (3..=64).contains(&username.len()) && username.chars().all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c))
}

pub async fn create(
    store: &Store,
    username: &str,
    role: Role,
    patient_id: Option<Uuid>,
    password_text: &str,
) -> Result<User, UserError> {
    if !valid_username(username) {
        return Err(UserError::InvalidUsername);
    }
    password::validate_new_password(password_text).map_err(UserError::WeakPassword)?;
    match (role, patient_id) {
        (Role::Patient, None) => return Err(UserError::PatientRequired),
        (Role::Patient, Some(id)) => {
            if store::patients::find(store.db(), id).await?.is_none() {
                return Err(UserError::UnknownPatient(id));
            }
        }
        (_, Some(_)) => return Err(UserError::PatientNotAllowed),
        (_, None) => {}
    }
    let user = User {
        id: Uuid::now_v7(),
        username: username.to_owned(),
        password_hash: password::hash_blocking(password_text.to_owned()).await,
        role,
        patient_id,
        active: true,
        created_at: now(),
        token_version: 0,
    };
    let tx = store.begin_write().await?;
    if let Err(err) = store::users::insert(&tx, &user).await {
        return Err(if store::is_unique_violation(&err, "users", "username") {
            UserError::Duplicate(username.to_owned())
        } else {
            err.into()
        });
    }
    tx.commit().await?;
    Ok(user)
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
