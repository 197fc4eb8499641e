//! From what trackers sent to canonical events: tracker parameters mapped onto
//! Snowplow's atomic fields, self-describing JSON validated against Iglu
//! schemas, and what fails kept as bad rows.

pub mod bad_row;
pub mod canonical;
pub mod enrichments;
pub mod fingerprint;
pub mod iglu;
pub mod process;
pub mod schema_key;

pub use bad_row::{BadRow, FailureType};
pub use canonical::{FieldFailure, canonical_event};
pub use enrichments::{Enrichment, EnrichmentConfigError, Enrichments};
pub use fingerprint::event_fingerprint;
pub use iglu::{IgluError, Resolver};
pub use process::{Processed, process_payload, process_payload_with};
pub use schema_key::SchemaKey;
