//! Liveness (the process answers) and readiness (it can serve requests: the database answers).

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyCheck {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    pub database: DependencyCheck,
}

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// 503 only when this instance cannot serve requests.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let database = match tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ping()).await {
        Ok(Ok(())) => DependencyCheck { status: "healthy", reason: None },
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            DependencyCheck { status: "unhealthy", reason: Some("the database did not answer".into()) }
        }
        Err(_) => {
            DependencyCheck { status: "unhealthy", reason: Some("the database did not answer within 2 s".into()) }
        }
    };
    let ready = database.status == "healthy";
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(Readiness { status: if ready { "ready" } else { "unavailable" }, database }))
}
