//! `foundry`: the Threat Foundry command line. Each subcommand lives in its own module and
//! calls into the library crates; this file only parses arguments and dispatches.

mod check_cmd;
mod hub_cmd;
mod scan_cmd;
mod worker_cmd;

use clap::{Parser, Subcommand};

/// Threat Foundry: shared threat intelligence turned into reviewed, running detections.
#[derive(Parser)]
#[command(name = "foundry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run Sigma and YARA-X rules over event files offline; one hit per line on stdout.
    Scan(scan_cmd::ScanArgs),
    /// Run the streaming worker: Kafka (or JSON Lines files) in, hits out.
    Worker(worker_cmd::WorkerArgs),
    /// Serve the community hub (SQLite by default, PostgreSQL by URL), or run an admin action.
    Hub(hub_cmd::HubArgs),
    /// Work with rule files.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Parse and compile every rule file found; report each failure with file, line and reason.
    Check(check_cmd::CheckArgs),
}

/// Events are decoded into many small allocations that are often freed on another thread
/// than the one that made them (fetch, evaluate and emit stages); mimalloc handles that far
/// better than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Scan(args) => scan_cmd::run(args),
        Command::Worker(args) => worker_cmd::run(args),
        Command::Hub(args) => hub_cmd::run(args),
        Command::Rules {
            command: RulesCommand::Check(args),
        } => check_cmd::run(args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("foundry: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("FOUNDRY_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
