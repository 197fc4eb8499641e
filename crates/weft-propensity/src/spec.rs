//! The feature spec: a SQL query with one row per customer, run over the
//! lake as it was at a cut-off, and the settings that fill its blanks. It is
//! stored with every model version, so scoring computes the features the
//! model was trained on even after the config changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};
use weft_core::config::MlConfig;
use weft_lake::sql::{json_key, self_describing_path};

use crate::{PropensityError, Result};

/// The built-in spec: behaviour, recency and frequency, channels, device,
/// country, past conversions; counts per category and flags from the config.
pub const BUILT_IN: &str = include_str!("../sql/features.sql");

/// The tables a spec reads, each cut at the cut-off, and the column that does it.
const AS_OF: [(&str, &str, &str); 4] = [
    ("events", "atomic.events", "derived_tstamp"),
    ("sessions", "derived.sessions", "start_tstamp"),
    ("page_views", "derived.page_views", "start_tstamp"),
    ("conversions", "derived.conversions", "conversion_tstamp"),
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub sql: String,
    pub heartbeat_secs: u32,
    pub category_events: BTreeMap<String, String>,
    pub flags: BTreeMap<String, String>,
    /// The categories counted by `category_events` (those the model predicts).
    pub categories: Vec<String>,
}

impl FeatureSpec {
    pub fn from_config(config: &MlConfig, heartbeat_secs: u32) -> Result<Self> {
        let sql = match &config.features {
            Some(path) => std::fs::read_to_string(path).map_err(|e| {
                PropensityError::Config(format!("ml.features: cannot read {}: {e}", path.display()))
            })?,
            None => BUILT_IN.to_owned(),
        };
        for (key, path) in config.category_events.iter().chain(&config.flags) {
            check_word(key).map_err(|e| PropensityError::Config(format!("ml: {e}")))?;
            self_describing_path(path)
                .map_err(|e| PropensityError::Config(format!("ml.{key}: {e}")))?;
        }
        Ok(Self {
            sql,
            heartbeat_secs,
            category_events: config.category_events.clone(),
            flags: config.flags.clone(),
            categories: Vec::new(),
        })
    }

    /// The query for one cut-off; columns the events do not have yet read as 0 / false.
    pub fn render(&self, cutoff: DateTime<Utc>, event_columns: &[String]) -> Result<String> {
        let has = |column: &str| event_columns.iter().any(|c| c == column);
        let mut aggregates = String::new();
        let mut columns = String::new();
        for (prefix, path) in &self.category_events {
            let (column, key) = self_describing_path(path).map_err(PropensityError::Config)?;
            // the events in every category, then per category
            if has(column) {
                aggregates.push_str(&format!(",\n    count(e.{column}) AS {prefix}"));
                columns.push_str(&format!(",\n  coalesce(a.{prefix}, 0) AS {prefix}"));
            } else {
                columns.push_str(&format!(",\n  0 AS {prefix}"));
            }
            for category in &self.categories {
                let name = format!("{prefix}_{}", slug(category));
                if has(column) {
                    aggregates.push_str(&format!(
                        ",\n    count(*) FILTER (WHERE {}) AS {name}",
                        json_equals(column, key, category)
                    ));
                    columns.push_str(&format!(",\n  coalesce(a.{name}, 0) AS {name}"));
                } else {
                    columns.push_str(&format!(",\n  0 AS {name}"));
                }
            }
        }
        for (name, path) in &self.flags {
            let (column, key) = self_describing_path(path).map_err(PropensityError::Config)?;
            if has(column) {
                aggregates.push_str(&format!(
                    ",\n    coalesce(bool_or({}), false) AS {name}",
                    json_key("json_get_bool", &format!("e.{column}"), key)
                ));
                columns.push_str(&format!(",\n  coalesce(a.{name}, false) AS {name}"));
            } else {
                columns.push_str(&format!(",\n  false AS {name}"));
            }
        }
        let cutoff = format!(
            "TIMESTAMP '{}'",
            cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
        );
        Ok(self
            .sql
            .replace("{{cutoff}}", &cutoff)
            .replace("{{heartbeat}}", &self.heartbeat_secs.to_string())
            .replace("{{extra_aggregates}}", &aggregates)
            .replace("{{extra_columns}}", &columns))
    }
}

/// A column name made of a category: lower case letters, digits and `_`.
pub fn slug(category: &str) -> String {
    let mut out: String = category
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, 'c');
    }
    out
}

fn check_word(word: &str) -> Result<(), String> {
    let ok = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !word.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{word:?} is not a feature name (lower case letters, digits and _)"
        ))
    }
}

fn json_equals(column: &str, key: &str, value: &str) -> String {
    format!(
        "{} = '{}'",
        json_key("json_get_str", &format!("e.{column}"), key),
        value.replace('\'', "''")
    )
}

/// Registers the tables a spec reads, as they were before `cutoff` (bots left out).
pub async fn register_as_of(context: &SessionContext, cutoff: DateTime<Utc>) -> Result<()> {
    let literal = format!(
        "TIMESTAMP '{}'",
        cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    );
    for (name, table, column) in AS_OF {
        context.deregister_table(name)?;
        if !weft_lake::sql::has_table(context, table) {
            return Err(PropensityError::Missing(format!(
                "{table} does not exist yet: load events and run the model first (weft run)"
            )));
        }
        let bots = if name == "events" {
            " AND coalesce(dvce_type, '') <> 'bot'"
        } else {
            ""
        };
        let view = context
            .sql(&format!(
                "SELECT * FROM {table} WHERE {column} < {literal}{bots}"
            ))
            .await?
            .into_view();
        context.register_table(name, view)?;
    }
    Ok(())
}

/// `cookie_customers (domain_userid, customer_id, identified)`: each cookie's
/// customer from identity resolution; a cookie it does not know is a visitor
/// of its own (its stitched user id when there is no identity stage).
pub async fn register_customers(context: &SessionContext) -> Result<()> {
    let sql = if weft_lake::sql::has_table(context, "identity.person_map") {
        "WITH mapped AS (
           SELECT value AS domain_userid, min(customer_id) AS customer_id
           FROM identity.person_map WHERE kind = 'domain_userid' GROUP BY value
         )
         SELECT u.domain_userid, coalesce(m.customer_id, u.domain_userid) AS customer_id,
           m.customer_id IS NOT NULL AS identified
         FROM derived.users u LEFT JOIN mapped m ON m.domain_userid = u.domain_userid"
    } else {
        "SELECT domain_userid, coalesce(stitched_user_id, domain_userid) AS customer_id,
           stitched_user_id IS NOT NULL AND stitched_user_id <> domain_userid AS identified
         FROM derived.users"
    };
    if !weft_lake::sql::has_table(context, "derived.users") {
        return Err(PropensityError::Missing(
            "derived.users does not exist yet: load events and run the model first (weft run)"
                .into(),
        ));
    }
    // computed once per run, read by every cut-off's queries
    let frame = context.sql(sql).await?;
    let schema = Arc::new(frame.schema().as_arrow().clone());
    let batches: Vec<RecordBatch> = frame.collect().await?;
    context.deregister_table("cookie_customers")?;
    let table = MemTable::try_new(schema, vec![batches])?;
    context.register_table("cookie_customers", Arc::new(table))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_are_filled_and_values_escaped() {
        let mut config = MlConfig::default();
        config.category_events.insert(
            "product_views".into(),
            "unstruct_event_com_acme_product_view_1.category".into(),
        );
        let mut spec = FeatureSpec::from_config(&config, 10).unwrap();
        spec.categories = vec!["bread".into(), "kid's toys".into()];
        let cutoff = DateTime::parse_from_rfc3339("2026-11-18T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let columns = vec!["unstruct_event_com_acme_product_view_1".to_owned()];
        let sql = spec.render(cutoff, &columns).unwrap();
        assert!(sql.contains("TIMESTAMP '2026-11-18T00:00:00.000000Z'"));
        assert!(sql.contains("= 'kid''s toys') AS product_views_kid_s_toys"));
        assert!(!sql.contains("{{"));
        // an event never seen yet: a zero column, no reference to it
        let sql = spec.render(cutoff, &[]).unwrap();
        assert!(sql.contains("0 AS product_views_bread"));
        assert!(!sql.contains("unstruct_event_com_acme_product_view_1"));
    }

    #[test]
    fn bad_settings_are_refused_with_their_key() {
        let mut config = MlConfig::default();
        config
            .flags
            .insert("consent".into(), "atomic.events; DROP".into());
        let error = FeatureSpec::from_config(&config, 10)
            .unwrap_err()
            .to_string();
        assert!(error.contains("ml.consent"), "{error}");
        let mut config = MlConfig::default();
        config
            .flags
            .insert("Bad Name".into(), "contexts_x_1.y".into());
        let error = FeatureSpec::from_config(&config, 10)
            .unwrap_err()
            .to_string();
        assert!(error.contains("not a feature name"), "{error}");
    }
}
