//! Lookup: one of the event's values (an atomic field, or a value inside its
//! self-describing data) joined against a CSV file or a table of the lake
//! (read by the caller, see [`Lookup::new`]); the matching row is
//! attached as a derived context, e.g. the product catalogue entry of every
//! SKU the event mentions.

use std::collections::HashMap;

use serde_json::{Map, Value};
use weft_core::config::LookupConfig;
use weft_core::{ATOMIC_FIELDS, Event, FieldKind, FieldRef};

use super::json_path::JsonPath;
use super::{Enrichment, EnrichmentConfigError};
use crate::SchemaKey;

enum Source {
    Atomic(usize),
    Json(JsonPath),
}

pub struct Lookup {
    name: String,
    schema: String,
    source: Source,
    rows: HashMap<String, Value>,
}

impl Lookup {
    /// The `index`-th `[[enrichments.lookups]]`: its CSV read whole, or, for a
    /// table, the rows the caller read from the lake (`table_rows`).
    pub fn new(
        config: &LookupConfig,
        index: usize,
        table_rows: Option<&[Map<String, Value>]>,
    ) -> Result<Self, EnrichmentConfigError> {
        let key = |k: &str| format!("lookups[{index}].{k}");
        if config.name.trim().is_empty() {
            return Err(EnrichmentConfigError::new(
                &key("name"),
                "a lookup needs a name",
            ));
        }
        config.schema.parse::<SchemaKey>().map_err(|error| {
            EnrichmentConfigError::new(&key("schema"), format!("{:?}: {error}", config.schema))
        })?;
        let source = match (&config.atomic, &config.json) {
            (Some(field), None) => Source::Atomic(
                ATOMIC_FIELDS
                    .iter()
                    .position(|(name, kind)| name == field && *kind == FieldKind::Text)
                    .ok_or_else(|| {
                        EnrichmentConfigError::new(
                            &key("atomic"),
                            format!("{field:?} is not a text field of the event"),
                        )
                    })?,
            ),
            (None, Some(json)) => Source::Json(JsonPath::new(json, &key("json"))?),
            _ => {
                return Err(EnrichmentConfigError::new(
                    &key("atomic"),
                    "set exactly one of atomic (a field) or json (a value inside the event)",
                ));
            }
        };
        let table = match (&config.csv, &config.table) {
            (Some(csv), None) => read_csv(csv, &key("csv"))?,
            (None, Some(table)) => table_rows
                .ok_or_else(|| {
                    EnrichmentConfigError::new(
                        &key("table"),
                        format!("{table} was not read from the lake"),
                    )
                })?
                .to_vec(),
            _ => {
                return Err(EnrichmentConfigError::new(
                    &key("csv"),
                    "set exactly one of csv (a file) or table (schema.table in the lake)",
                ));
            }
        };
        let mut rows = HashMap::new();
        let mut has_key_column = table.is_empty();
        for row in table {
            let Some(value) = row.get(&config.key_column) else {
                continue;
            };
            has_key_column = true;
            let value = match value {
                Value::String(text) => text.clone(),
                Value::Null => continue,
                other => other.to_string(),
            };
            // the first row of a key wins, as a catalogue's first entry would
            rows.entry(value).or_insert(Value::Object(row));
        }
        if !has_key_column {
            return Err(EnrichmentConfigError::new(
                &key("key_column"),
                format!(
                    "{:?} is not a column of the lookup's rows",
                    config.key_column
                ),
            ));
        }
        Ok(Self {
            name: format!("lookup:{}", config.name),
            schema: config.schema.clone(),
            source,
            rows,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn values(&self, event: &mut Event) -> Vec<String> {
        let mut values = Vec::new();
        match &self.source {
            Source::Atomic(position) => {
                let mut index = 0;
                event.for_each_field(|field| {
                    if index == *position
                        && let FieldRef::Text(Some(value)) = field
                    {
                        values.push(value.clone());
                    }
                    index += 1;
                });
            }
            Source::Json(path) => path.visit_mut(event, &mut |value| match value {
                Value::String(text) => values.push(text.clone()),
                Value::Number(number) => values.push(number.to_string()),
                _ => {}
            }),
        }
        values
    }
}

/// A CSV file's rows as JSON objects (empty cells are null).
fn read_csv(
    path: &std::path::Path,
    key: &str,
) -> Result<Vec<Map<String, Value>>, EnrichmentConfigError> {
    let mut reader = csv::Reader::from_path(path).map_err(|error| {
        EnrichmentConfigError::new(key, format!("cannot read {}: {error}", path.display()))
    })?;
    let headers = reader
        .headers()
        .map_err(|error| EnrichmentConfigError::new(key, error.to_string()))?
        .clone();
    reader
        .records()
        .enumerate()
        .map(|(line, record)| {
            let record = record.map_err(|error| {
                EnrichmentConfigError::new(
                    key,
                    format!("{} row {}: {error}", path.display(), line + 2),
                )
            })?;
            Ok(headers
                .iter()
                .zip(record.iter())
                .map(|(column, value)| {
                    let value = if value.is_empty() {
                        Value::Null
                    } else {
                        Value::String(value.to_owned())
                    };
                    (column.to_owned(), value)
                })
                .collect())
        })
        .collect()
}

impl Enrichment for Lookup {
    fn name(&self) -> &str {
        &self.name
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        let mut values = self.values(event);
        values.sort_unstable();
        values.dedup();
        let found: Vec<Value> = values
            .iter()
            .filter_map(|value| self.rows.get(value))
            .map(|row| serde_json::json!({"schema": self.schema, "data": row}))
            .collect();
        if found.is_empty() {
            return Ok(());
        }
        match event
            .derived_contexts
            .get_or_insert_with(|| Value::Array(Vec::new()))
        {
            Value::Array(contexts) => contexts.extend(found),
            other => return Err(format!("derived_contexts is not a list: {other}")),
        }
        Ok(())
    }
}
