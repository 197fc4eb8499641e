//! SQL over every table of the lake, addressed as `schema.table`, with DataFusion.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::common::TableReference;
use deltalake::datafusion::prelude::SessionContext;

use crate::catalog::Lake;
use crate::{LakeError, Result};

/// A DataFusion session with every table of the lake registered.
pub async fn session(lake: &Lake) -> Result<SessionContext> {
    session_of(lake, &lake.tables()?).await
}

/// A DataFusion session with the given tables of the lake, (schema, table),
/// registered; those that do not exist are left out.
pub async fn session_of(lake: &Lake, tables: &[(String, String)]) -> Result<SessionContext> {
    let config = session_config()?;
    let mut context = SessionContext::new_with_state(state_with_rules(config));
    register_functions(&mut context)?;
    let catalog = context
        .catalog("datafusion")
        .expect("the default catalog exists");
    let existing = lake.tables()?;
    let providers_session = SessionContext::new().state();
    // each table's log read side by side: a lake has a dozen tables
    let mut opening = tokio::task::JoinSet::new();
    for (at, (schema, table)) in tables.iter().filter(|t| existing.contains(t)).enumerate() {
        let (lake, schema, table) = (lake.clone(), schema.clone(), table.clone());
        opening.spawn(async move { (at, lake.table(&schema, &table).await, schema, table) });
    }
    let mut opened = Vec::with_capacity(opening.len());
    while let Some(joined) = opening.join_next().await {
        let (at, delta, schema, table) =
            joined.map_err(|error| LakeError::Io(std::io::Error::other(error)))?;
        opened.push((at, delta?, schema, table));
    }
    opened.sort_by_key(|(at, ..)| *at);
    for (_, delta, schema, table) in opened {
        if catalog.schema(&schema).is_none() {
            catalog.register_schema(&schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        delta
            .update_datafusion_session(&context.state())
            .map_err(|source| LakeError::Delta {
                table: format!("{schema}.{table}"),
                source,
            })?;
        // Left to itself, delta-rs evaluates a scan's filters while decoding
        // Parquet, and DataFusion then adds the same filters there again, so
        // each ran twice. Built from a default session, the provider only uses
        // them to skip files; DataFusion prunes row groups and pages with them
        // and filters the decoded batches. Over 10 M events that took an
        // audience from 830 to 580 ms and a trait-only size from 98 to 17 ms
        // (`weft bench audience`); `DATAFUSION_EXECUTION_PARQUET_PUSHDOWN_FILTERS=true`
        // filters while decoding instead.
        let provider = delta
            .table_provider()
            .with_session(Arc::new(providers_session.clone()))
            .await?;
        context.register_table(
            TableReference::partial(schema.as_str(), table.as_str()),
            provider,
        )?;
    }
    Ok(context)
}

/// DataFusion's settings, as the `DATAFUSION_*` environment variables give
/// them (e.g. `DATAFUSION_EXECUTION_TARGET_PARTITIONS=8`), over weft's defaults.
pub fn session_config() -> Result<deltalake::datafusion::prelude::SessionConfig> {
    let mut config = deltalake::datafusion::prelude::SessionConfig::from_env()?;
    let given = |key: &str| std::env::var_os(key).is_some();
    if !given("DATAFUSION_EXECUTION_BATCH_SIZE") {
        // batches four times DataFusion's default: a behavioural audience over
        // millions of events spends less per batch (measured by `weft bench audience`)
        config = config.with_batch_size(32 * 1024);
    }
    if !given("DATAFUSION_OPTIMIZER_ENABLE_LEAF_EXPRESSION_PUSHDOWN") {
        // it would compute a filter's JSON lookups for every row, in a
        // projection under the filter, before `CallsAfterComparisons` can
        // leave them to the rows the comparisons keep
        config
            .options_mut()
            .optimizer
            .enable_leaf_expression_pushdown = false;
    }
    Ok(config)
}

/// DataFusion's default session with weft's plan rewrites in place: each
/// goes just before the DataFusion rule it prepares for.
pub(crate) fn state_with_rules(
    config: deltalake::datafusion::prelude::SessionConfig,
) -> deltalake::datafusion::execution::SessionState {
    use deltalake::datafusion::execution::SessionStateBuilder;
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .build();
    let mut rules = state.optimizers().to_vec();
    let at = rules
        .iter()
        .position(|rule| rule.name() == crate::rules::SINGLE_DISTINCT)
        .unwrap_or(rules.len());
    rules.insert(at, Arc::new(crate::rules::CountsBesideDistinct));
    // the split goes before the last rule, DataFusion's sanity check of the plan
    let mut physical = state.physical_optimizers().to_vec();
    physical.insert(
        physical.len().saturating_sub(1),
        Arc::new(crate::split_filter::CallsAfterComparisons),
    );
    SessionStateBuilder::new_from_existing(state)
        .with_optimizer_rules(rules)
        .with_physical_optimizer_rules(physical)
        .build()
}

/// The functions weft's SQL uses beyond DataFusion's own: json_get,
/// json_get_str, json_length, `->`, … over the JSON text columns.
pub fn register_functions(context: &mut SessionContext) -> Result<()> {
    datafusion_functions_json::register_all(context)?;
    Ok(())
}

/// Runs one query and collects its result.
pub async fn query(lake: &Lake, sql: &str) -> Result<Vec<RecordBatch>> {
    let context = session(lake).await?;
    let frame = context.sql(sql).await?;
    let schema = frame.schema().inner().clone();
    let batches = frame.collect().await?;
    // an empty result still has its columns
    Ok(if batches.is_empty() {
        vec![RecordBatch::new_empty(schema)]
    } else {
        batches
    })
}

/// An aligned text table.
pub fn pretty(batches: &[RecordBatch]) -> Result<String> {
    Ok(deltalake::arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

/// CSV with a header line.
pub fn write_csv(batches: &[RecordBatch], out: &mut impl std::io::Write) -> Result<()> {
    let mut writer = deltalake::arrow::csv::WriterBuilder::new()
        .with_header(true)
        .build(out);
    for batch in batches {
        writer.write(batch)?;
    }
    Ok(())
}

/// A JSON array of row objects.
pub fn write_json(batches: &[RecordBatch], out: &mut impl std::io::Write) -> Result<()> {
    let mut writer = deltalake::arrow::json::ArrayWriter::new(out);
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    writer.write_batches(&refs)?;
    writer.finish()?;
    Ok(())
}

/// Whether the session has `schema.table` (a schema with no table yet is not registered at all).
pub fn has_table(context: &SessionContext, name: &str) -> bool {
    context.table_exist(name).unwrap_or(false)
}

/// `COLUMN.KEY` of a self-describing column of `atomic.events` and a key of
/// its data, checked so both can be written into SQL.
pub fn self_describing_path(path: &str) -> std::result::Result<(&str, &str), String> {
    let (column, key) = path
        .split_once('.')
        .ok_or_else(|| format!("{path:?} is not COLUMN.KEY"))?;
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !word(column) || !word(key) {
        return Err(format!(
            "{path:?}: column and key are letters, digits and _"
        ));
    }
    if !(column.starts_with("contexts_") || column.starts_with("unstruct_event_")) {
        return Err(format!(
            "{path:?}: the column is a self-describing one, contexts_… or unstruct_event_…"
        ));
    }
    Ok((column, key))
}

/// SQL reading `key` of a checked self-describing column (`column` may carry
/// a table alias) with a `json_get_*` function: a context column holds a
/// list of entities, of which the first is read.
pub fn json_key(function: &str, column: &str, key: &str) -> String {
    let name = column.rsplit('.').next().unwrap_or(column);
    if name.starts_with("contexts_") {
        format!("{function}({column}, 0, '{key}')")
    } else {
        format!("{function}({column}, '{key}')")
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn email_paths_are_checked_before_they_reach_sql() {
        assert_eq!(
            self_describing_path("contexts_com_acme_user_1.email"),
            Ok(("contexts_com_acme_user_1", "email"))
        );
        assert!(self_describing_path("contexts_x_1").is_err());
        assert!(self_describing_path("contexts_x_1.email'); DROP").is_err());
        assert!(self_describing_path("user_id.email").is_err());
    }
}

#[cfg(test)]
mod scan_tests {
    use deltalake::arrow::array::StringArray;
    use deltalake::arrow::compute::cast;
    use deltalake::arrow::datatypes::DataType;
    use deltalake::datafusion::physical_plan::displayable;

    use super::*;

    #[tokio::test]
    async fn a_lake_table_applies_each_filter_once_and_right() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path());
        let context = SessionContext::new();
        let batches = context
            .sql("SELECT value AS n, concat('c', CAST(value AS VARCHAR)) AS name FROM generate_series(1, 1000)")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        lake.table("t", "numbers")
            .await
            .unwrap()
            .write(batches)
            .await
            .unwrap();

        let session = session(&lake).await.unwrap();
        let frame = session
            .sql("SELECT name FROM t.numbers WHERE n > 990 AND name <> 'c995'")
            .await
            .unwrap();
        let plan = frame.clone().create_physical_plan().await.unwrap();
        let text = displayable(plan.as_ref()).indent(true).to_string();
        // pushed into the scan for pruning once, not twice
        assert_eq!(text.matches("n@0 > 990").count(), 2, "{text}");
        assert!(text.contains("FilterExec"), "{text}");

        let mut names = Vec::new();
        for batch in frame.collect().await.unwrap() {
            let column = cast(batch.column(0), &DataType::Utf8).unwrap();
            let column = column.as_any().downcast_ref::<StringArray>().unwrap();
            names.extend(column.iter().flatten().map(str::to_owned));
        }
        names.sort();
        let mut expected: Vec<String> = (991..=1000)
            .filter(|n| *n != 995)
            .map(|n| format!("c{n}"))
            .collect();
        expected.sort();
        assert_eq!(names, expected);
    }
}
