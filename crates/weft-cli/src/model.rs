//! `weft model sql`: the web model's SQL for another engine.

use std::collections::HashSet;

use anyhow::Result;
use clap::{Args, Subcommand};
use weft_core::Config;
use weft_lake::Lake;
use weft_model::{Dialect, ModelSql};

use crate::UsageError;

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Print the full build as SQL views for an engine (spark/databricks, duckdb,
    /// datafusion), reading its own `atomic.events`.
    Sql(SqlArgs),
}

#[derive(Args)]
pub struct SqlArgs {
    /// datafusion, spark (or databricks), duckdb.
    #[arg(long, default_value = "spark")]
    pub dialect: String,
}

pub async fn run(config: Config, command: ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Sql(args) => {
            let dialect: Dialect = args
                .dialect
                .parse()
                .map_err(|e: weft_model::ModelError| UsageError(e.to_string()))?;
            // the columns this lake's events have, when it has events
            let lake = Lake::new(&config.data_dir);
            let columns: Option<HashSet<String>> = if lake
                .tables()?
                .iter()
                .any(|(s, t)| s == "atomic" && t == "events")
            {
                let batches =
                    weft_lake::sql::query(&lake, "SELECT * FROM atomic.events LIMIT 0").await?;
                batches.first().map(|b| {
                    b.schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .collect()
                })
            } else {
                None
            };
            let sql = ModelSql::new(&config.model, dialect, columns.as_ref())
                .map_err(|e| UsageError(e.to_string()))?;
            print!("{}", sql.script()?);
            Ok(())
        }
    }
}
