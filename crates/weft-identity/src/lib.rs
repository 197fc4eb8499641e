//! Identity resolution: records from many systems, normalised, compared
//! (deterministic rules, then Fellegi–Sunter match weights learned by
//! expectation–maximisation), and clustered into persons with guards against
//! over-merging.

pub mod cluster;
pub mod compare;
pub mod eval;
pub mod field;
pub mod link;
pub mod model;
pub mod normalise;
pub mod record;
pub mod rules;
pub mod source;
pub mod stable;

pub use cluster::{Guards, Refusal};
pub use compare::Comparison;
pub use eval::{Evaluation, Scores, evaluate};
pub use field::Field;
pub use link::{Link, LinkOptions, Linkage, link, paths};
pub use record::{NormaliseOptions, RawRecord, Record};
pub use rules::Rule;
pub use source::{Mapping, read_csv};
pub use stable::{Change, RecordKey, assign};

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: {message}")]
    Source { path: String, message: String },
}

pub type Result<T, E = IdentityError> = std::result::Result<T, E>;
