//! The identity stage over the lake: customer records from the configured
//! sources (CSV, Parquet, lake tables) and web identities from the modelled
//! tables, linked by `weft-identity`, given customer ids that survive reruns
//! (`identity.person_map`, `identity.customer_changes`), and rolled up into
//! one profile per customer with history (`profiles.customers`).

pub mod customers;
pub mod explain;
pub mod person_map;
pub mod run;
pub mod sources;
pub mod web;

pub use explain::{Explanation, explain};
pub use run::{IdentityReport, check_config, resolve};

#[derive(Debug, thiserror::Error)]
pub enum ProfilesError {
    #[error("{0}")]
    Config(String),
    #[error("source {source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    // the large errors are boxed: a Result stays small on the happy path
    #[error(transparent)]
    Lake(Box<weft_lake::LakeError>),
    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(transparent)]
    Sql(Box<deltalake::datafusion::error::DataFusionError>),
    #[error("arrow: {0}")]
    Arrow(Box<deltalake::arrow::error::ArrowError>),
}

impl From<weft_lake::LakeError> for ProfilesError {
    fn from(error: weft_lake::LakeError) -> Self {
        Self::Lake(Box::new(error))
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for ProfilesError {
    fn from(error: deltalake::datafusion::error::DataFusionError) -> Self {
        Self::Sql(Box::new(error))
    }
}

impl From<deltalake::arrow::error::ArrowError> for ProfilesError {
    fn from(error: deltalake::arrow::error::ArrowError) -> Self {
        Self::Arrow(Box::new(error))
    }
}

pub type Result<T, E = ProfilesError> = std::result::Result<T, E>;

/// A query's rows in the run's session (one per run: opening one loads every table's log).
pub(crate) async fn query(
    context: &deltalake::datafusion::prelude::SessionContext,
    sql: &str,
) -> Result<Vec<deltalake::arrow::array::RecordBatch>> {
    Ok(context.sql(sql).await?.collect().await?)
}
