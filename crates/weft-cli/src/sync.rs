//! `weft sync`: audiences delivered to destinations, sending only what
//! changed since the destination last acknowledged it.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use weft_activate::ActivateError;
use weft_activate::runs::{self, RunRecord};
use weft_activate::service::Syncs;
use weft_core::Config;
use weft_lake::Lake;
use weft_meta::Store;

use crate::UsageError;
use crate::audience::read_spec;

#[derive(Subcommand)]
pub enum SyncCommand {
    /// Store a new sync from a JSON or YAML spec (`-` reads stdin).
    Create(FileArgs),
    /// Store a changed spec as the sync's next version.
    Update(FileArgs),
    /// The stored syncs.
    List,
    /// A sync's spec.
    Show(NameArgs),
    /// Send what changed since the last run (or, with --dry-run, count it).
    Run(RunArgs),
    /// What a sync has delivered, the rows it could not, and its last runs.
    Status(NameArgs),
    /// Remove a sync and what it knew was delivered (the destination keeps its rows).
    Delete(NameArgs),
}

#[derive(Args)]
pub struct FileArgs {
    pub file: String,
}

#[derive(Args)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Args)]
pub struct RunArgs {
    pub name: String,
    /// Show what would be sent without sending it.
    #[arg(long)]
    pub dry_run: bool,
    /// The run as JSON instead of a line of counts.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: Config, command: SyncCommand) -> Result<()> {
    let store = Store::open(&config.data_dir).context("cannot open the metadata store")?;
    let lake = Lake::new(&config.data_dir);
    let syncs = Syncs::new(&store, &lake, &config.activation.destinations);
    match command {
        SyncCommand::Create(args) => {
            let stored = syncs.create(&read_spec(&args.file)?).await.map_err(usage)?;
            println!("created sync {} (version {})", stored.name, stored.version);
        }
        SyncCommand::Update(args) => {
            let stored = syncs.update(&read_spec(&args.file)?).await.map_err(usage)?;
            println!("updated sync {} (version {})", stored.name, stored.version);
        }
        SyncCommand::List => {
            for (definition, spec) in syncs.list().map_err(usage)? {
                println!(
                    "{}\tv{}\t{} → {} ({})",
                    definition.name,
                    definition.version,
                    source_name(&spec.source),
                    spec.destination,
                    spec.mode.name()
                );
            }
        }
        SyncCommand::Show(args) => {
            let spec = syncs.spec(&args.name).map_err(usage)?;
            println!("{}", serde_json::to_string_pretty(&spec)?);
        }
        SyncCommand::Run(args) => {
            let record = syncs.run(&args.name, args.dry_run).await.map_err(usage)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                println!("{}", summary(&record));
            }
            if let Some(error) = &record.error {
                anyhow::bail!("sync {} stopped: {error}", record.sync);
            }
        }
        SyncCommand::Status(args) => {
            syncs.spec(&args.name).map_err(usage)?;
            let delivered = store.delivered(&args.name)?;
            let failures = store.failures(&args.name)?;
            println!(
                "{}: {} rows delivered, {} failing ({} abandoned)",
                args.name,
                delivered.len(),
                failures.len(),
                failures.values().filter(|f| f.abandoned).count()
            );
            let mut failing: Vec<_> = failures.values().collect();
            failing.sort_by(|a, b| a.key.cmp(&b.key));
            for failure in failing.iter().take(20) {
                println!(
                    "  {}\t{} tries\t{}{}",
                    failure.key,
                    failure.attempts,
                    failure.message,
                    if failure.abandoned {
                        " (abandoned)"
                    } else {
                        ""
                    }
                );
            }
            let history = runs::history(&lake, &args.name, 10).await?;
            if !history.is_empty() {
                println!("{}", weft_lake::sql::pretty(&history)?);
            }
        }
        SyncCommand::Delete(args) => {
            syncs.delete(&args.name).map_err(usage)?;
            println!("deleted sync {}", args.name);
        }
    }
    Ok(())
}

fn source_name(source: &weft_activate::spec::Source) -> String {
    match source {
        weft_activate::spec::Source::Audience(name) => format!("audience {name}"),
        weft_activate::spec::Source::Branch { journey, branch } => {
            format!("journey {journey} branch {branch}")
        }
    }
}

/// One line: what the diff found and what the destination took.
pub fn summary(run: &RunRecord) -> String {
    let verb = if run.dry_run { "would send" } else { "sent" };
    format!(
        "sync {} → {} ({}): {} added, {} changed, {} removed, {} unchanged; {verb} {}{}, {} refused, {} left out without consent [{}]",
        run.sync,
        run.destination,
        run.mode,
        run.added,
        run.changed,
        run.removed,
        run.unchanged,
        if run.dry_run {
            run.to_send
        } else {
            run.delivered
        },
        if run.retries > 0 {
            format!(" ({} requests retried)", run.retries)
        } else {
            String::new()
        },
        run.failed,
        run.without_consent,
        run.status
    )
}

pub(crate) fn usage(error: ActivateError) -> anyhow::Error {
    if error.is_usage() {
        UsageError(error.to_string()).into()
    } else {
        error.into()
    }
}
