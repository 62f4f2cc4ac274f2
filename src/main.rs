use clap::Parser;

// mimalloc keeps both allocation cost and resident memory lower than glibc's allocator under
// many small, short-lived allocations across threads (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use healthcore::{cli, config::Config};

/// Commands that print (`jobs list | head`, `events tail | grep …`) end quietly when the reader goes
/// away, as Unix tools do, instead of panicking on a broken pipe. The servers keep Rust's default
/// (SIGPIPE ignored). Sockets are unaffected either way: Rust sends with `MSG_NOSIGNAL`.
fn exit_quietly_on_broken_pipe(command: &Option<cli::Command>) {
    let serving = matches!(command, None | Some(cli::Command::Serve | cli::Command::Relay | cli::Command::Consume(_)));
    #[cfg(unix)]
    if !serving {
        // SAFETY: setting a signal's disposition is process-wide and thread-safe; SIG_DFL is valid
        // for SIGPIPE, and no handler of ours is replaced.
        #[expect(unsafe_code, reason = "libc::signal has no safe wrapper in std")]
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    exit_quietly_on_broken_pipe(&cli.command);
    if let Some(cli::Command::Completions { shell }) = cli.command {
        // Like `openapi`, it describes the program and needs no configuration.
        cli::print_completions(shell);
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(cli::Command::Openapi) = cli.command {
        // The one command that must work even with a broken configuration.
        return match cli::print_openapi() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("error: {err:#}");
                std::process::ExitCode::FAILURE
            }
        };
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
