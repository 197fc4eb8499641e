//! `weft`: the customer data platform in one binary.

mod audience;
mod bench;
mod data_dir;
mod identity;
mod journey;
mod ml;
mod model;
mod quickstart;
mod run;
mod serve;
mod simulate;
mod sql;
mod sync;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use weft_core::Config;

/// The collector, loader and simulator allocate many small buffers per event;
/// mimalloc does that faster than the system allocator (`cargo bench -p weft-sim`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "An open-source customer data platform"
)]
struct Cli {
    /// Config file (default: ./weft.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where weft keeps its data (overrides `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector (and, as they arrive, every other service) until interrupted.
    Serve(serve::ServeArgs),
    /// Start weft, send a simulated shop's traffic through it and show what happened.
    Quickstart(quickstart::QuickstartArgs),
    /// Run pending pipeline stages once (or just STAGE) and exit.
    Run(run::RunArgs),
    /// Simulate a shop: tracker traffic (sent to a collector or written as a
    /// backfill), customer records and the ground truth behind them.
    Simulate(simulate::SimulateArgs),
    /// Run SQL over every table (schema.table), printed as a table, CSV or JSON.
    Sql(sql::SqlArgs),
    /// The web model (page views, sessions, users, conversions) for other engines.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Identity resolution: record linkage over any CSV files, and why customers are linked.
    #[command(subcommand)]
    Identity(identity::IdentityCommand),
    /// Propensity models: train and score on any CSV file, the model registry.
    #[command(subcommand)]
    Ml(ml::MlCommand),
    /// Audiences: segments of customers defined in JSON or YAML, compiled to SQL.
    #[command(subcommand)]
    Audience(audience::AudienceCommand),
    /// Journeys: an audience's members routed down branches that feed syncs.
    #[command(subcommand)]
    Journey(journey::JourneyCommand),
    /// Syncs: audiences delivered to destinations, only what changed.
    #[command(subcommand)]
    Sync(sync::SyncCommand),
    /// Measure weft against the ceiling of this machine.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

/// mimalloc hands freed pages back to the system after 10 ms; batch work
/// (a model build, training, an audience run) frees and reallocates gigabytes,
/// and faulting those pages in again cost a fifth of a model build
/// (`weft bench model`). A command that ends keeps them for reuse instead.
/// It also asks for huge pages where the system gives them on request
/// (transparent huge pages in `madvise` mode): a build touches gigabytes
/// once, and faulting it in 4 KB at a time took more of a full model build
/// than the model itself (`weft run model --full` over 8.3 M events: 35–47 s,
/// 17–36 s of it in the kernel; with huge pages 29–44 s, 8–23 s in the kernel).
/// mimalloc reads its settings when it starts, so the process re-executes
/// itself with them once; a setting of the user's own is left alone, and
/// `weft serve`, which runs for days, keeps the defaults.
fn keep_freed_memory() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        const SETTINGS: [(&str, &str); 2] = [
            ("MIMALLOC_PURGE_DELAY", "-1"),
            ("MIMALLOC_ALLOW_LARGE_OS_PAGES", "1"),
        ];
        let unset: Vec<_> = SETTINGS
            .into_iter()
            .filter(|(name, _)| std::env::var_os(name).is_none())
            .collect();
        if unset.is_empty() {
            return;
        }
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let name = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // exec only returns on failure: then this process goes on as it is
        let _failed = std::process::Command::new(exe)
            .arg0(name)
            .args(args)
            .envs(unset)
            .exec();
    }
}

/// A mistake in what the user asked for (a bad query, a bad spec): exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        keep_freed_memory();
    }
    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    if let Some(data_dir) = cli.data_dir {
        config.data_dir = data_dir;
    }
    let filter = match tracing_subscriber::EnvFilter::try_new(&config.log) {
        Ok(filter) => filter,
        Err(error) => {
            eprintln!("error: invalid config key log: {error}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(config, args).await,
            Command::Quickstart(args) => quickstart::run(config, args).await,
            Command::Run(args) => run::run(config, args).await,
            Command::Simulate(args) => simulate::run(config, args).await,
            Command::Sql(args) => sql::run(config, args).await,
            Command::Model(command) => model::run(config, command).await,
            Command::Identity(command) => identity::run(config, command).await,
            Command::Ml(command) => ml::run(config, command).await,
            Command::Audience(command) => audience::run(config, command).await,
            Command::Sync(command) => sync::run(config, command).await,
            Command::Journey(command) => journey::run(config, command).await,
            Command::Bench(command) => bench::run(config, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is::<UsageError>() => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
