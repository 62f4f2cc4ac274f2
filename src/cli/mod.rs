//! The `healthcore` command line. Every command reads the same configuration (see `config`).

mod audit;
pub mod events;
mod healthcheck;
mod jobs;
mod outbox;
mod progress;
mod seed;
mod user;

pub use audit::AuditCommand;
pub use events::EventsCommand;
pub use jobs::JobsCommand;
pub use outbox::OutboxCommand;
pub use user::UserCommand;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::app::{self, Application};
use crate::config::Config;
use crate::consumers::ConsumerGroup;
use crate::domain::Role;
use crate::events::EventType;

#[derive(Debug, Parser)]
#[command(name = "healthcore", version, about = "HealthCore: a healthcare records-and-scheduling API", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no command is given).
    Serve,
    /// Publish the transactional outbox to Kafka (without serving HTTP); one relay leads at a time.
    Relay,
    /// Inspect the transactional outbox.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// Run one consumer group against Kafka (without serving HTTP).
    Consume(ConsumeArgs),
    /// Watch or replay domain events.
    #[command(subcommand)]
    Events(EventsCommand),
    /// Archive closed months of the audit trail to files, check an archive, or restore one.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// List the background jobs or run one now.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the OpenAPI 3.1 document as JSON.
    Openapi,
    /// Fill the database with realistic demo data.
    Seed(SeedArgs),
    /// Print the effective configuration, secrets masked.
    Config,
    /// Print a shell completion script: `healthcore completions bash > /etc/bash_completion.d/healthcore`.
    ///
    /// zsh: write it as `_healthcore` in a folder of `$fpath`; fish: to
    /// `~/.config/fish/completions/healthcore.fish`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Exit 0 if this instance answers (for container health checks).
    ///
    /// Probes `/health/live` on HEALTHCORE_BIND or, for processes that serve no API (relay,
    /// consume), `/metrics` on HEALTHCORE_METRICS_ADDR.
    Healthcheck {
        /// Probe only `/metrics` on HEALTHCORE_METRICS_ADDR.
        #[arg(long)]
        metrics: bool,
    },
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// analytics, notifications or integrations.
    #[arg(long)]
    pub group: ConsumerGroup,
}

/// Closed sets named on the command line by their wire names (`ALL` and `as_str`).
macro_rules! value_enum {
    ($($t:ty),*) => {$(impl clap::ValueEnum for $t {
        fn value_variants<'a>() -> &'a [Self] {
            &<$t>::ALL
        }

        fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
            Some(clap::builder::PossibleValue::new(self.as_str()))
        }
    })*};
}
value_enum!(ConsumerGroup, EventType, Role);

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 100)]
    pub patients: u32,
    #[arg(long, default_value_t = 10)]
    pub practitioners: u32,
    #[arg(long, default_value_t = 200)]
    pub appointments: u32,
}

/// Runs the command; the returned error is printed as one line by `main`.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = crate::telemetry::init(&config.telemetry())?;
            let application = Application::build(config).await?;
            application.run_until(app::shutdown_signal()).await
        }
        Command::Relay => {
            let _telemetry = crate::telemetry::init(&config.telemetry())?;
            app::run_relay(config).await
        }
        Command::Outbox(command) => outbox::run(config, command).await,
        Command::Healthcheck { metrics } => healthcheck::run(&config, metrics).await,
        Command::Consume(args) => {
            let _telemetry = crate::telemetry::init(&config.telemetry())?;
            app::run_consumer(config, args.group).await
        }
        Command::Events(command) => events::run(config, command).await,
        Command::Jobs(command) => jobs::run(config, command).await,
        Command::Audit(command) => audit::run(config, command).await,
        Command::Migrate => {
            let store = app::open_store(&config, &Default::default()).await?;
            println!("database is up to date ({})", store.backend().as_str());
            Ok(())
        }
        Command::User(command) => user::run(config, command).await,
        Command::Openapi => print_openapi(),
        Command::Completions { shell } => {
            print_completions(shell);
            Ok(())
        }
        Command::Seed(args) => seed::run(config, args.patients, args.practitioners, args.appointments).await,
        Command::Config => {
            for (name, value) in config.describe() {
                println!("{name}={value}");
            }
            Ok(())
        }
    }
}

/// Writes the completion script for `shell` to standard output. Needs no configuration.
pub fn print_completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "healthcore", &mut std::io::stdout());
}

/// `healthcore openapi`: needs no configuration, the document is derived from the code alone.
pub fn print_openapi() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&crate::http::openapi())?);
    Ok(())
}
