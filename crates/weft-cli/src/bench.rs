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

use crate::quickstart::percentile_ms;
use crate::serve;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Collector throughput and latency with durable (fsync) writes, beside a
    /// bare axum handler that answers 200 and does nothing: the ceiling.
    Collect(CollectArgs),
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
}

pub async fn run(config: Config, command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Collect(args) => collect(config, args).await,
    }
}

/// What one load run measured.
struct Load {
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
    if args.connections == 0 || args.batch == 0 || args.seconds == 0 {
        bail!("--connections, --batch and --seconds must be at least 1");
    }
    let body = Bytes::from(weft_sim::event_batch(args.batch, 1));
    let duration = Duration::from_secs(args.seconds);
    println!(
        "weft bench collect: POST {TP2_PATH} with {} events ({} bytes) per request, {} keep-alive connections, {} s per server, fsync {}",
        args.batch,
        body.len(),
        args.connections,
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
    let ceiling = drive(ceiling_addr, body.clone(), args.connections, duration).await?;
    ceiling_server.abort();

    // weft: the real collector writing to a fresh raw log on this disk
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let scratch = tempfile::Builder::new()
        .prefix("bench-collect-")
        .tempdir_in(&config.data_dir)
        .context("creating a scratch folder in data_dir")?;
    let mut bench_config = config.clone();
    bench_config.data_dir = scratch.path().to_path_buf();
    bench_config.server.addr = "127.0.0.1:0".parse()?;
    bench_config.raw_log.fsync = !args.no_fsync;
    let running = serve::start(&bench_config).await?;
    let weft = drive(running.addr, body.clone(), args.connections, duration).await?;
    let stored = running.log.end_offset();
    let syncs = running.log.stats().syncs.load(Ordering::Relaxed);
    running.stop().await?;
    // every answered request (warm-up included) must be in the log
    if stored < weft.ok as u64 {
        bail!(
            "raw log holds {stored} records but {} requests were acknowledged",
            weft.ok
        );
    }

    let row = |name: &str, load: &Load, events: bool| {
        let mut sorted = load.latencies.clone();
        sorted.sort_unstable();
        println!(
            "  {name:<22} {:>12.0} {:>12} {:>9.2} {:>9.2} {:>8}",
            load.per_second(),
            if events {
                format!("{:.0}", load.per_second() * args.batch as f64)
            } else {
                "-".into()
            },
            percentile_ms(&sorted, 0.50),
            percentile_ms(&sorted, 0.99),
            load.errors
        );
    };
    println!(
        "  {:<22} {:>12} {:>12} {:>9} {:>9} {:>8}",
        "", "requests/s", "events/s", "p50 ms", "p99 ms", "errors"
    );
    row("bare axum (ceiling)", &ceiling, false);
    row("weft collector", &weft, true);
    println!(
        "  weft / ceiling: {:.0} % of requests/s; raw log: {stored} records in {syncs} fsyncs ({:.1} records per fsync)",
        100.0 * weft.per_second() / ceiling.per_second(),
        stored as f64 / syncs.max(1) as f64
    );
    Ok(())
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
        ok: 0,
        errors: 0,
        latencies: Vec::new(),
        elapsed: duration,
    };
    for task in tasks {
        let (ok, errors, latencies) = task.await.context("load task failed")??;
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
) -> Result<(usize, usize, Vec<Duration>)> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let host = addr.to_string();
    let (mut ok, mut errors, mut latencies) = (0, 0, Vec::new());
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
    Ok((ok, errors, latencies))
}
