//! `weft audience`: marketer-defined segments, stored and versioned, sized,
//! previewed, written as SQL for other engines, overlapped and run.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{NaiveDateTime, Utc};
use clap::{Args, Subcommand};
use weft_audience::AudienceError;
use weft_audience::service::Audiences;
use weft_audience::spec::{self, Spec};
use weft_audience::sql::Tables;
use weft_core::Config;
use weft_lake::Lake;
use weft_meta::Store;

use crate::UsageError;
use crate::sql::Format;

#[derive(Subcommand)]
pub enum AudienceCommand {
    /// Store a new audience from a JSON or YAML spec (`-` reads stdin).
    Create(FileArgs),
    /// Store a changed spec as the audience's next version.
    Update(FileArgs),
    /// The stored audiences.
    List,
    /// An audience's spec and versions.
    Show(NameArgs),
    /// A few members with the audience's attributes.
    Preview(PreviewArgs),
    /// The audience's SQL in an engine's dialect.
    Sql(SqlArgs),
    /// How many customers a spec file (or a stored audience) selects now.
    Size(TargetArgs),
    /// How stored audiences share customers.
    Overlap(OverlapArgs),
    /// Run stored audiences (NAME, or all) and record who entered and left
    /// in audiences.membership.
    Run(RunArgs),
    /// Remove a stored audience (its versions and membership history stay).
    Delete(NameArgs),
}

#[derive(Args)]
pub struct AsOf {
    /// "Today" for relative dates and windows: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, UTC (default: now).
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

#[derive(Args)]
pub struct FileArgs {
    pub file: String,
    #[command(flatten)]
    pub as_of: AsOf,
}

#[derive(Args)]
pub struct NameArgs {
    pub name: String,
}

#[derive(Args)]
pub struct TargetArgs {
    /// A spec file, or the name of a stored audience.
    pub target: String,
    #[command(flatten)]
    pub as_of: AsOf,
}

#[derive(Args)]
pub struct PreviewArgs {
    /// A spec file, or the name of a stored audience.
    pub target: String,
    #[arg(long, default_value_t = 20)]
    pub rows: u64,
    /// Every member instead of a few.
    #[arg(long, conflicts_with = "rows")]
    pub all: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    #[command(flatten)]
    pub as_of: AsOf,
}

#[derive(Args)]
pub struct SqlArgs {
    /// A spec file, or the name of a stored audience.
    pub target: String,
    /// datafusion, postgres, duckdb, spark (databricks), snowflake or bigquery.
    #[arg(long, default_value = "datafusion")]
    pub dialect: String,
    /// What a lake table is called where the SQL runs, LAKE=NAME, e.g.
    /// profiles.customers=analytics.weft_customers (repeatable).
    #[arg(long = "table", value_name = "LAKE=NAME")]
    pub tables: Vec<String>,
    #[command(flatten)]
    pub as_of: AsOf,
}

#[derive(Args)]
pub struct OverlapArgs {
    #[arg(required = true, num_args = 2..)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub as_of: AsOf,
}

#[derive(Args)]
pub struct RunArgs {
    pub name: Option<String>,
    #[command(flatten)]
    pub as_of: AsOf,
}

pub async fn run(config: Config, command: AudienceCommand) -> Result<()> {
    let store = Store::open(&config.data_dir).context("cannot open the metadata store")?;
    let lake = Lake::new(&config.data_dir);
    let mut audiences = Audiences::new(&store, &lake);
    let mut out = std::io::stdout().lock();
    match command {
        AudienceCommand::Create(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let text = read_spec(&args.file)?;
            let stored = audiences.create(&text).await.map_err(usage)?;
            writeln!(
                out,
                "created audience {} (version {})",
                stored.name, stored.version
            )?;
        }
        AudienceCommand::Update(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let text = read_spec(&args.file)?;
            let stored = audiences.update(&text).await.map_err(usage)?;
            writeln!(
                out,
                "audience {} is at version {}",
                stored.name, stored.version
            )?;
        }
        AudienceCommand::List => {
            let list = audiences.list()?;
            if list.is_empty() {
                writeln!(out, "no audiences yet: weft audience create FILE")?;
            }
            for a in list {
                writeln!(
                    out,
                    "{:<32} v{:<4} {}  {}",
                    a.name,
                    a.version,
                    a.created_at,
                    a.description.unwrap_or_default()
                )?;
            }
        }
        AudienceCommand::Show(args) => {
            let detail = audiences.show(&args.name).map_err(usage)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&detail)?)?;
        }
        AudienceCommand::Preview(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let spec = target(&audiences, &args.target)?;
            let batches = if args.all {
                audiences.members(&spec).await
            } else {
                audiences.preview(&spec, args.rows).await
            }
            .map_err(usage)?;
            match args.format {
                Format::Table => writeln!(out, "{}", weft_lake::sql::pretty(&batches)?)?,
                Format::Csv => weft_lake::sql::write_csv(&batches, &mut out)?,
                Format::Json => weft_lake::sql::write_json(&batches, &mut out)?,
            }
        }
        AudienceCommand::Sql(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let spec = target(&audiences, &args.target)?;
            let tables = Tables::parse(&args.tables).map_err(UsageError)?;
            let sql = audiences
                .sql(&spec, &args.dialect, &tables)
                .await
                .map_err(usage)?;
            writeln!(out, "{sql}")?;
        }
        AudienceCommand::Size(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let spec = target(&audiences, &args.target)?;
            let size = audiences.size(&spec).await.map_err(usage)?;
            writeln!(
                out,
                "{}: {} customers ({:.0} ms)",
                size.name, size.size, size.millis
            )?;
        }
        AudienceCommand::Overlap(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let overlap = audiences.overlap(&args.names).await.map_err(usage)?;
            for (name, size) in &overlap.sizes {
                writeln!(out, "{name:<32} {size:>9}")?;
            }
            for (a, b, both) in &overlap.pairs {
                writeln!(out, "{a} ∩ {b}: {both}")?;
            }
            writeln!(out, "in all {}: {}", overlap.sizes.len(), overlap.all)?;
            writeln!(out, "in any: {}", overlap.any)?;
        }
        AudienceCommand::Run(args) => {
            audiences.as_of = as_of(&args.as_of)?;
            let _lock = crate::data_dir::lock(&config.data_dir)?;
            let report = match &args.name {
                Some(name) => weft_audience::service::RunAll {
                    snapshots: vec![audiences.run(name, Utc::now()).await.map_err(usage)?],
                    failed: Vec::new(),
                },
                None => audiences.run_all(Utc::now()).await.map_err(usage)?,
            };
            print_runs(&mut out, &report)?;
            if !report.failed.is_empty() {
                return Err(UsageError(format!(
                    "{} audience(s) could not run",
                    report.failed.len()
                ))
                .into());
            }
        }
        AudienceCommand::Delete(args) => {
            audiences.delete(&args.name).map_err(usage)?;
            writeln!(out, "deleted audience {}", args.name)?;
        }
    }
    Ok(())
}

/// One line per audience run, and one per audience that could not run.
pub fn print_runs(out: &mut impl Write, report: &weft_audience::service::RunAll) -> Result<()> {
    if report.snapshots.is_empty() && report.failed.is_empty() {
        writeln!(out, "no audiences yet: weft audience create FILE")?;
    }
    for s in &report.snapshots {
        writeln!(
            out,
            "audience {} v{}: {} members, {} entered, {} exited",
            s.audience, s.version, s.members, s.entered, s.exited
        )?;
    }
    for (name, reason) in &report.failed {
        writeln!(out, "audience {name} not run: {reason}")?;
    }
    Ok(())
}

/// A user's mistake becomes a usage error (exit status 2).
fn usage(error: AudienceError) -> anyhow::Error {
    if error.is_usage() {
        UsageError(error.to_string()).into()
    } else {
        error.into()
    }
}

pub(crate) fn read_spec(file: &str) -> Result<String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .take((1 << 20) + 1)
            .read_to_string(&mut text)
            .context("reading the spec from stdin")?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| UsageError(format!("cannot read {file}: {e}")))?;
    }
    Ok(text)
}

/// A spec file if `target` is one, else the stored audience of that name.
fn target(audiences: &Audiences<'_>, target: &str) -> Result<Spec> {
    if Path::new(target).is_file() || target == "-" {
        let text = read_spec(target)?;
        return spec::parse(&text)
            .map_err(|e| UsageError(format!("{target}: invalid audience spec: {e}")).into());
    }
    audiences.spec(target).map_err(usage)
}

fn as_of(args: &AsOf) -> Result<NaiveDateTime> {
    let Some(text) = &args.as_of else {
        return Ok(Utc::now().naive_utc());
    };
    weft_audience::plan::parse_time(text).ok_or_else(|| {
        UsageError(format!(
            "--as-of {text:?}: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        ))
        .into()
    })
}

/// The example audiences the quickstart stores, runs and sizes.
pub const EXAMPLES: [(&str, &str); 3] = [
    (
        "bread-not-soft-drinks",
        include_str!("../../../examples/audiences/bread-not-soft-drinks.yaml"),
    ),
    (
        "high-propensity-not-converted",
        include_str!("../../../examples/audiences/high-propensity-not-converted.yaml"),
    ),
    (
        "lapsed-customers",
        include_str!("../../../examples/audiences/lapsed-customers.yaml"),
    ),
];

/// What the quickstart did with the example audiences.
pub struct ExampleReport {
    /// (name, size, milliseconds to run it into audiences.membership) of each stored one.
    pub sizes: Vec<(String, u64, f64)>,
    /// Why an example could not be stored (e.g. a score the lake lacks).
    pub skipped: Vec<(String, String)>,
    pub overlap: Option<weft_audience::engine::Overlap>,
}

/// Stores the examples (a new version only when changed), runs them into
/// audiences.membership (which sizes them) and overlaps them.
pub async fn examples(config: &Config) -> Result<ExampleReport> {
    let store = Store::open(&config.data_dir).context("cannot open the metadata store")?;
    let lake = Lake::new(&config.data_dir);
    let audiences = Audiences::new(&store, &lake);
    let mut report = ExampleReport {
        sizes: Vec::new(),
        skipped: Vec::new(),
        overlap: None,
    };
    let mut stored = Vec::new();
    for (name, text) in EXAMPLES {
        match audiences.update(text).await {
            Ok(_) => stored.push(name.to_owned()),
            Err(error) if error.is_usage() => report.skipped.push((name.into(), error.to_string())),
            Err(error) => return Err(error.into()),
        }
    }
    for name in &stored {
        // the run finds the members once: its count is the size
        let started = std::time::Instant::now();
        let snapshot = audiences.run(name, Utc::now()).await?;
        let millis = started.elapsed().as_secs_f64() * 1000.0;
        report
            .sizes
            .push((name.clone(), snapshot.members as u64, millis));
    }
    if stored.len() >= 2 {
        report.overlap = Some(audiences.overlap(&stored).await?);
    }
    Ok(report)
}
