//! A sync's rows: its members' current profiles (`profiles.customers`),
//! the mapped columns as JSON values, keyed, hashed (what was sent is
//! compared by hash), and only for customers whose consent allows the
//! destination's purpose.

use std::collections::BTreeSet;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, ListArray, StringArray,
};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
use deltalake::datafusion::prelude::SessionContext;
use serde::Serialize;
use serde_json::Value;
use weft_lake::catalog::Lake;

use crate::{Result, SpecError, spec_error};

/// Which consent a destination needs before a customer is sent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Marketing: only customers whose `consent_marketing` is true.
    Marketing,
    /// An internal store of the company's own (a warehouse table): everyone.
    Internal,
}

/// The type of a mapped column, for destinations that declare columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    Text,
    Integer,
    Float,
    Boolean,
    Date,
    Timestamp,
    TextList,
}

/// A destination field and the column it is read from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub name: String,
    pub column: String,
    pub kind: FieldKind,
}

/// One member as the destination sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: String,
    /// The values in the order of the sync's fields, as a JSON array:
    /// what the state keeps as sent.
    pub json: String,
    /// Of `json`: what the diff compares.
    pub hash: u64,
}

impl Row {
    pub fn new(key: String, values: Vec<Value>) -> Self {
        let json = serde_json::to_string(&values).expect("JSON values serialise");
        Row::from_json(key, json)
    }

    /// A row whose values are already written as a JSON array.
    pub fn from_json(key: String, json: String) -> Self {
        Row {
            key,
            hash: twox_hash::XxHash3_64::oneshot(json.as_bytes()),
            json,
        }
    }

    /// The values, in the order of the sync's fields.
    pub fn values(&self) -> Vec<Value> {
        serde_json::from_str(&self.json).expect("a row's JSON is an array it wrote")
    }
}

/// Every row of a run, and the members left out on the way.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub fields: Vec<Field>,
    pub rows: Vec<Row>,
    /// Members whose consent does not allow the destination's purpose.
    pub without_consent: usize,
    /// Members with no value in the key column, or a key another member has.
    pub without_key: usize,
}

const CUSTOMERS: &str = "profiles.customers";

/// A session holding `profiles.customers`, and the table's columns.
async fn customers(lake: &Lake) -> Result<(SessionContext, SchemaRef)> {
    let tables = [("profiles".to_owned(), "customers".to_owned())];
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    if !weft_lake::sql::has_table(&context, CUSTOMERS) {
        return Err(spec_error(
            "$.fields",
            "there is no profiles.customers table yet: run identity first",
        )
        .into());
    }
    let schema = context.table(CUSTOMERS).await?.schema().inner().clone();
    Ok((context, schema))
}

/// The kinds of `profiles.customers`' columns.
pub async fn customer_columns(lake: &Lake) -> Result<SchemaRef> {
    Ok(customers(lake).await?.1)
}

/// Checks the key and mapped columns against the table: the fields with their kinds.
pub fn fields(
    schema: &SchemaRef,
    key: &str,
    mapping: &[(String, String)],
) -> Result<Vec<Field>, SpecError> {
    let kind_of = |column: &str, path: &str| -> Result<FieldKind, SpecError> {
        let field = schema.field_with_name(column).map_err(|_| {
            let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            spec_error(
                path,
                format!(
                    "no column {column:?} in profiles.customers: one of {}",
                    names.join(", ")
                ),
            )
        })?;
        Ok(kind(field.data_type()))
    };
    kind_of(key, "$.key")?;
    mapping
        .iter()
        .map(|(name, column)| {
            Ok(Field {
                name: name.clone(),
                column: column.clone(),
                kind: kind_of(column, &format!("$.fields.{name}"))?,
            })
        })
        .collect()
}

fn kind(data_type: &DataType) -> FieldKind {
    match data_type {
        DataType::Boolean => FieldKind::Boolean,
        t if t.is_integer() => FieldKind::Integer,
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => FieldKind::Float,
        DataType::Date32 | DataType::Date64 => FieldKind::Date,
        DataType::Timestamp(..) => FieldKind::Timestamp,
        DataType::List(_) | DataType::LargeList(_) => FieldKind::TextList,
        _ => FieldKind::Text,
    }
}

/// The rows of `members` (customer ids): their current profile's key and
/// mapped columns, left out when consent or the key is missing.
pub async fn read(
    lake: &Lake,
    members: &BTreeSet<String>,
    key: &str,
    mapping: &[(String, String)],
    purpose: Purpose,
) -> Result<Rows> {
    let (context, schema) = customers(lake).await?;
    let fields = fields(&schema, key, mapping)?;
    // Aliased by position: the key, or two fields, may be the same column.
    let mut columns = vec![
        format!("{} AS c_id", quote("customer_id")),
        format!("{} AS c_key", quote(key)),
    ];
    columns.extend(
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| format!("{} AS c_{i}", quote(&f.column))),
    );
    let consent = purpose == Purpose::Marketing;
    if consent {
        if schema.field_with_name("consent_marketing").is_err() {
            return Err(spec_error("$.destination", "the destination needs marketing consent and profiles.customers has no consent_marketing column").into());
        }
        columns.push(format!("{} AS c_consent", quote("consent_marketing")));
    }
    let current = if schema.field_with_name("is_current").is_ok() {
        " WHERE is_current"
    } else {
        ""
    };
    let sql = format!("SELECT {} FROM {CUSTOMERS}{current}", columns.join(", "));
    let batches = context.sql(&sql).await?.collect().await?;

    let mut rows = Rows {
        fields,
        ..Rows::default()
    };
    // With the customer id, so that of two members with one key the
    // smaller id keeps it, whatever order the scan returns them in.
    let mut keyed: Vec<(Row, String)> = Vec::new();
    let mut json = Vec::with_capacity(256);
    for batch in &batches {
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let key_cells = Cells::of(batch.column(1))?;
        let cells: Vec<Cells> = (0..rows.fields.len())
            .map(|i| Cells::of(batch.column(2 + i)))
            .collect::<Result<_>>()?;
        let consents = consent.then(|| batch.column(2 + rows.fields.len()).as_boolean());
        for row in 0..batch.num_rows() {
            if ids.is_null(row) || !members.contains(ids.value(row)) {
                continue;
            }
            if let Some(consents) = consents
                && !(consents.is_valid(row) && consents.value(row))
            {
                rows.without_consent += 1;
                continue;
            }
            let Some(key) = key_cells.key(row) else {
                rows.without_key += 1;
                continue;
            };
            json.clear();
            json.push(b'[');
            for (i, column) in cells.iter().enumerate() {
                if i > 0 {
                    json.push(b',');
                }
                column.write(row, &mut json);
            }
            json.push(b']');
            let text = String::from_utf8(json.clone()).expect("JSON is UTF-8");
            keyed.push((Row::from_json(key, text), ids.value(row).to_owned()));
        }
    }
    keyed.sort_unstable_by(|(a, a_id), (b, b_id)| a.key.cmp(&b.key).then_with(|| a_id.cmp(b_id)));
    let before = keyed.len();
    keyed.dedup_by(|(later, _), (first, _)| later.key == first.key);
    rows.without_key += before - keyed.len();
    rows.rows = keyed.into_iter().map(|(row, _)| row).collect();
    Ok(rows)
}

/// One column of a batch, cast once to the type its JSON is written from.
enum Cells {
    Boolean(BooleanArray),
    Integer(Int64Array),
    Float(Float64Array),
    /// Lists of text.
    List(ListArray),
    /// Everything else as text (dates and timestamps in ISO 8601).
    Text(StringArray),
}

impl Cells {
    fn of(column: &ArrayRef) -> Result<Cells> {
        let as_type = |to: &DataType| cast(column, to);
        Ok(match column.data_type() {
            DataType::Boolean => Cells::Boolean(column.as_boolean().clone()),
            t if t.is_integer() => Cells::Integer(
                as_type(&DataType::Int64)?
                    .as_primitive::<Int64Type>()
                    .clone(),
            ),
            t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => Cells::Float(
                as_type(&DataType::Float64)?
                    .as_primitive::<Float64Type>()
                    .clone(),
            ),
            DataType::List(_) | DataType::LargeList(_) => Cells::List(
                as_type(&DataType::new_list(DataType::Utf8, true))?
                    .as_list::<i32>()
                    .clone(),
            ),
            _ => Cells::Text(as_type(&DataType::Utf8)?.as_string::<i32>().clone()),
        })
    }

    /// The row's value as a key: non-empty text or a number.
    fn key(&self, row: usize) -> Option<String> {
        match self {
            Cells::Text(values) if values.is_valid(row) && !values.value(row).is_empty() => {
                Some(values.value(row).to_owned())
            }
            Cells::Integer(values) if values.is_valid(row) => Some(values.value(row).to_string()),
            Cells::Float(values) if values.is_valid(row) => {
                serde_json::Number::from_f64(values.value(row)).map(|n| n.to_string())
            }
            _ => None,
        }
    }

    /// Writes the row's value as JSON.
    fn write(&self, row: usize, out: &mut Vec<u8>) {
        let null = match self {
            Cells::Boolean(values) => values.is_null(row),
            Cells::Integer(values) => values.is_null(row),
            Cells::Float(values) => values.is_null(row),
            Cells::List(values) => values.is_null(row),
            Cells::Text(values) => values.is_null(row),
        };
        if null {
            out.extend_from_slice(b"null");
            return;
        }
        match self {
            Cells::Boolean(values) => put(out, &values.value(row)),
            Cells::Integer(values) => put(out, &values.value(row)),
            // non-finite numbers are written as null, as JSON has none
            Cells::Float(values) => put(out, &values.value(row)),
            Cells::Text(values) => put(out, values.value(row)),
            Cells::List(lists) => {
                let items = lists.value(row);
                let items = items.as_string::<i32>();
                out.push(b'[');
                for i in 0..items.len() {
                    if i > 0 {
                        out.push(b',');
                    }
                    if items.is_null(i) {
                        out.extend_from_slice(b"null");
                    } else {
                        put(out, items.value(i));
                    }
                }
                out.push(b']');
            }
        }
    }
}

fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("plain values serialise into memory");
}

fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// A column's values as JSON: numbers, booleans, strings (dates and
/// timestamps as ISO 8601), lists as arrays, nulls as null.
pub fn json_values(column: &ArrayRef) -> Result<Vec<Value>> {
    let cells = Cells::of(column)?;
    let mut json = Vec::new();
    Ok((0..column.len())
        .map(|row| {
            json.clear();
            cells.write(row, &mut json);
            serde_json::from_slice(&json).expect("a cell's JSON is what it wrote")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use deltalake::arrow::array::{Date32Array, ListBuilder, StringBuilder};
    use serde_json::json;

    use super::*;

    #[test]
    fn cells_are_written_as_json_of_their_type() {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(Int64Array::from(vec![Some(-3), None])),
            Arc::new(Float64Array::from(vec![1.5, f64::NAN])),
            Arc::new(StringArray::from(vec![Some("a \"quoted\"\n\u{e9}"), None])),
            Arc::new(Date32Array::from(vec![Some(0), None])),
            {
                let mut lists = ListBuilder::new(StringBuilder::new());
                lists.values().append_value("bread");
                lists.values().append_null();
                lists.append(true);
                lists.append(false);
                Arc::new(lists.finish())
            },
        ];
        let values: Vec<Vec<Value>> = columns.iter().map(|c| json_values(c).unwrap()).collect();
        assert_eq!(
            values,
            vec![
                vec![json!(true), Value::Null],
                vec![json!(-3), Value::Null],
                vec![json!(1.5), Value::Null],
                vec![json!("a \"quoted\"\n\u{e9}"), Value::Null],
                vec![json!("1970-01-01"), Value::Null],
                vec![json!(["bread", null]), Value::Null],
            ]
        );
        // a key is non-empty text or a number
        let keys =
            Cells::of(&(Arc::new(StringArray::from(vec![Some("k"), Some(""), None])) as ArrayRef))
                .unwrap();
        assert_eq!(
            (0..3).map(|i| keys.key(i)).collect::<Vec<_>>(),
            vec![Some("k".into()), None, None]
        );
        let numbers = Cells::of(&columns[1]).unwrap();
        assert_eq!(numbers.key(0), Some("-3".into()));
        assert_eq!(Cells::of(&columns[0]).unwrap().key(0), None);
    }
}
