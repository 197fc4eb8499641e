//! `weft bench audience`: sizing and running an audience over many profiles
//! and events, beside DuckDB running the same SQL (its dialect) on the same
//! Parquet files in the same run.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use clap::Args;
use deltalake::protocol::SaveMode;
use weft_audience::dialect::DuckDb;
use weft_audience::engine::Engine;
use weft_audience::spec;
use weft_audience::sql::{Shape, Tables, render};
use weft_core::Config;
use weft_lake::Lake;

#[derive(Args)]
pub struct AudienceArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub profiles: u64,
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Timed repetitions of each query; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Write the generated lake here and keep it (default: a temporary folder);
    /// a lake this benchmark already wrote there is measured again as it is.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<std::path::PathBuf>,
}

/// "Today" of the generated data.
const AS_OF: &str = "2026-12-01";

/// Three traits, as a marketer sizes them while building an audience.
const TRAITS: &str = r#"{"name": "traits", "conditions": {"all": [
  {"trait": "country", "op": "in", "value": ["GB", "FR", "DE"]},
  {"consent": "email"},
  {"trait": "revenue", "op": "gt", "value": 50}
]}}"#;

/// The same three and one behaviour over the events.
const BEHAVIOUR: &str = r#"{"name": "traits-and-behaviour", "conditions": {"all": [
  {"trait": "country", "op": "in", "value": ["GB", "FR", "DE"]},
  {"consent": "email"},
  {"trait": "revenue", "op": "gt", "value": 50},
  {"behaviour": {"event": "product_view",
    "where": [{"field": "unstruct_event_com_acme_product_view_1.category", "op": "eq", "value": "bread"}],
    "within_days": 30, "op": "gte", "value": 2}}
]}}"#;

/// Tables generated in DataFusion: customer i has cookie di; events fall on
/// the 90 days before AS_OF, on random customers.
fn generators(profiles: u64, events: u64) -> Vec<(&'static str, String)> {
    vec![
        (
            "profiles.customers",
            format!(
                "SELECT concat('c', CAST(value AS VARCHAR)) AS customer_id,
                   concat('p', CAST(value AS VARCHAR), '@example.com') AS email,
                   CASE value % 5 WHEN 0 THEN 'GB' WHEN 1 THEN 'FR' WHEN 2 THEN 'DE' WHEN 3 THEN 'US' ELSE 'ES' END AS country,
                   value % 3 <> 0 AS emailable,
                   value % 4 <> 0 AS consent_marketing,
                   CAST((value * 7919) % 200 AS DOUBLE) AS revenue,
                   CAST(value % 20 AS BIGINT) AS sessions,
                   true AS is_current
                 FROM generate_series(1, {profiles})"
            ),
        ),
        (
            "identity.person_map",
            format!(
                "SELECT concat('c', CAST(value AS VARCHAR)) AS customer_id, 'domain_userid' AS kind,
                   concat('d', CAST(value AS VARCHAR)) AS value, CAST(NULL AS VARCHAR) AS source
                 FROM generate_series(1, {profiles})"
            ),
        ),
        (
            "atomic.events",
            format!(
                "SELECT concat('e', CAST(value AS VARCHAR)) AS event_id,
                   CASE WHEN value % 3 = 0 THEN 'page_view' ELSE 'product_view' END AS event_name,
                   concat('d', CAST((value * 2654435761) % {profiles} + 1 AS VARCHAR)) AS domain_userid,
                   arrow_cast(to_timestamp_micros(CAST(1796083200000000 - ((value * 40503) % 7776000) * 1000000 AS BIGINT)), 'Timestamp(Microsecond, Some(\"UTC\"))') AS derived_tstamp,
                   CASE WHEN value % 3 = 0 THEN NULL
                        WHEN value % 4 = 0 THEN '{{\"category\":\"bread\"}}'
                        ELSE '{{\"category\":\"soft_drinks\"}}' END AS unstruct_event_com_acme_product_view_1
                 FROM generate_series(1, {events})"
            ),
        ),
    ]
}

const DUCKDB_SCRIPT: &str = r#"
import json, sys, time, statistics
import duckdb
given = json.load(sys.stdin)
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
con.execute("SET TimeZone = 'UTC'")
for name, files in given["tables"].items():
    schema = name.split(".")[0]
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet({files!r})")
result = {"version": duckdb.__version__}
for key, sql in given["queries"].items():
    times, rows = [], None
    for _ in range(given["repeat"]):
        started = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append(time.perf_counter() - started)
    result[key] = {"ms": statistics.median(times) * 1000, "rows": len(rows), "first": rows[0][0] if rows else None}
print(json.dumps(result))
"#;

pub async fn run(_config: Config, args: AudienceArgs) -> Result<()> {
    if args.profiles == 0 || args.events == 0 || args.repeat == 0 {
        bail!("--profiles, --events and --repeat must be at least 1");
    }
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let lake = Lake::new(args.keep.as_deref().unwrap_or(dir.path()));
    let generated = generators(args.profiles, args.events);
    let existing = lake.tables()?;
    let kept = generated.iter().all(|(name, _)| {
        let (schema, table) = name.split_once('.').expect("schema.table");
        existing.contains(&(schema.to_owned(), table.to_owned()))
    });
    if kept {
        println!(
            "measuring the lake already in {} (--profiles and --events are those it was written with)",
            lake.root().display()
        );
    } else {
        generate(&lake, generated, &args).await?;
    }

    let as_of = NaiveDate::parse_from_str(AS_OF, "%Y-%m-%d")?
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists");
    let opening = Instant::now();
    let engine = Engine::open(&lake).await?;
    let open_ms = opening.elapsed().as_secs_f64() * 1000.0;
    let none = std::collections::HashMap::new();
    let traits = engine.compile(&spec::parse(TRAITS)?, &none, as_of)?;
    let behaviour = engine.compile(&spec::parse(BEHAVIOUR)?, &none, as_of)?;

    let mut size_ms = Vec::new();
    let mut size = 0;
    for _ in 0..args.repeat {
        let started = Instant::now();
        size = engine.size(&traits).await?;
        size_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut members_ms = Vec::new();
    let mut members = 0;
    for _ in 0..args.repeat {
        let started = Instant::now();
        members = engine.member_ids(&behaviour).await?.len();
        members_ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "weft       open the tables {open_ms:.0} ms; trait-only size {:.0} ms ({size} customers); full behavioural membership {:.0} ms ({members} members); medians of {}",
        median(&mut size_ms),
        median(&mut members_ms),
        args.repeat
    );

    let mut tables = serde_json::Map::new();
    for name in ["profiles.customers", "identity.person_map", "atomic.events"] {
        let (schema, table) = name.split_once('.').expect("schema.table");
        tables.insert(
            name.into(),
            super::live_files(&lake, schema, table).await?.into(),
        );
    }
    let queries = serde_json::json!({
        "size": render(&traits, &DuckDb, &Tables::lake(), Shape::Count),
        "members": render(&behaviour, &DuckDb, &Tables::lake(), Shape::Members),
    });
    let given = serde_json::json!({ "tables": tables, "queries": queries, "repeat": args.repeat });
    let result = match super::python_json(DUCKDB_SCRIPT, &given) {
        Ok(result) => result,
        Err(error) => {
            println!("DuckDB     not compared: pip install duckdb ({error})");
            return Ok(());
        }
    };
    println!(
        "DuckDB {}  trait-only size {:.0} ms ({} customers); full behavioural membership {:.0} ms ({} members); the same SQL on the same Parquet files",
        result["version"].as_str().unwrap_or("?"),
        result["size"]["ms"].as_f64().unwrap_or(f64::NAN),
        result["size"]["first"],
        result["members"]["ms"].as_f64().unwrap_or(f64::NAN),
        result["members"]["rows"],
    );
    if result["size"]["first"].as_u64() != Some(size)
        || result["members"]["rows"].as_u64() != Some(members as u64)
    {
        bail!("DuckDB and weft disagree on the audience: {result}");
    }
    Ok(())
}

/// Writes the generated tables into the lake.
async fn generate(lake: &Lake, generated: Vec<(&str, String)>, args: &AudienceArgs) -> Result<()> {
    let context = deltalake::datafusion::prelude::SessionContext::new();
    let generating = Instant::now();
    let progress = indicatif::ProgressBar::new_spinner();
    for (name, sql) in generated {
        progress.set_message(format!("generating {name}"));
        progress.enable_steady_tick(std::time::Duration::from_millis(200));
        let batches = context.sql(&sql).await?.collect().await?;
        let (schema, table) = name.split_once('.').expect("schema.table");
        lake.table(schema, table)
            .await?
            .write(batches)
            .with_save_mode(SaveMode::Append)
            .await
            .with_context(|| format!("writing {name}"))?;
    }
    progress.finish_and_clear();
    println!(
        "generated {} profiles and {} events in {:.1} s (weft {}, dev build: {})",
        args.profiles,
        args.events,
        generating.elapsed().as_secs_f64(),
        env!("CARGO_PKG_VERSION"),
        cfg!(debug_assertions)
    );
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
