//! `weft bench activate`: a large audience synced to a local webhook
//! receiver and to the local PostgreSQL server through the whole sync
//! path (membership, profile rows, diff, delivery with a checkpoint per
//! batch, run record), then again after a share of the profiles changed.
//! Beside each, the ceiling measured in the same run: the same rows posted
//! pre-serialised in the same batches to the same receiver, and loaded
//! into PostgreSQL by its own `COPY`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use clap::Args;
use deltalake::protocol::SaveMode;
use serde_json::{Value, json};
use weft_activate::runs::RunRecord;
use weft_activate::service::Syncs;
use weft_audience::service::Audiences;
use weft_core::Config;
use weft_lake::Lake;
use weft_meta::Store;

#[derive(Args)]
pub struct ActivateArgs {
    #[arg(long, default_value_t = 1_000_000)]
    pub members: u64,
    /// The percentage of profiles changed before the second run.
    #[arg(long, default_value_t = 1.0)]
    pub change_percent: f64,
    /// The PostgreSQL server written to (a table `weft_bench_activate` is replaced).
    #[arg(
        long,
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        env = "WEFT_BENCH_POSTGRES"
    )]
    pub postgres: String,
    /// Leave PostgreSQL out.
    #[arg(long)]
    pub no_postgres: bool,
}

const TABLE: &str = "weft_bench_activate";

/// `profiles.customers` with `members` current, consenting profiles; the
/// ones whose number falls in the changed share get other revenue.
fn customers_sql(members: u64, changed_every: Option<u64>) -> String {
    let revenue = match changed_every {
        Some(every) => format!(
            "CAST((value * 7919) % 200 AS DOUBLE) + CASE WHEN value % {every} = 0 THEN 0.5 ELSE 0 END"
        ),
        None => "CAST((value * 7919) % 200 AS DOUBLE)".to_owned(),
    };
    format!(
        "SELECT concat('c', CAST(value AS VARCHAR)) AS customer_id,
           concat('p', CAST(value AS VARCHAR), '@example.com') AS email,
           concat('Name', CAST(value % 1000 AS VARCHAR)) AS first_name,
           CASE value % 4 WHEN 0 THEN 'GB' WHEN 1 THEN 'FR' WHEN 2 THEN 'DE' ELSE 'US' END AS country,
           {revenue} AS revenue,
           CAST(value % 20 AS BIGINT) AS sessions,
           true AS consent_marketing,
           true AS is_current
         FROM generate_series(1, {members})"
    )
}

async fn write_customers(lake: &Lake, sql: &str, mode: SaveMode) -> Result<()> {
    let context = deltalake::datafusion::prelude::SessionContext::new();
    let batches = context.sql(sql).await?.collect().await?;
    lake.table("profiles", "customers")
        .await?
        .write(batches)
        .with_save_mode(mode)
        .await
        .context("writing profiles.customers")?;
    Ok(())
}

/// A webhook receiver that parses each batch and counts its rows, as a
/// service taking JSON would at the least.
#[derive(Default)]
struct Receiver {
    rows: AtomicUsize,
    requests: AtomicUsize,
}

async fn receive(State(receiver): State<Arc<Receiver>>, body: Bytes) -> &'static str {
    if let Ok(parsed) = serde_json::from_slice::<Value>(&body)
        && let Some(rows) = parsed["rows"].as_array()
    {
        receiver.rows.fetch_add(rows.len(), Ordering::Relaxed);
    }
    receiver.requests.fetch_add(1, Ordering::Relaxed);
    r#"{"errors": []}"#
}

pub async fn run(_config: Config, args: ActivateArgs) -> Result<()> {
    if args.members == 0 || !(0.0..=100.0).contains(&args.change_percent) {
        bail!("--members is at least 1 and --change-percent between 0 and 100");
    }
    let dir = tempfile::tempdir_in(std::env::temp_dir())?;
    let lake = Lake::new(dir.path());
    let store = Store::open(dir.path())?;
    let receiver = Arc::new(Receiver::default());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let generating = Instant::now();
    write_customers(
        &lake,
        &customers_sql(args.members, None),
        SaveMode::Overwrite,
    )
    .await?;
    println!(
        "generated {} profiles in {:.1} s (weft {}, dev build: {})",
        args.members,
        generating.elapsed().as_secs_f64(),
        env!("CARGO_PKG_VERSION"),
        cfg!(debug_assertions)
    );

    let mut destinations = BTreeMap::new();
    destinations.insert(
        "hook".to_owned(),
        json!({"type": "webhook", "url": hook, "secret": "bench"}),
    );
    let postgres = !args.no_postgres;
    if postgres {
        psql(&args.postgres, &format!("DROP TABLE IF EXISTS {TABLE}"))?;
        destinations.insert(
            "pg".to_owned(),
            json!({"type": "postgres", "url": args.postgres, "table": TABLE, "purpose": "internal"}),
        );
    }
    let audiences = Audiences::new(&store, &lake);
    audiences
        .create(r#"{"name": "everyone", "conditions": [{"trait": "sessions", "op": "gte", "value": 0}]}"#)
        .await?;
    let membership = Instant::now();
    let members = audiences.member_ids("everyone").await?.len();
    let membership_s = membership.elapsed().as_secs_f64();
    println!(
        "membership of a {members}-member audience: {membership_s:.2} s (part of each run below)"
    );

    let syncs = Syncs::new(&store, &lake, &destinations);
    let fields = r#""fields": {"email": "email", "first_name": "first_name", "country": "country", "revenue": "revenue"}"#;
    syncs
        .create(&format!(
            r#"{{"name": "to-hook", "audience": "everyone", "destination": "hook", {fields}}}"#
        ))
        .await?;
    if postgres {
        syncs
            .create(&format!(
                r#"{{"name": "to-pg", "audience": "everyone", "destination": "pg", "mode": "mirror", {fields}}}"#
            ))
            .await?;
    }

    let first = timed(&syncs, "to-hook").await?;
    check_sent(&first.0, members)?;
    report("webhook", "first sync", &first);
    let received = receiver.rows.load(Ordering::Relaxed);
    if received != members {
        bail!("the receiver counted {received} rows, not {members}");
    }
    let ceiling = webhook_ceiling(&hook, members, 10_000).await?;
    println!(
        "  ceiling: the same {members} rows pre-serialised, posted in the same 10,000-row batches to the same receiver: {:.0} rows/s",
        members as f64 / ceiling
    );
    if postgres {
        let first = timed(&syncs, "to-pg").await?;
        check_sent(&first.0, members)?;
        report("postgres", "first sync", &first);
        let count = psql(&args.postgres, &format!("SELECT count(*) FROM {TABLE}"))?;
        if count != members.to_string() {
            bail!("{TABLE} holds {count} rows, not {members}");
        }
        let copy = copy_ceiling(&args.postgres, &lake, dir.path()).await?;
        println!(
            "  ceiling: PostgreSQL's own COPY of the same rows into a fresh table: {:.0} rows/s",
            members as f64 / copy
        );
    }

    let every = (100.0 / args.change_percent.max(1e-9)).round().max(1.0) as u64;
    let changed = (args.members / every) as usize;
    write_customers(
        &lake,
        &customers_sql(args.members, Some(every)),
        SaveMode::Overwrite,
    )
    .await?;
    println!("changed the revenue of {changed} profiles (every {every}th)");
    let before = receiver.rows.load(Ordering::Relaxed);
    let second = timed(&syncs, "to-hook").await?;
    check_sent(&second.0, changed)?;
    let received = receiver.rows.load(Ordering::Relaxed) - before;
    if received != changed {
        bail!("the receiver got {received} rows on the second run, not {changed}");
    }
    report("webhook", "after the change", &second);
    if postgres {
        let second = timed(&syncs, "to-pg").await?;
        check_sent(&second.0, changed)?;
        report("postgres", "after the change", &second);
        psql(&args.postgres, &format!("DROP TABLE IF EXISTS {TABLE}"))?;
    }
    Ok(())
}

async fn timed(syncs: &Syncs<'_>, name: &str) -> Result<(RunRecord, f64)> {
    let started = Instant::now();
    let record = syncs.run(name, false).await?;
    Ok((record, started.elapsed().as_secs_f64()))
}

/// The run sent exactly `expected` rows, all acknowledged.
fn check_sent(run: &RunRecord, expected: usize) -> Result<()> {
    if run.to_send != expected || run.delivered != expected || run.failed != 0 {
        bail!(
            "sync {} was to send {expected} rows: it sent {} of {} ({} failed, {:?})",
            run.sync,
            run.delivered,
            run.to_send,
            run.failed,
            run.error
        );
    }
    Ok(())
}

fn report(destination: &str, what: &str, (run, seconds): &(RunRecord, f64)) {
    println!(
        "weft {destination:<9} {what}: {} rows sent of {} members in {seconds:.2} s = {:.0} rows/s end to end ({} added, {} changed, {} unchanged)",
        run.delivered,
        run.added + run.changed + run.unchanged,
        run.delivered as f64 / seconds,
        run.added,
        run.changed,
        run.unchanged
    );
    let s = run.stages;
    println!(
        "  stages: members {} ms, read {} ms, state {} ms, diff {} ms, deliver {} ms",
        s.members_ms, s.read_ms, s.state_ms, s.diff_ms, s.deliver_ms
    );
}

/// Seconds to post `rows` rows, pre-serialised, in batches of `batch`,
/// one after another on one connection as the sync does.
async fn webhook_ceiling(url: &str, rows: usize, batch: usize) -> Result<f64> {
    let client = reqwest::Client::new();
    let bodies: Vec<Vec<u8>> = (0..rows)
        .step_by(batch)
        .map(|start| {
            let chunk: Vec<Value> = (start..(start + batch).min(rows))
                .map(|i| {
                    json!({"op": "upsert", "key": format!("c{i}"), "fields": {
                        "email": format!("p{i}@example.com"), "first_name": format!("Name{}", i % 1000),
                        "country": "GB", "revenue": (i * 7919 % 200) as f64}})
                })
                .collect();
            serde_json::to_vec(&json!({"sync": "ceiling", "run_id": "r", "batch": 1, "rows": chunk}))
                .expect("JSON serialises")
        })
        .collect();
    let started = Instant::now();
    for body in bodies {
        client
            .post(url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Seconds for `psql \copy` to load the same rows from CSV into a fresh table.
async fn copy_ceiling(url: &str, lake: &Lake, dir: &std::path::Path) -> Result<f64> {
    let tables = [("profiles".to_owned(), "customers".to_owned())];
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    let batches = context
        .sql("SELECT customer_id, email, first_name, country, revenue FROM profiles.customers")
        .await?
        .collect()
        .await?;
    let path = dir.join("copy.csv");
    let mut writer = csv::Writer::from_path(&path)?;
    for batch in &batches {
        let columns: Vec<Vec<Value>> = batch
            .columns()
            .iter()
            .map(weft_activate::rows::json_values)
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            writer.write_record(columns.iter().map(|c| match &c[row] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }))?;
        }
    }
    writer.flush()?;
    let table = format!("{TABLE}_copy");
    psql(url, &format!("DROP TABLE IF EXISTS {table}"))?;
    psql(
        url,
        &format!(
            "CREATE TABLE {table} (key text PRIMARY KEY, email text, first_name text, country text, revenue double precision)"
        ),
    )?;
    let started = Instant::now();
    psql(
        url,
        &format!("\\copy {table} FROM '{}' CSV", path.display()),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    psql(url, &format!("DROP TABLE IF EXISTS {table}"))?;
    Ok(seconds)
}

fn psql(url: &str, command: &str) -> Result<String> {
    let output = std::process::Command::new("psql")
        .args([url, "-At", "-v", "ON_ERROR_STOP=1", "-c", command])
        .output()
        .context("psql is needed for the PostgreSQL figures (or pass --no-postgres)")?;
    if !output.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
