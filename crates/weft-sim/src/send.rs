//! Sends the simulated traffic to a running collector over HTTP, as the
//! trackers would: concurrently, retrying what the collector could not take
//! (429, 5xx, a broken connection) as trackers retry.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, mpsc};

use crate::out::{Outputs, Result, Rows, Summary};
use crate::{SimOptions, TrackerRequest};

const ATTEMPTS: u32 = 5;

#[derive(Debug, Default, Clone)]
pub struct SendReport {
    pub requests: u64,
    pub events: u64,
    pub gets: u64,
    /// Final status of every request that got an answer.
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that never got an answer, after every retry.
    pub failures: u64,
    pub retries: u64,
    /// Microseconds from sending to the final answer, per request.
    pub latencies_us: Vec<u32>,
    pub elapsed: Duration,
}

impl SendReport {
    pub fn accepted(&self) -> u64 {
        self.statuses.get(&200).copied().unwrap_or(0)
    }

    pub fn latency_ms(&mut self, quantile: f64) -> f64 {
        self.latencies_us.sort_unstable();
        let Some(last) = self.latencies_us.len().checked_sub(1) else {
            return 0.0;
        };
        f64::from(self.latencies_us[(last as f64 * quantile).round() as usize]) / 1000.0
    }

    fn merge(&mut self, other: SendReport) {
        self.requests += other.requests;
        self.events += other.events;
        self.gets += other.gets;
        for (status, count) in other.statuses {
            *self.statuses.entry(status).or_default() += count;
        }
        self.failures += other.failures;
        self.retries += other.retries;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Generates the simulation, sends its traffic to `base_url` (e.g.
/// `http://127.0.0.1:8080`) with `concurrency` connections, and writes the
/// records and truth to `dir`. `progress` is told how many events were sent.
pub async fn simulate_to_collector(
    options: &SimOptions,
    base_url: &str,
    dir: &Path,
    concurrency: usize,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<(Summary, SendReport)> {
    options.validate()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    // fail fast on a wrong address rather than retrying every request
    let base_url = base_url.trim_end_matches('/');
    client
        .get(format!("{base_url}/health"))
        .send()
        .await
        .map_err(|e| format!("cannot reach the collector at {base_url}: {e}"))?;
    let (sender, receiver) = mpsc::channel::<TrackerRequest>(concurrency * 64);
    let receiver = Arc::new(Mutex::new(receiver));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, receiver, progress) =
            (client.clone(), Arc::clone(&receiver), Arc::clone(&progress));
        let base_url = base_url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut report = SendReport::default();
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(request) = next else { break };
                send_one(&client, &base_url, &request, &mut report).await;
                progress(request.events as u64);
            }
            report
        }));
    }
    let generator_options = options.clone();
    let dir = dir.to_owned();
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(2);
    let generator = tokio::task::spawn_blocking(move || -> Result<Summary> {
        let mut outputs = Outputs::create(&dir)?;
        crate::generate(
            &generator_options,
            64,
            threads,
            |people| Rows::of(&people).map(|rows| (rows, people)),
            |chunk| {
                let (rows, people) = chunk?;
                outputs.append(rows)?;
                for person in people {
                    for request in person.run.requests {
                        sender
                            .blocking_send(request)
                            .map_err(|_| "the senders stopped".to_owned())?;
                    }
                }
                Ok(())
            },
        )?;
        outputs.finish(&generator_options)
    });
    let summary = generator
        .await
        .map_err(|e| format!("the generator failed: {e}"))??;
    let mut report = SendReport::default();
    for worker in workers {
        report.merge(worker.await.map_err(|e| format!("a sender failed: {e}"))?);
    }
    report.elapsed = started.elapsed();
    Ok((summary, report))
}

async fn send_one(
    client: &reqwest::Client,
    base_url: &str,
    request: &TrackerRequest,
    report: &mut SendReport,
) {
    report.requests += 1;
    report.events += request.events as u64;
    report.gets += u64::from(request.method == "GET");
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    for attempt in 1..=ATTEMPTS {
        let url = format!("{base_url}{}", request.path);
        let mut builder = if request.method == "POST" {
            client.post(url)
        } else {
            client.get(url)
        };
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let retry = match builder.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // read the body so the connection is reused
                let _ = response.bytes().await;
                let retryable = status == 429 || status >= 500;
                if !retryable || attempt == ATTEMPTS {
                    *report.statuses.entry(status).or_default() += 1;
                    break;
                }
                true
            }
            Err(_) if attempt < ATTEMPTS => true,
            Err(_) => {
                report.failures += 1;
                break;
            }
        };
        if retry {
            report.retries += 1;
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }
    report
        .latencies_us
        .push(started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
}
