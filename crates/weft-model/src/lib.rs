//! weft's web modelling: `derived.page_views`, `sessions`, `users`,
//! `conversions` and `user_mapping` from `atomic.events`, with the semantics of
//! Snowplow's web model, kept up to date incrementally.
//!
//! The models are SQL files (`sql/`), one per table, written once for every
//! engine: [`Dialect`] names the few places where engines differ, so the same
//! models can run in DataFusion here or in Spark/Databricks or DuckDB.

mod deletion;
pub mod dialect;
mod run;
mod spill;
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
    // the large errors are boxed: a Result stays small on the happy path
    #[error(transparent)]
    Lake(Box<weft_lake::LakeError>),
    #[error(transparent)]
    DataFusion(Box<deltalake::datafusion::error::DataFusionError>),
    #[error("arrow: {0}")]
    Arrow(Box<deltalake::arrow::error::ArrowError>),
    #[error("spilling events to {path}: {source}")]
    Spill {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("delta table derived.{table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
}

impl From<weft_lake::LakeError> for ModelError {
    fn from(error: weft_lake::LakeError) -> Self {
        Self::Lake(Box::new(error))
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for ModelError {
    fn from(error: deltalake::datafusion::error::DataFusionError) -> Self {
        Self::DataFusion(Box::new(error))
    }
}

impl From<deltalake::arrow::error::ArrowError> for ModelError {
    fn from(error: deltalake::arrow::error::ArrowError) -> Self {
        Self::Arrow(Box::new(error))
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

/// Checks the `model.*` settings before anything runs.
pub fn check_config(config: &weft_core::config::ModelConfig) -> Result<()> {
    ModelSql::new(config, Dialect::DataFusion, None).map(|_| ())
}
