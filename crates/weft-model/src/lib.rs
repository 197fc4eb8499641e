//! weft's web modelling: `derived.page_views`, `sessions`, `users`,
//! `conversions` and `user_mapping` from `atomic.events`, with the semantics of
//! Snowplow's web model, kept up to date incrementally.
//!
//! The models are SQL files (`sql/`), one per table, written once for every
//! engine: [`Dialect`] names the few places where engines differ, so the same
//! models can run in DataFusion here or in Spark/Databricks or DuckDB.

pub mod dialect;
mod run;
pub mod sql;

pub use dialect::Dialect;
pub use run::{DERIVED_TABLES, MODEL_APP_ID, ModelReport, Modeller};
pub use sql::ModelSql;

/// Errors of modelling.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A `model.*` setting that cannot work; the message names the key.
    #[error("{0}")]
    Config(String),
    #[error("model SQL: {0}")]
    Sql(String),
    #[error(transparent)]
    Lake(#[from] weft_lake::LakeError),
    #[error(transparent)]
    DataFusion(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("delta table derived.{table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Checks the `model.*` settings before anything runs.
pub fn check_config(config: &weft_core::config::ModelConfig) -> Result<()> {
    ModelSql::new(config, Dialect::DataFusion, None).map(|_| ())
}
