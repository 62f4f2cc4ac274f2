//! The `healthcore` command line. Every command reads the same configuration (see `config`).

use std::io::{BufRead, IsTerminal};

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::app::{self, Application};
use crate::config::Config;
use crate::domain::Role;
use crate::service::users;

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
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Pending events, the age of the oldest, and when the last one was published.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from standard input (prompted on a terminal).
    Create(CreateUserArgs),
}

#[derive(Debug, Args)]
pub struct CreateUserArgs {
    #[arg(long)]
    pub username: String,
    /// admin, physician, nurse, receptionist, auditor or patient.
    #[arg(long)]
    pub role: Role,
    /// For a patient user: the patient record it is linked to.
    #[arg(long)]
    pub patient_id: Option<Uuid>,
    /// Read the password from standard input without prompting (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    #[arg(long, default_value_t = 100)]
    pub patients: u32,
    #[arg(long, default_value_t = 10)]
    pub practitioners: u32,
    #[arg(long, default_value_t = 200)]
    pub appointments: u32,
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// Runs the command; the returned error is printed as one line by `main`.
pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _log_flush = crate::telemetry::init_logging(&config);
            let application = Application::build(config).await?;
            application.run_until(app::shutdown_signal()).await
        }
        Command::Relay => {
            let _log_flush = crate::telemetry::init_logging(&config);
            app::run_relay(config).await
        }
        Command::Outbox(OutboxCommand::Status) => {
            let store = app::open_store(&config).await?;
            let status = crate::store::outbox::status(store.db()).await?;
            let now = chrono::Utc::now();
            let age = |t: Option<chrono::DateTime<chrono::Utc>>| {
                t.map_or("-".to_owned(), |t| format!("{}s ago ({})", (now - t).num_seconds(), t.to_rfc3339()))
            };
            println!("recorded events:      {}", status.total);
            println!("pending:              {}", status.backlog.pending);
            println!("oldest pending:       {}", age(status.backlog.oldest));
            println!("last published:       {}", age(status.last_published));
            Ok(())
        }
        Command::Migrate => {
            let store = app::open_store(&config).await?;
            println!("database is up to date ({})", store.backend().as_str());
            Ok(())
        }
        Command::User(UserCommand::Create(args)) => create_user(config, args).await,
        Command::Openapi => print_openapi(),
        Command::Seed(args) => crate::seed::run(config, args.patients, args.practitioners, args.appointments).await,
        Command::Config => {
            for (name, value) in config.describe() {
                println!("{name}={value}");
            }
            Ok(())
        }
    }
}

/// `healthcore openapi`: needs no configuration, the document is derived from the code alone.
pub fn print_openapi() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&crate::http::openapi())?);
    Ok(())
}

async fn create_user(config: Config, args: CreateUserArgs) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !args.password_stdin && stdin.is_terminal() {
        eprint!("Password for {} (input is shown; use --password-stdin in scripts): ", args.username);
    }
    let mut password = String::new();
    stdin.lock().read_line(&mut password)?;
    let password = password.trim_end_matches(['\n', '\r']);
    let store = app::open_store(&config).await?;
    let user = users::create(&store, &args.username, args.role, args.patient_id, password).await?;
    println!("created user '{}' ({}) with id {}", user.username, user.role, user.id);
    Ok(())
}
