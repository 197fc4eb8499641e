//! `weft quickstart`: start weft, send a simulated shop's tracker traffic
//! through the real HTTP protocol, and show what every stage made of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Mutex;
use weft_collect::RawLog;
use weft_core::Config;
use weft_enrich::Resolver;
use weft_lake::Lake;
use weft_lake::sql::{pretty, query};
use weft_sim::{TrackerRequest, TrafficOptions, traffic};

use crate::serve;

#[derive(Args)]
pub struct QuickstartArgs {
    /// Exit after the summary instead of serving until interrupted.
    #[arg(long)]
    pub no_serve: bool,
    /// How many visitors the simulated shop has.
    #[arg(long, default_value_t = 40)]
    pub visitors: usize,
    /// Seed of the simulation (same seed, same traffic).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address to listen on (overrides `server.addr`); port 0 picks a free one.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

const SENDERS: usize = 8;

#[derive(Default)]
struct Sent {
    statuses: BTreeMap<u16, usize>,
    failures: usize,
    latencies: Vec<Duration>,
}

pub async fn run(mut config: Config, args: QuickstartArgs) -> Result<()> {
    if let Some(addr) = args.addr {
        config.server.addr = addr;
    }
    let _lock = crate::data_dir::lock(&config.data_dir)?;
    install_sim_schemas(&config)?;
    let running = serve::start(&config).await?;
    let base_url = format!("http://{}", running.addr);
    let first_offset = running.log.end_offset();

    let requests = Arc::new(traffic(&TrafficOptions {
        visitors: args.visitors,
        seed: args.seed,
        ..TrafficOptions::default()
    }));
    let events_sent: usize = requests.iter().map(|r| r.events).sum();
    let progress = ProgressBar::new(requests.len() as u64).with_style(
        ProgressStyle::with_template("sending tracker requests {bar:30} {pos}/{len} {elapsed}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let sent = send_all(&base_url, Arc::clone(&requests), &progress).await?;
    let elapsed = started.elapsed();
    progress.finish_and_clear();
    let end_offset = running.log.end_offset();
    let syncs = running.log.stats().syncs.load(Ordering::Relaxed);

    let loading = Instant::now();
    let report = crate::run::loader(&config, running.log.clone(), Resolver::from_config(&config))
        .load()
        .await
        .context("loading the raw log into the lake")?;
    let load_time = loading.elapsed();
    let lake = Lake::new(&config.data_dir);
    let by_event = query(
        &lake,
        "SELECT event, count(*) AS events FROM atomic.events GROUP BY event ORDER BY events DESC",
    )
    .await?;
    let sample = query(
        &lake,
        "SELECT event_name, page_urlpath, domain_userid, derived_tstamp \
         FROM atomic.events ORDER BY derived_tstamp DESC LIMIT 5",
    )
    .await?;

    let gets = requests.iter().filter(|r| r.method == "GET").count();
    let ok = sent.statuses.get(&200).copied().unwrap_or(0);
    let mut latencies = sent.latencies.clone();
    latencies.sort_unstable();
    println!("weft quickstart");
    println!(
        "  collector   {base_url}   data in {}",
        config.data_dir.display()
    );
    println!(
        "  sent        {} tracker requests ({} GET /i, {} POST tp2) carrying {} events, in {:.2} s",
        requests.len(),
        gets,
        requests.len() - gets,
        events_sent,
        elapsed.as_secs_f64()
    );
    println!(
        "  accepted    {ok} with 200{}",
        describe_other_statuses(&sent)
    );
    println!(
        "  raw log     {} new records (offsets {first_offset}..{end_offset}), {syncs} group-commit fsyncs",
        end_offset - first_offset,
    );
    println!(
        "  loaded      {} events and {} bad rows into atomic.events / atomic.bad_rows ({} resends dropped) in {:.2} s ({} Delta commits)",
        report.events,
        report.bad_rows,
        report.duplicates,
        load_time.as_secs_f64(),
        report.commits
    );
    println!(
        "  latency     p50 {:.2} ms · p99 {:.2} ms (request to durable 200)",
        percentile_ms(&latencies, 0.50),
        percentile_ms(&latencies, 0.99)
    );
    println!();
    println!(
        "weft sql \"SELECT event, count(*) AS events FROM atomic.events GROUP BY event ORDER BY events DESC\""
    );
    println!("{}", pretty(&by_event)?);
    println!(
        "weft sql \"SELECT event_name, page_urlpath, domain_userid, derived_tstamp FROM atomic.events ORDER BY derived_tstamp DESC LIMIT 5\""
    );
    println!("{}", pretty(&sample)?);
    if report.events != events_sent || ok != requests.len() || report.bad_rows > 0 {
        anyhow::bail!(
            "weft did not keep everything: {ok}/{} requests accepted, {}/{events_sent} events loaded, {} bad rows",
            requests.len(),
            report.events,
            report.bad_rows
        );
    }

    if args.no_serve {
        return running.stop().await;
    }
    let pipeline =
        serve::Pipeline::start(&config, running.log.clone(), Resolver::from_config(&config));
    println!();
    println!(
        "weft is serving at {base_url}  (trackers: POST /com.snowplowanalytics.snowplow/tp2, GET /i; health: /health; metrics: /metrics)"
    );
    println!(
        "events are loaded every {} s; query them with weft sql; press Ctrl-C to stop",
        config.loader.interval_secs
    );
    serve::shutdown_signal().await;
    running.stop().await?;
    pipeline.stop().await
}

/// The simulated shop's own schemas go into the data directory's registry, so
/// every later run (`weft run`, `weft serve`) validates its events too.
fn install_sim_schemas(config: &Config) -> Result<()> {
    for (uri, schema) in weft_sim::SCHEMAS {
        let key: weft_enrich::SchemaKey = uri.parse()?;
        let path = config
            .data_dir
            .join("iglu")
            .join(&key.vendor)
            .join(&key.name)
            .join(&key.format)
            .join(key.version());
        if !path.exists() {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, schema)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
    }
    Ok(())
}

async fn send_all(
    base_url: &str,
    requests: Arc<Vec<TrackerRequest>>,
    progress: &ProgressBar,
) -> Result<Sent> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let next = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(Sent::default()));
    let mut workers = Vec::new();
    for _ in 0..SENDERS {
        let (client, next, sent, requests, progress) = (
            client.clone(),
            Arc::clone(&next),
            Arc::clone(&sent),
            Arc::clone(&requests),
            progress.clone(),
        );
        let base_url = base_url.to_owned();
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(request) = requests.get(index) else {
                    break;
                };
                let started = Instant::now();
                let result = send_one(&client, &base_url, request).await;
                let latency = started.elapsed();
                let mut sent = sent.lock().await;
                match result {
                    Ok(status) => {
                        *sent.statuses.entry(status).or_default() += 1;
                        sent.latencies.push(latency);
                    }
                    Err(_) => sent.failures += 1,
                }
                progress.inc(1);
            }
        }));
    }
    for worker in workers {
        worker.await.context("sender task failed")?;
    }
    let sent = std::mem::take(&mut *sent.lock().await);
    Ok(sent)
}

async fn send_one(
    client: &reqwest::Client,
    base_url: &str,
    request: &TrackerRequest,
) -> reqwest::Result<u16> {
    let url = format!("{base_url}{}", request.path);
    let mut builder = match request.method {
        "POST" => client.post(url),
        _ => client.get(url),
    };
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    if let Some(body) = &request.body {
        builder = builder.body(body.clone());
    }
    let response = builder.send().await?;
    let status = response.status().as_u16();
    response.bytes().await?;
    Ok(status)
}

fn describe_other_statuses(sent: &Sent) -> String {
    let mut parts: Vec<String> = sent
        .statuses
        .iter()
        .filter(|(status, _)| **status != 200)
        .map(|(status, count)| format!("{count} with {status}"))
        .collect();
    if sent.failures > 0 {
        parts.push(format!("{} failed to send", sent.failures));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" · {}", parts.join(" · "))
    }
}

pub fn percentile_ms(sorted: &[Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
