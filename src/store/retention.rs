//! Removing rows that have served their purpose, from the tables that would otherwise grow for
//! ever: which rows of each may go (the rule is here, the age comes from a setting, the job that
//! applies it is in `jobs`), and deleting them a batch at a time. The audit trail is not among
//! them: HealthCore never deletes an audit record.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait};

use super::entities::{appointment_reminder, consumer_inbox, dead_letter, job_run, notification, webhook_delivery};
use super::webhooks::DeliveryStatus;

/// Rows deleted per statement. Each batch is its own statement and, outside a transaction, its own
/// commit: a run never locks many rows at once nor for long, and requests writing beside it wait
/// at most one batch.
pub const BATCH: u64 = 1_000;

/// Deletes every row of `E` that `condition` matches, `BATCH` rows per statement (the rows are
/// picked by their primary key `key`); returns how many.
pub(super) async fn delete_in_batches<E: EntityTrait + Default>(
    conn: &impl ConnectionTrait,
    key: &[E::Column],
    condition: Condition,
) -> Result<u64, DbErr> {
    let key_of_row = || Expr::tuple(key.iter().map(|column| Expr::col(*column)));
    let mut removed = 0;
    loop {
        let batch = Query::select()
            .columns(key.iter().copied())
            .from(E::default())
            .cond_where(condition.clone())
            .limit(BATCH)
            .to_owned();
        let delete = Query::delete().from_table(E::default()).and_where(key_of_row().in_subquery(batch)).to_owned();
        let deleted = conn.execute(&delete).await?.rows_affected();
        removed += deleted;
        if deleted < BATCH {
            return Ok(removed);
        }
    }
}

/// Inbox entries of events handled before `cutoff`. The caller's cutoff is older than any event
/// that can still be delivered again (from the outbox or the broker), so no entry a duplicate could
/// need goes.
pub async fn delete_inbox_entries_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    use consumer_inbox::Column;
    let condition = Condition::all().add(Column::ProcessedAt.lt(cutoff));
    delete_in_batches::<consumer_inbox::Entity>(conn, &[Column::ConsumerGroup, Column::EventId], condition).await
}

/// Webhook deliveries that ended: delivered ones created before `delivered_cutoff`, given-up ones
/// before `failed_cutoff` (kept as long as dead letters). Pending deliveries are never removed.
pub async fn delete_finished_deliveries(
    conn: &impl ConnectionTrait,
    delivered_cutoff: DateTime<Utc>,
    failed_cutoff: DateTime<Utc>,
) -> Result<u64, DbErr> {
    use webhook_delivery::Column;
    let ended = |status: DeliveryStatus, cutoff: DateTime<Utc>| {
        Condition::all().add(Column::Status.eq(status.as_str())).add(Column::CreatedAt.lt(cutoff))
    };
    let mut removed = 0;
    for (status, cutoff) in [(DeliveryStatus::Delivered, delivered_cutoff), (DeliveryStatus::Failed, failed_cutoff)] {
        removed += delete_in_batches::<webhook_delivery::Entity>(conn, &[Column::Id], ended(status, cutoff)).await?;
    }
    Ok(removed)
}

/// Notifications created before `cutoff` whose webhook is no longer pending (or that had none).
pub async fn delete_notifications_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    use notification::Column;
    let pending = Query::select()
        .column(webhook_delivery::Column::Id)
        .from(webhook_delivery::Entity)
        .and_where(webhook_delivery::Column::Status.eq(DeliveryStatus::Pending.as_str()))
        .to_owned();
    let condition = Condition::all()
        .add(Column::CreatedAt.lt(cutoff))
        .add(Condition::any().add(Column::DeliveryId.is_null()).add(Column::DeliveryId.not_in_subquery(pending)));
    delete_in_batches::<notification::Entity>(conn, &[Column::Id], condition).await
}

/// The marks of reminders sent for appointment start times before `cutoff`: a time that has passed
/// is never reminded of again, so its mark guards nothing.
pub async fn delete_reminder_marks_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    use appointment_reminder::Column;
    let condition = Condition::all().add(Column::StartsAt.lt(cutoff));
    delete_in_batches::<appointment_reminder::Entity>(conn, &[Column::AppointmentId, Column::StartsAt], condition).await
}

/// Dead letters recorded before `cutoff`.
pub async fn delete_dead_letters_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    use dead_letter::Column;
    let condition = Condition::all().add(Column::FailedAt.lt(cutoff));
    delete_in_batches::<dead_letter::Entity>(conn, &[Column::Id], condition).await
}

/// Finished job runs scheduled before `cutoff`. A run in progress is never removed: its row is
/// its claim.
pub async fn delete_job_runs_before(conn: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
    use job_run::Column;
    let condition = Condition::all().add(Column::ScheduledFor.lt(cutoff)).add(Column::FinishedAt.is_not_null());
    delete_in_batches::<job_run::Entity>(conn, &[Column::Job, Column::ScheduledFor], condition).await
}
