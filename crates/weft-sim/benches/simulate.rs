//! How fast the simulator produces traffic: written as a raw-log backfill
//! (`weft simulate --out`), and sent over HTTP to weft's own collector running
//! in this process (`weft simulate --collector`), with fsync on as in
//! production. `cargo bench -p weft-sim`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft_collect::metrics::Metrics;
use weft_collect::service::{Collector, router};
use weft_collect::{FileLog, FileLogOptions};
use weft_core::config::{CollectorConfig, ServerConfig};
use weft_sim::SimOptions;
use weft_sim::out::write_backfill;
use weft_sim::send::simulate_to_collector;

/// As in the `weft` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const VISITORS: u64 = 2_000;

fn options() -> SimOptions {
    SimOptions {
        visitors: VISITORS,
        ..SimOptions::default()
    }
}

fn backfill(c: &mut Criterion) {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let probe = tempfile::tempdir().unwrap();
    let (summary, bytes) = write_backfill(&options(), probe.path(), threads, &|_| {}).unwrap();
    println!(
        "backfill of {VISITORS} visitors: {} events, {} requests, raw log {:.1} MB ({:.0} bytes/event), on {threads} threads",
        summary.counts.events,
        summary.counts.requests,
        bytes as f64 / 1e6,
        bytes as f64 / summary.counts.events as f64
    );
    let mut group = c.benchmark_group("simulate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(summary.counts.events));
    group.bench_function("backfill_events", |b| {
        b.iter(|| {
            let dir = tempfile::tempdir().unwrap();
            write_backfill(&options(), dir.path(), threads, &|_| {}).unwrap()
        })
    });
    group.finish();
}

fn over_http(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let raw = tempfile::tempdir().unwrap();
    let addr: SocketAddr = runtime.block_on(async {
        let log = Arc::new(FileLog::open(raw.path(), FileLogOptions::default()).unwrap());
        let collector =
            Collector::new(CollectorConfig::default(), log, Arc::new(Metrics::new())).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let limits = ServerConfig::default();
            weft_collect::server::serve(
                listener,
                router(Arc::new(collector)),
                &limits,
                std::future::pending(),
            )
            .await
        });
        addr
    });
    let url = format!("http://{addr}");
    let options = SimOptions {
        visitors: VISITORS / 4,
        ..SimOptions::default()
    };
    let out = tempfile::tempdir().unwrap();
    let (summary, report) = runtime
        .block_on(simulate_to_collector(
            &options,
            &url,
            out.path(),
            32,
            Arc::new(|_| {}),
        ))
        .unwrap();
    assert_eq!(report.accepted(), report.requests);
    println!(
        "over HTTP, {} visitors: {} events in {} requests, p50 {:.2} ms",
        options.visitors,
        summary.counts.events,
        summary.counts.requests,
        report.clone().latency_ms(0.5)
    );
    let mut group = c.benchmark_group("simulate");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.throughput(Throughput::Elements(summary.counts.events));
    group.bench_function("http_events", |b| {
        b.iter(|| {
            runtime
                .block_on(simulate_to_collector(
                    &options,
                    &url,
                    out.path(),
                    32,
                    Arc::new(|_| {}),
                ))
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, backfill, over_http);
criterion_main!(benches);
