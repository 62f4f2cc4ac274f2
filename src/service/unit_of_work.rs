//! A write use case, written once: `begin` → the change, in an `async` block whose outcome is kept
//! (the use case's own store calls on `tx()`) → `audit` records → domain `event`s → the idempotency
//! record (`remember`) → `end(outcome)`. On `Ok` it commits, writing the records, the events and the
//! key in the change's transaction and, once it commits, waking the relay (`WriteTx::commit`). On a
//! refusal (a clash, a stale version, a rule found under the locks) it rolls back: nothing is
//! written, and the transaction is ended rather than dropped (a dropped one counts as an
//! interruption, see `WriteTx::rollback`). Dropped without `end`, nothing is written either.
//!
//! A change that only adds rows and reads nothing first (a registration) starts with `adding`
//! instead: its rows are `insert`ed at `end`, together with the records and the events, as one
//! atomic write (`Store::insert_atomically`) — on PostgreSQL one statement, where `BEGIN`, the row,
//! the records with the events, and `COMMIT` were four round trips.

use sea_orm::DbErr;
use sea_orm::sea_query::InsertStatement;
use serde::Serialize;
use tracing::Instrument;

use super::idempotency::{self, IdempotencyTicket};
use crate::audit::AuditRecord;
use crate::context::RequestContext;
use crate::error::{AppError, AppResult};
use crate::events::{Envelope, EventType, NewEvent};
use crate::store::{self, Store, WriteTx};

/// A unit of work whose change is made in a transaction (`WriteTx`, from `begin`) or is new rows
/// written at its end (`NewRows`, from `adding`).
pub struct UnitOfWork<'a, Change = WriteTx> {
    change: Change,
    audit: Vec<AuditRecord>,
    events: Vec<Envelope>,
    remembered: Option<(&'a IdempotencyTicket, String)>,
}

/// The rows a unit of work from `UnitOfWork::adding` inserts, kept until its end.
pub struct NewRows<'a> {
    store: &'a Store,
    inserts: Vec<InsertStatement>,
}

impl<'a> UnitOfWork<'a> {
    pub async fn begin(store: &Store) -> AppResult<Self> {
        let tx = store.begin_write().await?;
        Ok(UnitOfWork { change: tx, audit: Vec::new(), events: Vec::new(), remembered: None })
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
                self.change.abandon().await;
                Err(refused)
            }
        }
    }

    /// The transaction the change itself is written in.
    pub fn tx(&self) -> &WriteTx {
        &self.change
    }

    /// Writes the change's last statement, an insert, in one statement with the records and the
    /// events so far: one round trip less while the change's row locks are held. `false` if it
    /// inserted nothing (its condition did not hold); the unit of work still ends with `end`, whose
    /// refusal then rolls the records back too.
    pub async fn insert_last(&mut self, last: InsertStatement) -> AppResult<bool> {
        let (audit, events) = (std::mem::take(&mut self.audit), std::mem::take(&mut self.events));
        Ok(write_records(&self.change, &audit, &events, Some(last)).await? > 0)
    }

    async fn commit(self) -> AppResult<()> {
        let UnitOfWork { change: tx, audit, events, remembered } = self;
        write_records(&tx, &audit, &events, None).await?;
        if let Some((ticket, body)) = remembered {
            idempotency::complete(&tx, ticket, body).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl<'a> UnitOfWork<'a, NewRows<'a>> {
    /// A unit of work that only adds rows (`insert`), reading nothing first.
    pub fn adding(store: &'a Store) -> Self {
        UnitOfWork {
            change: NewRows { store, inserts: Vec::new() },
            audit: Vec::new(),
            events: Vec::new(),
            remembered: None,
        }
    }

    /// A row to add, inserted at `end` with the rest.
    pub fn insert(&mut self, row: InsertStatement) {
        self.change.inserts.push(row);
    }

    /// Writes the rows, the records, the events and the idempotency record, all or nothing. An
    /// error the database gave is passed through `named`, which may name a refusal (a unique key
    /// taken) for the caller.
    pub async fn end<E>(self, named: impl Fn(DbErr) -> E) -> Result<(), E>
    where
        E: From<AppError>,
    {
        let UnitOfWork { change: NewRows { store, inserts }, audit, events, remembered } = self;
        if remembered.is_some() || audit.len() > store::audit::MAX_ROWS_PER_INSERT {
            // Completing an idempotency claim is an update whose result decides whether to commit,
            // which one statement cannot wait for: this takes a transaction, as any change does.
            let tx = store.begin_write().await.map_err(&named)?;
            let inserted = store::insert_together(&tx, inserts).await.map(drop).map_err(&named);
            return UnitOfWork { change: tx, audit, events, remembered }.end(inserted).await;
        }
        let written = Written::of(&audit, &events);
        let all = inserts.into_iter().chain(written.inserts).collect();
        store.insert_atomically(all, written.event_types).instrument(written.span).await.map_err(named)
    }
}

impl<'a, Change> UnitOfWork<'a, Change> {
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
}

/// Writes `audit` and `events` in `tx`, followed by `last` (if given), as one statement where the
/// records fit one insert (every request's do); the rows `last` inserted.
async fn write_records(
    tx: &WriteTx,
    audit: &[AuditRecord],
    events: &[Envelope],
    last: Option<InsertStatement>,
) -> AppResult<u64> {
    let in_one_insert = audit.len() <= store::audit::MAX_ROWS_PER_INSERT;
    if !in_one_insert {
        store::audit::append(tx, audit).await?;
    }
    let written = Written::of(if in_one_insert { audit } else { &[] }, events);
    tx.note_events_recorded(written.event_types);
    let inserts = written.inserts.into_iter().chain(last).collect();
    Ok(store::insert_together(tx, inserts).instrument(written.span).await?)
}

/// What a unit of work writes beside its change: the insert of its audit records (if any) and of
/// its events (if any), the types of the events, and the span their trace continues from.
struct Written {
    inserts: Vec<InsertStatement>,
    event_types: Vec<EventType>,
    span: tracing::Span,
}

impl Written {
    /// `audit` must fit one insert (`store::audit::MAX_ROWS_PER_INSERT`).
    fn of(audit: &[AuditRecord], events: &[Envelope]) -> Written {
        let mut inserts = Vec::new();
        if !audit.is_empty() {
            inserts.push(store::audit::insertion(audit));
        }
        if events.is_empty() || cfg!(feature = "bench-without-outbox") {
            return Written { inserts, event_types: Vec::new(), span: tracing::Span::none() };
        }
        let span = tracing::info_span!("outbox.write", event_count = events.len());
        // The events carry this span's traceparent: the relay and the consumers continue from it.
        let traceparent = crate::telemetry::traces::traceparent(&span);
        inserts.push(store::outbox::insertion(events, traceparent.as_deref()));
        // The commit wakes this process's relay, and `relay::notify_other_processes` tells relays
        // elsewhere; a NOTIFY inside this transaction would serialize every commit on PostgreSQL's
        // notification lock (it halved create-patient throughput).
        Written { inserts, event_types: events.iter().map(|e| e.event_type).collect(), span }
    }
}
