//! `healthcore user create | list | deactivate | activate | set-role | reset-password`.

use std::io::{BufRead, IsTerminal};

use clap::{Args, Subcommand};

use crate::app;
use crate::config::Config;
use crate::domain::{PatientId, Role};
use crate::service::users;

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
    pub patient_id: Option<PatientId>,
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
    pub patient_id: Option<PatientId>,
    /// Read the password from standard input without prompting (for scripts).
    #[arg(long)]
    pub password_stdin: bool,
}

pub async fn run(config: Config, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create(args) => create_user(config, args).await,
        command => change_user(config, command).await,
    }
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
                if page.items.len() < 100 {
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
