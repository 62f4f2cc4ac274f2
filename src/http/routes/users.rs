//! User accounts (admins), and changing one's own password (anyone signed in). A change to an
//! account takes effect on the account's next request: its older tokens stop working.

use axum::{Json, extract::State};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::PageInfo;
use crate::domain::{FieldErrors, PatientId, Role, UserId};
use crate::error::AppResult;
use crate::http::extract::{Caller, IdPath, JsonBody, QueryParams};
use crate::http::params::Params;
use crate::http::problem::Problem;
use crate::service::users::{AccountChange, admin as service};
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
pub struct UserInput {
    pub username: String,
    pub role: Role,
    /// Required for (and only for) the `patient` role.
    #[schema(value_type = Option<Uuid>)]
    pub patient_id: Option<PatientId>,
    /// 12–256 characters.
    pub password: String,
}

/// What to change; each change given is applied and audited on its own.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
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
pub struct PasswordInput {
    /// 12–256 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnPasswordInput {
    pub current_password: String,
    /// 12–256 characters.
    pub new_password: String,
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
    let user = service::create(&state, &ctx, &input.username, input.role, input.patient_id, &input.password).await?;
    Ok((axum::http::StatusCode::CREATED, Json(user.into())))
}

/// Every account, by username (admin only).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(("limit" = Option<u64>, Query), ("offset" = Option<u64>, Query)),
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
    let change = AccountChange::Password(body.value.password);
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
    service::change_own_password(&state, &ctx, &input.current_password, &input.new_password).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
