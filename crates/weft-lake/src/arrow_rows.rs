//! Canonical events and bad rows as Arrow record batches, the shape of the
//! `atomic.events` and `atomic.bad_rows` Delta tables.
//!
//! Every atomic field is a column of its kind (JSON fields as JSON text), then
//! `load_tstamp`, then one column per self-describing schema, as Snowplow's lake
//! loader lays them out: `unstruct_event_com_acme_checkout_1` holds the event's
//! data and `contexts_com_acme_product_entity_1` the list of that entity's data,
//! both as JSON text; a new schema adds a column. `event_date`, the partition,
//! comes last.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, ListBuilder,
    RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde_json::Value;
use weft_core::{ATOMIC_FIELDS, Event, FieldKind, FieldRef};
use weft_enrich::{BadRow, SchemaKey};

use crate::Result;

pub const EVENT_PARTITION: &str = "event_date";
pub const BAD_ROW_PARTITION: &str = "failure_date";
const MS_PER_DAY: i64 = 86_400_000;

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn data_type(kind: FieldKind) -> DataType {
    match kind {
        FieldKind::Text | FieldKind::Json => DataType::Utf8,
        FieldKind::Integer => DataType::Int64,
        FieldKind::Float => DataType::Float64,
        FieldKind::Boolean => DataType::Boolean,
        FieldKind::Timestamp => timestamp_type(),
    }
}

enum Column {
    Text(StringBuilder),
    Integer(Int64Builder),
    Float(Float64Builder),
    Boolean(BooleanBuilder),
    Timestamp(TimestampMicrosecondBuilder),
}

impl Column {
    fn new(kind: FieldKind, rows: usize) -> Self {
        match kind {
            FieldKind::Text | FieldKind::Json => {
                Self::Text(StringBuilder::with_capacity(rows, rows * 16))
            }
            FieldKind::Integer => Self::Integer(Int64Builder::with_capacity(rows)),
            FieldKind::Float => Self::Float(Float64Builder::with_capacity(rows)),
            FieldKind::Boolean => Self::Boolean(BooleanBuilder::with_capacity(rows)),
            FieldKind::Timestamp => Self::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            ),
        }
    }

    fn push(&mut self, value: FieldRef<'_>) {
        match (self, value) {
            (Self::Text(builder), FieldRef::Text(text)) => builder.append_option(text.as_deref()),
            (Self::Text(builder), FieldRef::Json(json)) => {
                builder.append_option(json.as_ref().map(Value::to_string));
            }
            (Self::Integer(builder), FieldRef::Integer(number)) => builder.append_option(*number),
            (Self::Float(builder), FieldRef::Float(number)) => builder.append_option(*number),
            (Self::Boolean(builder), FieldRef::Boolean(flag)) => builder.append_option(*flag),
            (Self::Timestamp(builder), FieldRef::Timestamp(ms)) => {
                builder.append_option(ms.map(|ms| ms.saturating_mul(1000)));
            }
            _ => unreachable!("columns are made from the same field list they are filled from"),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Text(mut builder) => Arc::new(builder.finish()),
            Self::Integer(mut builder) => Arc::new(builder.finish()),
            Self::Float(mut builder) => Arc::new(builder.finish()),
            Self::Boolean(mut builder) => Arc::new(builder.finish()),
            Self::Timestamp(mut builder) => Arc::new(builder.finish()),
        }
    }
}

/// The column a self-describing schema gets: `<prefix>_<vendor>_<name>_<model>`.
pub fn schema_column(prefix: &str, key: &SchemaKey) -> String {
    let clean = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    format!(
        "{prefix}_{}_{}_{}",
        clean(&key.vendor),
        clean(&key.name),
        key.model
    )
}

/// The event's self-describing data by column.
fn self_describing_columns(event: &Event) -> BTreeMap<String, Value> {
    let mut columns = BTreeMap::new();
    let key_of = |entity: &Value| entity.get("schema")?.as_str()?.parse::<SchemaKey>().ok();
    if let Some(unstruct) = &event.unstruct_event
        && let Some(key) = key_of(unstruct)
    {
        columns.insert(
            schema_column("unstruct_event", &key),
            unstruct.get("data").cloned().unwrap_or(Value::Null),
        );
    }
    // derived contexts (from enrichments) share the columns of sent ones, as in Snowplow's lake loader
    let sent = event.contexts.as_ref().and_then(Value::as_array);
    let derived = event.derived_contexts.as_ref().and_then(Value::as_array);
    for contexts in [sent, derived].into_iter().flatten() {
        for entity in contexts {
            if let Some(key) = key_of(entity) {
                let list = columns
                    .entry(schema_column("contexts", &key))
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(items) = list {
                    items.push(entity.get("data").cloned().unwrap_or(Value::Null));
                }
            }
        }
    }
    columns
}

fn day_of(ms: i64) -> i32 {
    i32::try_from(ms.div_euclid(MS_PER_DAY)).unwrap_or(i32::MAX)
}

/// The event's date (days since the epoch), its partition: when it happened
/// as best known.
pub fn event_day(event: &Event, load_tstamp: i64) -> i32 {
    let when = event
        .derived_tstamp
        .or(event.collector_tstamp)
        .unwrap_or(load_tstamp);
    day_of(when)
}

/// The events as one record batch (the table's columns, in order).
pub fn events_batch(events: &[Event], load_tstamp: i64) -> Result<RecordBatch> {
    let rows = events.len();
    let mut columns: Vec<Column> = ATOMIC_FIELDS
        .iter()
        .map(|(_, kind)| Column::new(*kind, rows))
        .collect();
    let mut load = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut dates = Date32Builder::with_capacity(rows);
    let mut self_describing: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for (row, event) in events.iter().enumerate() {
        let mut index = 0;
        event.for_each_field(|value| {
            columns[index].push(value);
            index += 1;
        });
        load.append_value(load_tstamp.saturating_mul(1000));
        dates.append_value(event_day(event, load_tstamp));
        for (column, value) in self_describing_columns(event) {
            self_describing
                .entry(column)
                .or_insert_with(|| vec![None; rows])[row] = Some(value.to_string());
        }
    }
    let mut fields: Vec<Field> = ATOMIC_FIELDS
        .iter()
        .map(|(name, kind)| Field::new(*name, data_type(*kind), true))
        .collect();
    let mut arrays: Vec<ArrayRef> = columns.into_iter().map(Column::finish).collect();
    fields.push(Field::new("load_tstamp", timestamp_type(), true));
    arrays.push(Arc::new(load.finish()));
    for (name, values) in self_describing {
        fields.push(Field::new(name, DataType::Utf8, true));
        let mut builder = StringBuilder::with_capacity(rows, rows * 32);
        for value in values {
            builder.append_option(value);
        }
        arrays.push(Arc::new(builder.finish()));
    }
    fields.push(Field::new(EVENT_PARTITION, DataType::Date32, true));
    arrays.push(Arc::new(dates.finish()));
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// The bad rows as one record batch.
pub fn bad_rows_batch(bad_rows: &[BadRow]) -> Result<RecordBatch> {
    let rows = bad_rows.len();
    let mut failure_type = StringBuilder::with_capacity(rows, rows * 24);
    let mut messages = ListBuilder::new(StringBuilder::new());
    let mut collector = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut failed = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut event_id = StringBuilder::with_capacity(rows, rows * 36);
    let mut payload = StringBuilder::with_capacity(rows, rows * 256);
    let mut encoding = StringBuilder::with_capacity(rows, rows * 4);
    let mut dates = Date32Builder::with_capacity(rows);
    for bad in bad_rows {
        failure_type.append_value(bad.failure_type.as_str());
        for message in &bad.messages {
            messages.values().append_value(message);
        }
        messages.append(true);
        collector.append_value(bad.collector_tstamp.saturating_mul(1000));
        failed.append_value(bad.failure_tstamp.saturating_mul(1000));
        event_id.append_option(bad.event_id.as_deref());
        payload.append_value(&bad.payload);
        encoding.append_value(&bad.payload_encoding);
        dates.append_value(day_of(bad.failure_tstamp));
    }
    let fields = vec![
        Field::new("failure_type", DataType::Utf8, false),
        Field::new(
            "messages",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        Field::new("collector_tstamp", timestamp_type(), true),
        Field::new("failure_tstamp", timestamp_type(), true),
        Field::new("event_id", DataType::Utf8, true),
        Field::new("payload", DataType::Utf8, false),
        Field::new("payload_encoding", DataType::Utf8, false),
        Field::new(BAD_ROW_PARTITION, DataType::Date32, true),
    ];
    let arrays: Vec<ArrayRef> = vec![
        Arc::new(failure_type.finish()),
        Arc::new(messages.finish()),
        Arc::new(collector.finish()),
        Arc::new(failed.finish()),
        Arc::new(event_id.finish()),
        Arc::new(payload.finish()),
        Arc::new(encoding.finish()),
        Arc::new(dates.finish()),
    ];
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}
