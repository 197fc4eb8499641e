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
    let mut context = SessionContext::new();
    // json_get, json_get_str, json_length, `->`, … over the JSON text columns
    datafusion_functions_json::register_all(&mut context)?;
    let catalog = context
        .catalog("datafusion")
        .expect("the default catalog exists");
    for (schema, table) in lake.tables()? {
        if catalog.schema(&schema).is_none() {
            catalog.register_schema(&schema, Arc::new(MemorySchemaProvider::new()))?;
        }
        let delta = lake.table(&schema, &table).await?;
        delta
            .update_datafusion_session(&context.state())
            .map_err(|source| LakeError::Delta {
                table: format!("{schema}.{table}"),
                source,
            })?;
        let provider = delta.table_provider().await?;
        context.register_table(
            TableReference::partial(schema.as_str(), table.as_str()),
            provider,
        )?;
    }
    Ok(context)
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
