//! A deterministic simulation of an online grocer's visitors and customers:
//! their tracker traffic (as real Snowplow trackers send it), their records in
//! the shop's other systems (with realistic noise), and the ground truth
//! behind both (who is who, and who really buys).
//!
//! Every person is derived from the seed and their index alone, so people are
//! generated in parallel, in chunks, and the output is the same byte for byte.

pub mod catalog;
pub mod out;
pub mod people;
pub mod records;
pub mod schemas;
pub mod send;
pub mod tracker;
pub mod truth;

mod behaviour;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

pub use behaviour::{Order, PersonRun, PersonTruth, person_id};
pub use records::CustomerRecord;
pub use schemas::SCHEMAS;
pub use tracker::{TP2_PATH, TrackerRequest};

pub const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone)]
pub struct SimOptions {
    /// How many people visit the shop in the period.
    pub visitors: u64,
    pub seed: u64,
    /// Length of the simulated period, ending at `end_ms`.
    pub days: u32,
    /// The last days of the period, after the cut-off, in which conversions are predicted.
    pub prediction_days: u32,
    /// End of the period, ms since the epoch.
    pub end_ms: i64,
    /// The shop's origin, e.g. `https://shop.example.com`.
    pub site: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            visitors: 1_000,
            seed: 42,
            days: 60,
            prediction_days: 14,
            // 2026-11-01T00:00Z: a fixed default keeps library output reproducible
            end_ms: 1_793_491_200_000,
            site: "https://shop.example.com".into(),
        }
    }
}

impl SimOptions {
    pub fn start_ms(&self) -> i64 {
        self.end_ms - i64::from(self.days) * DAY_MS
    }

    /// Where the prediction window starts: behaviour before it is what a model may see.
    pub fn cutoff_ms(&self) -> i64 {
        self.end_ms - i64::from(self.prediction_days) * DAY_MS
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.visitors == 0 {
            return Err("visitors must be at least 1".into());
        }
        if self.prediction_days == 0 || self.prediction_days >= self.days {
            return Err(format!(
                "prediction days ({}) must be at least 1 and fewer than the period's days ({})",
                self.prediction_days, self.days
            ));
        }
        if !(self.site.starts_with("http://") || self.site.starts_with("https://"))
            || self.site.ends_with('/')
        {
            return Err(format!(
                "site must be an origin like https://shop.example.com, not {:?}",
                self.site
            ));
        }
        Ok(())
    }
}

/// One simulated person: everything they sent, their records and their truth.
pub struct Person {
    pub index: u64,
    pub run: PersonRun,
    pub records: Vec<CustomerRecord>,
}

impl Person {
    pub fn generate(options: &SimOptions, index: u64) -> Self {
        let run = behaviour::simulate_person(options, index);
        let records = records::records_of(options, index, &run);
        Self {
            index,
            run,
            records,
        }
    }
}

/// Generates people `0..visitors` in chunks on `threads` threads, maps each
/// chunk with `work` (on the worker), and hands the results to `sink` in
/// chunk order, so the output does not depend on scheduling.
pub fn generate<T: Send>(
    options: &SimOptions,
    chunk: u64,
    threads: usize,
    work: impl Fn(Vec<Person>) -> T + Sync,
    mut sink: impl FnMut(T) -> Result<(), String>,
) -> Result<(), String> {
    let chunk = chunk.max(1);
    let chunks = options.visitors.div_ceil(chunk);
    let next = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let (sender, receiver) = mpsc::sync_channel::<(u64, T)>(threads * 2);
        for _ in 0..threads.max(1) {
            let (sender, next, work) = (sender.clone(), &next, &work);
            scope.spawn(move || {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= chunks {
                        break;
                    }
                    let first = index * chunk;
                    let last = (first + chunk).min(options.visitors);
                    let people = (first..last)
                        .map(|i| Person::generate(options, i))
                        .collect();
                    if sender.send((index, work(people))).is_err() {
                        break; // the sink failed
                    }
                }
            });
        }
        drop(sender);
        let mut waiting = BTreeMap::new();
        let mut expected = 0;
        for (index, result) in receiver {
            waiting.insert(index, result);
            while let Some(result) = waiting.remove(&expected) {
                if let Err(error) = sink(result) {
                    // stop the workers: they see the closed channel
                    next.store(chunks, Ordering::Relaxed);
                    return Err(error);
                }
                expected += 1;
            }
        }
        Ok(())
    })
}

/// A `payload_data` POST body with `events` events of the simulated shop's
/// browsers, as the browser tracker batches them.
pub fn event_batch(events: usize, seed: u64) -> String {
    let options = SimOptions {
        seed,
        ..SimOptions::default()
    };
    let mut all: Vec<serde_json::Value> = Vec::new();
    let mut index = 0;
    while all.len() < events {
        for request in Person::generate(&options, index).run.requests {
            if let Some(body) = request.body
                && let Ok(serde_json::Value::Object(mut envelope)) = serde_json::from_str(&body)
                && let Some(serde_json::Value::Array(batch)) = envelope.remove("data")
            {
                all.extend(batch);
            }
        }
        index += 1;
    }
    all.truncate(events);
    serde_json::json!({"schema": tracker::PAYLOAD_DATA, "data": all}).to_string()
}

pub(crate) fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// Midnight UTC starting `date` (`YYYY-MM-DD`), ms since the epoch.
pub fn day_start_ms(date: &str) -> Result<i64, String> {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|day| {
            day.and_time(chrono::NaiveTime::MIN)
                .and_utc()
                .timestamp_millis()
        })
        .map_err(|e| format!("not a date (YYYY-MM-DD): {date:?}: {e}"))
}

/// Midnight UTC today: the default end of a simulated period, so its data looks current.
pub fn today_start_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    now - now.rem_euclid(DAY_MS)
}
