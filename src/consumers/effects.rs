//! What the events of one transaction write, gathered while each is handled and written once all
//! are: one statement per table, not one per event (a busy group's batch is up to `MAX_TOGETHER`
//! events). Each statement is a span of the handling of the first event that gave it a row.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use tracing::{Instrument, Span};

use crate::store::WriteTx;
use crate::store::analytics::{self, AppointmentTally, RegistrationTally};
use crate::store::notifications::{self, Notification};
use crate::store::webhooks::{self, NewDelivery};

/// Rows for one table, and the span they are written in.
#[derive(Default)]
pub struct Gathered<T> {
    rows: T,
    span: Option<Span>,
}

impl<T> Gathered<T> {
    /// The rows, to add to for the event whose handling is `span`.
    pub fn by(&mut self, span: &Span) -> &mut T {
        self.span.get_or_insert_with(|| span.clone());
        &mut self.rows
    }
}

#[derive(Default)]
pub struct Effects {
    pub registrations: Gathered<RegistrationTally>,
    pub appointments: Gathered<AppointmentTally>,
    pub deliveries: Gathered<Vec<NewDelivery>>,
    pub notifications: Gathered<Vec<Notification>>,
}

impl Effects {
    /// Writes what was gathered, in `tx`; returns whether that includes webhook deliveries.
    pub async fn write(self, tx: &WriteTx, now: DateTime<Utc>) -> Result<bool, DbErr> {
        if let Some(span) = self.registrations.span {
            analytics::add_registrations(tx, &self.registrations.rows).instrument(span).await?;
        }
        if let Some(span) = self.appointments.span {
            analytics::add_appointments(tx, &self.appointments.rows).instrument(span).await?;
        }
        // Deliveries before the notifications that name them.
        let deliveries = !self.deliveries.rows.is_empty();
        if let Some(span) = self.deliveries.span {
            webhooks::enqueue_all(tx, &self.deliveries.rows, now).instrument(span).await?;
        }
        if let Some(span) = self.notifications.span {
            notifications::insert_all(tx, &self.notifications.rows).instrument(span).await?;
        }
        Ok(deliveries)
    }
}
