//! Delivery: a run's changes sent to a destination in batches, each
//! acknowledged batch checkpointed before the next is sent, so a crash
//! and a rerun neither skip nor repeat a row.
//!
//! A batch the service cannot take now (429, 5xx, a timeout) is retried
//! with exponential backoff and full jitter, or after the service's
//! Retry-After; a batch refused as a whole is halved until the refused
//! rows stand alone; a fatal answer stops the run with what was done kept.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use serde_json::Value;
use tokio::time::{Instant, sleep, sleep_until};
use weft_meta::Store;
use weft_meta::state::Checkpoint;

use crate::Result;
use crate::destination::{Batch, Built, RowResults, RunEnd, SendError};
use crate::diff::{Change, Plan};
use crate::rows::Field;

/// The longest wait between two tries of one request.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// What a run's delivery did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Changes the destination acknowledged.
    pub delivered: usize,
    /// Changes it refused, recorded with its message for a later run.
    pub failed: usize,
    /// Requests sent, retries included.
    pub requests: usize,
    /// Requests tried again after a retryable answer.
    pub retries: usize,
    /// Batches halved because the service refused them whole.
    pub splits: usize,
    /// Why the run stopped before its last change, if it did.
    pub stopped: Option<String>,
}

/// What one run sends: its identity and the rows' fields.
pub struct Run<'a> {
    pub sync: &'a str,
    pub run_id: &'a str,
    pub fields: &'a [Field],
    /// Refusals of one row after which it is no longer sent.
    pub abandon_after: i64,
}

/// Sends `plan` to `built`, checkpointing into `store` after each batch.
pub async fn deliver(built: &Built, store: &Store, run: &Run<'_>, plan: Plan) -> Result<Delivery> {
    let Plan {
        mut changes,
        forget,
        ..
    } = plan;
    if !forget.is_empty() {
        let removed = forget.iter().map(String::as_str).collect();
        store.checkpoint(
            run.sync,
            &Checkpoint {
                removed,
                ..Checkpoint::default()
            },
            run.abandon_after,
        )?;
    }
    fill_previous(
        store,
        run.sync,
        &mut changes,
        built.destination.wants_previous(),
    )?;

    let size = built.batch_size();
    let total = changes.len();
    let mut pending: VecDeque<(usize, usize)> = (0..total)
        .step_by(size.max(1))
        .map(|start| (start, (start + size).min(total)))
        .collect();
    let mut delivery = Delivery::default();
    let mut pace = Pace::new(built.common.requests_per_second);
    let mut seq = 0;
    while let Some((start, end)) = pending.pop_front() {
        seq += 1;
        let chunk = &changes[start..end];
        let batch = Batch {
            sync: run.sync,
            run_id: run.run_id,
            fields: run.fields,
            changes: chunk,
            seq,
            last: pending.is_empty(),
            total,
        };
        match send_with_retries(built, &batch, &mut pace, &mut delivery).await {
            Ok(results) => {
                record(store, run, chunk, &results, &mut delivery)?;
            }
            Err(SendError::Reject(reason)) if chunk.len() == 1 => {
                let results: RowResults = vec![Some(reason)];
                record(store, run, chunk, &results, &mut delivery)?;
            }
            Err(SendError::Reject(_)) => {
                delivery.splits += 1;
                let middle = start + chunk.len() / 2;
                pending.push_front((middle, end));
                pending.push_front((start, middle));
            }
            Err(error) => {
                tracing::warn!(sync = run.sync, %error, "delivery stopped");
                delivery.stopped = Some(error.to_string());
                return Ok(delivery);
            }
        }
    }
    let end = RunEnd {
        sync: run.sync,
        run_id: run.run_id,
        fields: run.fields,
        sent: delivery.delivered,
        failed: delivery.failed,
    };
    if let Err(error) = built.destination.finish(&end).await {
        delivery.stopped = Some(error.to_string());
    }
    Ok(delivery)
}

/// A removal sends what was last delivered for its key, so a destination
/// that needs the identifiers (hashed emails, an external id) has them;
/// so does a changed row, for a destination that wants the old values.
fn fill_previous(
    store: &Store,
    sync: &str,
    changes: &mut [Change],
    changed_too: bool,
) -> Result<()> {
    let wanted = |change: &Change| change.op.removes() || (changed_too && change.replaces);
    let keys: Vec<&str> = changes
        .iter()
        .filter(|change| wanted(change))
        .map(|change| change.key.as_str())
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let sent = store.sent(sync, &keys)?;
    for change in changes.iter_mut().filter(|change| wanted(change)) {
        if let Some(json) = sent.get(&change.key) {
            let values = serde_json::from_str::<Vec<Value>>(json).unwrap_or_default();
            if change.op.removes() {
                change.values = values;
            } else {
                change.previous = Some(values);
            }
        }
    }
    Ok(())
}

async fn send_with_retries(
    built: &Built,
    batch: &Batch<'_>,
    pace: &mut Pace,
    delivery: &mut Delivery,
) -> Result<RowResults, SendError> {
    let common = &built.common;
    let mut attempt = 0;
    loop {
        pace.wait().await;
        delivery.requests += 1;
        let answer = match tokio::time::timeout(common.timeout, built.destination.send(batch)).await
        {
            Ok(answer) => answer,
            Err(_) => Err(SendError::Retry {
                reason: format!("no answer within {:?}", common.timeout),
                after: None,
            }),
        };
        match answer {
            Ok(results) if results.len() == batch.changes.len() => return Ok(results),
            Ok(results) => {
                return Err(SendError::Fatal(format!(
                    "the destination answered for {} rows of {}",
                    results.len(),
                    batch.changes.len()
                )));
            }
            Err(SendError::Retry { reason, after }) => {
                if attempt >= common.max_retries {
                    return Err(SendError::Fatal(format!(
                        "gave up after {} tries: {reason}",
                        attempt + 1
                    )));
                }
                let wait = after.unwrap_or_else(|| jitter(common.backoff, attempt));
                tracing::debug!(sync = batch.sync, %reason, ?wait, "retrying a batch");
                attempt += 1;
                delivery.retries += 1;
                sleep(wait.min(MAX_WAIT)).await;
            }
            Err(other) => return Err(other),
        }
    }
}

/// Full jitter: a random wait up to `backoff × 2^attempt`.
fn jitter(backoff: Duration, attempt: u32) -> Duration {
    let ceiling = backoff.saturating_mul(1 << attempt.min(16)).min(MAX_WAIT);
    ceiling.mul_f64(rand::rng().random::<f64>())
}

/// One checkpoint per acknowledged batch: delivered rows and removals
/// settle their state and any earlier failure; refused rows are recorded.
fn record(
    store: &Store,
    run: &Run<'_>,
    chunk: &[Change],
    results: &RowResults,
    delivery: &mut Delivery,
) -> Result<()> {
    let mut checkpoint = Checkpoint::default();
    for (change, result) in chunk.iter().zip(results) {
        match result {
            None => {
                if change.op.removes() {
                    checkpoint.removed.push(&change.key);
                } else {
                    checkpoint
                        .delivered
                        .push((&change.key, change.hash, &change.json));
                }
                checkpoint.cleared.push(&change.key);
                delivery.delivered += 1;
            }
            Some(message) => {
                checkpoint
                    .failed
                    .push((&change.key, change.hash, message.clone()));
                delivery.failed += 1;
            }
        }
    }
    store.checkpoint(run.sync, &checkpoint, run.abandon_after)?;
    Ok(())
}

/// Keeps requests at most `per_second` apart (0: no limit).
struct Pace {
    gap: Option<Duration>,
    next: Option<Instant>,
}

impl Pace {
    fn new(per_second: f64) -> Self {
        Pace {
            gap: (per_second > 0.0).then(|| Duration::from_secs_f64(1.0 / per_second)),
            next: None,
        }
    }

    async fn wait(&mut self) {
        let Some(gap) = self.gap else { return };
        if let Some(next) = self.next {
            sleep_until(next).await;
        }
        self.next = Some(Instant::now() + gap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_the_doubling_ceiling() {
        for attempt in 0..6 {
            let wait = jitter(Duration::from_millis(100), attempt);
            assert!(wait <= Duration::from_millis(100 << attempt), "{wait:?}");
        }
        assert!(jitter(Duration::from_secs(10), 30) <= MAX_WAIT);
    }
}
