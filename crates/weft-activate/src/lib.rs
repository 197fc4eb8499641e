//! Activation: audiences delivered to the tools where marketing acts.
//!
//! A [`spec::SyncSpec`] names an audience (or a journey's branch), a
//! destination defined in the config, a [`spec::Mode`] and a field mapping.
//! A run reads the members' rows ([`rows`]), compares them with what the
//! destination last acknowledged ([`diff`]), and sends only the difference
//! to [`destination`]s: one file per service behind one trait, each
//! answering per row and saying whether a failed batch is retried, split
//! or stops the run. What each destination acknowledged is kept in
//! `weft_meta::state` between runs. A [`journey`] routes an audience's
//! members down branches (by audience, stable random split, holdout),
//! each branch the source of syncs.

pub mod deliver;
pub mod destination;
pub mod diff;
pub mod journey;
pub mod normalise;
pub mod rows;
pub mod runs;
pub mod service;
pub mod spec;

pub use weft_audience::SpecError;

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    #[error("destination {name:?}: {reason}")]
    Destination { name: String, reason: String },
    #[error(transparent)]
    Audience(#[from] weft_audience::AudienceError),
    #[error(transparent)]
    Meta(#[from] weft_meta::MetaError),
    #[error(transparent)]
    Lake(Box<weft_lake::LakeError>),
    #[error("query failed: {0}")]
    Query(Box<deltalake::datafusion::error::DataFusionError>),
    #[error("writing {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(transparent)]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("no {kind} named {name:?}")]
    Missing { kind: &'static str, name: String },
}

impl ActivateError {
    /// Whether the user can fix it (a spec, a name, a destination's
    /// settings), as opposed to the machine failing.
    pub fn is_usage(&self) -> bool {
        match self {
            ActivateError::Spec(_)
            | ActivateError::Destination { .. }
            | ActivateError::Missing { .. } => true,
            ActivateError::Audience(error) => error.is_usage(),
            ActivateError::Meta(error) => matches!(
                error,
                weft_meta::MetaError::Exists(..) | weft_meta::MetaError::Missing(..)
            ),
            _ => false,
        }
    }
}

impl From<weft_lake::LakeError> for ActivateError {
    fn from(error: weft_lake::LakeError) -> Self {
        ActivateError::Lake(Box::new(error))
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for ActivateError {
    fn from(error: deltalake::datafusion::error::DataFusionError) -> Self {
        ActivateError::Query(Box::new(error))
    }
}

pub type Result<T, E = ActivateError> = std::result::Result<T, E>;

fn spec_error(path: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}
