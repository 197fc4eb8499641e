//! `weft bench load`: raw log → Delta throughput for simulated events, then two
//! queries over them in weft's engine (DataFusion) and in DuckDB on the same
//! Parquet files, in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use weft_collect::raw_log::FileLogOptions;
use weft_collect::{FileLog, RawLog};
use weft_core::Config;
use weft_enrich::Resolver;
use weft_lake::sql::session;
use weft_lake::{Lake, Loader};
use weft_sim::out::BACKFILL_HOST;
use weft_sim::{Person, SimOptions};

#[derive(Args)]
pub struct LoadArgs {
    /// How many simulated events to load.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Runs of each query; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

const QUERIES: [(&str, &str); 2] = [
    (
        "events by name",
        "SELECT event_name, count(*) AS events FROM atomic.events GROUP BY event_name ORDER BY events DESC",
    ),
    (
        "per-user aggregation",
        "SELECT domain_userid, count(*) AS events, count(DISTINCT domain_sessionid) AS sessions, \
         min(derived_tstamp) AS first_seen, max(derived_tstamp) AS last_seen \
         FROM atomic.events GROUP BY domain_userid ORDER BY events DESC, domain_userid LIMIT 10",
    ),
];

/// Times the same queries in DuckDB over the Parquet files of the table.
const DUCKDB_SCRIPT: &str = r#"
import json, statistics, sys, time
import duckdb
path, runs, queries = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
con = duckdb.connect()
con.execute(f"CREATE VIEW events AS SELECT * FROM read_parquet('{path}/**/*.parquet', hive_partitioning = true)")
out = []
for sql in queries:
    sql = sql.replace("atomic.events", "events")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    out.append(statistics.median(times))
print(json.dumps({"version": duckdb.__version__, "seconds": out}))
"#;

pub async fn run(config: Config, args: LoadArgs) -> Result<()> {
    if args.events == 0 || args.runs == 0 {
        bail!("--events and --runs must be at least 1");
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-load-")
        .tempdir_in(&config.data_dir)
        .context("creating a scratch folder in data_dir")?;
    let log = Arc::new(FileLog::open(
        scratch.path().join("raw"),
        FileLogOptions {
            fsync: false, // preparing the input is not what is measured
            ..FileLogOptions::default()
        },
    )?);

    // the input: simulated tracker requests in the raw log, as the collector stores them
    let progress = ProgressBar::new(args.events as u64).with_style(
        ProgressStyle::with_template(
            "writing simulated events to the raw log {bar:30} {pos}/{len}",
        )
        .expect("valid template"),
    );
    let mut written = 0;
    // two days, as a loader keeping up with live traffic sees (a batch spans a day or two)
    let options = SimOptions {
        days: 2,
        prediction_days: 1,
        ..SimOptions::default()
    };
    let collector = format!("weft-{}", weft_core::VERSION);
    let mut index = 0;
    while written < args.events {
        for request in Person::generate(&options, index).run.requests {
            written += request.events;
            log.append(&request.into_payload(BACKFILL_HOST, &collector))
                .await?;
        }
        progress.set_position(written.min(args.events) as u64);
        index += 1;
    }
    progress.finish_and_clear();

    let mut resolver = Resolver::new(Vec::new());
    for (uri, schema) in weft_sim::SCHEMAS {
        resolver = resolver.with_schema(uri, schema)?;
    }
    let resolver = Arc::new(resolver);
    let enrichments = crate::run::enrichments(&config).await?;

    // the same records loaded twice: into a lake without enrichments, then with every
    // enrichment the config switches on (the default ones unless weft.toml says otherwise)
    // a consumer that never moves keeps the raw log whole for the second load
    log.commit("bench-second-load", 0)?;
    let plain = Lake::new(&scratch.path().join("plain"));
    let started = Instant::now();
    let plain_report = Loader::new(log.clone(), Arc::clone(&resolver), plain.clone())
        .with_batch_records(config.loader.batch_records)
        .with_dedup_window_days(config.loader.dedup_window_days)
        .load()
        .await?;
    let plain_time = started.elapsed();

    let lake = Lake::new(scratch.path());
    let loader = Loader::new(log.clone(), resolver, lake.clone())
        .with_enrichments(Arc::clone(&enrichments))
        .with_batch_records(config.loader.batch_records)
        .with_dedup_window_days(config.loader.dedup_window_days);
    let started = Instant::now();
    let report = loader.load().await?;
    let load_time = started.elapsed();

    println!(
        "weft bench load: {} events ({} raw log records) → atomic.events, batches of {} records",
        report.events, report.records, config.loader.batch_records
    );
    println!(
        "  no enrichments {:.1} s, {:.0} events/s ({} bad rows, {} Delta commits)",
        plain_time.as_secs_f64(),
        plain_report.events as f64 / plain_time.as_secs_f64(),
        plain_report.bad_rows,
        plain_report.commits
    );
    println!(
        "  enriched       {:.1} s, {:.0} events/s ({} bad rows, {} Delta commits; {})",
        load_time.as_secs_f64(),
        report.events as f64 / load_time.as_secs_f64(),
        report.bad_rows,
        report.commits,
        enrichments.names().join(", ")
    );

    // one session, as DuckDB gets one view: what is timed is the query alone
    let context = session(&lake).await?;
    let mut ours = Vec::new();
    for (_, sql) in QUERIES {
        let mut times = Vec::new();
        for _ in 0..args.runs {
            let started = Instant::now();
            context.sql(sql).await?.collect().await?;
            times.push(started.elapsed());
        }
        times.sort_unstable();
        ours.push(times[times.len() / 2]);
    }
    let duckdb = duckdb_times(&lake.table_path("atomic", "events"), args.runs);
    println!(
        "  {:<22} {:>14} {:>14}",
        "query (median)", "weft (ms)", "DuckDB (ms)"
    );
    for (index, (name, _)) in QUERIES.iter().enumerate() {
        let theirs = match &duckdb {
            Ok((_, seconds)) => format!("{:.1}", seconds[index] * 1000.0),
            Err(_) => "-".to_owned(),
        };
        println!(
            "  {name:<22} {:>14.1} {theirs:>14}",
            ours[index].as_secs_f64() * 1000.0
        );
    }
    match duckdb {
        Ok((version, _)) => println!(
            "  DuckDB {version} read the same Parquet files (read_parquet, hive partitions)"
        ),
        Err(error) => println!("  DuckDB not measured: {error}"),
    }
    Ok(())
}

fn duckdb_times(table: &Path, runs: usize) -> Result<(String, Vec<f64>)> {
    let queries = serde_json::to_string(&QUERIES.map(|(_, sql)| sql))?;
    let output = std::process::Command::new("python3")
        .args(["-c", DUCKDB_SCRIPT])
        .arg(table)
        .arg(runs.to_string())
        .arg(queries)
        .output()
        .context("python3 is needed to run DuckDB")?;
    if !output.status.success() {
        bail!(
            "pip install duckdb to compare ({})",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let seconds = result["seconds"]
        .as_array()
        .context("DuckDB script output")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect();
    Ok((
        result["version"].as_str().unwrap_or("?").to_owned(),
        seconds,
    ))
}
