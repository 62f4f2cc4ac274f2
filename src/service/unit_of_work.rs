//! A write use case, written once: `begin` → the change, in an `async` block whose outcome is kept
//! (the use case's own store calls on `tx()`) → `audit` records → domain `event`s → the idempotency
//! record (`remember`) → `end(outcome)`. On `Ok` it commits, writing the records, the events and the
//! key in the change's transaction and, once it commits, waking the relay (`WriteTx::commit`). On a
//! refusal (a clash, a stale version, a rule found under the locks) it rolls back: nothing is
//! written, and the transaction is ended rather than dropped (a dropped one counts as an
//! interruption, see `WriteTx::rollback`). Dropped without `end`, nothing is written either.

use serde::Serialize;
use tracing::Instrument;

use super::idempotency::{self, IdempotencyTicket};
use crate::audit::AuditRecord;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult};
use crate::events::{Envelope, NewEvent};
use crate::store::{self, Store, WriteTx};

pub struct UnitOfWork<'a> {
    tx: WriteTx,
    audit: Vec<AuditRecord>,
    events: Vec<Envelope>,
    remembered: Option<(&'a IdempotencyTicket, String)>,
}

impl<'a> UnitOfWork<'a> {
    pub async fn begin(store: &Store) -> AppResult<Self> {
        Ok(UnitOfWork { tx: store.begin_write().await?, audit: Vec::new(), events: Vec::new(), remembered: None })
    }

    /// Ends the unit of work with the outcome of its change: commits if it is `Ok`, rolls back if
    /// it is a refusal, which is then returned as it was.
    pub async fn end<T, E>(self, changed: Result<T, E>) -> Result<T, E>
    where
        E: From<AppError>,
    {
        match changed {
            Ok(done) => {
                self.commit().await?;
                Ok(done)
            }
            Err(refused) => {
                self.tx.abandon().await;
                Err(refused)
            }
        }
    }

    /// The transaction the change itself is written in.
    pub fn tx(&self) -> &WriteTx {
        &self.tx
    }

    pub fn audit(&mut self, record: AuditRecord) {
        self.audit.push(record);
    }

    /// A domain event the change caused, published by the relay once the transaction commits.
    pub fn event(&mut self, ctx: &RequestContext, event: NewEvent) {
        self.events.push(Envelope::new(event, ctx, ctx.clock.now()));
    }

    /// Completes the creation's idempotency claim, if it has one, with the created resource.
    pub fn remember(&mut self, ticket: Option<&'a IdempotencyTicket>, created: &impl Serialize) -> AppResult<()> {
        if let Some(ticket) = ticket {
            let body = serde_json::to_string(created).map_err(|e| AppError::Internal(e.into()))?;
            self.remembered = Some((ticket, body));
        }
        Ok(())
    }

    async fn commit(self) -> AppResult<()> {
        let UnitOfWork { tx, audit, events, remembered } = self;
        // The records and the events in one statement where they fit one (every request's do):
        // one round trip less while the change's row locks are held.
        let mut together = Vec::new();
        match audit.len() {
            0 => {}
            1..=store::audit::MAX_ROWS_PER_INSERT => together.push(store::audit::insertion(&audit)),
            _ => store::audit::append(&tx, &audit).await?,
        }
        let writes_events = !events.is_empty() && !cfg!(feature = "bench-without-outbox");
        let span = if writes_events {
            tracing::info_span!("outbox.write", event_count = events.len())
        } else {
            tracing::Span::none()
        };
        if writes_events {
            // The events carry this span's traceparent: the relay and the consumers continue from it.
            let traceparent = crate::telemetry::traces::traceparent(&span);
            together.push(store::outbox::insertion(&events, traceparent.as_deref()));
            // The commit wakes this process's relay, and `relay::notify_other_processes` tells
            // relays elsewhere; a NOTIFY inside this transaction would serialize every commit on
            // PostgreSQL's notification lock (it halved create-patient throughput).
            tx.note_events_recorded(events.iter().map(|e| e.event_type));
        }
        store::insert_together(&tx, together).instrument(span).await?;
        if let Some((ticket, body)) = remembered {
            idempotency::complete(&tx, ticket, body).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
