//! The `healthcore events` commands: `tail` prints events as they are recorded, `replay` puts
//! retained events back in the queue so the relay sends them again, marked as replays.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::events::EventType;
use crate::store::outbox::{self, OutboxEvent, ReplaySelection};
use crate::store::{analytics, consumers};

const TAIL_POLL: Duration = Duration::from_millis(250);

/// One event as `tail` prints it: ids, type, time, correlation and data (which carries no PHI).
pub fn describe(event: &OutboxEvent) -> String {
    let envelope = &event.envelope;
    let metadata = &envelope.metadata;
    format!(
        "{time} {event_type} {aggregate}/{aggregate_id} v{version} event_id={event_id} correlation_id={correlation}{replay} data={data}",
        time = envelope.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        event_type = envelope.event_type.as_str(),
        aggregate = metadata.aggregate_type,
        aggregate_id = metadata.aggregate_id,
        version = metadata.aggregate_version,
        event_id = envelope.event_id,
        correlation = metadata.correlation_id,
        replay = if event.replay { " replay" } else { "" },
        data = envelope.data,
    )
}

/// Follows the outbox from its newest event until Ctrl-C or SIGTERM.
pub async fn run(config: Config, only: Option<EventType>) -> anyhow::Result<()> {
    let store = crate::app::open_store(&config, &Default::default()).await?;
    let mut last = outbox::last_sequence(store.db()).await?;
    eprintln!("following events after #{last}; Ctrl-C stops");
    let stop = crate::app::shutdown_signal();
    tokio::pin!(stop);
    let mut stdout = std::io::stdout();
    loop {
        for event in outbox::after(store.db(), last, 1000).await? {
            last = event.sequence;
            if only.is_none_or(|t| t == event.envelope.event_type) {
                writeln!(stdout, "{}", describe(&event))?;
            }
        }
        stdout.flush()?;
        tokio::select! {
            _ = tokio::time::sleep(TAIL_POLL) => {}
            _ = &mut stop => break,
        }
    }
    store.close().await;
    Ok(())
}

/// `events replay`: marks the selected published events pending again (as replays).
pub async fn replay(
    config: Config,
    since: DateTime<Utc>,
    only: Option<EventType>,
    rebuild_analytics: bool,
) -> anyhow::Result<()> {
    let store = crate::app::open_store(&config, &Default::default()).await?;
    let tx = store.begin_write().await?;
    if rebuild_analytics {
        analytics::reset(&tx).await?;
        let forgotten = consumers::forget(&tx, crate::consumers::ConsumerGroup::Analytics.as_str()).await?;
        println!("analytics emptied; forgot {forgotten} handled events");
    }
    let selection = ReplaySelection { since, event_type: only.map(|t| t.as_str().to_owned()) };
    let count = outbox::replay(&tx, &selection).await?;
    crate::store::outbox::notify_relays(&tx).await?;
    tx.commit().await?;
    let destination = if config.kafka.is_some() { "Kafka" } else { "the in-process consumers" };
    println!("{count} events since {} queued for replay to {destination}", since.to_rfc3339());
    store.close().await;
    Ok(())
}
