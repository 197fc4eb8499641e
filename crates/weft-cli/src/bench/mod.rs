//! `weft bench`: whole-system figures, each beside the ceiling or peer measured
//! in the same run on the same machine.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use bytes::Bytes;
use clap::{Args, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use weft_collect::RawLog;
use weft_collect::protocol::TP2_PATH;
use weft_core::Config;

mod activate;
mod audience;
mod identity;
mod load;
mod ml;
mod model;

use crate::quickstart::percentile_ms;
use crate::serve;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Collector throughput and latency with durable (fsync) writes, beside a
    /// bare axum handler that answers 200 and does nothing: the ceiling.
    Collect(CollectArgs),
    /// Raw log → Delta throughput for simulated events, and two queries over them
    /// in weft beside DuckDB on the same Parquet files.
    Load(load::LoadArgs),
    /// The web model: a full build over simulated events and an incremental run
    /// after 1% more, beside DuckDB running the same SQL on the same files.
    Model(model::ModelArgs),
    /// Identity resolution of simulated customer records, end to end, beside
    /// Splink (DuckDB) with a comparable model on the same records.
    Identity(identity::IdentityArgs),
    /// weft's trainers beside LightGBM and scikit-learn's LogisticRegression on
    /// the same rows and split: test AUC, training time, scoring rows/s.
    Ml(ml::MlArgs),
    /// Sizing a trait-only audience and running a behavioural one over many
    /// profiles and events, beside DuckDB running the same SQL on the same files.
    Audience(audience::AudienceArgs),
    /// A large audience synced to a local webhook receiver and to PostgreSQL,
    /// then again after 1% of profiles changed, beside each one's ceiling.
    Activate(activate::ActivateArgs),
}

#[derive(Args)]
pub struct CollectArgs {
    /// Seconds of measured load for each server (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Keep-alive connections, each sending one request after another.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Events in each POST batch.
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Acknowledge without fsync (durability off), to see what fsync costs.
    #[arg(long)]
    pub no_fsync: bool,
    /// Rounds, alternating ceiling and weft; the median round of each is reported,
    /// since a shared machine's throughput drifts.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

pub async fn run(config: Config, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Collect(args) => collect(config, args).await,
        BenchCommand::Load(args) => load::run(config, args).await,
        BenchCommand::Model(args) => model::run(config, args).await,
        BenchCommand::Identity(args) => identity::run(config, args).await,
        BenchCommand::Ml(args) => ml::run(config, args).await,
        BenchCommand::Audience(args) => audience::run(config, args).await,
        BenchCommand::Activate(args) => activate::run(config, args).await,
    }
}

/// What one load run measured.
struct Load {
    /// Requests answered 200 during warm-up and measurement.
    acknowledged: usize,
    ok: usize,
    errors: usize,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Load {
    fn per_second(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

async fn collect(config: Config, args: CollectArgs) -> Result<()> {
    if args.connections == 0 || args.batch == 0 || args.seconds == 0 || args.rounds == 0 {
        bail!("--connections, --batch, --seconds and --rounds must be at least 1");
    }
    let body = Bytes::from(weft_sim::event_batch(args.batch, 1));
    let duration = Duration::from_secs(args.seconds);
    println!(
        "weft bench collect: POST {TP2_PATH} with {} events ({} bytes) per request, {} keep-alive connections, {} round(s) of {} s per server, fsync {}",
        args.batch,
        body.len(),
        args.connections,
        args.rounds,
        args.seconds,
        if args.no_fsync {
            "off"
        } else {
            "on (group commit)"
        }
    );

    // the ceiling: a bare axum handler that does nothing
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let ceiling_addr = listener.local_addr()?;
    let app = Router::new().route(TP2_PATH, post(|| async { StatusCode::OK }));
    let ceiling_server = tokio::spawn(async move { axum::serve(listener, app).await });

    // weft: the real collector writing to a fresh raw log on this disk
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-collect-")
        .tempdir_in(&config.data_dir)
        .context("creating a scratch folder in data_dir")?;
    let mut bench_config = config.clone();
    bench_config.data_dir = scratch.path().join("weft");
    bench_config.server.addr = "127.0.0.1:0".parse()?;
    bench_config.raw_log.fsync = !args.no_fsync;
    let running = serve::start(&bench_config).await?;

    let mut ceiling_rounds = Vec::new();
    let mut weft_rounds = Vec::new();
    for _ in 0..args.rounds {
        ceiling_rounds.push(drive(ceiling_addr, body.clone(), args.connections, duration).await?);
        weft_rounds.push(drive(running.addr, body.clone(), args.connections, duration).await?);
    }
    ceiling_server.abort();
    let stored = running.log.end_offset();
    let stats = running.log.stats();
    let syncs = stats.syncs.load(Ordering::Relaxed);
    let written_bytes = stats.bytes.load(Ordering::Relaxed);
    running.stop().await?;
    let acknowledged: usize = weft_rounds.iter().map(|load| load.acknowledged).sum();
    if stored < acknowledged as u64 {
        bail!("raw log holds {stored} records but {acknowledged} requests were acknowledged");
    }
    let ceiling = median(ceiling_rounds);
    let weft = median(weft_rounds);

    println!(
        "  {:<36} {:>11} {:>11} {:>8} {:>8} {:>7}",
        "(median round)", "requests/s", "events/s", "p50 ms", "p99 ms", "errors"
    );
    let row = |name: &str, load: &Load, stores_events: bool| {
        let mut sorted = load.latencies.clone();
        sorted.sort_unstable();
        let events = if stores_events {
            format!("{:.0}", load.per_second() * args.batch as f64)
        } else {
            "-".to_owned()
        };
        println!(
            "  {name:<36} {:>11.0} {events:>11} {:>8.2} {:>8.2} {:>7}",
            load.per_second(),
            percentile_ms(&sorted, 0.50),
            percentile_ms(&sorted, 0.99),
            load.errors
        );
    };
    row("bare axum handler (ceiling)", &ceiling, false);
    row("weft collector", &weft, true);
    let records_per_sync = stored as f64 / syncs.max(1) as f64;
    println!(
        "  weft / ceiling: {:.0} % of requests/s; raw log: {stored} records, {:.0} bytes each, {syncs} fsyncs ({records_per_sync:.1} records per fsync)",
        100.0 * weft.per_second() / ceiling.per_second(),
        written_bytes as f64 / stored.max(1) as f64,
    );
    if !args.no_fsync {
        // what the disk alone allows for the same records and group size, with no HTTP at all
        let record_bytes = (written_bytes / stored.max(1)) as usize;
        let group = records_per_sync.round().max(1.0) as usize;
        let path = scratch.path().join("disk-ceiling.log");
        let disk =
            tokio::task::spawn_blocking(move || disk_ceiling(&path, record_bytes, group, duration))
                .await
                .context("disk ceiling task failed")??;
        println!(
            "  disk alone: write + fdatasync of {group} such records at a time: {disk:.0} records/s (no HTTP, idle CPU)"
        );
    }
    Ok(())
}

/// The round with the median throughput.
fn median(mut rounds: Vec<Load>) -> Load {
    rounds.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let middle = rounds.len() / 2;
    rounds.swap_remove(middle)
}

/// Appends `group` records of `record_bytes` and syncs, over and over, for `duration`.
fn disk_ceiling(
    path: &std::path::Path,
    record_bytes: usize,
    group: usize,
    duration: Duration,
) -> Result<f64> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    let buffer = vec![0x5a_u8; record_bytes * group];
    let started = Instant::now();
    let mut records = 0;
    while started.elapsed() < duration {
        file.write_all(&buffer)?;
        file.sync_data()?;
        records += group;
    }
    Ok(records as f64 / started.elapsed().as_secs_f64())
}

/// Sends POSTs over `connections` keep-alive connections for one second of
/// warm-up and then `duration`, recording the latency of each measured request.
async fn drive(
    addr: SocketAddr,
    body: Bytes,
    connections: usize,
    duration: Duration,
) -> Result<Load> {
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            one_connection(addr, body, warm_until, end).await
        }));
    }
    let mut load = Load {
        acknowledged: 0,
        ok: 0,
        errors: 0,
        latencies: Vec::new(),
        elapsed: duration,
    };
    for task in tasks {
        let (acknowledged, ok, errors, latencies) = task.await.context("load task failed")??;
        load.acknowledged += acknowledged;
        load.ok += ok;
        load.errors += errors;
        load.latencies.extend(latencies);
    }
    Ok(load)
}

async fn one_connection(
    addr: SocketAddr,
    body: Bytes,
    warm_until: Instant,
    end: Instant,
) -> Result<(usize, usize, usize, Vec<Duration>)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let host = addr.to_string();
    let (mut acknowledged, mut ok, mut errors, mut latencies) = (0, 0, 0, Vec::new());
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let request = hyper::Request::post(TP2_PATH)
            .header("host", &host)
            .header("content-type", "application/json; charset=UTF-8")
            .header("user-agent", "weft-bench")
            .body(Full::new(body.clone()))?;
        sender.ready().await?;
        let started = Instant::now();
        let response = sender.send_request(request).await?;
        let status = response.status();
        response.into_body().collect().await?;
        let latency = started.elapsed();
        if status == StatusCode::OK {
            acknowledged += 1;
        }
        if now < warm_until {
            continue;
        }
        if status == StatusCode::OK {
            ok += 1;
            latencies.push(latency);
        } else {
            errors += 1;
        }
    }
    Ok((acknowledged, ok, errors, latencies))
}

/// The local paths of a Delta table's live Parquet files, for engines that read Parquet.
async fn live_files(lake: &weft_lake::Lake, schema: &str, table: &str) -> Result<Vec<String>> {
    Ok(lake
        .table(schema, table)
        .await?
        .get_file_uris()?
        .map(|uri| uri.strip_prefix("file://").unwrap_or(&uri).to_owned())
        .collect())
}

/// Runs a Python script with `input` as JSON on its stdin (file lists do not
/// fit in an argument list) and reads the JSON its last stdout line prints;
/// a failure carries the script's last stderr line.
fn python_json(script: &str, input: &serde_json::Value) -> Result<serde_json::Value> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("python3 is needed to compare")?;
    child
        .stdin
        .take()
        .context("python3's stdin")?
        .write_all(input.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "{}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or("")).context("the script's output")
}
