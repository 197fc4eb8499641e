//! weft's lakehouse: Delta Lake tables under `data_dir/lake/<schema>/<table>`,
//! the loader that fills `atomic.events` and `atomic.bad_rows` from the raw
//! log exactly once, and SQL over every table with DataFusion.

pub mod arrow_rows;
pub mod catalog;
pub mod dedup;
pub mod loader;
pub mod maintenance;
pub mod rules;
pub mod split_filter;
pub mod sql;

pub use catalog::Lake;
pub use loader::{LoadReport, Loader};
pub use maintenance::{MaintenanceOptions, TableMaintenance, maintain};

/// Errors of the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },
    #[error("raw log: {0}")]
    Log(#[from] weft_collect::LogError),
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error(transparent)]
    Sql(#[from] deltalake::datafusion::error::DataFusionError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{path} is not a usable table location: {reason}")]
    Location { path: String, reason: String },
}

pub type Result<T, E = LakeError> = std::result::Result<T, E>;
