//! kill -9 in the middle of a large sync, then a rerun: the receiver ends
//! up holding exactly the audience's consenting members, each applied once.
//! Only the batch in flight at the kill is sent twice, with the same
//! Idempotency-Key, so a receiver that honours the key applies it once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use deltalake::protocol::SaveMode;

use crate::weft;

const MEMBERS: usize = 6_000;
const BATCH: usize = 200;

#[derive(Default)]
struct Receiver {
    requests: usize,
    /// Rows received, duplicates included.
    received: usize,
    /// Keys applied, once per Idempotency-Key.
    applied: HashMap<String, usize>,
    keys_seen: HashSet<String>,
    replayed_batches: usize,
}

fn start_receiver() -> (String, Arc<Mutex<Receiver>>) {
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let state = receiver.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().route(
                "/hook",
                axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                    let state = state.clone();
                    async move {
                        // a receiver that takes its time, so the kill lands mid-sync
                        tokio::time::sleep(Duration::from_millis(40)).await;
                        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                        let rows = body["rows"].as_array().unwrap();
                        let mut state = state.lock().unwrap();
                        state.requests += 1;
                        state.received += rows.len();
                        let key = headers["idempotency-key"].to_str().unwrap().to_owned();
                        if !state.keys_seen.insert(key) {
                            state.replayed_batches += 1;
                        } else {
                            for row in rows {
                                let key = row["key"].as_str().unwrap().to_owned();
                                *state.applied.entry(key).or_default() += 1;
                            }
                        }
                        r#"{"errors": []}"#
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    let address = rx.recv().unwrap();
    (format!("http://{address}/hook"), receiver)
}

/// `MEMBERS` current profiles; every 7th refused marketing consent.
async fn write_customers(data_dir: &std::path::Path) {
    let context = deltalake::datafusion::prelude::SessionContext::new();
    let batches = context
        .sql(&format!(
            "SELECT concat('c', CAST(value AS VARCHAR)) AS customer_id,
               concat('p', CAST(value AS VARCHAR), '@example.com') AS email,
               CAST(value % 20 AS BIGINT) AS sessions,
               value % 7 <> 0 AS consent_marketing,
               true AS is_current
             FROM generate_series(1, {MEMBERS})"
        ))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    weft_lake::Lake::new(data_dir)
        .table("profiles", "customers")
        .await
        .unwrap()
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .await
        .unwrap();
}

#[test]
fn a_sync_killed_mid_run_and_rerun_delivers_every_member_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(write_customers(dir.path()));
    let (url, receiver) = start_receiver();
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        format!(
            "[activation.destinations.hook]\ntype = \"webhook\"\nurl = \"{url}\"\nbatch_size = {BATCH}\n"
        ),
    )
    .unwrap();
    let command = |args: &[&str]| {
        let mut command = weft();
        command
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("WEFT_DATA_DIR", dir.path());
        command
    };
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let audience = file(
        "everyone.json",
        r#"{"name": "everyone", "conditions": [{"trait": "sessions", "op": "gte", "value": 0}]}"#,
    );
    let sync = file(
        "sync.json",
        r#"{"name": "to-hook", "audience": "everyone", "destination": "hook", "fields": {"email": "email"}}"#,
    );
    for args in [["audience", "create", &audience], ["sync", "create", &sync]] {
        let output = command(&args).output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let mut child = command(&["sync", "run", "to-hook"]).spawn().unwrap();
    let started = Instant::now();
    while receiver.lock().unwrap().requests < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sync never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = receiver.lock().unwrap().received;
    let expected: HashSet<String> = (1..=MEMBERS)
        .filter(|i| i % 7 != 0)
        .map(|i| format!("c{i}"))
        .collect();
    assert!(
        before < expected.len(),
        "killed before the end ({before} rows received)"
    );

    let output = command(&["sync", "run", "to-hook", "--json"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let run: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(run["status"], "succeeded");
    {
        let receiver = receiver.lock().unwrap();
        let applied: HashSet<String> = receiver.applied.keys().cloned().collect();
        assert_eq!(applied, expected, "exactly the consenting members");
        assert!(
            receiver.applied.values().all(|n| *n == 1),
            "each applied once"
        );
        // at most the batch in flight was sent again, under its own key
        assert!(receiver.replayed_batches <= 1);
        assert!(receiver.received - expected.len() <= BATCH * receiver.replayed_batches);
    }
    let output = command(&["sync", "run", "to-hook", "--json"])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(again["to_send"], 0, "{again}");
}
