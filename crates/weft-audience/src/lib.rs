//! Audiences: who, among weft's customers, a marketer wants to reach.
//!
//! A [`spec::Spec`] (JSON or YAML) is checked against the lake's tables
//! ([`catalog::Catalog`]) and compiled ([`plan::compile`]) to a
//! customer-centric [`plan::Query`], which [`sql::render`] writes in any
//! [`dialect::Dialect`]: DataFusion runs it here ([`engine::Engine`]), the
//! other dialects run it where the data already is. [`membership`] keeps
//! who entered and left each audience, run after run.

pub mod catalog;
pub mod dialect;
pub mod engine;
pub mod membership;
pub mod plan;
pub mod service;
pub mod spec;
pub mod sql;

use std::fmt;

/// A spec that cannot be an audience: where (a JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for SpecError {}

#[derive(Debug, thiserror::Error)]
pub enum AudienceError {
    #[error("invalid audience spec: {0}")]
    Spec(#[from] SpecError),
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
    #[error(transparent)]
    Meta(#[from] weft_meta::MetaError),
    #[error("no audience named {0:?}")]
    Missing(String),
}

impl From<weft_lake::LakeError> for AudienceError {
    fn from(error: weft_lake::LakeError) -> Self {
        AudienceError::Lake(Box::new(error))
    }
}

impl From<deltalake::datafusion::error::DataFusionError> for AudienceError {
    fn from(error: deltalake::datafusion::error::DataFusionError) -> Self {
        AudienceError::Query(Box::new(error))
    }
}

impl AudienceError {
    /// Whether the user asked for something wrong (a bad spec, a missing or
    /// duplicate name) rather than weft failing.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            AudienceError::Spec(_)
                | AudienceError::Missing(_)
                | AudienceError::Meta(
                    weft_meta::MetaError::Exists(..) | weft_meta::MetaError::Missing(..)
                )
        )
    }
}

pub type Result<T, E = AudienceError> = std::result::Result<T, E>;
