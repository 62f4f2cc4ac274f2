use axum::{Json, extract::State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::schema::ObjectBuilder;
use uuid::Uuid;

use crate::domain::{FieldErrors, Role, contract};
use crate::error::AppResult;
use crate::http::extract::{Anonymous, Caller, JsonBody};
use crate::http::problem::Problem;
use crate::service::auth as service;
use crate::service::users::USERNAME_LENGTH;
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(examples(json!({"username": "admin", "password": "the administrator's password"})))]
pub struct TokenRequest {
    #[schema(required = true, schema_with = username_schema)]
    pub username: Option<String>,
    #[schema(required = true, schema_with = password_schema)]
    pub password: Option<String>,
}

/// The longest username and password a sign-in reads (in characters): longer ones are refused
/// before any lookup or hashing. No account has a longer username.
const USERNAME_MAX: usize = *USERNAME_LENGTH.end();
const PASSWORD_MAX: usize = 1024;

fn username_schema() -> ObjectBuilder {
    contract::verbatim(1, USERNAME_MAX)
}

fn password_schema() -> ObjectBuilder {
    contract::verbatim(1, PASSWORD_MAX)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    pub patient_id: Option<Uuid>,
}

/// Exchange a username and password for an access token.
#[utoipa::path(post, path = "/api/v1/auth/token", tag = "auth", request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem, content_type = "application/problem+json"), (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn issue_token(
    State(state): State<AppState>,
    Anonymous(ctx): Anonymous,
    body: JsonBody<TokenRequest>,
) -> AppResult<Json<TokenResponse>> {
    let mut errors = FieldErrors::new();
    let within = |text: &String, max: usize| (1..=max).contains(&text.chars().count());
    let username = body.value.username.filter(|u| within(u, USERNAME_MAX));
    let password = body.value.password.filter(|p| within(p, PASSWORD_MAX));
    if username.is_none() {
        errors.add("username", "required", format!("is required (1–{USERNAME_MAX} characters)"));
    }
    if password.is_none() {
        errors.add("password", "required", format!("is required (1–{PASSWORD_MAX} characters)"));
    }
    let (Some(username), Some(password)) = (username, password) else {
        return Err(errors.into());
    };
    let (issued, _principal) = service::login(&state, &ctx, &username, &password).await?;
    Ok(Json(TokenResponse { access_token: issued.token, token_type: "Bearer", expires_in: issued.expires_in }))
}

/// Who the bearer token belongs to.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn me(State(state): State<AppState>, Caller(ctx): Caller) -> AppResult<Json<Me>> {
    let user = service::me(&state, &ctx).await?;
    Ok(Json(Me {
        user_id: user.id.into(),
        username: user.username,
        role: user.role,
        patient_id: user.patient_id.map(Uuid::from),
    }))
}
