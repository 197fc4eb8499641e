//! weft's machine learning for binary outcomes (will this customer convert?):
//! histogram gradient-boosted trees and L2 logistic regression trained in
//! Rust, chosen on a validation split and calibrated, with the metrics a data
//! scientist and a marketer read, a model card, and a registry of versioned
//! models with explicit promotion. It works on any table ([`Frame`]), read
//! from CSV or built by the caller; the lake's features live elsewhere.

pub mod bins;
pub mod card;
pub mod frame;
pub mod gbdt;
pub mod logistic;
pub mod metrics;
pub mod model;
pub mod registry;
pub mod schema;
pub mod train;

pub use frame::{Column, CsvRoles, Frame, Values};
pub use model::Model;
pub use registry::{ModelFile, Registry, Stage};
pub use schema::{FeatureSchema, Matrix};
pub use train::{Fitted, Learners, TrainOptions, fit};

#[derive(Debug, thiserror::Error)]
pub enum MlError {
    /// Data or a request that cannot be used as it is: says what and where.
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Io(String),
}

pub type Result<T, E = MlError> = std::result::Result<T, E>;
