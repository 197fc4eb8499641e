//! Who is in each audience over time. `audiences.membership` holds one row
//! per stay of a customer in an audience (entered_at, exited_at: open while
//! they are in it); `audiences.runs` one row per run with its counts, for
//! growth and churn. Syncs diff against the open rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::datafusion::prelude::{col, lit};
use deltalake::protocol::SaveMode;
use serde::Serialize;
use weft_lake::catalog::Lake;

use crate::{AudienceError, Result};

/// What one run changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub audience: String,
    pub version: i64,
    pub members: usize,
    pub entered: usize,
    pub exited: usize,
}

fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

pub fn membership_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("audience", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("entered_at", timestamp(), false),
        Field::new("exited_at", timestamp(), true),
    ]))
}

pub fn runs_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("audience", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("run_at", timestamp(), false),
        Field::new("members", DataType::Int64, false),
        Field::new("entered", DataType::Int64, false),
        Field::new("exited", DataType::Int64, false),
    ]))
}

/// One stay in the audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stay {
    pub customer_id: String,
    pub entered_at: i64,
    pub exited_at: Option<i64>,
}

/// Every stay of `audience` so far (micros since the epoch), oldest first.
pub async fn history(lake: &Lake, audience: &str) -> Result<Vec<Stay>> {
    let tables = [("audiences".to_owned(), "membership".to_owned())];
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    if !weft_lake::sql::has_table(&context, "audiences.membership") {
        return Ok(Vec::new());
    }
    let batches = context
        .table("audiences.membership")
        .await?
        .filter(col("audience").eq(lit(audience)))?
        .select_columns(&["customer_id", "entered_at", "exited_at"])?
        .collect()
        .await?;
    let mut stays = Vec::new();
    for batch in &batches {
        let ids = crate::engine::texts(batch.column(0))?;
        let entered = batch
            .column(1)
            .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        let exited = batch
            .column(2)
            .as_primitive::<deltalake::arrow::datatypes::TimestampMicrosecondType>();
        for (row, id) in ids.into_iter().enumerate() {
            stays.push(Stay {
                customer_id: id.unwrap_or_default(),
                entered_at: entered.value(row),
                exited_at: (!exited.is_null(row)).then(|| exited.value(row)),
            });
        }
    }
    stays.sort_by(|a, b| (a.entered_at, &a.customer_id).cmp(&(b.entered_at, &b.customer_id)));
    Ok(stays)
}

/// The stays after a run whose members are `members`: members not in the
/// audience enter, customers in it who are not members exit.
pub fn advance(stays: &[Stay], members: &BTreeSet<String>, at: i64) -> (Vec<Stay>, usize, usize) {
    let mut open: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, stay) in stays.iter().enumerate() {
        if stay.exited_at.is_none() {
            open.insert(&stay.customer_id, index);
        }
    }
    let mut next = stays.to_vec();
    let mut exited = 0;
    for (id, index) in &open {
        if !members.contains(*id) {
            next[*index].exited_at = Some(at);
            exited += 1;
        }
    }
    let mut entered = 0;
    for id in members {
        if !open.contains_key(id.as_str()) {
            next.push(Stay {
                customer_id: id.clone(),
                entered_at: at,
                exited_at: None,
            });
            entered += 1;
        }
    }
    (next, entered, exited)
}

/// Records a run of `audience` (stored as `version`) whose members are
/// `members`: its stays rewritten in one commit, and a row in `audiences.runs`.
pub async fn record(
    lake: &Lake,
    audience: &str,
    version: i64,
    members: &BTreeSet<String>,
    at: DateTime<Utc>,
) -> Result<Snapshot> {
    let at = at.timestamp_micros();
    let stays = history(lake, audience).await?;
    let (next, entered, exited) = advance(&stays, members, at);
    if entered > 0 || exited > 0 || stays.is_empty() {
        let names = StringArray::from(vec![audience; next.len()]);
        let ids = StringArray::from_iter_values(next.iter().map(|s| s.customer_id.as_str()));
        let entered_at =
            TimestampMicrosecondArray::from_iter_values(next.iter().map(|s| s.entered_at))
                .with_timezone("UTC");
        let exited_at =
            TimestampMicrosecondArray::from(next.iter().map(|s| s.exited_at).collect::<Vec<_>>())
                .with_timezone("UTC");
        let batch = RecordBatch::try_new(
            membership_schema(),
            vec![
                Arc::new(names),
                Arc::new(ids),
                Arc::new(entered_at),
                Arc::new(exited_at),
            ],
        )?;
        let table = lake.table("audiences", "membership").await?;
        let exists = table.version().is_some();
        let mut write = table
            .write(vec![batch])
            .with_partition_columns(["audience"]);
        write = if exists {
            write
                .with_save_mode(SaveMode::Overwrite)
                .with_replace_where(col("audience").eq(lit(audience)))
        } else {
            write.with_save_mode(SaveMode::Append)
        };
        write.await.map_err(|source| AudienceError::Delta {
            table: "audiences.membership".into(),
            source: Box::new(source),
        })?;
    }
    let snapshot = Snapshot {
        audience: audience.to_owned(),
        version,
        members: members.len(),
        entered,
        exited,
    };
    let count = |n: usize| Arc::new(Int64Array::from(vec![n as i64])) as ArrayRef;
    let run = RecordBatch::try_new(
        runs_schema(),
        vec![
            Arc::new(StringArray::from(vec![audience])),
            Arc::new(Int64Array::from(vec![version])),
            Arc::new(TimestampMicrosecondArray::from(vec![at]).with_timezone("UTC")),
            count(snapshot.members),
            count(entered),
            count(exited),
        ],
    )?;
    lake.table("audiences", "runs")
        .await?
        .write(vec![run])
        .with_save_mode(SaveMode::Append)
        .await
        .map_err(|source| AudienceError::Delta {
            table: "audiences.runs".into(),
            source: Box::new(source),
        })?;
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_enter_stay_exit_and_come_back() {
        let set = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect();
        let (first, entered, exited) = advance(&[], &set(&["a", "b"]), 10);
        assert_eq!((entered, exited, first.len()), (2, 0, 2));
        let (second, entered, exited) = advance(&first, &set(&["b", "c"]), 20);
        assert_eq!((entered, exited), (1, 1));
        let a = second.iter().find(|s| s.customer_id == "a").unwrap();
        assert_eq!(a.exited_at, Some(20));
        let (third, entered, exited) = advance(&second, &set(&["a", "b", "c"]), 30);
        assert_eq!((entered, exited), (1, 0));
        // a's first stay stays closed; a second one opens
        let stays_of_a: Vec<_> = third.iter().filter(|s| s.customer_id == "a").collect();
        assert_eq!(stays_of_a.len(), 2);
        assert_eq!(stays_of_a[1].entered_at, 30);
        assert_eq!(stays_of_a[1].exited_at, None);
        let (_, entered, exited) = advance(&third, &set(&["a", "b", "c"]), 40);
        assert_eq!((entered, exited), (0, 0));
    }
}
