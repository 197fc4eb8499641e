//! Rows for the trainer: the spec's features at a cut-off, and whether each
//! customer converted (overall and per category) in the window after it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::datafusion::prelude::SessionContext;
use weft_ml::{Column, Frame};

use crate::spec::{FeatureSpec, register_as_of};
use crate::{PropensityError, Result};

/// The key column every spec returns.
pub const KEY: &str = "customer_id";

/// The spec's rows at `cutoff`, one per customer, features only (ids are the customer ids).
pub async fn features(
    context: &SessionContext,
    spec: &FeatureSpec,
    cutoff: DateTime<Utc>,
) -> Result<Frame> {
    register_as_of(context, cutoff).await?;
    let columns: Vec<String> = context
        .table("events")
        .await?
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let sql = spec.render(cutoff, &columns)?;
    let batches = context.sql(&sql).await?.collect().await?;
    // rows in customer order: the engine's order varies from run to run, and
    // training must not (categorical levels are numbered as first seen)
    let frame = to_frame(&batches)?;
    let ids = frame.ids.as_deref().unwrap_or(&[]);
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|a, b| ids[*a].cmp(&ids[*b]));
    let frame = frame.take(&order);
    let mut seen = HashSet::new();
    if let Some(duplicate) = frame
        .ids
        .iter()
        .flatten()
        .find(|id| !seen.insert(id.as_str()))
    {
        return Err(PropensityError::Spec(format!(
            "the feature spec returned customer {duplicate} twice: it must give one row per customer"
        )));
    }
    Ok(frame)
}

/// Arrow rows as a frame: numbers and booleans are numeric, text categorical.
pub fn to_frame(batches: &[RecordBatch]) -> Result<Frame> {
    let Some(first) = batches.first() else {
        return Ok(Frame {
            ids: Some(Vec::new()),
            ..Frame::default()
        });
    };
    let schema = first.schema();
    let key = schema
        .index_of(KEY)
        .map_err(|_| PropensityError::Spec(format!("the feature spec has no {KEY} column")))?;
    let mut ids = Vec::new();
    for batch in batches {
        let column = cast(batch.column(key), &DataType::Utf8)?;
        let column = column.as_string::<i32>();
        for row in 0..column.len() {
            if column.is_null(row) {
                return Err(PropensityError::Spec(format!(
                    "the feature spec gave a null {KEY}"
                )));
            }
            ids.push(column.value(row).to_owned());
        }
    }
    let mut columns = Vec::new();
    for (j, field) in schema.fields().iter().enumerate() {
        if j == key {
            continue;
        }
        let numeric = field.data_type().is_numeric() || *field.data_type() == DataType::Boolean;
        let textual = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..)
        );
        if numeric {
            let mut values = Vec::with_capacity(ids.len());
            for batch in batches {
                let column = cast(batch.column(j), &DataType::Float64)?;
                let column = column.as_primitive::<deltalake::arrow::datatypes::Float64Type>();
                values.extend((0..column.len()).map(|i| {
                    if column.is_null(i) {
                        f64::NAN
                    } else {
                        column.value(i)
                    }
                }));
            }
            columns.push(Column::numeric(field.name(), values));
        } else if textual {
            let mut values: Vec<Option<String>> = Vec::with_capacity(ids.len());
            for batch in batches {
                let column = cast(batch.column(j), &DataType::Utf8)?;
                let column = column.as_string::<i32>();
                values.extend(
                    (0..column.len())
                        .map(|i| (!column.is_null(i)).then(|| column.value(i).to_owned())),
                );
            }
            columns.push(Column::categorical(field.name(), &values));
        } else {
            return Err(PropensityError::Spec(format!(
                "the feature {} is {}: give numbers, booleans or text (a time as days since, say)",
                field.name(),
                field.data_type()
            )));
        }
    }
    Ok(Frame {
        ids: Some(ids),
        columns,
        label: None,
    })
}

/// Who converted in `[cutoff, cutoff + days)`: customer → categories bought
/// (an empty set for a conversion without categories).
pub async fn conversions_after(
    context: &SessionContext,
    cutoff: DateTime<Utc>,
    days: u32,
) -> Result<HashMap<String, HashSet<String>>> {
    let from = literal(cutoff);
    let to = literal(cutoff + Duration::days(i64::from(days)));
    let sql = format!(
        "SELECT k.customer_id, c.categories FROM derived.conversions c \
         JOIN cookie_customers k ON k.domain_userid = c.domain_userid \
         WHERE c.conversion_tstamp >= {from} AND c.conversion_tstamp < {to}"
    );
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for batch in context.sql(&sql).await?.collect().await? {
        let customers = cast(batch.column(0), &DataType::Utf8)?;
        let customers = customers.as_string::<i32>();
        let categories = batch.column(1);
        for row in 0..batch.num_rows() {
            let bought = out.entry(customers.value(row).to_owned()).or_default();
            if let Some(list) = categories.as_list_opt::<i32>()
                && !list.is_null(row)
            {
                let values = cast(&list.value(row), &DataType::Utf8)?;
                let values = values.as_string::<i32>();
                bought.extend(
                    (0..values.len())
                        .filter(|i| !values.is_null(*i))
                        .map(|i| values.value(i).to_owned()),
                );
            }
        }
    }
    Ok(out)
}

/// Every category bought before `cutoff`.
pub async fn categories_before(
    context: &SessionContext,
    cutoff: DateTime<Utc>,
) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT DISTINCT category FROM (SELECT unnest(categories) AS category FROM derived.conversions \
         WHERE conversion_tstamp < {}) c WHERE category IS NOT NULL ORDER BY category",
        literal(cutoff)
    );
    let mut out = Vec::new();
    for batch in context.sql(&sql).await?.collect().await? {
        let values = cast(batch.column(0), &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        out.extend((0..values.len()).map(|i| values.value(i).to_owned()));
    }
    Ok(out)
}

pub fn literal(at: DateTime<Utc>) -> String {
    format!(
        "TIMESTAMP '{}'",
        at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    )
}

/// The frame's labels for each target: `converted` and `converted_<category>`.
pub fn labels(
    frame: &Frame,
    converted: &HashMap<String, HashSet<String>>,
    categories: &[String],
) -> BTreeMap<String, Vec<bool>> {
    let ids = frame.ids.as_deref().unwrap_or(&[]);
    let mut out = BTreeMap::new();
    out.insert(
        OVERALL.to_owned(),
        ids.iter().map(|id| converted.contains_key(id)).collect(),
    );
    for category in categories {
        out.insert(
            category_target(category),
            ids.iter()
                .map(|id| converted.get(id).is_some_and(|c| c.contains(category)))
                .collect(),
        );
    }
    out
}

/// The overall target.
pub const OVERALL: &str = "converted";

pub fn category_target(category: &str) -> String {
    format!("converted_{}", crate::spec::slug(category))
}
