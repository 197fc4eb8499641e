//! `weft bench model`: the web model's full build over simulated events, then
//! an incremental run after the newest 1% arrive in a later load; and DuckDB
//! running the same page_views/sessions SQL over the same Parquet files, in
//! the same run.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use weft_collect::FileLog;
use weft_collect::raw_log::FileLogOptions;
use weft_core::Config;
use weft_lake::arrow_rows::EVENT_PARTITION;
use weft_lake::{Lake, Loader};
use weft_model::{Dialect, ModelSql, Modeller};
use weft_sim::{Person, SimOptions};

use deltalake::arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use deltalake::datafusion::common::ScalarValue;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{col, lit};

#[derive(Args)]
pub struct ModelArgs {
    /// About how many simulated events to model.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Days of traffic the events span.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// The newest share of events (percent) that arrives after the full build.
    #[arg(long, default_value_t = 1.0)]
    pub increment_pct: f64,
    /// Also run the page_views/sessions SQL in weft's engine in one go (no
    /// buckets), as DuckDB runs it; it needs about 10 GB per million events.
    #[arg(long)]
    pub engine_compare: bool,
    /// Write the simulated, loaded lake here and keep it (default: a temporary
    /// folder); a lake this benchmark already wrote there is measured again
    /// (--events and --days are those it was written with).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// The statements DuckDB runs: the same as weft's, up to sessions.
const COMPARED: [&str; 7] = [
    "events_this_run",
    "user_ids",
    "user_mapping",
    "page_view_events",
    "page_view_facts",
    "page_views_this_run",
    "sessions_this_run",
];

/// The statements of COMPARED that are views (over the events) rather than tables.
const VIEWS: [&str; 3] = ["events_this_run", "user_ids", "page_view_events"];

/// Runs the model's SQL in DuckDB over the table's live Parquet files: views
/// for the inputs, tables (materialised, as weft materialises them) for the rest.
const DUCKDB_SCRIPT: &str = r#"
import json, sys, time
import duckdb
given = json.load(sys.stdin)  # thousands of file names do not fit in an argument list
files, statements, views = given["files"], given["statements"], given["views"]
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute("SET TimeZone = 'UTC'")
con.execute("CREATE SCHEMA atomic")
con.execute(f"CREATE VIEW atomic.events AS SELECT * FROM read_parquet({files!r}, hive_partitioning = true, union_by_name = true)")
started = time.perf_counter()
rows = {}
for name, sql in statements:
    kind = "VIEW" if name in views else "TABLE"
    con.execute(f"CREATE OR REPLACE TEMPORARY {kind} {name} AS {sql}")
    if kind == "TABLE":
        rows[name] = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
seconds = time.perf_counter() - started
print(json.dumps({"version": duckdb.__version__, "seconds": seconds, "rows": rows}))
"#;

pub async fn run(config: Config, args: ModelArgs) -> Result<()> {
    if args.events == 0 || args.days < 2 || !(0.0..50.0).contains(&args.increment_pct) {
        bail!("--events must be at least 1, --days at least 2, --increment-pct below 50");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-model-")
        .tempdir_in(&config.data_dir)
        .context("creating a scratch folder in data_dir")?;
    let dir = args.keep.as_deref().unwrap_or(scratch.path());
    let lake = Lake::new(dir);
    let kept = lake
        .tables()?
        .contains(&("atomic".to_owned(), "events".to_owned()));
    let events = if kept {
        println!(
            "weft bench model: measuring the lake already in {} (--events and --days are those it was written with)",
            dir.display()
        );
        count_events(&lake).await?
    } else {
        simulate_and_load(&config, &args, dir, &lake).await?
    };

    // the newest events are held back: they arrive after the full build
    let tail = hold_back_newest(&lake, args.increment_pct, events).await?;
    let tail_rows: usize = tail.iter().map(RecordBatch::num_rows).sum();

    let modeller = Modeller::new(lake.clone(), config.model.clone());
    let started = Instant::now();
    let full = modeller.rebuild().await?;
    let full_time = started.elapsed();

    // the same page_views/sessions SQL, in weft's engine and in DuckDB, in memory
    let ours = if args.engine_compare {
        Some(weft_compare(&lake, &config).await?)
    } else {
        None
    };
    let duckdb = duckdb_time(&lake, &config).await;

    append_as_new_load(&lake, tail).await?;
    let started = Instant::now();
    let incremental = modeller.run().await?;
    let incremental_time = started.elapsed();

    let rate = |events: u64, time: Duration| events as f64 / time.as_secs_f64();
    println!(
        "  full build       {:>8.1} s  {:>10.0} events/s  ({} events → {} page views, {} sessions, {} users, {} conversions, Delta writes included)",
        full_time.as_secs_f64(),
        rate(full.new_events, full_time),
        full.new_events,
        full.page_views,
        full.sessions,
        full.users,
        full.conversions
    );
    println!(
        "  incremental      {:>8.1} s  {:>10.0} events/s  ({tail_rows} new events ({}%) → {} sessions re-derived, {} restitched), {:.1}× faster than the full build",
        incremental_time.as_secs_f64(),
        rate(incremental.new_events, incremental_time),
        args.increment_pct,
        incremental.sessions,
        incremental.restitched_sessions,
        full_time.as_secs_f64() / incremental_time.as_secs_f64()
    );
    match ours {
        Some(ours) => println!(
            "  page_views + sessions SQL, in memory: weft {:.2} s ({} page views, {} sessions)",
            ours.0.as_secs_f64(),
            ours.1,
            ours.2
        ),
        None => println!("  page_views + sessions SQL, in memory (DuckDB's task alone):"),
    }
    match duckdb {
        Ok((version, seconds, rows)) => println!(
            "                                        DuckDB {version} {seconds:.2} s ({rows}) on the same Parquet files; weft's full build took {:.0}% of its time",
            100.0 * full_time.as_secs_f64() / seconds
        ),
        Err(error) => println!("  DuckDB not measured: {error:#}"),
    }
    Ok(())
}

/// Simulates a shop of about `--events` events over `--days` days into `dir`,
/// loads them into `lake` and compacts it; returns how many events it holds.
async fn simulate_and_load(
    config: &Config,
    args: &ModelArgs,
    dir: &std::path::Path,
    lake: &Lake,
) -> Result<usize> {
    // the input: a simulated shop sized to the events asked for, backfilled and loaded
    let mut options = SimOptions {
        days: args.days,
        prediction_days: (args.days / 4).max(1),
        ..SimOptions::default()
    };
    let sample = 200;
    options.visitors = sample;
    let per_person = (0..sample)
        .map(|i| Person::generate(&options, i).run.truth.events as u64)
        .sum::<u64>()
        .max(1) as f64
        / sample as f64;
    options.visitors = ((args.events as f64 / per_person).ceil() as u64).max(1);
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let progress = ProgressBar::new(options.visitors).with_style(
        ProgressStyle::with_template("simulating visitors {bar:30} {pos}/{len}")
            .expect("valid template"),
    );
    let (summary, _) = weft_sim::out::write_backfill(&options, dir, threads, &|people| {
        progress.set_position(people)
    })
    .map_err(anyhow::Error::msg)?;
    progress.finish_and_clear();
    weft_sim::out::install_schemas(dir).map_err(anyhow::Error::msg)?;
    let log = Arc::new(FileLog::open(dir.join("raw"), FileLogOptions::default())?);
    let mut resolver = weft_enrich::Resolver::new(Vec::new());
    for (uri, schema) in weft_sim::SCHEMAS {
        resolver = resolver.with_schema(uri, schema)?;
    }
    let loading = Instant::now();
    let load = Loader::new(log, Arc::new(resolver), lake.clone())
        .with_enrichments(crate::run::enrichments(config).await?)
        .with_batch_records(config.loader.batch_records)
        .load()
        .await?;
    println!(
        "weft bench model: {} simulated events of {} visitors over {} days (loaded in {:.0} s)",
        load.events,
        summary.visitors,
        args.days,
        loading.elapsed().as_secs_f64()
    );

    // small files compacted, as `weft serve`'s maintenance keeps a lake
    let compacting = Instant::now();
    let maintained = weft_lake::maintain(lake, &crate::run::maintenance_options(config)).await?;
    let (removed, added) = maintained.iter().fold((0, 0), |(removed, added), table| {
        (removed + table.files_compacted, added + table.files_written)
    });
    println!(
        "  compacted {removed} files into {added} in {:.0} s (weft serve's maintenance)",
        compacting.elapsed().as_secs_f64()
    );
    Ok(load.events)
}

/// How many events `atomic.events` holds.
async fn count_events(lake: &Lake) -> Result<usize> {
    let context = weft_lake::sql::session(lake).await?;
    let rows = context.table("atomic.events").await?.count().await?;
    Ok(rows)
}

/// Removes the newest `percent` of events from `atomic.events` and returns them.
async fn hold_back_newest(lake: &Lake, percent: f64, events: usize) -> Result<Vec<RecordBatch>> {
    let offset = ((events as f64) * percent / 100.0) as usize;
    let context = weft_lake::sql::session(lake).await?;
    let cut = context
        .sql(&format!(
            "SELECT derived_tstamp FROM atomic.events ORDER BY derived_tstamp DESC LIMIT 1 OFFSET {offset}"
        ))
        .await?
        .collect()
        .await?;
    let cut = cut
        .first()
        .filter(|batch| batch.num_rows() > 0)
        .and_then(|batch| {
            batch
                .column(0)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .map(|values| values.value(0))
        })
        .context("no events to hold back")?;
    let newest = col("derived_tstamp").gt(lit(ScalarValue::TimestampMicrosecond(
        Some(cut),
        Some("UTC".into()),
    )));
    let tail = context
        .table("atomic.events")
        .await?
        .filter(newest.clone())?
        .collect()
        .await?;
    lake.table("atomic", "events")
        .await?
        .delete()
        .with_predicate(newest)
        .await?;
    Ok(tail)
}

/// Appends rows to `atomic.events` as a later load would: with a new `load_tstamp`.
async fn append_as_new_load(lake: &Lake, batches: Vec<RecordBatch>) -> Result<()> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as i64;
    let mut out = Vec::new();
    for batch in batches {
        let index = batch.schema().index_of("load_tstamp")?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        columns[index] = Arc::new(
            TimestampMicrosecondArray::from(vec![now; batch.num_rows()]).with_timezone("UTC"),
        );
        out.push(RecordBatch::try_new(batch.schema(), columns)?);
    }
    lake.table("atomic", "events")
        .await?
        .write(out)
        .with_partition_columns([EVENT_PARTITION])
        .await?;
    Ok(())
}

/// weft's engine on the statements DuckDB runs, results kept in memory.
async fn weft_compare(lake: &Lake, config: &Config) -> Result<(Duration, usize, usize)> {
    let context = weft_lake::sql::session(lake).await?;
    let columns = event_columns(&context).await?;
    let sql = ModelSql::new(&config.model, Dialect::DataFusion, Some(&columns))?;
    let started = Instant::now();
    let mut rows = (0, 0);
    for (name, text) in sql.statements()? {
        if !COMPARED.contains(&name) {
            continue;
        }
        let frame = context.sql(&text).await?;
        if VIEWS.contains(&name) {
            context.register_table(name, frame.into_view())?;
            continue;
        }
        let schema = Arc::new(frame.schema().as_arrow().clone());
        let batches = frame.collect().await?;
        let count = batches.iter().map(RecordBatch::num_rows).sum();
        match name {
            "page_views_this_run" => rows.0 = count,
            "sessions_this_run" => rows.1 = count,
            _ => {}
        }
        context.register_table(name, Arc::new(MemTable::try_new(schema, vec![batches])?))?;
    }
    Ok((started.elapsed(), rows.0, rows.1))
}

async fn event_columns(
    context: &deltalake::datafusion::prelude::SessionContext,
) -> Result<HashSet<String>> {
    Ok(context
        .table("atomic.events")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect())
}

async fn duckdb_time(lake: &Lake, config: &Config) -> Result<(String, f64, String)> {
    let context = weft_lake::sql::session(lake).await?;
    let columns = event_columns(&context).await?;
    let sql = ModelSql::new(&config.model, Dialect::DuckDb, Some(&columns))?;
    let statements: Vec<(&str, String)> = sql
        .statements()?
        .into_iter()
        .filter(|(name, _)| COMPARED.contains(name))
        .collect();
    let files = super::live_files(lake, "atomic", "events").await?;
    let given = serde_json::json!({ "files": files, "statements": statements, "views": VIEWS });
    let result = super::python_json(DUCKDB_SCRIPT, &given)
        .map_err(|error| anyhow::anyhow!("pip install duckdb to compare ({error})"))?;
    Ok((
        result["version"].as_str().unwrap_or("?").to_owned(),
        result["seconds"].as_f64().context("DuckDB script output")?,
        format!(
            "{} page views, {} sessions",
            result["rows"]["page_views_this_run"], result["rows"]["sessions_this_run"]
        ),
    ))
}
