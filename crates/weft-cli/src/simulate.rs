//! `weft simulate`: a simulated shop's traffic, customer records and ground
//! truth, sent to a collector over HTTP or written as a backfill.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use weft_core::Config;
use weft_sim::out::{Summary, write_backfill};
use weft_sim::send::{SendReport, simulate_to_collector};
use weft_sim::{SimOptions, day_start_ms, today_start_ms};

use crate::UsageError;

#[derive(Args)]
pub struct SimulateArgs {
    /// Send the traffic to this collector over HTTP (e.g. http://127.0.0.1:8080)
    /// instead of writing it as a raw log.
    #[arg(long, value_name = "URL")]
    pub collector: Option<String>,
    /// Where to write customer records (records/), ground truth (truth/), the
    /// shop's schemas (iglu/) and, without --collector, the raw log (raw/).
    /// Default: the data directory, so `weft run` loads the backfill.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// How many people visit the shop.
    #[arg(long, default_value_t = 1_000)]
    pub visitors: u64,
    /// Seed of the simulation: the same seed (and --end) gives the same bytes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Length of the simulated period in days.
    #[arg(long, default_value_t = 60)]
    pub days: u32,
    /// The last days of the period, after the cut-off, whose conversions the truth predicts.
    #[arg(long, default_value_t = 14)]
    pub prediction_days: u32,
    /// The day the period ends (YYYY-MM-DD, exclusive); default today (UTC).
    #[arg(long, value_name = "DATE")]
    pub end: Option<String>,
    /// The shop's origin.
    #[arg(long, default_value = "https://shop.example.com")]
    pub site: String,
    /// Concurrent connections to the collector.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

impl SimulateArgs {
    pub fn options(&self) -> Result<SimOptions> {
        let end_ms = match &self.end {
            Some(date) => day_start_ms(date).map_err(UsageError)?,
            None => today_start_ms(),
        };
        let options = SimOptions {
            visitors: self.visitors,
            seed: self.seed,
            days: self.days,
            prediction_days: self.prediction_days,
            end_ms,
            site: self.site.clone(),
        };
        options.validate().map_err(UsageError)?;
        Ok(options)
    }
}

pub async fn run(config: Config, args: SimulateArgs) -> Result<()> {
    let options = args.options()?;
    let dir = args.out.clone().unwrap_or_else(|| config.data_dir.clone());
    let started = Instant::now();
    println!("weft simulate");
    match &args.collector {
        Some(url) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(
                    UsageError(format!("--collector must be an http:// URL, not {url:?}")).into(),
                );
            }
            let (summary, mut report) = send(&options, url, &dir, args.concurrency).await?;
            print_summary(&summary, &dir);
            print_sent(&mut report);
            if report.accepted() != report.requests {
                return Err(anyhow!(
                    "the collector accepted {} of {} requests ({} never answered)",
                    report.accepted(),
                    report.requests,
                    report.failures
                ));
            }
        }
        None => {
            // the raw log has one writer: not while weft serve uses this folder
            let _lock = crate::data_dir::lock(&dir)?;
            let progress = people_progress(options.visitors, "writing the backfill");
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            let (summary, raw_bytes) = {
                let (options, dir, progress) = (options.clone(), dir.clone(), progress.clone());
                tokio::task::spawn_blocking(move || {
                    write_backfill(&options, &dir, threads, &|done| progress.set_position(done))
                })
                .await?
                .map_err(|e| anyhow!(e))?
            };
            progress.finish_and_clear();
            let elapsed = started.elapsed().as_secs_f64();
            print_summary(&summary, &dir);
            println!(
                "  raw log     {} requests in {} ({:.1} MB, {:.0} bytes per event), {:.0} events/s generated",
                summary.counts.requests,
                dir.join("raw").display(),
                raw_bytes as f64 / 1e6,
                raw_bytes as f64 / summary.counts.events.max(1) as f64,
                summary.counts.events as f64 / elapsed
            );
            println!("  load it     weft --data-dir {} run", dir.display());
        }
    }
    Ok(())
}

/// Sends the simulation to `url`, with a progress bar of events.
pub async fn send(
    options: &SimOptions,
    url: &str,
    dir: &Path,
    concurrency: usize,
) -> Result<(Summary, SendReport)> {
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("sending simulated traffic {spinner} {pos} events {per_sec}")
            .expect("valid template"),
    );
    let tick = progress.clone();
    let result = simulate_to_collector(
        options,
        url,
        dir,
        concurrency,
        Arc::new(move |events| tick.inc(events)),
    )
    .await;
    progress.finish_and_clear();
    result.map_err(|e| anyhow!(e))
}

fn people_progress(people: u64, what: &str) -> ProgressBar {
    ProgressBar::new(people).with_style(
        ProgressStyle::with_template(&format!("{what} {{bar:30}} {{pos}}/{{len}} people {{eta}}"))
            .expect("valid template"),
    )
}

pub fn print_summary(summary: &Summary, dir: &Path) {
    let counts = &summary.counts;
    let records: Vec<String> = counts
        .records
        .iter()
        .map(|(source, n)| format!("{n} {source}"))
        .collect();
    println!(
        "  period      {} to {} (cut-off {}, {} prediction days), seed {}",
        summary.start, summary.end, summary.cutoff, summary.prediction_days, summary.seed
    );
    println!(
        "  people      {} ({} registered, {} crawlers, {} cookies), {} events in {} tracker requests",
        counts.people,
        counts.registered,
        counts.crawlers,
        counts.cookies,
        counts.events,
        counts.requests
    );
    println!(
        "  records     {} in {}",
        records.join(", "),
        dir.join("records").display()
    );
    println!(
        "  truth       {:.1}% convert in the prediction window ({} people); best possible ROC AUC {:.3} — in {}",
        summary.conversion.conversion_rate * 100.0,
        summary.conversion.converted,
        summary.conversion.best_auc_expected.unwrap_or(f64::NAN),
        dir.join("truth").display()
    );
}

pub fn print_sent(report: &mut SendReport) {
    let seconds = report.elapsed.as_secs_f64();
    let (p50, p99) = (report.latency_ms(0.5), report.latency_ms(0.99));
    println!(
        "  sent        {} requests ({} GET /i, {} POST tp2) carrying {} events in {:.2} s: {:.0} events/s, {} accepted, {} retried, {} failed; p50 {:.2} ms, p99 {:.2} ms",
        report.requests,
        report.gets,
        report.requests - report.gets,
        report.events,
        seconds,
        report.events as f64 / seconds,
        report.accepted(),
        report.retries,
        report.failures,
        p50,
        p99
    );
}
