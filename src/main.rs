use clap::Parser;

// mimalloc keeps both allocation cost and resident memory lower than glibc's allocator under
// many small, short-lived allocations across threads (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use healthcore::{cli, config::Config};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if let Some(cli::Command::Openapi) = cli.command {
        // Needs no configuration: the document is derived from the code alone.
        println!(
            "{}",
            serde_json::to_string_pretty(&healthcore::http::openapi()).expect("the OpenAPI document serializes")
        );
        return std::process::ExitCode::SUCCESS;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("configuration error: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    match cli::run(cli, config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
