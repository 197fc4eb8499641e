//! `identity.person_map`: every record and identifier with its customer id,
//! and `identity.customer_changes`: what each run did to customer ids.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::datafusion::prelude::SessionContext;
use weft_identity::{Change, Record, RecordKey};

use crate::Result;
use crate::web::WEB_SOURCE;

/// Every record of the previous run and its customer id.
pub async fn previous(context: &SessionContext) -> Result<HashMap<RecordKey, String>> {
    let mut map = HashMap::new();
    if !weft_lake::sql::has_table(context, "identity.person_map") {
        return Ok(map);
    }
    let batches = crate::query(
        context,
        "SELECT source, value, customer_id FROM identity.person_map WHERE kind = 'record'",
    )
    .await?;
    for batch in batches {
        let columns = (0..3)
            .map(|i| cast(batch.column(i), &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()?;
        let [source, value, customer] = [0, 1, 2].map(|i| columns[i].as_string::<i32>());
        for row in 0..batch.num_rows() {
            if source.is_null(row) || value.is_null(row) || customer.is_null(row) {
                continue;
            }
            map.insert(
                (source.value(row).to_owned(), value.value(row).to_owned()),
                customer.value(row).to_owned(),
            );
        }
    }
    Ok(map)
}

/// The rows of `identity.person_map`: `(customer_id, kind, value, source)`
/// for each record (kind `record`, its id) and each identifier it carries
/// (`email`, `phone`, `user_id`, `domain_userid`, normalised), each once per customer.
pub fn rows(records: &[Record], sources: &[String], customer_ids: &[String]) -> RecordBatch {
    let mut rows: BTreeSet<(&str, &'static str, &str, &str)> = BTreeSet::new();
    for (record, customer) in records.iter().zip(customer_ids) {
        let source = sources[record.source as usize].as_str();
        let customer = customer.as_str();
        rows.insert((customer, "record", record.id.as_str(), source));
        for (kind, value) in [
            ("email", &record.email),
            ("phone", &record.phone),
            ("user_id", &record.user_id),
        ] {
            if !value.is_empty() {
                rows.insert((customer, kind, value.as_str(), ""));
            }
        }
        if source == WEB_SOURCE {
            rows.insert((customer, "domain_userid", record.id.as_str(), ""));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
        Field::new("source", DataType::Utf8, true),
    ]));
    let customer = StringArray::from_iter_values(rows.iter().map(|r| r.0));
    let kind = StringArray::from_iter_values(rows.iter().map(|r| r.1));
    let value = StringArray::from_iter_values(rows.iter().map(|r| r.2));
    let source: StringArray = rows
        .iter()
        .map(|r| (!r.3.is_empty()).then_some(r.3))
        .collect();
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(customer),
            Arc::new(kind),
            Arc::new(value),
            Arc::new(source),
        ],
    )
    .expect("columns match the schema")
}

/// The rows of `identity.customer_changes` for one run.
pub fn changes(run: i64, run_at: i64, changes: &[Change]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("run", DataType::Int64, false),
        Field::new(
            "run_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("change", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("other_customer_id", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![run; changes.len()])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![run_at; changes.len()]).with_timezone("UTC"),
            ),
            Arc::new(StringArray::from_iter_values(
                changes.iter().map(Change::kind),
            )),
            Arc::new(StringArray::from_iter_values(
                changes.iter().map(Change::customer_id),
            )),
            Arc::new(changes.iter().map(Change::other).collect::<StringArray>()),
        ],
    )
    .expect("columns match the schema")
}
