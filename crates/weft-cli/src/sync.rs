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
            let delivered = store.delivered_count(&args.name)?;
            let failures = store.failures(&args.name)?;
            println!(
                "{}: {} rows delivered, {} failing ({} abandoned)",
                args.name,
                delivered,
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

/// What the quickstart's example syncs did.
pub struct ExampleSyncs {
    /// Each example sync's run.
    pub runs: Vec<RunRecord>,
    /// Rows the local webhook receiver took, and the folder files went to.
    pub received: usize,
    pub exports: std::path::PathBuf,
    pub skipped: Vec<(String, String)>,
}

/// Syncs each stored example audience (name, size) to a files destination
/// under the data folder, and the largest also to a webhook receiver
/// started here for the purpose; a rerun sends only what changed.
pub async fn examples(config: &Config, audiences: &[(String, u64)]) -> Result<ExampleSyncs> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let counter = counter.clone();
            async move {
                let rows = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v["rows"].as_array().map(Vec::len))
                    .unwrap_or(0);
                counter.fetch_add(rows, Ordering::Relaxed);
                r#"{"errors": []}"#
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let exports = config.data_dir.join("exports");
    let mut destinations = config.activation.destinations.clone();
    destinations.insert(
        "example-files".into(),
        serde_json::json!({"type": "files", "path": exports, "format": "csv"}),
    );
    // the receiver's port changes each run; the sync names the destination only
    destinations.insert(
        "example-webhook".into(),
        serde_json::json!({"type": "webhook", "url": hook, "secret": "quickstart"}),
    );
    let store = Store::open(&config.data_dir).context("cannot open the metadata store")?;
    let lake = Lake::new(&config.data_dir);
    let syncs = Syncs::new(&store, &lake, &destinations);
    let mut report = ExampleSyncs {
        runs: Vec::new(),
        received: 0,
        exports,
        skipped: Vec::new(),
    };
    let mut specs: Vec<String> = audiences
        .iter()
        .map(|(audience, _)| {
            format!(
                r#"{{"name": "{audience}-to-files", "audience": "{audience}", "destination": "example-files",
                    "mode": "membership", "fields": {{"email": "email", "first_name": "first_name"}}}}"#
            )
        })
        .collect();
    if let Some((first, _)) = audiences.iter().max_by_key(|(_, size)| *size) {
        specs.push(format!(
            r#"{{"name": "{first}-to-webhook", "audience": "{first}", "destination": "example-webhook",
                "mode": "membership", "fields": {{"email": "email"}}}}"#
        ));
    }
    for text in specs {
        let stored = match syncs.update(&text).await {
            Err(ActivateError::Missing { .. }) => syncs.create(&text).await,
            other => other,
        };
        match stored {
            Ok(definition) => report.runs.push(syncs.run(&definition.name, false).await?),
            Err(error) if error.is_usage() => {
                let name = serde_json::from_str::<serde_json::Value>(&text)?["name"].to_string();
                report.skipped.push((name, error.to_string()));
            }
            Err(error) => return Err(error.into()),
        }
    }
    server.abort();
    report.received = received.load(Ordering::Relaxed);
    Ok(report)
}
