//! One collector payload in, canonical events and bad rows out: split into
//! events, read each one's parameters, validate its self-describing event and
//! contexts against their schemas. One bad event never spoils the rest.

use serde_json::Value;
use weft_collect::CollectorPayload;
use weft_collect::protocol::{ProtocolError, parse_payload};
use weft_core::Event;

use crate::bad_row::{BadRow, FailureType};
use crate::canonical::canonical_event;
use crate::enrichments::Enrichments;
use crate::iglu::Resolver;

#[derive(Debug, Default)]
pub struct Processed {
    pub events: Vec<Event>,
    pub bad_rows: Vec<BadRow>,
}

/// Processes one payload at `etl_tstamp` (ms since the epoch), without enrichments.
pub fn process_payload(
    payload: &CollectorPayload,
    resolver: &Resolver,
    etl_tstamp: i64,
) -> Processed {
    process_payload_with(payload, resolver, &Enrichments::none(), etl_tstamp)
}

/// Processes one payload and enriches each valid event.
pub fn process_payload_with(
    payload: &CollectorPayload,
    resolver: &Resolver,
    enrichments: &Enrichments,
    etl_tstamp: i64,
) -> Processed {
    let mut processed = Processed::default();
    let parsed = parse_payload(payload);
    for error in parsed.errors {
        let failure_type = match error {
            ProtocolError::SizeViolation { .. } => FailureType::SizeViolation,
            _ => FailureType::AdapterFailures,
        };
        let raw = payload
            .body
            .as_deref()
            .filter(|body| !body.is_empty())
            .unwrap_or_else(|| payload.query.as_deref().unwrap_or("").as_bytes());
        processed.bad_rows.push(BadRow::with_raw_payload(
            failure_type,
            vec![error.to_string()],
            payload.received_at_ms,
            etl_tstamp,
            raw,
        ));
    }
    for raw in parsed.events {
        let params = || serde_json::to_string(&raw.params).unwrap_or_default();
        let event = match canonical_event(payload, &raw, etl_tstamp) {
            Ok(event) => event,
            Err(failures) => {
                processed.bad_rows.push(BadRow {
                    failure_type: FailureType::TrackerProtocolViolations,
                    messages: failures.iter().map(ToString::to_string).collect(),
                    collector_tstamp: payload.received_at_ms,
                    failure_tstamp: etl_tstamp,
                    event_id: raw.get("eid").map(str::to_owned),
                    payload: params(),
                    payload_encoding: "text".to_owned(),
                });
                continue;
            }
        };
        let mut event = event;
        if !enrichments.default_fingerprint() {
            event.event_fingerprint = enrichments.fingerprint(&raw.params);
        }
        let messages = schema_violations(&event, resolver);
        if messages.is_empty() {
            match enrichments.apply(&mut event) {
                Ok(()) => processed.events.push(event),
                Err(failure) => processed.bad_rows.push(BadRow {
                    failure_type: FailureType::EnrichmentFailures,
                    messages: vec![failure.to_string()],
                    collector_tstamp: payload.received_at_ms,
                    failure_tstamp: etl_tstamp,
                    event_id: event.event_id,
                    payload: params(),
                    payload_encoding: "text".to_owned(),
                }),
            }
        } else {
            processed.bad_rows.push(BadRow {
                failure_type: FailureType::SchemaViolations,
                messages,
                collector_tstamp: payload.received_at_ms,
                failure_tstamp: etl_tstamp,
                event_id: event.event_id,
                payload: params(),
                payload_encoding: "text".to_owned(),
            });
        }
    }
    processed
}

/// Every way the event's self-describing event and contexts miss their schemas.
fn schema_violations(event: &Event, resolver: &Resolver) -> Vec<String> {
    let mut messages = Vec::new();
    let mut check = |what: &str, entity: &Value| {
        if let Err(errors) = resolver.validate(entity) {
            messages.extend(errors.iter().map(|error| format!("{what}: {error}")));
        }
    };
    if let Some(unstruct) = &event.unstruct_event {
        check("unstruct_event", unstruct);
    }
    if let Some(Value::Array(contexts)) = &event.contexts {
        for (index, context) in contexts.iter().enumerate() {
            check(&format!("contexts[{index}]"), context);
        }
    }
    messages
}
