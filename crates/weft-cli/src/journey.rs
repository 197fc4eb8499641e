//! `weft journey`: an audience's members routed down branches (by
//! audience, stable random split, holdout), each branch feeding syncs.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use weft_activate::service::{JourneyRun, Journeys};
use weft_core::Config;
use weft_lake::Lake;
use weft_meta::Store;

use crate::audience::read_spec;
use crate::sync::{FileArgs, NameArgs, RunArgs, summary, usage};

#[derive(Subcommand)]
pub enum JourneyCommand {
    /// Store a new journey from a JSON or YAML spec (`-` reads stdin).
    Create(FileArgs),
    /// Store a changed spec as the journey's next version.
    Update(FileArgs),
    /// The stored journeys.
    List,
    /// A journey's spec.
    Show(NameArgs),
    /// Route the entry audience's members, then run the branches' syncs
    /// (with --dry-run, only count where members would go).
    Run(RunArgs),
    /// Members per branch now, and the syncs each branch feeds.
    Status(NameArgs),
    /// What each branch's customers did after they were put on it:
    /// conversions, revenue and lift over the holdout.
    Results(ResultsArgs),
    /// Remove a journey and its current assignments (its history stays).
    Delete(NameArgs),
}

#[derive(Args)]
pub struct ResultsArgs {
    pub name: String,
    /// The results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: Config, command: JourneyCommand) -> Result<()> {
    let store = Store::open(&config.data_dir).context("cannot open the metadata store")?;
    let lake = Lake::new(&config.data_dir);
    let journeys = Journeys::new(&store, &lake, &config.activation.destinations);
    match command {
        JourneyCommand::Create(args) => {
            let stored = journeys.create(&read_spec(&args.file)?).map_err(usage)?;
            println!(
                "created journey {} (version {})",
                stored.name, stored.version
            );
        }
        JourneyCommand::Update(args) => {
            let stored = journeys.update(&read_spec(&args.file)?).map_err(usage)?;
            println!(
                "updated journey {} (version {})",
                stored.name, stored.version
            );
        }
        JourneyCommand::List => {
            for (definition, spec) in journeys.list().map_err(usage)? {
                println!(
                    "{}\tv{}\tentry {} → {}",
                    definition.name,
                    definition.version,
                    spec.entry,
                    spec.branch_names().join(", ")
                );
            }
        }
        JourneyCommand::Show(args) => {
            let spec = journeys.spec(&args.name).map_err(usage)?;
            println!("{}", serde_json::to_string_pretty(&spec)?);
        }
        JourneyCommand::Run(args) => {
            let run = journeys
                .run(&args.name, args.dry_run)
                .await
                .map_err(usage)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                print!("{}", report(&run));
            }
            if let Some(stopped) = run.syncs.iter().find(|s| s.error.is_some()) {
                anyhow::bail!(
                    "sync {} stopped: {}",
                    stopped.sync,
                    stopped.error.as_deref().unwrap_or_default()
                );
            }
        }
        JourneyCommand::Status(args) => {
            let counts = journeys.counts(&args.name).map_err(usage)?;
            let syncs = journeys.syncs(&args.name).map_err(usage)?;
            println!("journey {}", args.name);
            for (branch, count) in counts {
                let fed: Vec<String> = syncs
                    .iter()
                    .filter(|s| {
                        matches!(&s.source, weft_activate::spec::Source::Branch { branch: b, .. } if *b == branch)
                    })
                    .map(|s| format!("{} → {}", s.name, s.destination))
                    .collect();
                println!(
                    "  {branch}\t{count} members{}",
                    if fed.is_empty() {
                        String::new()
                    } else {
                        format!("\tsyncs: {}", fed.join(", "))
                    }
                );
            }
        }
        JourneyCommand::Results(args) => {
            let results = journeys.results(&args.name).await.map_err(usage)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&results)?);
            } else {
                println!(
                    "journey {}: each customer counted in the first branch they were put on",
                    args.name
                );
                println!("  branch\tcustomers\tconverted\trate\trevenue\tlift over holdout");
                for r in &results {
                    println!(
                        "  {}\t{}\t{}\t{:.1}%\t{:.2}\t{}",
                        r.branch,
                        r.customers,
                        r.converted,
                        r.conversion_rate * 100.0,
                        r.revenue,
                        r.lift
                            .map_or("-".to_owned(), |lift| format!("{:+.1}%", lift * 100.0))
                    );
                }
            }
        }
        JourneyCommand::Delete(args) => {
            journeys.delete(&args.name).map_err(usage)?;
            println!("deleted journey {}", args.name);
        }
    }
    Ok(())
}

fn report(run: &JourneyRun) -> String {
    let branches: Vec<String> = run
        .branches
        .iter()
        .map(|(branch, n)| format!("{branch} {n}"))
        .collect();
    let mut text = format!(
        "journey {}{}: {} members → {}; {} unrouted; {} entered, {} moved, {} left\n",
        run.journey,
        if run.dry_run { " (dry run)" } else { "" },
        run.members,
        branches.join(", "),
        run.unrouted,
        run.entered,
        run.moved,
        run.left
    );
    for sync in &run.syncs {
        text.push_str(&format!("  {}\n", summary(sync)));
    }
    text
}
