//! Liveness (the process answers) and readiness (it can serve requests: the database answers, and
//! so does the audit writer every read of patient data waits for; Kafka, the outbox backlog, the
//! in-process consumers and the jobs are reported, and never make the instance unready).

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
pub struct OutboxCheck {
    /// `healthy`, or `degraded` when events wait longer than `HEALTHCORE_OUTBOX_MAX_AGE_SECONDS` to
    /// be acknowledged by Kafka (or, without it, handled by the in-process consumers).
    pub status: &'static str,
    /// Events recorded but not yet acknowledged by Kafka (or handled in-process).
    pub pending: u64,
    /// Age of the oldest pending event.
    pub oldest_pending_age_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: &'static str,
    pub database: DependencyCheck,
    /// The audit writer (its own connection): `healthy` or `unhealthy`. Reads of patient data and
    /// logins wait for it, so an instance whose writer cannot commit is not ready.
    pub audit: DependencyCheck,
    /// `healthy`, `degraded` (publishing fails; requests are unaffected, events wait) or
    /// `disabled` (no brokers configured: events go to the consumers in this process).
    pub kafka: DependencyCheck,
    pub outbox: OutboxCheck,
    /// In-process consumers: `healthy`, `degraded` (events dead-lettered in the last hour),
    /// `external` (with Kafka they run as `healthcore consume` processes) or `disabled`.
    pub consumers: DependencyCheck,
    /// Background jobs: `healthy`, `degraded` (a job's last run failed, on any instance) or
    /// `disabled` (this instance schedules none).
    pub jobs: DependencyCheck,
}

/// How long each of the database and audit-writer checks may take: a probe must answer well within
/// an orchestrator's probe timeout, also while the database does not.
const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Liveness)))]
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// 503 only when this instance cannot serve requests.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (database, audit) =
        tokio::join!(tokio::time::timeout(PROBE_DEADLINE, state.store.ping()), state.audit.probe(PROBE_DEADLINE));
    let database = match database {
        Ok(Ok(())) => DependencyCheck { status: "healthy", reason: None },
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            DependencyCheck { status: "unhealthy", reason: Some("the database did not answer".into()) }
        }
        Err(_) => {
            DependencyCheck { status: "unhealthy", reason: Some("the database did not answer within 2 s".into()) }
        }
    };
    let audit = match audit {
        Ok(()) => DependencyCheck { status: "healthy", reason: None },
        Err(reason) => {
            tracing::warn!(error = %reason, "readiness: audit writer check failed");
            DependencyCheck { status: "unhealthy", reason: Some("the audit writer cannot commit".into()) }
        }
    };
    let ready = database.status == "healthy" && audit.status == "healthy";
    let backlog = if ready {
        crate::store::outbox::backlog(state.store.db()).await.unwrap_or_default()
    } else {
        Default::default()
    };
    let age = backlog.oldest.map(|oldest| (chrono::Utc::now() - oldest).num_seconds().max(0));
    // Events wait when publishing (or in-process delivery) is not keeping up. Without Kafka and with
    // the relay turned off nothing moves them, by configuration: that is not a fault.
    let moving = state.config.kafka.is_some() || state.relay.is_some();
    let stale = moving && age.is_some_and(|a| a > state.config.relay.max_age_seconds);
    let outbox = OutboxCheck {
        status: if stale { "degraded" } else { "healthy" },
        pending: backlog.pending,
        oldest_pending_age_seconds: age,
    };
    let relay_error = state.relay.as_ref().and_then(|relay| relay.borrow().last_error.clone());
    let kafka = match (&state.config.kafka, relay_error) {
        (None, _) => DependencyCheck {
            status: "disabled",
            reason: Some("no KAFKA_BOOTSTRAP_SERVERS: events are delivered to the consumers in this process".into()),
        },
        (Some(_), Some(error)) => DependencyCheck {
            status: "degraded",
            reason: Some(format!("publishing fails, events wait in the outbox: {error}")),
        },
        (Some(_), None) if stale => DependencyCheck {
            status: "degraded",
            reason: Some("events are not being acknowledged by the brokers (down, or up and not answering)".into()),
        },
        (Some(_), None) => DependencyCheck { status: "healthy", reason: None },
    };
    let consumers = consumers_check(&state, ready).await;
    let jobs = jobs_check(&state, ready).await;
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status = if ready { "ready" } else { "unavailable" };
    (code, Json(Readiness { status, database, audit, kafka, outbox, consumers, jobs }))
}

async fn consumers_check(state: &AppState, database_up: bool) -> DependencyCheck {
    if state.config.kafka.is_some() {
        let reason = "with Kafka the consumers run as `healthcore consume` processes".into();
        return DependencyCheck { status: "external", reason: Some(reason) };
    }
    if state.relay.is_none() {
        let reason = "HEALTHCORE_RELAY_ENABLED=false: nothing delivers events in this process".into();
        return DependencyCheck { status: "disabled", reason: Some(reason) };
    }
    if !database_up {
        return DependencyCheck { status: "unhealthy", reason: Some("the database is unavailable".into()) };
    }
    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    match crate::store::consumers::dead_letters_since(state.store.db(), since).await {
        Ok(0) => DependencyCheck { status: "healthy", reason: None },
        Ok(count) => DependencyCheck {
            status: "degraded",
            reason: Some(format!("{count} events dead-lettered in the last hour (consumer_dead_letters)")),
        },
        Err(_) => DependencyCheck { status: "degraded", reason: Some("could not read the dead letters".into()) },
    }
}

/// Job runs are shared by all instances, so every instance reports failed runs, also one that does
/// not schedule jobs itself.
async fn jobs_check(state: &AppState, database_up: bool) -> DependencyCheck {
    if !database_up {
        return DependencyCheck { status: "unhealthy", reason: Some("the database is unavailable".into()) };
    }
    let mut failing = Vec::new();
    for job in crate::jobs::Job::ALL {
        if let Ok(Some(run)) = crate::store::jobs::last_run(state.store.db(), job.name()).await
            && run.status == "failed"
        {
            failing.push(job.name());
        }
    }
    if failing.is_empty() && !state.config.jobs.enabled {
        let reason = "HEALTHCORE_JOBS_ENABLED=false: this instance schedules no jobs".into();
        DependencyCheck { status: "disabled", reason: Some(reason) }
    } else if failing.is_empty() {
        DependencyCheck { status: "healthy", reason: None }
    } else {
        let reason = format!("last run failed: {} (see `healthcore jobs list`)", failing.join(", "));
        DependencyCheck { status: "degraded", reason: Some(reason) }
    }
}
