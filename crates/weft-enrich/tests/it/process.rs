//! Payload in, events and bad rows out: good events pass, each bad one is kept with why.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde_json::json;
use weft_collect::CollectorPayload;
use weft_collect::payload::SizeViolation;
use weft_enrich::{FailureType, Resolver, process_payload};

use crate::{ETL, fixtures};

fn registry() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/iglu")
}

fn post(body: &[u8]) -> CollectorPayload {
    let mut payload = fixtures()
        .into_iter()
        .find(|f| f.name.contains("node-tracker-4.8.0__post"))
        .unwrap()
        .payload;
    payload.body = Some(Bytes::copy_from_slice(body));
    payload
}

#[test]
fn every_captured_event_validates_against_its_schemas() {
    let resolver = Resolver::new(vec![registry()]);
    let mut events = 0;
    for fixture in fixtures() {
        let processed = process_payload(&fixture.payload, &resolver, ETL);
        assert!(
            processed.bad_rows.is_empty(),
            "{}: {:?}",
            fixture.name,
            processed.bad_rows
        );
        events += processed.events.len();
    }
    // Python and Node: 5 GETs and a POST of 5 each; browser: 6 single POSTs and a batch of 6
    assert_eq!(events, 10 + 10 + 6 + 6, "every event of every fixture");
}

#[test]
fn without_the_registry_unknown_schemas_are_schema_violations() {
    let resolver = Resolver::new(Vec::new());
    let fixture = fixtures()
        .into_iter()
        .find(|f| f.name == "python-tracker-1.1.0__get-01-pv.json")
        .unwrap();
    let processed = process_payload(&fixture.payload, &resolver, ETL);
    assert!(processed.events.is_empty());
    let bad = &processed.bad_rows[0];
    assert_eq!(bad.failure_type, FailureType::SchemaViolations);
    assert!(
        bad.messages[0].contains("iglu:com.acme/product_entity/jsonschema/1-0-0"),
        "{:?}",
        bad.messages
    );
    assert!(bad.messages[0].contains("not found"), "{:?}", bad.messages);
    assert!(
        bad.payload.contains("\"eid\""),
        "the event's parameters are kept"
    );
}

#[test]
fn one_bad_event_does_not_spoil_its_batch() {
    let resolver = Resolver::new(vec![registry()]);
    let product = |data: serde_json::Value| {
        json!({"schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
               "data": [{"schema": "iglu:com.acme/product_entity/jsonschema/1-0-0", "data": data}]})
        .to_string()
    };
    let link = |data: serde_json::Value| {
        json!({"schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
               "data": {"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1", "data": data}})
        .to_string()
    };
    let body = json!({
        "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
        "data": [
            {"e": "pv", "p": "web", "eid": "11111111-1111-4111-8111-111111111111", "co": product(json!({"sku": "A"}))},
            {"e": "se", "p": "web", "eid": "22222222-2222-4222-8222-222222222222", "se_va": "lots"},
            {"e": "ue", "p": "web", "eid": "33333333-3333-4333-8333-333333333333", "ue_pr": link(json!({"elementId": "x"}))},
            {"e": "pv", "p": "web", "eid": "44444444-4444-4444-8444-444444444444", "co": product(json!({"sku": "B", "colour": "red"}))},
            {"e": "pv", "p": "web", "vid": 3},
            {"e": "ue", "p": "web", "eid": "55555555-5555-4555-8555-555555555555", "ue_px": "%%%"},
            {"e": "ue", "p": "web", "eid": "66666666-6666-4666-8666-666666666666", "ue_pr": link(json!({"targetUrl": "https://shop.example.com/"}))},
        ],
    });
    let processed = process_payload(&post(body.to_string().as_bytes()), &resolver, ETL);
    let good: Vec<_> = processed
        .events
        .iter()
        .map(|e| e.event_id.clone().unwrap())
        .collect();
    assert_eq!(
        good,
        [
            "11111111-1111-4111-8111-111111111111",
            "66666666-6666-4666-8666-666666666666"
        ]
    );
    let bad: Vec<_> = processed
        .bad_rows
        .iter()
        .map(|b| (b.failure_type, b.event_id.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        bad,
        [
            (FailureType::AdapterFailures, String::new()),
            (
                FailureType::TrackerProtocolViolations,
                "22222222-2222-4222-8222-222222222222".into()
            ),
            (
                FailureType::SchemaViolations,
                "33333333-3333-4333-8333-333333333333".into()
            ),
            (
                FailureType::SchemaViolations,
                "44444444-4444-4444-8444-444444444444".into()
            ),
            (
                FailureType::TrackerProtocolViolations,
                "55555555-5555-4555-8555-555555555555".into()
            ),
        ]
    );
    let missing_target = &processed.bad_rows[2];
    assert!(
        missing_target
            .messages
            .iter()
            .any(|m| m.contains("targetUrl")),
        "{:?}",
        missing_target.messages
    );
    let extra_field = &processed.bad_rows[3];
    assert!(
        extra_field.messages.iter().any(|m| m.contains("colour")),
        "{:?}",
        extra_field.messages
    );
    assert!(
        processed.bad_rows[0].messages[0].contains("vid"),
        "the non-string value is named"
    );
}

#[test]
fn unreadable_requests_keep_their_bytes() {
    let resolver = Resolver::new(vec![registry()]);
    let processed = process_payload(&post(b"{not json"), &resolver, ETL);
    let bad = &processed.bad_rows[..];
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].failure_type, FailureType::AdapterFailures);
    assert_eq!(
        (bad[0].payload.as_str(), bad[0].payload_encoding.as_str()),
        ("{not json", "text")
    );

    let processed = process_payload(&post(b"\xff\xfe\x00"), &resolver, ETL);
    assert_eq!(processed.bad_rows[0].payload_encoding, "base64");
    assert_eq!(processed.bad_rows[0].payload, "//4A");

    let mut oversized = post(b"{}");
    oversized.size_violation = Some(SizeViolation {
        actual_bytes: 5_000_000,
        max_bytes: 1_048_576,
    });
    let processed = process_payload(&oversized, &resolver, ETL);
    assert_eq!(
        processed.bad_rows[0].failure_type,
        FailureType::SizeViolation
    );
    assert!(processed.bad_rows[0].messages[0].contains("5000000"));
}
