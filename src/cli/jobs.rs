//! `healthcore jobs list` and `healthcore jobs run NAME`.

use clap::Subcommand;

use crate::app;
use crate::config::Config;
use crate::shutdown;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Every job with its schedule, last run and next run.
    List,
    /// Run a job now (once across instances, like a scheduled run), then print its outcome.
    Run {
        /// A job's name, as `healthcore jobs list` shows it.
        name: String,
        /// Look through the whole table, not only from where the job got to last time
        /// (`no_show_past_appointments`, after appointments were written into the database directly).
        #[arg(long)]
        from_the_start: bool,
    },
}

pub async fn run(config: Config, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List => {
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
                if let Some(before) = crate::store::jobs::swept_before(store.db(), job.name()).await? {
                    println!("    swept:     everything due before {}", before.to_rfc3339());
                }
                println!("    next run:  {}", job.next_after(now).to_rfc3339());
            }
            Ok(())
        }
        JobsCommand::Run { name, from_the_start } => {
            let job = crate::jobs::Job::parse(&name).ok_or_else(|| {
                let names: Vec<&str> = crate::jobs::Job::ALL.iter().map(|j| j.name()).collect();
                anyhow::anyhow!("no job named '{name}' (jobs: {})", names.join(", "))
            })?;
            let store = app::open_store(&config, &Default::default()).await?;
            if from_the_start {
                crate::store::jobs::forget_sweep(store.db(), job.name()).await?;
            }
            let scheduler = crate::jobs::Scheduler::new(store.clone(), std::sync::Arc::new(config), Default::default());
            let (_stop, mut stopping) = shutdown::channel();
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
    }
}
