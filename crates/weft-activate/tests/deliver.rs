//! Delivery against a local webhook receiver that answers as services do
//! when things go wrong: 429 with Retry-After, 500s, a slow answer, a
//! batch refused whole because of one row, and per-row refusals. Every
//! row must end up delivered exactly once, and the rows refused recorded.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use weft_activate::deliver::{Run, deliver};
use weft_activate::destination::build;
use weft_activate::diff::diff;
use weft_activate::rows::{Field, FieldKind, Row};
use weft_activate::spec::Mode;
use weft_meta::Store;

#[derive(Default)]
struct Receiver {
    requests: usize,
    /// (key, op) applied, in order: a duplicate shows up as a repeat.
    applied: Vec<(String, String)>,
    seen_idempotency: HashSet<String>,
}

/// Fails the 1st request with 429, the 2nd with 500, the 3rd by not
/// answering in time; refuses any batch holding "poison" as a whole, and
/// the row "refused" alone.
async fn receive(
    State(receiver): State<Arc<Mutex<Receiver>>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let n = {
        let mut receiver = receiver.lock().unwrap();
        receiver.requests += 1;
        receiver.requests
    };
    match n {
        1 => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0")],
                "slow down",
            )
                .into_response();
        }
        2 => return (StatusCode::INTERNAL_SERVER_ERROR, "oops").into_response(),
        3 => {
            tokio::time::sleep(Duration::from_millis(800)).await;
            return (StatusCode::OK, "{}").into_response();
        }
        _ => {}
    }
    let rows = body["rows"].as_array().unwrap();
    if rows.iter().any(|row| row["key"] == "poison") && rows.len() > 1 {
        return (StatusCode::BAD_REQUEST, "bad row in batch").into_response();
    }
    let mut receiver = receiver.lock().unwrap();
    let key = headers["idempotency-key"].to_str().unwrap().to_owned();
    assert!(
        receiver.seen_idempotency.insert(key),
        "a batch was sent twice"
    );
    let mut errors = Vec::new();
    for (index, row) in rows.iter().enumerate() {
        let key = row["key"].as_str().unwrap();
        if key == "refused" || key == "poison" {
            errors.push(json!({"index": index, "message": format!("{key} is not welcome")}));
        } else {
            receiver
                .applied
                .push((key.to_owned(), row["op"].as_str().unwrap().to_owned()));
        }
    }
    Json(json!({"errors": errors})).into_response()
}

fn rows(keys: &[&str], version: u32) -> Vec<Row> {
    keys.iter()
        .map(|key| {
            Row::new(
                key.to_string(),
                vec![json!(format!("{key}@x.test")), json!(version)],
            )
        })
        .collect()
}

#[tokio::test]
async fn every_row_is_delivered_once_through_retries_splits_and_refusals() {
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let built = build(
        "hook",
        &json!({
            "type": "webhook",
            "url": format!("http://{address}/hook"),
            "secret": "s3cret",
            "batch_size": 8,
            "backoff_secs": 0.01,
            "timeout_secs": 0.3,
        }),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = vec![
        Field {
            name: "email".into(),
            column: "email".into(),
            kind: FieldKind::Text,
        },
        Field {
            name: "version".into(),
            column: "version".into(),
            kind: FieldKind::Integer,
        },
    ];
    let mut keys: Vec<String> = (0..40).map(|i| format!("c{i:03}")).collect();
    keys.push("poison".into());
    keys.push("refused".into());
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let run = Run {
        sync: "s",
        run_id: "r1",
        fields: &fields,
        abandon_after: 3,
    };

    let plan = diff(
        Mode::Mirror,
        rows(&key_refs, 1),
        &store.delivered("s").unwrap(),
        &store.failures("s").unwrap(),
    );
    assert_eq!(plan.counts.added, 42);
    let done = deliver(&built, &store, &run, plan).await.unwrap();
    assert_eq!(done.stopped, None);
    assert_eq!((done.delivered, done.failed), (40, 2));
    assert_eq!(done.retries, 3, "429, 500 and the timeout");
    assert!(done.splits >= 1);
    {
        let receiver = receiver.lock().unwrap();
        let applied: HashSet<&str> = receiver.applied.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(receiver.applied.len(), 40, "each row once");
        assert_eq!(applied.len(), 40);
    }
    let failures = store.failures("s").unwrap();
    assert_eq!(failures.len(), 2);
    assert_eq!(failures["refused"].message, "refused is not welcome");
    assert_eq!(store.delivered("s").unwrap().len(), 40);

    // Nothing changed: only the refused rows are tried again.
    let plan = diff(
        Mode::Mirror,
        rows(&key_refs, 1),
        &store.delivered("s").unwrap(),
        &store.failures("s").unwrap(),
    );
    assert_eq!(plan.changes.len(), 2);
    assert_eq!(plan.counts.retried, 2);

    // Three members leave and one changes: exactly those are sent.
    let mut fewer = rows(&key_refs[3..40], 1);
    fewer[0] = Row::new("c003".into(), vec![json!("new@x.test"), json!(2)]);
    let plan = diff(
        Mode::Mirror,
        fewer,
        &store.delivered("s").unwrap(),
        &HashMap::new(),
    );
    assert_eq!((plan.counts.changed, plan.counts.removed), (1, 3));
    let run = Run {
        run_id: "r2",
        ..run
    };
    let before = receiver.lock().unwrap().applied.len();
    let done = deliver(&built, &store, &run, plan).await.unwrap();
    assert_eq!((done.delivered, done.failed, done.retries), (4, 0, 0));
    let receiver = receiver.lock().unwrap();
    let mut sent: Vec<(String, String)> = receiver.applied[before..].to_vec();
    sent.sort();
    assert_eq!(
        sent,
        [
            ("c000".into(), "delete".into()),
            ("c001".into(), "delete".into()),
            ("c002".into(), "delete".into()),
            ("c003".into(), "upsert".into()),
        ]
    );
    assert_eq!(store.delivered("s").unwrap().len(), 37);
}

#[tokio::test]
async fn a_fatal_answer_stops_the_run_and_keeps_what_was_acknowledged() {
    let app = axum::Router::new().route(
        "/hook",
        post(|| async { (StatusCode::UNAUTHORIZED, "bad token") }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let built = build(
        "hook",
        &json!({"type": "webhook", "url": format!("http://{address}/hook")}),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = email_field();
    let plan = first_upserts(&["a"]);
    let run = Run {
        sync: "s",
        run_id: "r1",
        fields: &fields,
        abandon_after: 3,
    };
    let done = deliver(&built, &store, &run, plan).await.unwrap();
    assert!(done.stopped.unwrap().contains("bad token"));
    assert_eq!(done.requests, 1, "credentials refused are not retried");
    assert!(store.delivered("s").unwrap().is_empty());
}

fn email_field() -> Vec<Field> {
    vec![Field {
        name: "email".into(),
        column: "email".into(),
        kind: FieldKind::Text,
    }]
}

/// A first run's plan: an upsert of `keys`, each with an email.
fn first_upserts(keys: &[&str]) -> weft_activate::diff::Plan {
    let rows = keys
        .iter()
        .map(|k| Row::new(k.to_string(), vec![json!(format!("{k}@x.test"))]))
        .collect();
    diff(Mode::Upsert, rows, &HashMap::new(), &HashMap::new())
}

/// Reads one HTTP request off `stream`: its body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the client closed mid-request");
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            while buffer.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.unwrap();
                buffer.extend_from_slice(&chunk[..n]);
            }
            return buffer[end + 4..end + 4 + length].to_vec();
        }
    }
}

#[tokio::test]
async fn a_connection_dropped_before_the_answer_is_tried_again() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    tokio::spawn(async move {
        for n in 0.. {
            let (mut stream, _) = listener.accept().await.unwrap();
            let body = read_request(&mut stream).await;
            if n == 0 {
                // read the whole request, then hang up without a word
                drop(stream);
                continue;
            }
            seen.lock().unwrap().push(body);
            let answer = r#"{"errors":[]}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
            stream.write_all(response.as_bytes()).await.unwrap();
        }
    });
    let built = build(
        "hook",
        &json!({"type": "webhook", "url": format!("http://{address}/hook"), "backoff_secs": 0.01}),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let fields = email_field();
    let plan = first_upserts(&["a", "b", "c"]);
    let run = Run {
        sync: "s",
        run_id: "r1",
        fields: &fields,
        abandon_after: 3,
    };
    let done = deliver(&built, &store, &run, plan).await.unwrap();
    assert_eq!((done.delivered, done.retries, done.stopped), (3, 1, None));
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 1, "answered once, after the drop");
    let body: Value = serde_json::from_slice(&bodies[0]).unwrap();
    assert_eq!(body["rows"].as_array().unwrap().len(), 3);
    assert_eq!(store.delivered("s").unwrap().len(), 3);
}
