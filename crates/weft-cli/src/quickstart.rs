//! `weft quickstart`: start weft, send a simulated shop's tracker traffic
//! through the real HTTP protocol, and show what every stage made of it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use weft_collect::RawLog;
use weft_core::Config;
use weft_lake::Lake;
use weft_lake::sql::{pretty, query};
use weft_sim::{SimOptions, today_start_ms};

use crate::{serve, simulate};

#[derive(Args)]
pub struct QuickstartArgs {
    /// Exit after the summary instead of serving until interrupted.
    #[arg(long)]
    pub no_serve: bool,
    /// How many people visit the simulated shop (over 60 days).
    #[arg(long, default_value_t = 5_000)]
    pub visitors: u64,
    /// Seed of the simulation (same seed, same traffic).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Address to listen on (overrides `server.addr`); port 0 picks a free one.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
}

/// The modelled site at a glance: sessions, users (stitched), bounces, purchases.
const SITE: &str = "SELECT s.sessions, s.users, s.bounce_rate_pct, \
     round(100.0 * c.converting / s.sessions, 2) AS conversion_rate_pct \
     FROM (SELECT count(*) AS sessions, count(DISTINCT stitched_user_id) AS users, \
     round(100.0 * avg(CASE WHEN is_bounce THEN 1.0 ELSE 0.0 END), 1) AS bounce_rate_pct \
     FROM derived.sessions) s CROSS JOIN (SELECT count(DISTINCT domain_sessionid) AS converting \
     FROM derived.conversions WHERE conversion_name = 'transaction') c";

/// Sessions by channel (the model's channel grouping) and how often they end in a purchase.
const CHANNELS: &str = "SELECT s.default_channel_group AS channel, count(*) AS sessions, \
     round(100.0 * count(c.domain_sessionid) / count(*), 2) AS conversion_rate_pct \
     FROM derived.sessions s LEFT JOIN (SELECT DISTINCT domain_sessionid FROM derived.conversions \
     WHERE conversion_name = 'transaction') c ON c.domain_sessionid = s.domain_sessionid \
     GROUP BY 1 ORDER BY sessions DESC";

/// Sessions by the device class the user agent enrichment found (bots are not modelled).
const DEVICES: &str = "SELECT device_class, count(*) AS sessions \
     FROM derived.sessions GROUP BY 1 ORDER BY sessions DESC";

/// Connections the simulated trackers send over.
const SENDERS: usize = 16;

pub async fn run(mut config: Config, args: QuickstartArgs) -> Result<()> {
    if let Some(addr) = args.addr {
        config.server.addr = addr;
    }
    // the simulator stands in for the load balancer in front of the collector:
    // believe the client address it forwards from loopback
    for net in ["127.0.0.0/8", "::1/128"] {
        let net = net.parse().expect("valid network");
        if !config.collector.trusted_proxies.contains(&net) {
            config.collector.trusted_proxies.push(net);
        }
    }
    let enrichments = crate::run::enrichments(&config).await?;
    let _lock = crate::data_dir::lock(&config.data_dir)?;
    weft_sim::out::install_schemas(&config.data_dir).map_err(anyhow::Error::msg)?;
    let running = serve::start(&config).await?;
    let base_url = format!("http://{}", running.addr);
    let first_offset = running.log.end_offset();

    let options = SimOptions {
        visitors: args.visitors,
        seed: args.seed,
        end_ms: today_start_ms(),
        ..SimOptions::default()
    };
    let (summary, mut sent) =
        simulate::send(&options, &base_url, &config.data_dir, SENDERS).await?;
    let end_offset = running.log.end_offset();
    let syncs = running.log.stats().syncs.load(Ordering::Relaxed);

    let loading = Instant::now();
    let report = crate::run::loader(&config, running.log.clone(), enrichments.clone())
        .load()
        .await
        .context("loading the raw log into the lake")?;
    let load_time = loading.elapsed();
    let modelling = Instant::now();
    let model = crate::run::modeller(&config)?
        .run()
        .await
        .context("modelling page views, sessions and users")?;
    let model_time = modelling.elapsed();
    let lake = Lake::new(&config.data_dir);
    if config.identity.sources.is_empty() {
        let simulated = crate::identity::simulated_config(&config.data_dir);
        config.identity.sources = simulated.sources;
        config.identity.web.emails = simulated.web.emails;
    }
    let resolved = weft_profiles::resolve(&lake, &config.identity)
        .await
        .context("resolving identities")?;
    let identity = crate::identity::evaluate_simulated(&lake, &config.data_dir, resolved).await?;
    let explained = explain_largest(&lake).await?;
    if config.ml.category_events.is_empty() && config.ml.flags.is_empty() {
        let simulated = crate::ml::simulated_config();
        config.ml.category_events = simulated.category_events;
        config.ml.flags = simulated.flags;
        config.ml.time_budget_secs = simulated.time_budget_secs;
    }
    let ml = crate::run::run_ml(&config, false).await?;
    let ml_truth = match &ml.trained {
        Some(trained) => {
            Some(crate::ml::evaluate_simulated(&lake, &config.data_dir, trained).await?)
        }
        None => None,
    };
    let audiences = crate::audience::examples(&config)
        .await
        .context("the example audiences")?;
    let stored: Vec<(String, u64)> = audiences
        .sizes
        .iter()
        .map(|(name, size, _)| (name.clone(), *size))
        .collect();
    let synced = crate::sync::examples(&config, &stored)
        .await
        .context("the example syncs")?;
    let by_event = query(
        &lake,
        "SELECT event, count(*) AS events FROM atomic.events GROUP BY event ORDER BY events DESC",
    )
    .await?;
    let site = query(&lake, SITE).await?;
    let channels = query(&lake, CHANNELS).await?;
    let devices = query(&lake, DEVICES).await?;
    let sample = query(
        &lake,
        "SELECT event_name, page_urlpath, domain_userid, derived_tstamp \
         FROM atomic.events ORDER BY derived_tstamp DESC LIMIT 5",
    )
    .await?;

    println!("weft quickstart");
    println!(
        "  collector   {base_url}   data in {}",
        config.data_dir.display()
    );
    simulate::print_summary(&summary, &config.data_dir);
    simulate::print_sent(&mut sent);
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
        "  modelled    {} sessions, {} page views, {} users, {} conversions into derived.* in {:.2} s",
        model.sessions,
        model.page_views,
        model.users,
        model.conversions,
        model_time.as_secs_f64()
    );
    let e = &identity.evaluation;
    let r = &identity.report;
    let web = r.sources.last().map_or(0, |(_, n)| *n);
    println!(
        "  identity    {} customer records from {} systems and {web} web identities → {} customers in {:.2} s (truth: {} people; pairwise precision {:.3}, recall {:.3}; B-cubed F1 {:.3}) into identity.person_map, profiles.customers",
        r.records - web,
        r.sources.len() - 1,
        r.customers,
        r.seconds,
        identity.people,
        e.pairwise.precision,
        e.pairwise.recall,
        e.b_cubed.f1,
    );
    print_ml(&ml, ml_truth.as_ref(), &summary);
    print_audiences(&audiences);
    print_syncs(&synced);
    println!();
    println!(
        "weft sql \"SELECT event, count(*) AS events FROM atomic.events GROUP BY event ORDER BY events DESC\""
    );
    println!("{}", pretty(&by_event)?);
    println!("weft sql \"{SITE}\"");
    println!("{}", pretty(&site)?);
    println!("weft sql \"{CHANNELS}\"");
    println!("{}", pretty(&channels)?);
    println!("weft sql \"{DEVICES}\"");
    println!("{}", pretty(&devices)?);
    println!(
        "weft sql \"SELECT event_name, page_urlpath, domain_userid, derived_tstamp FROM atomic.events ORDER BY derived_tstamp DESC LIMIT 5\""
    );
    println!("{}", pretty(&sample)?);
    if let Some(explanation) = &explained {
        println!("weft identity explain {}", explanation.customer_id);
        print!("{}", crate::identity::explanation_text(explanation));
    }
    let events_sent = sent.events as usize;
    if report.events != events_sent || sent.accepted() != sent.requests || report.bad_rows > 0 {
        anyhow::bail!(
            "weft did not keep everything: {}/{} requests accepted, {}/{events_sent} events loaded, {} bad rows",
            sent.accepted(),
            sent.requests,
            report.events,
            report.bad_rows
        );
    }

    if args.no_serve {
        return running.stop().await;
    }
    let pipeline = serve::Pipeline::start(&config, running.log.clone(), enrichments);
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

/// Why the customer with the most records is one customer.
async fn explain_largest(lake: &Lake) -> Result<Option<weft_profiles::Explanation>> {
    use deltalake::arrow::array::AsArray;
    // one session of the tables read here
    let tables = crate::identity::explain_tables(&[("profiles", "customers")]);
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    let largest = context
        .sql("SELECT customer_id FROM profiles.customers WHERE is_current ORDER BY records DESC, customer_id LIMIT 1")
        .await?
        .collect()
        .await?;
    let Some(batch) = largest.first().filter(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let column = deltalake::arrow::compute::cast(
        batch.column(0),
        &deltalake::arrow::datatypes::DataType::Utf8,
    )?;
    let id = column.as_string::<i32>().value(0).to_owned();
    Ok(weft_profiles::explain(&context, &id).await?)
}

fn print_ml(
    ml: &weft_propensity::MlReport,
    truth: Option<&crate::ml::SimulatedEvaluation>,
    summary: &weft_sim::out::Summary,
) {
    let (Some(trained), Some(truth)) = (&ml.trained, truth) else {
        for note in &ml.notes {
            println!("  propensity  {note}");
        }
        return;
    };
    let auc = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
    let overall = trained.targets.first();
    println!(
        "  propensity  model v{} ({}) on {} training rows: test AUC {} on {} customers vs {} for the true probabilities of the same customers (best possible over every visitor: {}); top decile converts {:.1}% vs {:.1}% on average; {} category models; ml.scores holds {} customers",
        trained.version,
        overall.map_or("", |t| t.learner.as_str()),
        trained.train_rows,
        auc(truth.model_auc),
        truth.matched,
        auc(truth.oracle_auc),
        auc(summary.conversion.best_auc),
        overall.map_or(0.0, |t| t.top_decile_rate * 100.0),
        overall.map_or(0.0, |t| t.rate * 100.0),
        trained.targets.len().saturating_sub(1),
        ml.scored.as_ref().map_or(0, |s| s.rows),
    );
}

fn print_syncs(report: &crate::sync::ExampleSyncs) {
    for run in &report.runs {
        println!(
            "  syncs       {} → {}: {} sent ({} entered, {} left, {} unchanged, {} without consent)",
            run.sync,
            run.destination,
            run.delivered,
            run.added,
            run.removed,
            run.unchanged,
            run.without_consent
        );
    }
    if !report.runs.is_empty() {
        println!(
            "              the local webhook receiver took {} rows; files in {}",
            report.received,
            report.exports.display()
        );
    }
    for (name, reason) in &report.skipped {
        println!("  syncs       {name} not stored: {reason}");
    }
}

fn print_audiences(report: &crate::audience::ExampleReport) {
    let sizes: Vec<String> = report
        .sizes
        .iter()
        .map(|(name, size, millis)| format!("{name} {size} ({millis:.0} ms)"))
        .collect();
    if !sizes.is_empty() {
        println!(
            "  audiences   {} customers in audiences.membership",
            sizes.join(", ")
        );
    }
    if let Some(overlap) = &report.overlap {
        let pairs: Vec<String> = overlap
            .pairs
            .iter()
            .map(|(a, b, both)| format!("{a} ∩ {b} {both}"))
            .collect();
        println!(
            "              overlap: {}; in any of them {}",
            pairs.join(", "),
            overlap.any
        );
    }
    for (name, reason) in &report.skipped {
        println!("  audiences   {name} not stored: {reason}");
    }
}

pub fn percentile_ms(sorted: &[std::time::Duration], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}
