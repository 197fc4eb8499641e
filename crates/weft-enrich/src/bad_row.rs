//! Bad rows: what could not become a canonical event, with why and the data
//! itself, so it can be repaired and replayed. Nothing is dropped silently.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Snowplow's names for what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    /// The request was larger than the collector keeps for processing.
    SizeViolation,
    /// The request could not be split into events (not JSON, wrong envelope, …).
    AdapterFailures,
    /// An event's parameters could not be read (unknown type, bad number, bad base64, …).
    TrackerProtocolViolations,
    /// A self-describing event or context does not match its schema, or it has none.
    SchemaViolations,
    /// An enrichment failed on the event.
    EnrichmentFailures,
}

impl FailureType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SizeViolation => "size_violation",
            Self::AdapterFailures => "adapter_failures",
            Self::TrackerProtocolViolations => "tracker_protocol_violations",
            Self::SchemaViolations => "schema_violations",
            Self::EnrichmentFailures => "enrichment_failures",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BadRow {
    pub failure_type: FailureType,
    /// One message per problem found.
    pub messages: Vec<String>,
    /// When the collector received the request, ms since the epoch.
    pub collector_tstamp: i64,
    /// When processing failed, ms since the epoch.
    pub failure_tstamp: i64,
    /// The event id, when the event got that far.
    pub event_id: Option<String>,
    /// The data: an event's tracker parameters as JSON, or the whole request body
    /// (or query string) when it could not be split into events.
    pub payload: String,
    /// `text`, or `base64` for a body that was not UTF-8.
    pub payload_encoding: String,
}

impl BadRow {
    /// A bad row holding raw request bytes, kept exactly.
    pub fn with_raw_payload(
        failure_type: FailureType,
        messages: Vec<String>,
        collector_tstamp: i64,
        failure_tstamp: i64,
        raw: &[u8],
    ) -> Self {
        let (payload, payload_encoding) = match std::str::from_utf8(raw) {
            Ok(text) => (text.to_owned(), "text"),
            Err(_) => (
                base64::engine::general_purpose::STANDARD.encode(raw),
                "base64",
            ),
        };
        Self {
            failure_type,
            messages,
            collector_tstamp,
            failure_tstamp,
            event_id: None,
            payload,
            payload_encoding: payload_encoding.to_owned(),
        }
    }
}
