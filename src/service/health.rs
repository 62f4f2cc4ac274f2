//! Readiness: whether this instance can serve requests (the database answers, and so does the audit
//! writer every read of patient data waits for), and how the parts that never make it unready are
//! doing: Kafka, the outbox backlog, the in-process consumers and the jobs.

use serde::Serialize;
use utoipa::ToSchema;

use crate::state::AppState;
use crate::store;

/// The state of one part, as readiness reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Healthy,
    /// Working, with a fault worth a look; never makes the instance unready.
    Degraded,
    Unhealthy,
    /// Turned off by configuration.
    Disabled,
    /// Runs in other processes (the consumers, with Kafka).
    External,
}

/// Whether the instance can serve requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    Unavailable,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DependencyCheck {
    /// `healthy`, `degraded` or `unhealthy` (`disabled` and `external` where a part says so).
    pub status: CheckStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxCheck {
    /// `healthy`, or `degraded` when events wait longer than `HEALTHCORE_OUTBOX_MAX_AGE_SECONDS` to
    /// be acknowledged by Kafka (or, without it, handled by the in-process consumers).
    pub status: CheckStatus,
    /// Events recorded but not yet acknowledged by Kafka (or handled in-process).
    pub pending: u64,
    /// Age of the oldest pending event.
    pub oldest_pending_age_seconds: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: ReadyStatus,
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

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.status == ReadyStatus::Ready
    }
}

impl DependencyCheck {
    fn healthy() -> DependencyCheck {
        DependencyCheck { status: CheckStatus::Healthy, reason: None }
    }

    fn because(status: CheckStatus, reason: impl Into<String>) -> DependencyCheck {
        DependencyCheck { status, reason: Some(reason.into()) }
    }
}

/// How long each of the database and audit-writer checks may take: a probe must answer well within
/// an orchestrator's probe timeout, also while the database does not.
const PROBE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Checks every part; only the database and the audit writer decide whether the instance is ready.
pub async fn readiness(state: &AppState) -> Readiness {
    let (database, audit) =
        tokio::join!(tokio::time::timeout(PROBE_DEADLINE, state.store.ping()), state.audit.probe(PROBE_DEADLINE));
    let database = match database {
        Ok(Ok(())) => DependencyCheck::healthy(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: database check failed");
            DependencyCheck::because(CheckStatus::Unhealthy, "the database did not answer")
        }
        Err(_) => DependencyCheck::because(CheckStatus::Unhealthy, "the database did not answer within 2 s"),
    };
    let audit = match audit {
        Ok(()) => DependencyCheck::healthy(),
        Err(reason) => {
            tracing::warn!(error = %reason, "readiness: audit writer check failed");
            DependencyCheck::because(CheckStatus::Unhealthy, "the audit writer cannot commit")
        }
    };
    let ready = database.status == CheckStatus::Healthy && audit.status == CheckStatus::Healthy;
    let backlog =
        if ready { store::outbox::backlog(state.store.db()).await.unwrap_or_default() } else { Default::default() };
    let age = backlog.oldest.map(|oldest| (state.clock.now() - oldest).num_seconds().max(0));
    // Events wait when publishing (or in-process delivery) is not keeping up. Without Kafka and with
    // the relay turned off nothing moves them, by configuration: that is not a fault.
    let moving = state.config.kafka.is_some() || state.relay.is_some();
    let stale = moving && age.is_some_and(|a| a > state.config.relay.max_age_seconds);
    let outbox = OutboxCheck {
        status: if stale { CheckStatus::Degraded } else { CheckStatus::Healthy },
        pending: backlog.pending,
        oldest_pending_age_seconds: age,
    };
    let relay_error = state.relay.as_ref().and_then(|relay| relay.borrow().last_error.clone());
    let kafka = match (&state.config.kafka, relay_error) {
        (None, _) => DependencyCheck::because(
            CheckStatus::Disabled,
            "no KAFKA_BOOTSTRAP_SERVERS: events are delivered to the consumers in this process",
        ),
        (Some(_), Some(error)) => DependencyCheck::because(
            CheckStatus::Degraded,
            format!("publishing fails, events wait in the outbox: {error}"),
        ),
        (Some(_), None) if stale => DependencyCheck::because(
            CheckStatus::Degraded,
            "events are not being acknowledged by the brokers (down, or up and not answering)",
        ),
        (Some(_), None) => DependencyCheck::healthy(),
    };
    let consumers = consumers_check(state, ready).await;
    let jobs = jobs_check(state, ready).await;
    let status = if ready { ReadyStatus::Ready } else { ReadyStatus::Unavailable };
    Readiness { status, database, audit, kafka, outbox, consumers, jobs }
}

async fn consumers_check(state: &AppState, database_up: bool) -> DependencyCheck {
    if state.config.kafka.is_some() {
        let reason = "with Kafka the consumers run as `healthcore consume` processes";
        return DependencyCheck::because(CheckStatus::External, reason);
    }
    if state.relay.is_none() {
        let reason = "HEALTHCORE_RELAY_ENABLED=false: nothing delivers events in this process";
        return DependencyCheck::because(CheckStatus::Disabled, reason);
    }
    if !database_up {
        return DependencyCheck::because(CheckStatus::Unhealthy, "the database is unavailable");
    }
    let since = state.clock.now() - chrono::Duration::hours(1);
    match store::consumers::dead_letters_since(state.store.db(), since).await {
        Ok(0) => DependencyCheck::healthy(),
        Ok(count) => DependencyCheck::because(
            CheckStatus::Degraded,
            format!("{count} events dead-lettered in the last hour (consumer_dead_letters)"),
        ),
        Err(_) => DependencyCheck::because(CheckStatus::Degraded, "could not read the dead letters"),
    }
}

/// Job runs are shared by all instances, so every instance reports failed runs, also one that does
/// not schedule jobs itself.
async fn jobs_check(state: &AppState, database_up: bool) -> DependencyCheck {
    if !database_up {
        return DependencyCheck::because(CheckStatus::Unhealthy, "the database is unavailable");
    }
    // Read errors count as no failure: the database check above reports an unreachable database.
    let failing = store::jobs::failing(state.store.db()).await.unwrap_or_default();
    if failing.is_empty() && !state.config.jobs.enabled {
        let reason = "HEALTHCORE_JOBS_ENABLED=false: this instance schedules no jobs";
        DependencyCheck::because(CheckStatus::Disabled, reason)
    } else if failing.is_empty() {
        DependencyCheck::healthy()
    } else {
        let reason = format!("last run failed: {} (see `healthcore jobs list`)", failing.join(", "));
        DependencyCheck::because(CheckStatus::Degraded, reason)
    }
}
