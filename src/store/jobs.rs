//! Background jobs' tables: `job_runs` (one row per run; inserting it is what claims the run),
//! `job_sweeps` (how far a job that sweeps the past has got) and `appointment_reminders` (which
//! appointment start times had their reminder).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use uuid::Uuid;

use super::entities::{appointment, appointment_reminder, job_run, job_sweep};
use crate::domain::{Appointment, AppointmentId, AppointmentStatus};

/// Where a run of a job stands (`job_runs.status`); `as_str` names it in the table, `jobs list`
/// and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Claimed; running, or waiting to be retried.
    Running,
    Succeeded,
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 3] = [RunStatus::Running, RunStatus::Succeeded, RunStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
        }
    }

    /// A stored status; anything this version does not know reads as failed (worth a look).
    fn parse(value: &str) -> RunStatus {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == value).unwrap_or(RunStatus::Failed)
    }
}

/// Claims the run of `job` scheduled for `at`; false if another instance (or an earlier attempt
/// of this one) already did.
pub async fn claim(
    conn: &impl ConnectionTrait,
    job: &str,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = job_run::ActiveModel {
        job: Set(job.to_owned()),
        scheduled_for: Set(at),
        status: Set(RunStatus::Running.as_str().to_owned()),
        attempts: Set(0),
        started_at: Set(now),
        finished_at: Set(None),
        error: Set(None),
        summary: Set(None),
    };
    let inserted = job_run::Entity::insert(row)
        .on_conflict(OnConflict::columns([job_run::Column::Job, job_run::Column::ScheduledFor]).do_nothing().to_owned())
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}

/// How an attempt of a claimed run ended: `Running` while it will be retried, then `Succeeded`
/// or `Failed`.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub status: RunStatus,
    pub attempts: i32,
    pub error: Option<&'a str>,
    pub summary: Option<&'a str>,
}

pub async fn record(
    conn: &impl ConnectionTrait,
    job: &str,
    at: DateTime<Utc>,
    attempt: Attempt<'_>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let finished = (attempt.status != RunStatus::Running).then_some(now);
    job_run::Entity::update_many()
        .col_expr(job_run::Column::Status, Expr::value(attempt.status.as_str()))
        .col_expr(job_run::Column::Attempts, Expr::value(attempt.attempts))
        .col_expr(job_run::Column::Error, Expr::value(attempt.error.map(str::to_owned)))
        .col_expr(job_run::Column::Summary, Expr::value(attempt.summary.map(str::to_owned)))
        .col_expr(job_run::Column::FinishedAt, Expr::value(finished))
        .filter(job_run::Column::Job.eq(job))
        .filter(job_run::Column::ScheduledFor.eq(at))
        .exec(conn)
        .await?;
    Ok(())
}

/// A run as `jobs list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub scheduled_for: DateTime<Utc>,
    pub status: RunStatus,
    pub attempts: i32,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub summary: Option<String>,
}

pub async fn last_run(conn: &impl ConnectionTrait, job: &str) -> Result<Option<Run>, DbErr> {
    let row = job_run::Entity::find()
        .filter(job_run::Column::Job.eq(job))
        .order_by_desc(job_run::Column::StartedAt)
        .one(conn)
        .await?;
    Ok(row.map(|row| Run {
        scheduled_for: row.scheduled_for,
        status: RunStatus::parse(&row.status),
        attempts: row.attempts,
        finished_at: row.finished_at,
        error: row.error,
        summary: row.summary,
    }))
}

/// The jobs whose latest run failed, by name (readiness reports them). Read from the index of the
/// failed runs alone (`ix_job_runs_failed`), each checked against its job's latest run: readiness
/// asks every few seconds, and a month of runs is tens of thousands of rows.
pub async fn failing(conn: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let sql = format!(
        "SELECT job FROM job_runs AS latest WHERE status = '{}' AND started_at = \
         (SELECT MAX(started_at) FROM job_runs AS runs WHERE runs.job = latest.job) ORDER BY job",
        RunStatus::Failed.as_str()
    );
    let rows = conn.query_all_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql)).await?;
    rows.iter().map(|row| row.try_get::<String>("", "job")).collect()
}

/// The time before which `job` has handled everything due, as its last run recorded it;
/// `None` before the first.
pub async fn swept_before(conn: &impl ConnectionTrait, job: &str) -> Result<Option<DateTime<Utc>>, DbErr> {
    Ok(job_sweep::Entity::find_by_id(job.to_owned()).one(conn).await?.map(|row| row.swept_before))
}

/// Records that `job` has handled everything due before `before`. An earlier time than the one
/// recorded (the job's setting was raised since) changes nothing: what was handled stays handled.
pub async fn note_swept(
    conn: &impl ConnectionTrait,
    job: &str,
    before: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::ExprTrait;
    let row = job_sweep::ActiveModel { job: Set(job.to_owned()), swept_before: Set(before), updated_at: Set(now) };
    let later = Expr::col((job_sweep::Entity, job_sweep::Column::SweptBefore))
        .lt(Expr::col(("excluded", job_sweep::Column::SweptBefore)));
    job_sweep::Entity::insert(row)
        .on_conflict(
            OnConflict::column(job_sweep::Column::Job)
                .update_columns([job_sweep::Column::SweptBefore, job_sweep::Column::UpdatedAt])
                .action_and_where(later)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Forgets how far `job` has got: its next run looks through everything again.
pub async fn forget_sweep(conn: &impl ConnectionTrait, job: &str) -> Result<(), DbErr> {
    job_sweep::Entity::delete_by_id(job.to_owned()).exec(conn).await?;
    Ok(())
}

/// Booked appointments starting in (`from`, `to`] that have not had a reminder for that start.
pub async fn reminders_due(
    conn: &impl ConnectionTrait,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<Appointment>, DbErr> {
    use sea_orm::sea_query::{ExprTrait, Query};
    let reminded = Query::select()
        .expr(Expr::val(1))
        .from(appointment_reminder::Entity)
        .and_where(
            Expr::col((appointment_reminder::Entity, appointment_reminder::Column::AppointmentId))
                .equals((appointment::Entity, appointment::Column::Id)),
        )
        .and_where(
            Expr::col((appointment_reminder::Entity, appointment_reminder::Column::StartsAt))
                .equals((appointment::Entity, appointment::Column::StartsAt)),
        )
        .to_owned();
    let rows = appointment::Entity::find()
        .filter(appointment::Column::Status.eq(AppointmentStatus::Booked.as_str()))
        .filter(appointment::Column::StartsAt.gt(from))
        .filter(appointment::Column::StartsAt.lte(to))
        .filter(Expr::exists(reminded).not())
        .order_by_asc(appointment::Column::StartsAt)
        .limit(limit)
        .all(conn)
        .await?;
    rows.into_iter().map(super::appointments::to_domain).collect()
}

/// Notes the reminder of `appointment_id` for `starts_at`; false if it was already sent.
pub async fn note_reminder(
    conn: &impl ConnectionTrait,
    appointment_id: AppointmentId,
    starts_at: DateTime<Utc>,
    event_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = appointment_reminder::ActiveModel {
        appointment_id: Set(appointment_id.into()),
        starts_at: Set(starts_at),
        event_id: Set(event_id),
        created_at: Set(now),
    };
    let inserted = appointment_reminder::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([appointment_reminder::Column::AppointmentId, appointment_reminder::Column::StartsAt])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted == 1)
}
