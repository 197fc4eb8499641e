//! A sync's rows: its members' current profiles (`profiles.customers`),
//! the mapped columns as JSON values, keyed, hashed (what was sent is
//! compared by hash), and only for customers whose consent allows the
//! destination's purpose.

use std::collections::{BTreeSet, HashSet};

use deltalake::arrow::array::{Array, ArrayRef, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef};
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
    /// In the order of the sync's fields.
    pub values: Vec<Value>,
    /// The values as a JSON array: what the state keeps as sent.
    pub json: String,
    /// Of `json`: what the diff compares.
    pub hash: u64,
}

impl Row {
    pub fn new(key: String, values: Vec<Value>) -> Self {
        let json = serde_json::to_string(&values).expect("JSON values serialise");
        Row {
            key,
            hash: twox_hash::XxHash3_64::oneshot(json.as_bytes()),
            values,
            json,
        }
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

/// The kinds of `profiles.customers`' columns.
pub async fn customer_columns(lake: &Lake) -> Result<SchemaRef> {
    let tables = [("profiles".to_owned(), "customers".to_owned())];
    let context = weft_lake::sql::session_of(lake, &tables).await?;
    if !weft_lake::sql::has_table(&context, CUSTOMERS) {
        return Err(spec_error(
            "$.fields",
            "there is no profiles.customers table yet: run identity first",
        )
        .into());
    }
    Ok(context.table(CUSTOMERS).await?.schema().inner().clone())
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
    let schema = customer_columns(lake).await?;
    let fields = fields(&schema, key, mapping)?;
    let tables = [("profiles".to_owned(), "customers".to_owned())];
    let context = weft_lake::sql::session_of(lake, &tables).await?;
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
    let mut keys = HashSet::new();
    for batch in &batches {
        let ids = batch.column(0).as_string_opt::<i32>().map(|a| a.to_owned());
        let ids = match ids {
            Some(ids) => ids,
            None => cast(batch.column(0), &DataType::Utf8)?
                .as_string::<i32>()
                .to_owned(),
        };
        let key_values = json_values(batch.column(1))?;
        let values: Vec<Vec<Value>> = (0..rows.fields.len())
            .map(|i| json_values(batch.column(2 + i)))
            .collect::<Result<_>>()?;
        let consents = consent.then(|| batch.column(2 + rows.fields.len()).as_boolean().clone());
        for row in 0..batch.num_rows() {
            if ids.is_null(row) || !members.contains(ids.value(row)) {
                continue;
            }
            if let Some(consents) = &consents
                && !(consents.is_valid(row) && consents.value(row))
            {
                rows.without_consent += 1;
                continue;
            }
            let key = match &key_values[row] {
                Value::String(text) if !text.is_empty() => text.clone(),
                Value::Number(n) => n.to_string(),
                _ => {
                    rows.without_key += 1;
                    continue;
                }
            };
            if !keys.insert(key.clone()) {
                rows.without_key += 1;
                continue;
            }
            let row_values: Vec<Value> = values.iter().map(|v| v[row].clone()).collect();
            rows.rows.push(Row::new(key, row_values));
        }
    }
    Ok(rows)
}

fn quote(column: &str) -> String {
    format!("\"{}\"", column.replace('"', "\"\""))
}

/// A column's values as JSON: numbers, booleans, strings (dates and
/// timestamps as ISO 8601), lists as arrays, nulls as null.
pub fn json_values(column: &ArrayRef) -> Result<Vec<Value>> {
    let len = column.len();
    let nulls = |i: usize| column.is_null(i);
    Ok(match column.data_type() {
        DataType::Boolean => {
            let values = column.as_boolean();
            (0..len)
                .map(|i| {
                    if nulls(i) {
                        Value::Null
                    } else {
                        Value::Bool(values.value(i))
                    }
                })
                .collect()
        }
        t if t.is_integer() => {
            let cast = cast(column, &DataType::Int64)?;
            let values = cast.as_primitive::<Int64Type>();
            (0..len)
                .map(|i| {
                    if nulls(i) {
                        Value::Null
                    } else {
                        values.value(i).into()
                    }
                })
                .collect()
        }
        t if t.is_floating() || matches!(t, DataType::Decimal128(..)) => {
            let cast = cast(column, &DataType::Float64)?;
            let values = cast.as_primitive::<Float64Type>();
            (0..len)
                .map(|i| {
                    if nulls(i) {
                        Value::Null
                    } else {
                        serde_json::Number::from_f64(values.value(i))
                            .map_or(Value::Null, Value::Number)
                    }
                })
                .collect()
        }
        DataType::List(_) | DataType::LargeList(_) => {
            let cast = cast(column, &DataType::new_list(DataType::Utf8, true))?;
            let lists = cast.as_list::<i32>();
            (0..len)
                .map(|i| {
                    if nulls(i) {
                        return Ok(Value::Null);
                    }
                    let items = json_values(&lists.value(i))?;
                    Ok(Value::Array(items))
                })
                .collect::<Result<_>>()?
        }
        _ => {
            let cast = cast(column, &DataType::Utf8)?;
            let values = cast.as_string::<i32>();
            (0..len)
                .map(|i| {
                    if nulls(i) {
                        Value::Null
                    } else {
                        Value::String(values.value(i).to_owned())
                    }
                })
                .collect()
        }
    })
}
