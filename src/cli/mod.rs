//! The `healthcore` command line. Every command reads the same configuration (see `config`).

pub mod events;

use std::io::{BufRead, IsTerminal};

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::app::{self, Application};
use crate::config::Config;
use crate::consumers::ConsumerGroup;
use crate::domain::Role;
use crate::events::EventType;
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
    /// Run one consumer group against Kafka (without serving HTTP).
    Consume(ConsumeArgs),
    /// Watch or replay domain events.
    #[command(subcommand)]
    Events(EventsCommand),
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

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Pending events, the age of the oldest, and when the last one was published.
    Status,
}

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// analytics, notifications or integrations.
    #[arg(long)]
    pub group: ConsumerGroup,
}

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

impl clap::ValueEnum for ConsumerGroup {
    fn value_variants<'a>() -> &'a [Self] {
        &ConsumerGroup::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

impl clap::ValueEnum for EventType {
    fn value_variants<'a>() -> &'a [Self] {
        &EventType::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Every job with its schedule, last run and next run.
    List,
    /// Run a job now (once across instances, like a scheduled run), then print its outcome.
    Run {
        /// appointment_reminders, no_show_past_appointments, outbox_retention or idempotency_key_expiry.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password is read from standard input (prompted on a terminal).
    Create(CreateUserArgs),
    /// List every user: name, role, linked patient, whether active.
    List,
    /// Deactivate a user: it can no longer sign in, and its tokens stop working at once.
    Deactivate(UsernameArgs),
    /// Activate a deactivated user again (it signs in anew).
    Activate(UsernameArgs),
    /// Change a user's role (and, for patient users, the linked patient); its tokens stop working.
    SetRole(SetRoleArgs),
    /// Set a new password (read from standard input); the user's tokens stop working.
    ResetPassword(ResetPasswordArgs),
}

#[derive(Debug, Args)]
pub struct UsernameArgs {
    #[arg(long)]
    pub username: String,
}

#[derive(Debug, Args)]
pub struct SetRoleArgs {
    #[arg(long)]
    pub username: String,
    /// admin, physician, nurse, receptionist, auditor or patient.
    #[arg(long)]
    pub role: Role,
    /// For the patient role: the patient record the user is linked to.
    #[arg(long)]
    pub patient_id: Option<Uuid>,
}

#[derive(Debug, Args)]
pub struct ResetPasswordArgs {
    #[arg(long)]
    pub username: String,
    /// Read the password from standard input without prompting (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
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
            let _telemetry = crate::telemetry::init(&config.telemetry())?;
            let application = Application::build(config).await?;
            application.run_until(app::shutdown_signal()).await
        }
        Command::Relay => {
            let _telemetry = crate::telemetry::init(&config.telemetry())?;
            app::run_relay(config).await
        }
        Command::Outbox(OutboxCommand::Status) => {
            let store = app::open_store(&config, &Default::default()).await?;
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
        Command::Healthcheck { metrics } => healthcheck(&config, metrics).await,
        Command::Consume(args) => {
            let _telemetry = crate::telemetry::init(&config.telemetry())?;
            app::run_consumer(config, args.group).await
        }
        Command::Events(EventsCommand::Tail { event_type }) => events::run(config, event_type).await,
        Command::Events(EventsCommand::Replay { since, event_type, rebuild_analytics }) => {
            let since = parse_since(&since, chrono::Utc::now())
                .map_err(|reason| anyhow::anyhow!("--since: '{since}' {reason}"))?;
            events::replay(config, since, event_type, rebuild_analytics).await
        }
        Command::Jobs(JobsCommand::List) => {
            let store = app::open_store(&config, &Default::default()).await?;
            let now = crate::clock::now();
            for job in crate::jobs::Job::ALL {
                let last = crate::store::jobs::last_run(store.db(), job.name()).await?;
                let last = last.map_or("never".to_owned(), |run| {
                    let detail = run.summary.or(run.error).unwrap_or_default();
                    format!(
                        "{} {} after {} attempt(s): {detail}",
                        run.scheduled_for.to_rfc3339(),
                        run.status.as_str(),
                        run.attempts
                    )
                });
                println!("{}", job.name());
                println!("    schedule:  {} (cron, UTC)", job.schedule());
                println!("    does:      {}", job.description());
                println!("    last run:  {last}");
                println!("    next run:  {}", job.next_after(now).to_rfc3339());
            }
            Ok(())
        }
        Command::Jobs(JobsCommand::Run { name }) => {
            let job = crate::jobs::Job::parse(&name).ok_or_else(|| {
                let names: Vec<&str> = crate::jobs::Job::ALL.iter().map(|j| j.name()).collect();
                anyhow::anyhow!("no job named '{name}' (jobs: {})", names.join(", "))
            })?;
            let store = app::open_store(&config, &Default::default()).await?;
            let scheduler = crate::jobs::Scheduler::new(store.clone(), std::sync::Arc::new(config), Default::default());
            let (_stop, mut stopping) = tokio::sync::watch::channel(false);
            let outcome = scheduler.run_once(job, crate::clock::now(), &mut stopping).await;
            store.close().await;
            match outcome {
                crate::jobs::RunOutcome::Succeeded(summary) => {
                    println!("{}: succeeded: {summary}", job.name());
                    Ok(())
                }
                other => anyhow::bail!("{}: {other:?}", job.name()),
            }
        }
        Command::Migrate => {
            let store = app::open_store(&config, &Default::default()).await?;
            println!("database is up to date ({})", store.backend().as_str());
            Ok(())
        }
        Command::User(UserCommand::Create(args)) => create_user(config, args).await,
        Command::User(command) => change_user(config, command).await,
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

/// A password from standard input: prompted for on a terminal unless `quiet`.
fn read_password(username: &str, quiet: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !quiet && stdin.is_terminal() {
        eprint!("Password for {username} (input is shown; use --password-stdin in scripts): ");
    }
    let mut password = String::new();
    stdin.lock().read_line(&mut password)?;
    Ok(password.trim_end_matches(['\n', '\r']).to_owned())
}

async fn create_user(config: Config, args: CreateUserArgs) -> anyhow::Result<()> {
    let password = read_password(&args.username, args.password_stdin)?;
    let store = app::open_store(&config, &Default::default()).await?;
    let user = users::create(&store, &args.username, args.role, args.patient_id, &password).await?;
    println!("created user '{}' ({}) with id {}", user.username, user.role, user.id);
    Ok(())
}

/// `user list`, `deactivate`, `activate`, `set-role`, `reset-password`: audited as the command
/// line's, effective on the user's next request on every instance.
async fn change_user(config: Config, command: UserCommand) -> anyhow::Result<()> {
    let store = app::open_store(&config, &Default::default()).await?;
    let (username, change) = match command {
        UserCommand::Create(_) => unreachable!("handled by create_user"),
        UserCommand::List => {
            let mut offset = 0;
            loop {
                let page = users::list(&store, crate::store::PageRequest { limit: 100, offset }).await?;
                for user in &page.items {
                    let patient = user.patient_id.map_or(String::new(), |id| format!(" patient {id}"));
                    let state = if user.active { "active" } else { "deactivated" };
                    println!("{}\t{}\t{state}{patient}\t{}", user.username, user.role, user.id);
                }
                offset += 100;
                if offset >= page.total {
                    return Ok(());
                }
            }
        }
        UserCommand::Deactivate(args) => (args.username, users::AccountChange::Active(false)),
        UserCommand::Activate(args) => (args.username, users::AccountChange::Active(true)),
        UserCommand::SetRole(args) => {
            (args.username, users::AccountChange::Role { role: args.role, patient_id: args.patient_id })
        }
        UserCommand::ResetPassword(args) => {
            let password = read_password(&args.username, args.password_stdin)?;
            (args.username, users::AccountChange::Password(password))
        }
    };
    let user =
        users::find_by_username(&store, &username).await.map_err(|err| anyhow::anyhow!("'{username}': {err}"))?;
    let user = users::change(&store, None, users::Changer::Operator, user.id, change).await?;
    let state = if user.active { "active" } else { "deactivated" };
    println!("user '{}' is now {} ({state}); its earlier tokens no longer work", user.username, user.role);
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

/// One GET to this instance's own listener: `/health/live`, or `/metrics` with `--metrics`. Without
/// `--metrics`, a process that serves no API (`relay`, `consume`) is probed on its metrics address
/// when the API address refuses, so the image's one HEALTHCHECK fits every role.
async fn healthcheck(config: &Config, metrics: bool) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3)).build()?;
    let metrics_addr = || config.metrics_addr.ok_or_else(|| anyhow::anyhow!("--metrics needs HEALTHCORE_METRICS_ADDR"));
    if metrics {
        return probe(&client, metrics_addr()?, "/metrics", config).await;
    }
    match probe(&client, config.bind, "/health/live", config).await {
        Err(refused) if config.metrics_addr.is_some() => {
            probe(&client, metrics_addr()?, "/metrics", config).await.map_err(|_| refused)
        }
        result => result,
    }
}

async fn probe(
    client: &reqwest::Client,
    mut addr: std::net::SocketAddr,
    path: &str,
    config: &Config,
) -> anyhow::Result<()> {
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let url = format!("http://{addr}{path}");
    let mut request = client.get(&url);
    if let (Some(token), "/metrics") = (&config.metrics_token, path) {
        request = request.bearer_auth(token.expose());
    }
    let status = request.send().await.map_err(|err| anyhow::anyhow!("{url}: {err}"))?.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    Ok(())
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
