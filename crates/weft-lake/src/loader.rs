//! The loader: raw log → `atomic.events` and `atomic.bad_rows`, exactly once.
//!
//! Each Delta commit carries an application transaction (`txn`) whose version is
//! the raw log offset the table has taken everything below. A restarted loader
//! reads each table's version and resumes from the lower of the two, giving each
//! table only the records it does not have yet: a loader killed between (or
//! during) commits neither drops nor repeats an event. Only once both tables
//! have a batch does the loader commit its raw log offset, so the log keeps
//! everything a table still needs.
//!
//! An event whose id and fingerprint the table already has is a resend and is
//! counted, not loaded (see [`crate::dedup`]).

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{BooleanArray, RecordBatch};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use tracing::info;
use weft_collect::{LogRecord, Offset, RawLog};
use weft_enrich::{Enrichments, Processed, Resolver, process_payload_with};

use crate::arrow_rows::{
    BAD_ROW_PARTITION, EVENT_PARTITION, bad_rows_batch, event_day, events_batch,
};
use crate::catalog::Lake;
use crate::dedup::{Key, Seen, key_of};
use crate::{LakeError, Result};

/// The application id of the loader's Delta transactions, and its raw log consumer name.
pub const LOADER_APP_ID: &str = "weft-loader";

/// What one `load` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub records: u64,
    pub events: usize,
    pub bad_rows: usize,
    /// Events not loaded because the table already had them (same id and fingerprint).
    pub duplicates: usize,
    pub commits: usize,
    /// The raw log offset both tables have reached.
    pub offset: Offset,
}

pub struct Loader {
    log: Arc<dyn RawLog>,
    resolver: Arc<Resolver>,
    enrichments: Arc<Enrichments>,
    lake: Lake,
    batch_records: usize,
    dedup_window_days: u32,
    /// The newest `load_tstamp` given (ms): each batch gets a later one, so
    /// "loaded after T" means the same to every reader (see weft-model).
    last_load_ms: Arc<std::sync::atomic::AtomicI64>,
    /// The keys of loaded events; `None` until read from the table, and again
    /// after a failed load, whose commits may or may not have landed.
    seen: tokio::sync::Mutex<Option<Seen>>,
}

impl Loader {
    pub fn new(log: Arc<dyn RawLog>, resolver: Arc<Resolver>, lake: Lake) -> Self {
        Self {
            log,
            resolver,
            enrichments: Arc::new(Enrichments::none()),
            lake,
            batch_records: 10_000,
            dedup_window_days: 3,
            last_load_ms: Arc::new(std::sync::atomic::AtomicI64::new(0)),
            seen: tokio::sync::Mutex::new(None),
        }
    }

    /// How many days of event dates, back from the newest, deduplication looks at.
    pub fn with_dedup_window_days(mut self, days: u32) -> Self {
        self.dedup_window_days = days;
        self
    }

    /// The enrichments every valid event goes through before it is loaded.
    pub fn with_enrichments(mut self, enrichments: Arc<Enrichments>) -> Self {
        self.enrichments = enrichments;
        self
    }

    /// Raw log records per micro-batch (each makes at most one commit per table).
    pub fn with_batch_records(mut self, records: usize) -> Self {
        self.batch_records = records.max(1);
        self
    }

    /// Loads everything in the raw log that the tables do not have yet.
    pub async fn load(&self) -> Result<LoadReport> {
        let mut slot = self.seen.lock().await;
        let events_table = self.lake.table("atomic", "events").await?;
        let mut seen = match slot.take() {
            Some(seen) => seen,
            None => Seen::from_table(&events_table, self.dedup_window_days).await?,
        };
        let report = self.load_from(events_table, &mut seen).await?;
        *slot = Some(seen);
        Ok(report)
    }

    async fn load_from(&self, mut events_table: DeltaTable, seen: &mut Seen) -> Result<LoadReport> {
        let mut bad_rows_table = self.lake.table("atomic", "bad_rows").await?;
        let mut report = LoadReport::default();
        if self.log.committed(LOADER_APP_ID)?.is_none() {
            // known to the log from now on, so it keeps what the loader has not read
            self.log.commit(LOADER_APP_ID, 0)?;
        }
        let mut events_next = table_offset(&events_table).await?;
        let mut bad_rows_next = table_offset(&bad_rows_table).await?;
        report.offset = events_next.min(bad_rows_next);
        let mut next = Some(self.prepare(events_next, bad_rows_next));
        while let Some(preparing) = next.take() {
            let Some(batch) = preparing.await.map_err(std::io::Error::other)?? else {
                break;
            };
            let end = batch.end;
            // the next batch is parsed while this one is written
            events_next = events_next.max(end);
            bad_rows_next = bad_rows_next.max(end);
            next = Some(self.prepare(events_next, bad_rows_next));

            report.records += end - batch.start;
            let mut loaded = 0;
            let mut duplicates = 0;
            if let Some(events) = batch.events {
                // in log order, so the first of two copies is the one kept
                let keep: BooleanArray = events
                    .keys
                    .iter()
                    .map(|key| Some(key.is_none_or(|(key, day)| seen.insert(key, day))))
                    .collect();
                duplicates = keep.false_count();
                let rows = if duplicates == 0 {
                    events.rows
                } else {
                    filter_record_batch(&events.rows, &keep)?
                };
                loaded = rows.num_rows();
                report.events += loaded;
                report.duplicates += duplicates;
                events_table =
                    append(events_table, rows, EVENT_PARTITION, end, "atomic.events").await?;
                report.commits += 1;
            }
            let bad_rows = batch.bad_rows.as_ref().map_or(0, RecordBatch::num_rows);
            if let Some(rows) = batch.bad_rows {
                report.bad_rows += bad_rows;
                bad_rows_table = append(
                    bad_rows_table,
                    rows,
                    BAD_ROW_PARTITION,
                    end,
                    "atomic.bad_rows",
                )
                .await?;
                report.commits += 1;
            }
            self.log.commit(LOADER_APP_ID, end)?;
            seen.prune();
            report.offset = end;
            info!(
                records = end - batch.start,
                events = loaded,
                duplicates,
                bad_rows,
                offset = end,
                "loaded a batch"
            );
        }
        Ok(report)
    }

    /// Reads and parses the next batch on blocking threads: what each table
    /// still needs from the lower of the two offsets on.
    fn prepare(
        &self,
        events_next: Offset,
        bad_rows_next: Offset,
    ) -> tokio::task::JoinHandle<Result<Option<Prepared>>> {
        let log = Arc::clone(&self.log);
        let resolver = Arc::clone(&self.resolver);
        let enrichments = Arc::clone(&self.enrichments);
        let batch_records = self.batch_records;
        let last_load_ms = Arc::clone(&self.last_load_ms);
        tokio::task::spawn_blocking(move || {
            let start = events_next.min(bad_rows_next);
            let records = log.read(start, batch_records)?;
            let Some(last) = records.last() else {
                return Ok(None);
            };
            let end = last.offset + 1;
            let now = now_ms();
            let etl_tstamp = match last_load_ms.fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |last| Some(now.max(last + 1)),
            ) {
                Ok(last) | Err(last) => now.max(last + 1),
            };
            let processed = process_in_parallel(&records, &resolver, &enrichments, etl_tstamp);
            let mut events = Vec::new();
            let mut bad_rows = Vec::new();
            for (record, processed) in records.iter().zip(processed) {
                if record.offset >= events_next {
                    events.extend(processed.events);
                }
                if record.offset >= bad_rows_next {
                    bad_rows.extend(processed.bad_rows);
                }
            }
            let events = (events_next < end)
                .then(|| -> Result<PreparedEvents> {
                    let keys = events
                        .iter()
                        .map(|event| key_of(event).map(|key| (key, event_day(event, etl_tstamp))))
                        .collect();
                    Ok(PreparedEvents {
                        rows: events_batch(&events, etl_tstamp)?,
                        keys,
                    })
                })
                .transpose()?;
            let bad_rows = (bad_rows_next < end)
                .then(|| bad_rows_batch(&bad_rows))
                .transpose()?;
            Ok(Some(Prepared {
                start,
                end,
                events,
                bad_rows,
            }))
        })
    }
}

/// A batch of the raw log, parsed and in Arrow form, ready to append.
struct Prepared {
    start: Offset,
    end: Offset,
    /// `None` when the events table already has the whole batch.
    events: Option<PreparedEvents>,
    bad_rows: Option<RecordBatch>,
}

struct PreparedEvents {
    rows: RecordBatch,
    /// Each row's dedup key and event date.
    keys: Vec<Option<(Key, i32)>>,
}

/// `process_payload_with` over the records, split across the machine's cores, in order.
fn process_in_parallel(
    records: &[LogRecord],
    resolver: &Resolver,
    enrichments: &Enrichments,
    etl_tstamp: i64,
) -> Vec<Processed> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = records.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = records
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|record| {
                            process_payload_with(&record.payload, resolver, enrichments, etl_tstamp)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The raw log offset a table has everything below.
async fn table_offset(table: &DeltaTable) -> Result<Offset> {
    let Ok(snapshot) = table.snapshot() else {
        return Ok(0); // not created yet
    };
    let version = snapshot
        .transaction_version(table.log_store().as_ref(), LOADER_APP_ID)
        .await
        .map_err(|source| LakeError::Delta {
            table: table.table_url().to_string(),
            source,
        })?;
    Ok(version.map_or(0, |v| Offset::try_from(v).unwrap_or(0)))
}

/// Appends a batch (possibly empty, to record progress) with the offset it reaches.
async fn append(
    table: DeltaTable,
    batch: RecordBatch,
    partition: &str,
    end: Offset,
    name: &str,
) -> Result<DeltaTable> {
    let version = i64::try_from(end).unwrap_or(i64::MAX);
    table
        .write(vec![batch])
        .with_partition_columns([partition])
        .with_schema_mode(SchemaMode::Merge)
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transaction(Transaction::new(LOADER_APP_ID, version)),
        )
        .await
        .map_err(|source| LakeError::Delta {
            table: name.to_owned(),
            source,
        })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
