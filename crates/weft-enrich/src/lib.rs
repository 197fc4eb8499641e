//! From what trackers sent to canonical events: tracker parameters mapped onto
//! Snowplow's atomic fields, with every field that cannot be read reported.

pub mod canonical;
pub mod schema_key;

pub use canonical::{FieldFailure, canonical_event};
pub use schema_key::SchemaKey;
