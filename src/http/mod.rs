//! The HTTP edge: routing, middleware, extractors, problem responses.
//!
//! Request path: correlation ID → access log span → route → extractors (body, auth) → handler →
//! service. The OpenAPI document is derived from the same handler list that builds the router, so
//! the two cannot disagree about which operations exist.

pub mod access_log;
pub mod attempts;
pub mod body;
pub mod correlation;
pub mod deadline;
pub mod extract;
pub mod fhir;
pub mod headers;
pub mod metrics;
pub mod openapi;
pub mod origin;
pub mod params;
pub mod problem;
pub mod response;
pub mod routes;
pub mod server;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::DefaultBodyLimit,
    http::StatusCode,
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ProblemCode;
use crate::state::AppState;
use problem::Problem;
use routes::{
    analytics, appointments, audit, auth, health, integrations, notifications, patients, practitioners, users,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "HealthCore API", description = "Patients, practitioners and appointments, with an audit trail of every access to patient data."),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    tags(
        (name = "auth", description = "Tokens"),
        (name = "patients", description = "Patient records (PHI; every access is audited)"),
        (name = "practitioners", description = "Practitioners (managed by admins)"),
        (name = "appointments", description = "Booking and the appointment life cycle"),
        (name = "audit", description = "The audit trail (admins and auditors)"),
        (name = "analytics", description = "Daily aggregates kept by the analytics consumer (admins)"),
        (name = "notifications", description = "Patient notifications prepared by the notifications consumer"),
        (name = "integrations", description = "Subscriptions of external systems to domain events (admins)"),
        (name = "users", description = "User accounts (admins): a change takes effect on the account's next request"),
        (name = "health", description = "Probes"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The routes of the API and their OpenAPI description, built from one list.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::issue_token))
        .routes(routes!(auth::me))
        .routes(routes!(users::change_own_password))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::reset_password))
        .routes(routes!(patients::create_patient, patients::list_patients))
        .routes(routes!(patients::get_patient, patients::update_patient, patients::deactivate_patient))
        .routes(routes!(patients::reactivate_patient))
        .routes(routes!(practitioners::create_practitioner, practitioners::list_practitioners))
        .routes(routes!(
            practitioners::get_practitioner,
            practitioners::update_practitioner,
            practitioners::deactivate_practitioner
        ))
        .routes(routes!(practitioners::reactivate_practitioner))
        .routes(routes!(appointments::book_appointment, appointments::list_appointments))
        .routes(routes!(appointments::get_appointment))
        .routes(routes!(appointments::reschedule_appointment))
        .routes(routes!(appointments::cancel_appointment))
        .routes(routes!(appointments::complete_appointment))
        .routes(routes!(appointments::no_show_appointment))
        .routes(routes!(audit::list_audit_events))
        .routes(routes!(analytics::patient_analytics))
        .routes(routes!(analytics::appointment_analytics))
        .routes(routes!(notifications::list_notifications))
        .routes(routes!(integrations::create_subscription, integrations::list_subscriptions))
        .routes(routes!(integrations::get_subscription, integrations::delete_subscription))
        .routes(routes!(integrations::enable_subscription))
        .routes(routes!(integrations::list_deliveries))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .split_for_parts();
    openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    self::openapi::add_implied_problems(&mut openapi);
    (router, openapi)
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

async fn not_found() -> Response {
    Problem::new(StatusCode::NOT_FOUND, ProblemCode::NotFound, "no such route").into_response()
}

/// A panic is a bug: the request still gets a problem response with its correlation ID, the event
/// is logged in the request's span, and the panic payload never reaches the client.
fn panic_response(_payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        ProblemCode::Internal,
        "an internal error occurred; quote the correlation ID when reporting it",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ProblemCode::MethodNotAllowed,
        "this route does not accept that method",
    )
    .into_response()
}

/// The complete application: API routes, documentation, fallbacks and middleware.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api();
    let openapi_json = serde_json::to_value(&openapi).expect("the OpenAPI document serializes");
    let metrics = state.metrics.clone();
    let mut api = api.route("/api/openapi.json", get(move || std::future::ready(Json(openapi_json.clone()))));
    let metrics_enabled = state.config.metrics_enabled;
    if metrics_enabled && state.config.metrics_addr.is_none() {
        let token = state.config.metrics_token.as_ref().map(|t| Arc::from(t.expose()));
        let exposition = metrics::Exposition { metrics: metrics.clone(), token };
        api = api.route("/metrics", get(metrics::render).with_state(exposition));
    }
    let api = api
        .route(routes::docs::PREFIX, get(routes::docs::page))
        .route("/api/docs/docs.js", get(routes::docs::script))
        .route("/api/docs/swagger-ui-bundle.js", get(routes::docs::asset))
        .route("/api/docs/swagger-ui.css", get(routes::docs::asset))
        .merge(fhir::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit_bytes))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(
            std::time::Duration::from_millis(state.config.request_timeout_ms),
            deadline::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            body::BodyLimits {
                max_bytes: state.config.body_limit_bytes,
                read_within: std::time::Duration::from_millis(state.config.http.body_timeout_ms),
            },
            body::middleware,
        ))
        .layer(middleware::from_fn_with_state(
            Arc::new(attempts::Recorder {
                audit: state.audit.clone(),
                unauthenticated: attempts::Unauthenticated::default(),
                clock: state.clock.clone(),
            }),
            attempts::middleware,
        ))
        .layer(middleware::from_fn(fhir::outcome::middleware))
        .layer(middleware::from_fn_with_state(state.config.access_log, access_log::middleware))
        .layer(middleware::from_fn_with_state(Arc::new(state.config.trusted_proxies.clone()), origin::middleware));
    let api =
        if metrics_enabled { api.layer(middleware::from_fn_with_state(metrics, metrics::middleware)) } else { api };
    api.layer(middleware::from_fn(correlation::middleware))
        .layer(middleware::from_fn(headers::middleware))
        .with_state(state)
}
