//! User accounts (admins), and changing one's own password (anyone signed in). A change to an
//! account takes effect on the account's next request: its older tokens stop working.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::ObjectBuilder;
use uuid::Uuid;

use super::PageInfo;
use crate::auth::password;
use crate::domain::contract;
use crate::domain::validation::present;
use crate::domain::{FieldErrors, PatientId, Role, UserId};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, JsonBody, QueryParams};
use crate::http::params::{PageQuery, Params};
use crate::http::problem::Problem;
use crate::service::users::{AccountChange, USERNAME_CHARACTERS, USERNAME_LENGTH, admin as service};
use crate::state::AppState;
use crate::store::users::User;

/// An account as administrators see it (never its password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
    /// For `patient` users: the patient record they are.
    pub patient_id: Option<Uuid>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<User> for UserView {
    fn from(user: User) -> UserView {
        UserView {
            id: user.id.into(),
            username: user.username,
            role: user.role,
            patient_id: user.patient_id.map(Uuid::from),
            active: user.active,
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub items: Vec<UserView>,
    pub page: PageInfo,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"username": "r.lee", "role": "receptionist", "password": "correct horse battery staple"})))]
pub struct UserInput {
    #[schema(required = true, schema_with = username_schema)]
    pub username: Option<String>,
    #[schema(required = true, value_type = Role)]
    pub role: Option<Role>,
    /// Required for (and only for) the `patient` role: the patient record the account is.
    #[schema(value_type = Option<Uuid>)]
    pub patient_id: Option<PatientId>,
    #[schema(required = true, schema_with = new_password_schema)]
    pub password: Option<String>,
}

fn username_schema() -> ObjectBuilder {
    contract::word(USERNAME_LENGTH, USERNAME_CHARACTERS)
        .description(Some("unique; letters, digits and `.`, `_`, `-`, `@`"))
        .examples(["r.lee"])
}

fn new_password_schema() -> ObjectBuilder {
    contract::verbatim(password::MIN_LENGTH, password::MAX_LENGTH)
}

/// What to change; each change given is applied and audited on its own. At least one of `role`
/// and `active` is required.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1, examples(json!({"active": false})))]
pub struct UserPatchInput {
    /// A new role; with `patient`, `patient_id` names the patient record.
    pub role: Option<Role>,
    #[schema(value_type = Option<Uuid>)]
    pub patient_id: Option<PatientId>,
    /// `false` deactivates the account (it can no longer sign in, and its tokens stop working).
    pub active: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"password": "a new long pass phrase"})))]
pub struct PasswordInput {
    #[schema(required = true, schema_with = new_password_schema)]
    pub password: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"current_password": "the password you signed in with", "new_password": "a new long pass phrase"})))]
pub struct OwnPasswordInput {
    #[schema(required = true, value_type = String)]
    pub current_password: Option<String>,
    #[schema(required = true, schema_with = new_password_schema)]
    pub new_password: Option<String>,
}

/// Create an account (admin only).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = UserInput,
    responses((status = 201, body = UserView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn create_user(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: JsonBody<UserInput>,
) -> AppResult<(axum::http::StatusCode, Json<UserView>)> {
    let input = body.value;
    let mut errors = FieldErrors::new();
    let username = errors.check("username", present(input.username));
    let role = errors.check("role", present(input.role));
    let password = errors.check("password", present(input.password));
    let (Some(username), Some(role), Some(password)) = (username, role, password) else {
        return Err(errors.into());
    };
    let user = service::create(&state, &ctx, &username, role, input.patient_id, &password).await?;
    Ok((axum::http::StatusCode::CREATED, Json(user.into())))
}

/// Every account, by username (admin only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(PageQuery),
    responses((status = 200, body = UserList), (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn list_users(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    QueryParams(query): QueryParams,
) -> AppResult<Json<UserList>> {
    let mut params = Params::new(&query);
    let page = params.page();
    params.finish()?;
    let page = service::list(&state, &ctx, page).await?;
    Ok(Json(UserList { page: PageInfo::from(&page), items: page.items.into_iter().map(UserView::from).collect() }))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get_user(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<UserId>,
) -> AppResult<Json<UserView>> {
    Ok(Json(service::get(&state, &ctx, id).await?.into()))
}

/// Change an account's role, linked patient or activation (admin only). Refused with 409 for the
/// last active administrator.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatchInput, params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 409, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn update_user(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<UserId>,
    body: JsonBody<UserPatchInput>,
) -> AppResult<Json<UserView>> {
    let input = body.value;
    let mut changes = Vec::new();
    if let Some(role) = input.role {
        changes.push(AccountChange::Role { role, patient_id: input.patient_id });
    } else if input.patient_id.is_some() {
        return Err(FieldErrors::single("patient_id", "role", "is given together with `role`").into());
    }
    if let Some(active) = input.active {
        changes.push(AccountChange::Active(active));
    }
    if changes.is_empty() {
        return Err(FieldErrors::single("body", "required", "name at least one of role, active").into());
    }
    let mut user = None;
    for change in changes {
        user = Some(service::change(&state, &ctx, id, change).await?);
    }
    Ok(Json(user.expect("at least one change was made").into()))
}

/// Set an account's password (admin only); its older tokens stop working.
#[utoipa::path(post, path = "/api/v1/users/{id}/password", tag = "users", request_body = PasswordInput, params(("id" = Uuid, Path)),
    responses((status = 200, body = UserView), (status = 403, body = Problem, content_type = "application/problem+json"), (status = 404, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn reset_password(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    IdPath(id): IdPath<UserId>,
    body: JsonBody<PasswordInput>,
) -> AppResult<Json<UserView>> {
    let password =
        present(body.value.password).map_err(|(rule, message)| FieldErrors::single("password", rule, message))?;
    let change = AccountChange::Password(password);
    Ok(Json(service::change(&state, &ctx, id, change).await?.into()))
}

/// Change your own password; your other tokens stop working (sign in again with the new one).
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = OwnPasswordInput,
    responses((status = 204, description = "changed"), (status = 422, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn change_own_password(
    State(state): State<AppState>,
    Caller(ctx): Caller,
    body: JsonBody<OwnPasswordInput>,
) -> AppResult<axum::http::StatusCode> {
    let input = body.value;
    let mut errors = FieldErrors::new();
    let current = errors.check("current_password", present(input.current_password));
    let new = errors.check("new_password", present(input.new_password));
    let (Some(current), Some(new)) = (current, new) else {
        return Err(errors.into());
    };
    service::change_own_password(&state, &ctx, &current, &new).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
