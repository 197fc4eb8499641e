//! Every request captured from a real tracker is accepted and stored byte for byte.

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;
use weft_collect::protocol::parse_payload;
use weft_collect::service::PIXEL;

use crate::{TestCollector, header, testdata};

struct Fixture {
    name: String,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(testdata("snowplow")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        out.push(Fixture {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            method: json["method"].as_str().unwrap().to_owned(),
            path: json["path"].as_str().unwrap().to_owned(),
            headers: json["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_owned(),
                        h[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect(),
            body: json["body"].as_str().map(str::to_owned),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(out.len(), 20, "every captured request is replayed");
    out
}

fn request(fixture: &Fixture) -> Request<Body> {
    let mut builder = Request::builder()
        .method(fixture.method.as_str())
        .uri(&fixture.path);
    for (name, value) in &fixture.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(
            fixture
                .body
                .clone()
                .map(Body::from)
                .unwrap_or_else(Body::empty),
        )
        .unwrap()
}

#[tokio::test]
async fn every_captured_tracker_request_is_accepted_and_stored_byte_for_byte() {
    let collector = TestCollector::default_config();
    let mut stored_requests = 0;
    for fixture in fixtures() {
        let (response, body) = collector.send(request(&fixture)).await;
        assert_eq!(response.status(), 200, "{}", fixture.name);
        let origin = fixture
            .headers
            .iter()
            .find(|(n, _)| n == "Origin")
            .map(|(_, v)| v.as_str());
        match origin {
            Some(origin) => {
                assert_eq!(
                    header(&response, "access-control-allow-origin"),
                    Some(origin),
                    "{}",
                    fixture.name
                );
                assert_eq!(
                    header(&response, "access-control-allow-credentials"),
                    Some("true")
                );
            }
            None => assert_eq!(header(&response, "access-control-allow-origin"), Some("*")),
        }
        match fixture.method.as_str() {
            "OPTIONS" => {
                let allowed = header(&response, "access-control-allow-headers").unwrap();
                assert!(allowed.contains("Content-Type") && allowed.contains("SP-Anonymous"));
                assert_eq!(
                    collector.records().len(),
                    stored_requests,
                    "a preflight is not an event"
                );
                continue;
            }
            "POST" => assert_eq!(body, b"ok", "{}", fixture.name),
            _ => {
                assert_eq!(body, PIXEL, "{}", fixture.name);
                assert_eq!(header(&response, "content-type"), Some("image/gif"));
                assert!(
                    header(&response, "cache-control")
                        .unwrap()
                        .contains("no-store")
                );
            }
        }
        let set_cookie = header(&response, "set-cookie").unwrap();
        assert!(set_cookie.starts_with("sp="), "{set_cookie}");

        let records = collector.records();
        stored_requests += 1;
        assert_eq!(records.len(), stored_requests, "{}", fixture.name);
        let stored = &records.last().unwrap().payload;
        assert_eq!(stored.method, fixture.method);
        let (path, query) = match fixture.path.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (fixture.path.as_str(), None),
        };
        assert_eq!(stored.path, path);
        assert_eq!(
            stored.query, query,
            "{}: query string byte for byte",
            fixture.name
        );
        assert_eq!(
            stored.body.as_deref(),
            fixture.body.as_deref().map(str::as_bytes),
            "{}: body byte for byte",
            fixture.name
        );
        for (name, value) in &fixture.headers {
            assert_eq!(
                stored.header(name),
                Some(value.as_bytes()),
                "{}: header {name} byte for byte",
                fixture.name
            );
        }
        assert_eq!(stored.ip.as_deref(), Some("198.51.100.7"));
        assert!(stored.size_violation.is_none());

        // the collector's cookie wins over the page's own _sp_* cookies, and is what was set
        let sent_sp = fixture
            .headers
            .iter()
            .find(|(n, _)| n == "Cookie")
            .and_then(|(_, v)| v.split("; ").find_map(|c| c.strip_prefix("sp=")));
        let nuid = stored.network_user_id.as_deref().unwrap();
        if let Some(sent) = sent_sp {
            assert_eq!(nuid, sent, "{}", fixture.name);
        }
        assert!(set_cookie.starts_with(&format!("sp={nuid};")));

        // every event in it parses, with its contexts and self-describing event
        let parsed = parse_payload(stored);
        assert!(
            parsed.errors.is_empty(),
            "{}: {:?}",
            fixture.name,
            parsed.errors
        );
        assert!(!parsed.events.is_empty());
        for event in &parsed.events {
            assert!(event.get("e").is_some(), "{}", fixture.name);
            event.contexts().unwrap();
            if event.get("e") == Some("ue") {
                assert!(event.unstruct().unwrap().is_some(), "{}", fixture.name);
            }
        }
    }
    assert_eq!(stored_requests, 19);
}

#[tokio::test]
async fn the_browser_retry_batch_keeps_all_six_events() {
    let collector = TestCollector::default_config();
    let fixture = fixtures()
        .into_iter()
        .find(|f| f.name.contains("08-retry-batch"))
        .unwrap();
    collector.send(request(&fixture)).await;
    let parsed = parse_payload(&collector.records()[0].payload);
    let kinds: Vec<_> = parsed.events.iter().map(|e| e.get("e").unwrap()).collect();
    assert_eq!(kinds, ["pv", "se", "pp", "pp", "ue", "pv"]);
}
