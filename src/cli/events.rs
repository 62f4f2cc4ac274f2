//! The `healthcore events` commands: `tail` prints events as they are recorded, `replay` puts
//! retained events back in the queue so the relay sends them again, marked as replays.

use std::io::Write;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::config::Config;
use crate::events::EventType;
use crate::store::outbox::{self, OutboxEvent, ReplaySelection};
use crate::store::{analytics, consumers};

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Print events as they are recorded, one decoded line each, until interrupted.
    Tail {
        /// Only this event type, e.g. appointment.booked.
        #[arg(long = "type")]
        event_type: Option<EventType>,
    },
    /// Publish retained events again, marked as replays, in their original order.
    Replay {
        /// RFC 3339 time (2026-11-27T09:00:00Z) or an age such as 30m, 12h or 7d.
        #[arg(long)]
        since: String,
        #[arg(long = "type")]
        event_type: Option<EventType>,
        /// Empty the analytics aggregates and forget which events analytics handled first, so the
        /// replay rebuilds them (replay everything retained, or the counts before --since are lost).
        #[arg(long)]
        rebuild_analytics: bool,
    },
}

/// Runs an `events` command.
pub async fn run(config: Config, command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Tail { event_type } => tail(config, event_type).await,
        EventsCommand::Replay { since, event_type, rebuild_analytics } => {
            let since = parse_since(&since, crate::clock::now())
                .map_err(|reason| anyhow::anyhow!("--since: '{since}' {reason}"))?;
            replay(config, since, event_type, rebuild_analytics).await
        }
    }
}

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
pub async fn tail(config: Config, only: Option<EventType>) -> anyhow::Result<()> {
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
    // A few statements, each over the whole history: on a long one they run a while.
    let progress = super::progress::spinner("marking the events for replay");
    if rebuild_analytics {
        analytics::reset(&tx).await?;
        let forgotten = consumers::forget(&tx, crate::consumers::ConsumerGroup::Analytics.as_str()).await?;
        println!("analytics emptied; forgot {forgotten} handled events");
    }
    let selection = ReplaySelection { since, event_type: only.map(|t| t.as_str().to_owned()) };
    let count = outbox::replay(&tx, &selection).await?;
    crate::store::outbox::notify_relays(&tx).await?;
    tx.commit().await?;
    progress.finish_and_clear();
    let destination = if config.kafka.is_some() { "Kafka" } else { "the in-process consumers" };
    println!("{count} events since {} queued for replay to {destination}", since.to_rfc3339());
    store.close().await;
    Ok(())
}

/// `--since`: an RFC 3339 time, or an age (`90s`, `30m`, `12h`, `7d`) before `now`.
pub fn parse_since(
    value: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<chrono::DateTime<chrono::Utc>, &'static str> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let amount: i64 = number.parse().map_err(|_| "is neither an RFC 3339 time nor an age like 30m, 12h or 7d")?;
    let age = match unit {
        "s" => chrono::Duration::seconds(amount),
        "m" => chrono::Duration::minutes(amount),
        "h" => chrono::Duration::hours(amount),
        "d" => chrono::Duration::days(amount),
        _ => return Err("has an unknown unit (use s, m, h or d)"),
    };
    Ok(now - age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_times_and_ages() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z").unwrap().to_utc();
        assert_eq!(parse_since("2026-11-27T09:30:00Z", now).unwrap().to_rfc3339(), "2026-11-27T09:30:00+00:00");
        assert_eq!(parse_since("90m", now).unwrap().to_rfc3339(), "2026-11-27T10:30:00+00:00");
        assert_eq!(parse_since("2d", now).unwrap().to_rfc3339(), "2026-11-25T12:00:00+00:00");
        assert!(parse_since("yesterday", now).is_err());
        assert!(parse_since("5w", now).is_err());
    }
}
