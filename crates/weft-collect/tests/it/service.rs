//! Collector behaviour beyond the happy path: cookies, anonymity, proxies,
//! redirects, custom paths, limits, hostile input.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::Body;
use axum::http::Request;
use weft_collect::RawLog;
use weft_collect::metrics::Metrics;
use weft_collect::payload::CollectorPayload;
use weft_collect::raw_log::{LogError, LogRecord, Offset};
use weft_collect::service::{ANONYMOUS_NUID, Collector, router};
use weft_core::config::CollectorConfig;

use crate::{TestCollector, header};

const TP2: &str = "/com.snowplowanalytics.snowplow/tp2";
const BODY: &str = r#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"pv","eid":"e1","p":"web","tv":"t"}]}"#;

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json; charset=UTF-8")
        .body(body.into())
        .unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn cookie_is_minted_then_kept_and_nuid_parameter_wins() {
    let collector = TestCollector::default_config();
    let (response, _) = collector.send(get("/i?e=pv")).await;
    let cookie = header(&response, "set-cookie").unwrap().to_owned();
    let nuid = cookie
        .strip_prefix("sp=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&nuid).unwrap().get_version_num(), 4);
    for attribute in [
        "Max-Age=31536000",
        "Path=/",
        "SameSite=None",
        "Secure",
        "HttpOnly",
        "Expires=",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }

    let again = Request::get("/i?e=pv")
        .header("cookie", format!("_sp_id.dc78=abc; sp={nuid}; other=1"))
        .body(Body::empty())
        .unwrap();
    let (response, _) = collector.send(again).await;
    assert!(
        header(&response, "set-cookie")
            .unwrap()
            .starts_with(&format!("sp={nuid};"))
    );

    let with_param = Request::get("/i?e=pv&nuid=from-the-tracker")
        .header("cookie", format!("sp={nuid}"))
        .body(Body::empty())
        .unwrap();
    let (response, _) = collector.send(with_param).await;
    assert!(
        header(&response, "set-cookie")
            .unwrap()
            .starts_with("sp=from-the-tracker;")
    );

    let records = collector.records();
    let nuids: Vec<_> = records
        .iter()
        .map(|r| r.payload.network_user_id.clone().unwrap())
        .collect();
    assert_eq!(nuids, [nuid.clone(), nuid, "from-the-tracker".to_owned()]);
}

#[tokio::test]
async fn cookie_name_domain_and_expiry_are_configurable_or_off() {
    let mut config = CollectorConfig::default();
    config.cookie.name = "nuid_cookie".into();
    config.cookie.domain = Some(".shop.example.com".into());
    config.cookie.expiration_days = 30;
    config.cookie.same_site = "Lax".into();
    let collector = TestCollector::new(config.clone());
    let (response, _) = collector.send(get("/i?e=pv")).await;
    let cookie = header(&response, "set-cookie").unwrap();
    assert!(cookie.starts_with("nuid_cookie="));
    assert!(cookie.contains("Domain=.shop.example.com"));
    assert!(cookie.contains("Max-Age=2592000"));
    assert!(cookie.contains("SameSite=Lax"));

    config.cookie.enabled = false;
    let collector = TestCollector::new(config);
    let (response, _) = collector.send(get("/i?e=pv")).await;
    assert!(header(&response, "set-cookie").is_none());
    assert!(collector.records()[0].payload.network_user_id.is_some());
}

#[tokio::test]
async fn hostile_cookie_and_nuid_values_are_not_echoed() {
    let collector = TestCollector::default_config();
    let request = Request::get("/i?e=pv&nuid=x%3B%20Domain%3Devil.example")
        .header("cookie", "sp=abc; Domain=evil.example")
        .body(Body::empty())
        .unwrap();
    let (response, _) = collector.send(request).await;
    let cookie = header(&response, "set-cookie").unwrap();
    assert!(!cookie.contains("evil"), "{cookie}");
    // "abc" is a safe value and is the cookie's own; the bad nuid parameter is ignored
    assert!(cookie.starts_with("sp=abc;"), "{cookie}");
}

#[tokio::test]
async fn sp_anonymous_means_no_ip_no_cookie_and_a_zero_nuid() {
    let config = CollectorConfig {
        trusted_proxies: vec!["198.51.100.0/24".parse().unwrap()],
        ..CollectorConfig::default()
    };
    let collector = TestCollector::new(config);
    let request = Request::post(TP2)
        .header("content-type", "application/json")
        .header("sp-anonymous", "*")
        .header("x-forwarded-for", "203.0.113.9")
        .header("cookie", "sp=0fa58e88-2e5a-4312-9ad0-b97bdac824b4")
        .body(Body::from(BODY))
        .unwrap();
    let (response, body) = collector.send(request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(body, b"ok");
    assert!(header(&response, "set-cookie").is_none());
    let stored = &collector.records()[0].payload;
    assert_eq!(stored.network_user_id.as_deref(), Some(ANONYMOUS_NUID));
    assert_eq!(stored.ip, None);
    assert!(stored.header("x-forwarded-for").is_none());
    assert!(stored.header("cookie").is_none());
    assert_eq!(stored.header("sp-anonymous"), Some(&b"*"[..]));
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let config = CollectorConfig {
        trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        ..CollectorConfig::default()
    };
    let collector = TestCollector::new(config);
    let forwarded = |xff: &str| {
        Request::get("/i?e=pv")
            .header("x-forwarded-for", xff)
            .body(Body::empty())
            .unwrap()
    };
    // a client cannot spoof its address through an untrusted hop
    collector
        .send_from("203.0.113.5:1", forwarded("192.0.2.1"))
        .await;
    // through two trusted proxies: the nearest untrusted address is the client
    collector
        .send_from("10.0.0.2:1", forwarded("6.6.6.6, 192.0.2.44, 10.1.1.1"))
        .await;
    // garbage in the chain: nothing left of it is trusted
    collector
        .send_from("10.0.0.2:1", forwarded("192.0.2.9, not-an-ip, 10.1.1.1"))
        .await;
    // IPv6 peer, mapped IPv4 and ports in the header
    collector
        .send_from("[::ffff:10.0.0.3]:1", forwarded("[2001:db8::5]:443"))
        .await;
    let ips: Vec<_> = collector
        .records()
        .iter()
        .map(|r| r.payload.ip.clone().unwrap())
        .collect();
    assert_eq!(
        ips,
        ["203.0.113.5", "192.0.2.44", "10.1.1.1", "2001:db8::5"]
    );
}

#[tokio::test]
async fn redirects_are_off_by_default_and_limited_to_allowed_domains() {
    let collector = TestCollector::default_config();
    let (response, _) = collector
        .send(get("/r/tp2?u=https%3A%2F%2Fshop.example.com%2F"))
        .await;
    assert_eq!(response.status(), 404);
    assert!(collector.records().is_empty());

    let mut config = CollectorConfig::default();
    config.redirect.enabled = true;
    config.redirect.allowed_domains = vec!["example.com".into()];
    let collector = TestCollector::new(config);
    let (response, _) = collector
        .send(get("/r/tp2?u=https%3A%2F%2Fshop.example.com%2Fsale%3Fn%3D%24%7BSP_NUID%7D&aid=email&nuid=abc-1"))
        .await;
    assert_eq!(response.status(), 302);
    assert_eq!(
        header(&response, "location"),
        Some("https://shop.example.com/sale?n=abc-1")
    );
    for refused in [
        "/r/tp2?u=https%3A%2F%2Fevil.test%2F",
        "/r/tp2?u=https%3A%2F%2Fexample.com.evil.test%2F",
        "/r/tp2?u=javascript%3Aalert(1)",
        "/r/tp2?aid=x",
        "/r/tp2?u=%0d%0aSet-Cookie%3A%20x",
    ] {
        let (response, _) = collector.send(get(refused)).await;
        assert_eq!(response.status(), 400, "{refused}");
    }
    let records = collector.records();
    assert_eq!(
        records.len(),
        1,
        "only the redirect that happened is an event"
    );
    assert_eq!(records[0].payload.path, "/r/tp2");
}

#[tokio::test]
async fn custom_paths_behave_as_the_standard_ones() {
    let mut config = CollectorConfig::default();
    config.paths.insert("/com.acme/track".into(), TP2.into());
    config.paths.insert("/assets/p.gif".into(), "/i".into());
    let collector = TestCollector::new(config);
    let (response, body) = collector.send(post("/com.acme/track", BODY)).await;
    assert_eq!(
        (response.status().as_u16(), body.as_slice()),
        (200, &b"ok"[..])
    );
    let (response, _) = collector.send(get("/assets/p.gif?e=pv")).await;
    assert_eq!(response.status(), 200);
    let paths: Vec<_> = collector
        .records()
        .iter()
        .map(|r| r.payload.path.clone())
        .collect();
    assert_eq!(paths, [TP2, "/i"]);

    let mut bad = CollectorConfig::default();
    bad.paths.insert("/x".into(), "/health".into());
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(weft_collect::FileLog::open(dir.path(), Default::default()).unwrap());
    let error = Collector::new(bad, log, Arc::new(Metrics::new()))
        .err()
        .unwrap();
    assert!(error.to_string().contains("collector.paths"), "{error}");
}

#[tokio::test]
async fn oversized_bodies_are_flagged_or_refused_and_the_collector_goes_on() {
    let config = CollectorConfig {
        max_payload_bytes: 1000,
        max_body_bytes: 2000,
        ..CollectorConfig::default()
    };
    let collector = TestCollector::new(config);

    let big = "x".repeat(1500);
    let (response, _) = collector.send(post(TP2, big.clone())).await;
    assert_eq!(
        response.status(),
        200,
        "answered so the tracker does not resend it"
    );
    let stored = &collector.records()[0].payload;
    let violation = stored.size_violation.as_ref().unwrap();
    assert_eq!((violation.actual_bytes, violation.max_bytes), (1500, 1000));
    assert_eq!(stored.body.as_deref(), Some(big.as_bytes()), "kept whole");

    let (response, _) = collector.send(post(TP2, "y".repeat(2001))).await;
    assert_eq!(response.status(), 413);
    // a chunked body without a length is cut off at the limit too
    let stream = futures_stream(vec![vec![b'z'; 1500], vec![b'z'; 1500]]);
    let (response, _) = collector.send(post(TP2, stream)).await;
    assert_eq!(response.status(), 413);
    assert_eq!(collector.records().len(), 1);

    let (response, _) = collector.send(post(TP2, BODY)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(collector.records().len(), 2);
}

fn futures_stream(chunks: Vec<Vec<u8>>) -> Body {
    let stream = tokio_stream_from(chunks);
    Body::from_stream(stream)
}

fn tokio_stream_from(
    chunks: Vec<Vec<u8>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(std::vec::IntoIter<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next().map(Ok))
        }
    }
    Chunks(chunks.into_iter())
}

#[tokio::test]
async fn malformed_bodies_are_stored_for_the_bad_rows_not_refused() {
    let collector = TestCollector::default_config();
    let bodies: [&[u8]; 6] = [
        b"{not json",
        br#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":1}]}"#,
        br#"{"schema":"iglu:com.acme/other/jsonschema/1-0-0","data":[]}"#,
        b"\xff\xfe\x00binary",
        br#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"e":"ue","ue_px":"%%%"}]}"#,
        b"",
    ];
    for body in bodies {
        let (response, _) = collector.send(post(TP2, body.to_vec())).await;
        assert_eq!(
            response.status(),
            200,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(collector.records().len(), bodies.len());
}

#[tokio::test]
async fn unknown_paths_and_methods_get_4xx_and_are_not_stored() {
    let collector = TestCollector::default_config();
    for (method, uri, status) in [
        ("GET", "/", 404),
        ("GET", "/a/b/c", 404),
        ("GET", "/favicon.ico", 404),
        ("POST", "/i", 405),
        ("DELETE", TP2, 405),
        ("PUT", "/i", 405),
        ("BREW", TP2, 405),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let (response, _) = collector.send(request).await;
        assert_eq!(response.status(), status, "{method} {uri}");
        assert!(
            header(&response, "access-control-allow-origin").is_some(),
            "CORS on every answer"
        );
    }
    assert!(collector.records().is_empty());
    // and it still works
    let (response, _) = collector
        .send(get("/com.snowplowanalytics.snowplow/tp2?e=pv"))
        .await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn health_and_metrics() {
    let collector = TestCollector::default_config();
    collector.send(post(TP2, BODY)).await;
    collector.send(get("/i?e=pv")).await;
    collector.send(get("/nope")).await;
    let (response, body) = collector.send(get("/health")).await;
    assert_eq!(
        (response.status().as_u16(), body.as_slice()),
        (200, &b"ok"[..])
    );
    collector.log.commit("loader", 1).unwrap();
    let (response, body) = collector.send(get("/metrics")).await;
    assert_eq!(response.status(), 200);
    let text = String::from_utf8(body).unwrap();
    for line in [
        r#"weft_collector_requests_total{endpoint="tp2",status="200"} 1"#,
        r#"weft_collector_requests_total{endpoint="pixel",status="200"} 1"#,
        &format!("weft_collector_request_bytes_total {}", BODY.len()),
        "weft_raw_log_end_offset 2",
        r#"weft_raw_log_consumer_lag_records{consumer="loader"} 1"#,
        "weft_raw_log_written_records 2",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

/// A log that refuses every write, as a full disk would.
struct FailingLog;

#[async_trait]
impl RawLog for FailingLog {
    async fn append(&self, _: &CollectorPayload) -> Result<Offset, LogError> {
        Err(LogError::Poisoned)
    }
    fn end_offset(&self) -> Offset {
        0
    }
    fn read(&self, _: Offset, _: usize) -> Result<Vec<LogRecord>, LogError> {
        Ok(Vec::new())
    }
    fn commit(&self, _: &str, _: Offset) -> Result<(), LogError> {
        Ok(())
    }
    fn committed(&self, _: &str) -> Result<Option<Offset>, LogError> {
        Ok(None)
    }
    fn consumers(&self) -> Result<Vec<(String, Offset)>, LogError> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_request_that_cannot_be_stored_is_answered_503_so_the_tracker_retries() {
    let collector = Collector::new(
        CollectorConfig::default(),
        Arc::new(FailingLog),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let app = router(Arc::new(collector));
    let response = tower::ServiceExt::oneshot(app, post(TP2, BODY))
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().get("set-cookie").is_none());
    assert_eq!(response.headers()["retry-after"], "5");
}

mod hostile {
    use proptest::prelude::*;

    use super::*;

    fn method() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("GET".to_owned()),
            Just("POST".to_owned()),
            Just("OPTIONS".to_owned()),
            Just("HEAD".to_owned()),
            "[A-Z]{1,8}",
        ]
    }

    fn path() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("/i".to_owned()),
            Just(TP2.to_owned()),
            Just("/r/tp2".to_owned()),
            "/[a-z0-9._~-]{0,12}(/[a-z0-9._~-]{0,12}){0,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        // whatever arrives, the answer is a deliberate one and the collector keeps going
        #[test]
        fn any_request_gets_a_deliberate_answer(
            method in method(),
            path in path(),
            query in proptest::option::of("[a-zA-Z0-9=&%+._-]{0,80}"),
            cookie in proptest::option::of("[ -~]{0,60}"),
            forwarded in proptest::option::of("[ -~]{0,40}"),
            body in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                let mut config = CollectorConfig {
                    trusted_proxies: vec!["0.0.0.0/0".parse().unwrap()],
                    max_payload_bytes: 300,
                    max_body_bytes: 500,
                    ..CollectorConfig::default()
                };
                config.redirect.enabled = true;
                let collector = TestCollector::new(config);
                let uri = match &query {
                    Some(query) => format!("{path}?{query}"),
                    None => path.clone(),
                };
                let mut builder = Request::builder().method(method.as_str()).uri(uri.as_str());
                if let Some(cookie) = &cookie {
                    builder = builder.header("cookie", cookie.as_str());
                }
                if let Some(forwarded) = &forwarded {
                    builder = builder.header("x-forwarded-for", forwarded.as_str());
                }
                let request = builder.body(Body::from(body.clone())).unwrap();
                let (response, _) = collector.send(request).await;
                let status = response.status().as_u16();
                prop_assert!(
                    [200, 302, 400, 404, 405, 413].contains(&status),
                    "{method} {uri} -> {status}"
                );
                if let Some(set_cookie) = header(&response, "set-cookie") {
                    let value = set_cookie.split(';').next().unwrap();
                    prop_assert!(value.starts_with("sp="), "{set_cookie}");
                }
                // the collector still works afterwards
                let (response, _) = collector.send(get("/i?e=pv")).await;
                prop_assert_eq!(response.status().as_u16(), 200);
                Ok(())
            })?;
        }
    }
}
