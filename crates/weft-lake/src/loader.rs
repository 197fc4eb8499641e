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
use deltalake::arrow::array::RecordBatch;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::write::SchemaMode;
use tracing::info;
use weft_collect::{Offset, RawLog};
use weft_enrich::{Resolver, process_payload};

use crate::arrow_rows::{
    BAD_ROW_PARTITION, EVENT_PARTITION, bad_rows_batch, event_day, events_batch,
};
use crate::catalog::Lake;
use crate::dedup::{Seen, key_of};
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
    lake: Lake,
    batch_records: usize,
    dedup_window_days: u32,
    /// The keys of loaded events; `None` until read from the table, and again
    /// after a failed load, whose commits may or may not have landed.
    seen: tokio::sync::Mutex<Option<Seen>>,
}

impl Loader {
    pub fn new(log: Arc<dyn RawLog>, resolver: Arc<Resolver>, lake: Lake) -> Self {
        Self {
            log,
            resolver,
            lake,
            batch_records: 10_000,
            dedup_window_days: 3,
            seen: tokio::sync::Mutex::new(None),
        }
    }

    /// How many days of event dates, back from the newest, deduplication looks at.
    pub fn with_dedup_window_days(mut self, days: u32) -> Self {
        self.dedup_window_days = days;
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
        loop {
            let events_next = table_offset(&events_table).await?;
            let bad_rows_next = table_offset(&bad_rows_table).await?;
            let start = events_next.min(bad_rows_next);
            report.offset = start;
            let records = self.log.read(start, self.batch_records)?;
            let Some(last) = records.last() else { break };
            let end = last.offset + 1;
            let etl_tstamp = now_ms();
            let mut events = Vec::new();
            let mut bad_rows = Vec::new();
            let mut duplicates = 0;
            for record in &records {
                let processed = process_payload(&record.payload, &self.resolver, etl_tstamp);
                if record.offset >= events_next {
                    for event in processed.events {
                        let day = event_day(&event, etl_tstamp);
                        match key_of(&event) {
                            Some(key) if !seen.insert(key, day) => duplicates += 1,
                            _ => events.push(event),
                        }
                    }
                }
                if record.offset >= bad_rows_next {
                    bad_rows.extend(processed.bad_rows);
                }
            }
            report.records += end - start;
            if events_next < end {
                report.events += events.len();
                report.duplicates += duplicates;
                let batch = events_batch(&events, etl_tstamp)?;
                events_table =
                    append(events_table, batch, EVENT_PARTITION, end, "atomic.events").await?;
                report.commits += 1;
            }
            if bad_rows_next < end {
                report.bad_rows += bad_rows.len();
                let batch = bad_rows_batch(&bad_rows)?;
                bad_rows_table = append(
                    bad_rows_table,
                    batch,
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
                records = end - start,
                events = events.len(),
                duplicates,
                bad_rows = bad_rows.len(),
                offset = end,
                "loaded a batch"
            );
        }
        Ok(report)
    }
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
