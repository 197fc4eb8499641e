//! `weft run [STAGE]`: run pending pipeline stages once and exit.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use weft_collect::FileLog;
use weft_collect::raw_log::FileLogOptions;
use weft_core::Config;
use weft_enrich::{Enrichments, Resolver};

use crate::UsageError;
use weft_lake::{Lake, LoadReport, Loader, MaintenanceOptions, TableMaintenance, maintain};
use weft_model::{ModelReport, Modeller};

use crate::data_dir;

#[derive(Args)]
pub struct RunArgs {
    /// The stage to run; every stage when omitted.
    pub stage: Option<Stage>,
    /// Rebuild the derived tables from every event instead of only what changed.
    #[arg(long)]
    pub full: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Stage {
    /// Raw log → atomic.events and atomic.bad_rows.
    Load,
    /// atomic.events → derived.page_views, sessions, users, conversions, user_mapping.
    Model,
    /// Customer records and web identities → identity.person_map, profiles.customers.
    Identity,
    /// Modelled tables and profiles → a propensity model (trained when due), ml.scores.
    Ml,
    /// Stored audiences → audiences.membership (who entered, who left), audiences.runs.
    Audiences,
    /// Compact every table's small files and vacuum files no recent version needs.
    Maintain,
}

pub async fn run(config: Config, args: RunArgs) -> Result<()> {
    weft_profiles::check_config(&config.identity).map_err(UsageError)?;
    let enrichments = enrichments(&config).await?;
    let modeller = modeller(&config)?;
    let _lock = data_dir::lock(&config.data_dir)?;
    if matches!(args.stage, None | Some(Stage::Load)) {
        let log = open_log(&config)?;
        let report = loader(&config, log, enrichments).load().await?;
        print_load(&report);
    }
    if matches!(args.stage, None | Some(Stage::Model)) {
        let report = if args.full {
            modeller.rebuild().await?
        } else {
            modeller.run().await?
        };
        print_model(&report);
    }
    if matches!(args.stage, None | Some(Stage::Identity)) {
        let report = weft_profiles::resolve(&Lake::new(&config.data_dir), &config.identity).await?;
        print_identity(&report);
    }
    if matches!(args.stage, None | Some(Stage::Ml)) && config.ml.enabled {
        let report = run_ml(&config, false).await?;
        print_ml(&report);
    }
    if matches!(args.stage, None | Some(Stage::Audiences)) {
        let store = weft_meta::Store::open(&config.data_dir)?;
        let lake = Lake::new(&config.data_dir);
        let audiences = weft_audience::service::Audiences::new(&store, &lake);
        let report = audiences.run_all(chrono::Utc::now()).await?;
        crate::audience::print_runs(&mut std::io::stdout().lock(), &report)?;
    }
    if matches!(args.stage, None | Some(Stage::Maintain)) {
        let lake = Lake::new(&config.data_dir);
        let done = maintain(&lake, &maintenance_options(&config)).await?;
        print_maintenance(&done);
    }
    Ok(())
}

/// One propensity run; a lake without enough history yet is a note, not a failure.
pub async fn run_ml(config: &Config, force_train: bool) -> Result<weft_propensity::MlReport> {
    let lake = Lake::new(&config.data_dir);
    let registry = weft_propensity::registry(&config.data_dir);
    match weft_propensity::run(
        &lake,
        &registry,
        &config.ml,
        config.model.heartbeat_secs,
        force_train,
    )
    .await
    {
        Ok(report) => Ok(report),
        // too little history, or rows the trainer cannot learn from yet (one outcome only)
        Err(
            weft_propensity::PropensityError::Missing(why)
            | weft_propensity::PropensityError::Ml(weft_ml::MlError::Input(why)),
        ) => Ok(weft_propensity::MlReport {
            notes: vec![format!("no model yet: {why}")],
            ..Default::default()
        }),
        Err(weft_propensity::PropensityError::Config(why)) => Err(UsageError(why).into()),
        Err(other) => Err(other.into()),
    }
}

pub fn print_ml(report: &weft_propensity::MlReport) {
    if let Some(t) = &report.trained {
        let day = |d: &chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d").to_string();
        println!(
            "ml: trained v{} on {} rows (cut-offs {}), validated on {} and tested on {} customers at {}{} in {:.1} s",
            t.version,
            t.train_rows,
            t.train_cutoffs
                .iter()
                .map(day)
                .collect::<Vec<_>>()
                .join(", "),
            t.valid_rows,
            t.test_rows,
            day(&t.valid_cutoff),
            if t.promoted {
                ", promoted to production"
            } else {
                ", a candidate"
            },
            t.seconds
        );
        for target in &t.targets {
            println!(
                "  {:<24} {:<8} test AUC {}  top decile {:.1}% vs {:.1}% ({} of {} converted)",
                target.target,
                target.learner,
                target.test_auc.map_or("n/a".into(), |a| format!("{a:.3}")),
                target.top_decile_rate * 100.0,
                target.rate * 100.0,
                target.test_positives,
                target.test_rows
            );
        }
    }
    if let Some(s) = &report.scored {
        println!(
            "ml: scored {} customers as of {} with v{} into ml.scores in {:.2} s",
            s.rows,
            s.as_of.format("%Y-%m-%d"),
            s.version,
            s.seconds
        );
    }
    for note in &report.notes {
        println!("ml: {note}");
    }
}

/// The modeller as configured; a bad `model.*` setting is a usage error.
pub fn modeller(config: &Config) -> Result<Modeller> {
    weft_model::check_config(&config.model).map_err(|e| UsageError(e.to_string()))?;
    Ok(Modeller::new(
        Lake::new(&config.data_dir),
        config.model.clone(),
    ))
}

pub fn print_model(report: &ModelReport) {
    if report.new_events == 0 && !report.full {
        println!("model: nothing new to model");
        return;
    }
    println!(
        "model ({}): {} new events → {} sessions re-derived, {} restitched; wrote {} page views, {} conversions, {} users, {} user mappings",
        if report.full {
            "full build"
        } else {
            "incremental"
        },
        report.new_events,
        report.sessions,
        report.restitched_sessions,
        report.page_views,
        report.conversions,
        report.users,
        report.mapped_cookies
    );
}

pub fn print_identity(report: &weft_profiles::IdentityReport) {
    if report.records == 0 {
        println!(
            "identity: no customer records or identified cookies (configure identity.sources)"
        );
        return;
    }
    let read: Vec<String> = report
        .sources
        .iter()
        .map(|(name, n)| format!("{n} {name}"))
        .collect();
    println!(
        "identity (run {}): {} records ({}) → {} customers; {} candidate pairs, {} links; ids: {} kept, {} new, {} merged, {} split, {} gone; {} profiles versioned in {:.2} s",
        report.run,
        report.records,
        read.join(", "),
        report.customers,
        report.pairs_compared,
        report.links,
        report.kept,
        report.new,
        report.merged,
        report.split,
        report.gone,
        report.profiles_changed,
        report.seconds
    );
}

pub fn maintenance_options(config: &Config) -> MaintenanceOptions {
    MaintenanceOptions {
        target_file_bytes: config
            .maintenance
            .target_file_mb
            .saturating_mul(1024 * 1024),
        vacuum_retention_hours: config.maintenance.vacuum_retention_hours,
    }
}

fn print_maintenance(done: &[TableMaintenance]) {
    for table in done {
        println!(
            "maintain {}: {} small files compacted into {}, {} unneeded files deleted",
            table.table, table.files_compacted, table.files_written, table.files_deleted
        );
    }
}

pub fn open_log(config: &Config) -> Result<Arc<FileLog>> {
    let dir = config.raw_log_dir();
    let log = FileLog::open(&dir, FileLogOptions::from(&config.raw_log))
        .with_context(|| format!("cannot open the raw log in {}", dir.display()))?;
    Ok(Arc::new(log))
}

/// The configured enrichments, built once before anything starts, so a bad
/// setting is one clear line (a usage error, exit status 2). Lookups on lake
/// tables read their table here.
pub async fn enrichments(config: &Config) -> Result<Arc<Enrichments>> {
    let mut tables = HashMap::new();
    for (index, lookup) in config.enrichments.lookups.iter().enumerate() {
        if let Some(table) = &lookup.table {
            let rows = lookup_rows(config, table).await.map_err(|error| {
                UsageError(format!(
                    "invalid config key enrichments.lookups[{index}].table: {error:#}"
                ))
            })?;
            tables.insert(table.clone(), rows);
        }
    }
    let enrichments = Enrichments::from_config_with_tables(&config.enrichments, &tables)
        .map_err(|e| UsageError(e.to_string()))?;
    Ok(Arc::new(enrichments))
}

/// Every row of a lake table, as JSON objects.
async fn lookup_rows(
    config: &Config,
    table: &str,
) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    let valid = table.split('.').count() == 2
        && table.split('.').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        anyhow::bail!("{table:?} is not schema.table");
    }
    let batches = weft_lake::sql::query(
        &Lake::new(&config.data_dir),
        &format!("SELECT * FROM {table}"),
    )
    .await?;
    let mut json = Vec::new();
    weft_lake::sql::write_json(&batches, &mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

/// The loader as configured: schemas from the registries, then the enrichments.
pub fn loader(config: &Config, log: Arc<FileLog>, enrichments: Arc<Enrichments>) -> Loader {
    Loader::new(
        log,
        Arc::new(Resolver::from_config(config)),
        Lake::new(&config.data_dir),
    )
    .with_enrichments(enrichments)
    .with_batch_records(config.loader.batch_records)
    .with_dedup_window_days(config.loader.dedup_window_days)
}

pub fn print_load(report: &LoadReport) {
    println!(
        "load: {} raw log records → {} events, {} bad rows, {} duplicates dropped in {} commits (raw log offset {})",
        report.records,
        report.events,
        report.bad_rows,
        report.duplicates,
        report.commits,
        report.offset
    );
}
