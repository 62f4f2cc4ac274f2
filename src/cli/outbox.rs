//! `healthcore outbox status`.

use clap::Subcommand;

use crate::app;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Pending events, the age of the oldest, and when the last one was published.
    Status,
}

pub async fn run(config: Config, command: OutboxCommand) -> anyhow::Result<()> {
    match command {
        OutboxCommand::Status => {
            let store = app::open_store(&config, &Default::default()).await?;
            let status = crate::store::outbox::status(store.db()).await?;
            let now = crate::clock::now();
            let age = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| format!("{}s ago ({})", (now - t).num_seconds(), t.to_rfc3339()))
            };
            println!("recorded events:      {}", status.total);
            println!("pending:              {}", status.backlog.pending);
            println!("oldest pending:       {}", age(status.backlog.oldest));
            println!("last published:       {}", age(status.last_published));
            Ok(())
        }
    }
}
