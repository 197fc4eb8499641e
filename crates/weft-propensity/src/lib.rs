//! The propensity stage over the lake: each customer's features as of a
//! cut-off (a SQL spec over the modelled tables, which see nothing after
//! it), whether they converted in the window after it (overall and per
//! category), models trained on earlier cut-offs and validated on a later
//! one with `weft-ml`, registered with their card and spec, and scores of
//! every customer in `ml.scores` from the production version.

pub mod dataset;
pub mod run;
pub mod spec;

pub use run::{MlReport, ScoreReport, TargetReport, TrainReport, registry, run};

#[derive(Debug, thiserror::Error)]
pub enum PropensityError {
    #[error("{0}")]
    Config(String),
    /// What the stage needs is not in the lake yet.
    #[error("{0}")]
    Missing(String),
    /// The feature spec returned something the trainer cannot use.
    #[error("feature spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Ml(#[from] weft_ml::MlError),
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

impl From<weft_lake::LakeError> for PropensityError {
    fn from(error: weft_lake::LakeError) -> Self {
        Self::Lake(Box::new(error))
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for PropensityError {
    fn from(error: deltalake::datafusion::error::DataFusionError) -> Self {
        Self::Sql(Box::new(error))
    }
}

impl From<deltalake::arrow::error::ArrowError> for PropensityError {
    fn from(error: deltalake::arrow::error::ArrowError) -> Self {
        Self::Arrow(Box::new(error))
    }
}

pub type Result<T, E = PropensityError> = std::result::Result<T, E>;
