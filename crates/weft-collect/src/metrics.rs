//! Collector metrics in the Prometheus text format, served at `/metrics`.

use std::sync::atomic::Ordering;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::raw_log::RawLog;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_bytes: Counter,
    pub errors: Family<ErrorLabels, Counter>,
    pub latency: Histogram,
    log_end_offset: Gauge,
    log_records: Gauge,
    log_bytes: Gauge,
    log_syncs: Gauge,
    consumer_lag: Family<ConsumerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("weft");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_bytes = Counter::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let latency = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
        let log_end_offset = Gauge::default();
        let log_records = Gauge::default();
        let log_bytes = Gauge::default();
        let log_syncs = Gauge::default();
        let consumer_lag = Family::<ConsumerLabels, Gauge>::default();
        registry.register(
            "collector_requests",
            "Requests answered, by endpoint and status",
            requests.clone(),
        );
        registry.register(
            "collector_request_bytes",
            "Request body bytes received",
            request_bytes.clone(),
        );
        registry.register(
            "collector_errors",
            "Requests not stored as sent, by reason",
            errors.clone(),
        );
        registry.register(
            "collector_request_duration_seconds",
            "Time from request to answer, including the durable write",
            latency.clone(),
        );
        registry.register(
            "raw_log_end_offset",
            "Offset the next raw log record will get",
            log_end_offset.clone(),
        );
        registry.register(
            "raw_log_written_records",
            "Records written to the raw log by this process",
            log_records.clone(),
        );
        registry.register(
            "raw_log_written_bytes",
            "Bytes written to the raw log by this process",
            log_bytes.clone(),
        );
        registry.register(
            "raw_log_syncs",
            "fdatasync calls by the raw log writer (group commits)",
            log_syncs.clone(),
        );
        registry.register(
            "raw_log_consumer_lag_records",
            "Records in the raw log a consumer has not committed yet",
            consumer_lag.clone(),
        );
        Self {
            registry,
            requests,
            request_bytes,
            errors,
            latency,
            log_end_offset,
            log_records,
            log_bytes,
            log_syncs,
            consumer_lag,
        }
    }

    pub fn error(&self, reason: &'static str) {
        self.errors.get_or_create(&ErrorLabels { reason }).inc();
    }

    /// Reads the log's state into the gauges and renders everything.
    pub fn render(&self, log: &dyn RawLog) -> String {
        {
            let end = log.end_offset();
            self.log_end_offset.set(to_i64(end));
            if let Some(stats) = log.writer_stats() {
                self.log_records
                    .set(to_i64(stats.records.load(Ordering::Relaxed)));
                self.log_bytes
                    .set(to_i64(stats.bytes.load(Ordering::Relaxed)));
                self.log_syncs
                    .set(to_i64(stats.syncs.load(Ordering::Relaxed)));
            }
            if let Ok(consumers) = log.consumers() {
                for (consumer, committed) in consumers {
                    self.consumer_lag
                        .get_or_create(&ConsumerLabels { consumer })
                        .set(to_i64(end.saturating_sub(committed)));
                }
            }
        }
        let mut out = String::new();
        // writing into a String cannot fail
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("encode metrics");
        out
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
