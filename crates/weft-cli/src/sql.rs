//! `weft sql "QUERY"`: SQL over every table, as an aligned table, CSV or JSON.

use anyhow::Result;
use clap::{Args, ValueEnum};
use weft_core::Config;
use weft_lake::Lake;
use weft_lake::sql::query;

#[derive(Args)]
pub struct SqlArgs {
    /// The query; tables are addressed as schema.table (atomic.events, atomic.bad_rows, …).
    pub query: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

pub async fn run(config: Config, args: SqlArgs) -> Result<()> {
    let lake = Lake::new(&config.data_dir);
    let batches = query(&lake, &args.query)
        .await
        .map_err(|error| crate::UsageError(format!("query failed: {error}")))?;
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Table => {
            let text = weft_lake::sql::pretty(&batches)?;
            use std::io::Write;
            writeln!(out, "{text}")?;
        }
        Format::Csv => weft_lake::sql::write_csv(&batches, &mut out)?,
        Format::Json => weft_lake::sql::write_json(&batches, &mut out)?,
    }
    Ok(())
}
