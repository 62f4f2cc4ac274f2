//! The audit trail: who did what to which patient's data, when, from where, and how it ended.
//!
//! Writes record their audit row inside their own transaction. Reads hand their records to the
//! `AuditLog` batcher, which commits the records of many concurrent requests in one transaction
//! (group commit) and answers each request only once its records are durable.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::context::{AnonymousContext, RequestContext};
pub use crate::domain::audit::{AuditAction, AuditOutcome, AuditRecord, Subject};
use crate::domain::{Role, UserId};
use crate::error::{AppError, AppResult};
use crate::store::{self, Store};
use crate::telemetry::metrics::Metrics;

/// Records built from what HealthCore knows of a request, an operator or a job.
impl AuditRecord {
    /// What every record has: a new id, when, what was done to what and how it ended; the
    /// constructors below add who and from where. The time comes from the caller's clock: the
    /// application's for requests and jobs, so a test that moves it sees their records move too.
    fn of(occurred_at: DateTime<Utc>, action: AuditAction, subject: Subject, outcome: AuditOutcome) -> Self {
        AuditRecord {
            id: Uuid::now_v7(),
            occurred_at,
            actor_id: None,
            actor_role: None,
            action,
            resource_type: subject.resource_type,
            resource_id: subject.resource_id,
            patient_id: subject.patient_id,
            outcome,
            correlation_id: String::new(),
            client_addr: None,
            user_agent: None,
            reason: None,
        }
    }

    /// A change an operator makes with the command line (`healthcore user …`): no account of
    /// HealthCore's, no client address.
    pub fn operator(action: AuditAction, subject: Subject) -> Self {
        let mut record = AuditRecord::system(action, subject, &format!("cli-{}", Uuid::new_v4()), crate::clock::now());
        record.user_agent = Some("healthcore cli".to_owned());
        record
    }

    /// A change HealthCore makes by itself (a background job): no actor, no client.
    pub fn system(action: AuditAction, subject: Subject, correlation_id: &str, at: DateTime<Utc>) -> Self {
        AuditRecord {
            correlation_id: correlation_id.to_owned(),
            user_agent: Some("healthcore jobs".to_owned()),
            ..AuditRecord::of(at, action, subject, AuditOutcome::Success)
        }
    }

    /// What an authenticated request did, stamped by the application's clock.
    pub fn new(ctx: &RequestContext, action: AuditAction, subject: Subject, outcome: AuditOutcome) -> Self {
        AuditRecord {
            actor_id: Some(ctx.principal.user_id),
            actor_role: Some(ctx.principal.role),
            correlation_id: ctx.correlation_id.clone(),
            client_addr: ctx.client_addr.clone(),
            user_agent: ctx.user_agent.clone(),
            ..AuditRecord::of(ctx.clock.now(), action, subject, outcome)
        }
    }

    /// An attempt the HTTP edge audits: by whoever authenticated, if anyone did.
    pub fn attempt(
        origin: &AnonymousContext,
        actor: Option<(UserId, Role)>,
        action: AuditAction,
        subject: Subject,
        outcome: AuditOutcome,
        at: DateTime<Utc>,
    ) -> Self {
        AuditRecord {
            actor_id: actor.map(|a| a.0),
            actor_role: actor.map(|a| a.1),
            correlation_id: origin.correlation_id.clone(),
            client_addr: origin.client_addr.clone(),
            user_agent: origin.user_agent.clone(),
            ..AuditRecord::of(at, action, subject, outcome)
        }
    }

    /// A login attempt: the actor is known only when the credentials named an existing user.
    pub fn login(
        ctx: &AnonymousContext,
        user: Option<(UserId, Role)>,
        outcome: AuditOutcome,
        at: DateTime<Utc>,
    ) -> Self {
        AuditRecord::attempt(ctx, user, AuditAction::AuthLogin, Subject::none("session"), outcome, at)
    }
}

struct Pending {
    records: Vec<AuditRecord>,
    done: oneshot::Sender<Result<(), BatchFailure>>,
}

/// What the writer is asked to do: commit records, or show that it could (readiness).
enum Work {
    Records(Pending),
    Probe(oneshot::Sender<Result<(), String>>),
}

/// Why a batch did not commit, shared by every request in it.
#[derive(Debug, Clone)]
struct BatchFailure {
    reason: String,
    database_unavailable: bool,
}

/// Handle to the group-commit writer. Cloning is cheap; the writer stops when the last handle is
/// dropped, after committing what it was given.
#[derive(Clone)]
pub struct AuditLog {
    sender: mpsc::Sender<Work>,
}

impl AuditLog {
    pub fn spawn(store: Store, max_batch: usize, metrics: Arc<Metrics>) -> (AuditLog, tokio::task::JoinHandle<()>) {
        // The channel bound is back-pressure: when the database falls behind, requests wait here.
        let (sender, receiver) = mpsc::channel(max_batch * 4);
        let worker = tokio::spawn(write_batches(store, receiver, max_batch, metrics));
        (AuditLog { sender }, worker)
    }

    /// Returns once `records` are committed.
    pub async fn record(&self, records: Vec<AuditRecord>) -> AppResult<()> {
        if records.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.sender
            .send(Work::Records(Pending { records, done }))
            .await
            .map_err(|_| AppError::Internal(anyhow::anyhow!("the audit writer has stopped")))?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failure)) if failure.database_unavailable => {
                Err(AppError::Unavailable(anyhow::anyhow!("audit batch failed: {}", failure.reason)))
            }
            Ok(Err(failure)) => Err(AppError::Internal(anyhow::anyhow!("audit batch failed: {}", failure.reason))),
            Err(_) => Err(AppError::Internal(anyhow::anyhow!("the audit writer stopped before committing"))),
        }
    }

    /// Whether the writer can commit now: the probe waits its turn behind queued batches, then the
    /// writer pings its own connection. A writer stuck on a batch or a connection does not answer
    /// within `deadline`, and that is the answer readiness needs.
    pub async fn probe(&self, deadline: std::time::Duration) -> Result<(), String> {
        let (done, answered) = oneshot::channel();
        let asked = async {
            self.sender.send(Work::Probe(done)).await.map_err(|_| "the audit writer has stopped".to_owned())?;
            answered.await.map_err(|_| "the audit writer has stopped".to_owned())?
        };
        tokio::time::timeout(deadline, asked)
            .await
            .unwrap_or_else(|_| Err(format!("the audit writer did not answer within {} ms", deadline.as_millis())))
    }
}

async fn write_batches(store: Store, mut receiver: mpsc::Receiver<Work>, max_batch: usize, metrics: Arc<Metrics>) {
    while let Some(first) = receiver.recv().await {
        let first = match first {
            Work::Records(pending) => pending,
            Work::Probe(answer) => {
                let _ = answer.send(store.ping().await.map_err(|err| err.to_string()));
                continue;
            }
        };
        let mut batch = vec![first];
        let mut rows = batch[0].records.len();
        let mut probes = Vec::new();
        // Take whatever queued up while the previous batch was committing.
        while rows < max_batch {
            match receiver.try_recv() {
                Ok(Work::Records(next)) => {
                    rows += next.records.len();
                    batch.push(next);
                }
                Ok(Work::Probe(answer)) => probes.push(answer),
                Err(_) => break,
            }
        }
        let records: Vec<AuditRecord> = batch.iter().flat_map(|p| p.records.iter().cloned()).collect();
        let started = std::time::Instant::now();
        let result = store::audit::append_batch(&store, &records)
            .await
            .map_err(|err| BatchFailure { reason: err.to_string(), database_unavailable: store::is_unavailable(&err) });
        let metrics = &metrics.audit;
        match &result {
            Ok(()) => {
                metrics.records_written.inc_by(records.len() as u64);
                metrics.batch_size.observe(records.len() as f64);
                metrics.write_duration.observe(started.elapsed().as_secs_f64());
            }
            Err(failure) => {
                tracing::error!(error = %failure.reason, records = records.len(), "audit batch could not be committed");
            }
        }
        for pending in batch {
            let _ = pending.done.send(result.clone());
        }
        // A probe that queued behind this batch is answered by how the batch went.
        for answer in probes {
            let _ = answer.send(result.clone().map_err(|failure| failure.reason));
        }
    }
}
