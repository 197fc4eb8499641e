//! `weft serve`: the collector on one address, until interrupted.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use weft_collect::metrics::Metrics;
use weft_collect::service::{Collector, router};
use weft_collect::{FileLog, server};
use weft_core::Config;
use weft_enrich::Enrichments;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `server.addr`); port 0 picks a free one.
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Only collect: do not run the pipeline (loader, …) in the background.
    #[arg(long)]
    pub no_pipeline: bool,
}

/// A running server: its address, its log, and the task serving it.
pub struct Running {
    pub addr: SocketAddr,
    pub log: Arc<FileLog>,
    pub task: JoinHandle<std::io::Result<()>>,
    stop: tokio::sync::oneshot::Sender<()>,
}

impl Running {
    /// Stops accepting, lets open requests finish.
    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(());
        self.task.await.context("server task failed")??;
        Ok(())
    }
}

/// Opens the raw log, binds the address and serves in the background.
pub async fn start(config: &Config) -> Result<Running> {
    let log = crate::run::open_log(config)?;
    let collector = Collector::new(
        config.collector.clone(),
        log.clone(),
        Arc::new(Metrics::new()),
    )?;
    let admin =
        weft_serve::admin::Admin::open(&config.data_dir, config.activation.destinations.clone())
            .context("cannot open the metadata store")?;
    let app =
        router(Arc::new(collector)).nest("/admin", weft_serve::admin::router(Arc::new(admin)));
    let listener = TcpListener::bind(config.server.addr)
        .await
        .with_context(|| format!("cannot listen on {} (server.addr)", config.server.addr))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let limits = config.server.clone();
    let task = tokio::spawn(async move {
        server::serve(listener, app, &limits, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok(Running {
        addr,
        log,
        task,
        stop,
    })
}

pub async fn run(mut config: Config, args: ServeArgs) -> Result<()> {
    if let Some(addr) = args.addr {
        config.server.addr = addr;
    }
    let enrichments = crate::run::enrichments(&config).await?;
    crate::run::modeller(&config)?;
    let _lock = crate::data_dir::lock(&config.data_dir)?;
    let running = start(&config).await?;
    // scripts and tests read this line to find the port
    println!("weft listening on http://{}", running.addr);
    tracing::info!(addr = %running.addr, data_dir = %config.data_dir.display(), "serving");
    let pipeline =
        (!args.no_pipeline).then(|| Pipeline::start(&config, running.log.clone(), enrichments));
    shutdown_signal().await;
    running.stop().await?;
    if let Some(pipeline) = pipeline {
        pipeline.stop().await?;
    }
    Ok(())
}

/// Every stored audience, run into audiences.membership.
async fn run_audiences(lake: &weft_lake::Lake, data_dir: &std::path::Path) -> Result<()> {
    let store = weft_meta::Store::open(data_dir)?;
    let audiences = weft_audience::service::Audiences::new(&store, lake);
    if store.all(weft_meta::Kind::Audience)?.is_empty() {
        return Ok(());
    }
    for snapshot in audiences.run_all(chrono::Utc::now()).await?.snapshots {
        tracing::info!(
            audience = snapshot.audience,
            members = snapshot.members,
            entered = snapshot.entered,
            exited = snapshot.exited,
            "audience run"
        );
    }
    Ok(())
}

/// The pipeline stages running in the background while weft serves.
pub struct Pipeline {
    stop: tokio::sync::watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Pipeline {
    pub fn start(config: &Config, log: Arc<FileLog>, enrichments: Arc<Enrichments>) -> Self {
        let loader = crate::run::loader(config, log, enrichments);
        let modeller =
            weft_model::Modeller::new(weft_lake::Lake::new(&config.data_dir), config.model.clone());
        let interval = std::time::Duration::from_secs(config.loader.interval_secs.max(1));
        let lake = weft_lake::Lake::new(&config.data_dir);
        let maintenance = crate::run::maintenance_options(config);
        // identity follows the model, at most once per interval, once sources are configured
        let identity = config.identity.clone();
        let identity_every = (config.identity.interval_secs > 0
            && !config.identity.sources.is_empty())
        .then(|| std::time::Duration::from_secs(config.identity.interval_secs));
        // and the propensity model follows them, at most once per its interval
        let ml_config = config.clone();
        let ml_every = (config.ml.enabled && config.ml.interval_secs > 0)
            .then(|| std::time::Duration::from_secs(config.ml.interval_secs));
        let maintenance_every = (config.maintenance.interval_secs > 0)
            .then(|| std::time::Duration::from_secs(config.maintenance.interval_secs));
        let data_dir = config.data_dir.clone();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut maintained = tokio::time::Instant::now();
            let mut resolved: Option<tokio::time::Instant> = None;
            let mut identity_pending = true;
            let mut scored: Option<tokio::time::Instant> = None;
            let mut ml_pending = true;
            // stored audiences are rerun when the profiles or scores change
            let mut audiences_pending = true;
            // at start, events loaded before may not be modelled yet
            let mut model_pending = true;
            loop {
                let stopping = tokio::select! {
                    _ = tokio::time::sleep(interval) => false,
                    _ = stopped.changed() => true,
                };
                // a last load on the way out takes what arrived since the previous one
                match loader.load().await {
                    Ok(report) => model_pending |= report.events > 0,
                    Err(error) => {
                        tracing::warn!(error = %error, "loading failed; retrying at the next interval");
                    }
                }
                if stopping {
                    break;
                }
                // the derived tables follow each load that brought events
                if model_pending {
                    match modeller.run().await {
                        Ok(report) => {
                            model_pending = false;
                            identity_pending |= report.new_events > 0;
                            ml_pending |= report.new_events > 0;
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "modelling failed; retrying at the next interval");
                        }
                    }
                }
                if let Some(every) = identity_every
                    && identity_pending
                    && resolved.is_none_or(|at| at.elapsed() >= every)
                {
                    resolved = Some(tokio::time::Instant::now());
                    match weft_profiles::resolve(&lake, &identity).await {
                        Ok(_) => {
                            identity_pending = false;
                            audiences_pending = true;
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "identity resolution failed; retrying at the next interval");
                        }
                    }
                }
                if let Some(every) = ml_every
                    && ml_pending
                    && !model_pending
                    && scored.is_none_or(|at| at.elapsed() >= every)
                {
                    scored = Some(tokio::time::Instant::now());
                    match crate::run::run_ml(&ml_config, false).await {
                        Ok(report) => {
                            ml_pending = false;
                            audiences_pending |= report.scored.is_some();
                            for note in report.notes {
                                tracing::info!(note, "propensity");
                            }
                        }
                        Err(error) => {
                            tracing::warn!(error = %error, "the propensity run failed; retrying at the next interval");
                        }
                    }
                }
                if audiences_pending && !model_pending {
                    match run_audiences(&lake, &data_dir).await {
                        Ok(()) => audiences_pending = false,
                        Err(error) => {
                            tracing::warn!(error = %error, "running the audiences failed; retrying at the next interval");
                        }
                    }
                }
                // between loads, so compaction never races the loader's commits
                if maintenance_every.is_some_and(|every| maintained.elapsed() >= every) {
                    maintained = tokio::time::Instant::now();
                    maintain(&lake, &maintenance).await;
                }
            }
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("pipeline task failed")
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Compacts and vacuums the lake, logging what it did; a failure waits for the next turn.
async fn maintain(lake: &weft_lake::Lake, options: &weft_lake::MaintenanceOptions) {
    match weft_lake::maintain(lake, options).await {
        Ok(done) => {
            for table in done {
                tracing::info!(
                    table = %table.table,
                    compacted = table.files_compacted,
                    written = table.files_written,
                    deleted = table.files_deleted,
                    "maintained"
                );
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, "maintenance failed; retrying at the next interval");
        }
    }
}
