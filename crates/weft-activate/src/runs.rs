//! Run history: one row per sync run in the Delta table
//! `activation.sync_runs`, so what each run sent is queryable with SQL.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::protocol::SaveMode;
use serde::Serialize;
use weft_lake::catalog::Lake;

use crate::{ActivateError, Result};

/// What one run found and did.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub sync: String,
    pub run_id: String,
    pub destination: String,
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub dry_run: bool,
    pub added: usize,
    pub changed: usize,
    pub removed: usize,
    pub unchanged: usize,
    /// Changes the run sends (or, dry, would send).
    pub to_send: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Rows that had failed before and were sent again.
    pub retried: usize,
    /// Rows no longer sent after failing too often.
    pub abandoned: usize,
    pub without_consent: usize,
    pub without_key: usize,
    /// Requests retried after a 429, a 5xx or a timeout.
    pub retries: usize,
    /// `succeeded`, `partial` (some rows refused), `stopped` or `dry_run`.
    pub status: String,
    pub error: Option<String>,
    /// Where the run's time went (not kept in `activation.sync_runs`).
    pub stages: Stages,
}

/// Milliseconds spent in each stage of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stages {
    /// Finding the members (the audience query or the journey branch).
    pub members_ms: u64,
    /// Reading and hashing their profile rows.
    pub read_ms: u64,
    /// Loading what was delivered before.
    pub state_ms: u64,
    /// Comparing the rows with it.
    pub diff_ms: u64,
    /// Sending and checkpointing.
    pub deliver_ms: u64,
}

pub fn schema() -> SchemaRef {
    let timestamp = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let count = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        Field::new("sync", DataType::Utf8, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("destination", DataType::Utf8, false),
        Field::new("mode", DataType::Utf8, false),
        Field::new("started_at", timestamp(), false),
        Field::new("finished_at", timestamp(), false),
        Field::new("dry_run", DataType::Boolean, false),
        count("added"),
        count("changed"),
        count("removed"),
        count("unchanged"),
        count("to_send"),
        count("delivered"),
        count("failed"),
        count("retried"),
        count("abandoned"),
        count("without_consent"),
        count("without_key"),
        count("retries"),
        Field::new("status", DataType::Utf8, false),
        Field::new("error", DataType::Utf8, true),
    ]))
}

/// Appends `run` to `activation.sync_runs`.
pub async fn append(lake: &Lake, run: &RunRecord) -> Result<()> {
    let text = |value: &str| Arc::new(StringArray::from(vec![value])) as ArrayRef;
    let time = |at: DateTime<Utc>| {
        Arc::new(TimestampMicrosecondArray::from(vec![at.timestamp_micros()]).with_timezone("UTC"))
            as ArrayRef
    };
    let count = |n: usize| Arc::new(Int64Array::from(vec![n as i64])) as ArrayRef;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            text(&run.sync),
            text(&run.run_id),
            text(&run.destination),
            text(&run.mode),
            time(run.started_at),
            time(run.finished_at),
            Arc::new(BooleanArray::from(vec![run.dry_run])),
            count(run.added),
            count(run.changed),
            count(run.removed),
            count(run.unchanged),
            count(run.to_send),
            count(run.delivered),
            count(run.failed),
            count(run.retried),
            count(run.abandoned),
            count(run.without_consent),
            count(run.without_key),
            count(run.retries),
            text(&run.status),
            Arc::new(StringArray::from(vec![run.error.as_deref()])),
        ],
    )?;
    append_batch(lake, "sync_runs", batch).await
}

/// Appends `batch` to the Delta table `activation.{table}`.
pub(crate) async fn append_batch(lake: &Lake, table: &str, batch: RecordBatch) -> Result<()> {
    lake.table("activation", table)
        .await?
        .write(vec![batch])
        .with_save_mode(SaveMode::Append)
        .await
        .map_err(|source| ActivateError::Delta {
            table: format!("activation.{table}"),
            source: Box::new(source),
        })?;
    Ok(())
}

/// The last `limit` runs of `sync`, newest first (none before its first run).
pub async fn history(lake: &Lake, sync: &str, limit: usize) -> Result<Vec<RecordBatch>> {
    use deltalake::datafusion::prelude::{col, lit};
    let tables = [("activation".to_owned(), "sync_runs".to_owned())];
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    if !weft_lake::sql::has_table(&context, "activation.sync_runs") {
        return Ok(Vec::new());
    }
    Ok(context
        .table("activation.sync_runs")
        .await?
        .filter(col("sync").eq(lit(sync)))?
        .sort(vec![col("started_at").sort(false, false)])?
        .limit(0, Some(limit))?
        .collect()
        .await?)
}
