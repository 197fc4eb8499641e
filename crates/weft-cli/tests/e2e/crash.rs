//! Nothing acknowledged is ever lost: kill -9 in the middle of a stream of requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_collect::protocol::parse_payload;
use weft_collect::raw_log::FileLogOptions;
use weft_collect::{FileLog, RawLog};

use crate::Server;

const TP2: &str = "/com.snowplowanalytics.snowplow/tp2";

fn body(event_id: &str) -> String {
    serde_json::json!({
        "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
        "data": [{"e": "pv", "eid": event_id, "p": "web", "tv": "crash-test", "url": "https://shop.example.com/"}],
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_no_acknowledged_request() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let url = server.url(TP2);
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));

    let mut clients = Vec::new();
    for client in 0..8 {
        let (url, acknowledged) = (url.clone(), Arc::clone(&acknowledged));
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..1_000_000 {
                let event_id = format!("client{client}-{n}");
                let sent = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body(&event_id))
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status() == 200 => {
                        acknowledged.lock().unwrap().push(event_id);
                    }
                    Ok(response) => panic!("unexpected status {}", response.status()),
                    Err(_) => break, // the server is gone
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill();
    for client in clients {
        client.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 100,
        "only {} requests got through",
        acknowledged.len()
    );

    // restart on the same data: the log opens, and new requests are accepted
    let server = Server::start(data.path(), &[]);
    let response = reqwest::Client::new()
        .post(server.url(TP2))
        .body(body("after-restart"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.kill();

    let log = FileLog::open(data.path().join("raw"), FileLogOptions::default()).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut offset = 0;
    loop {
        let records = log.read(offset, 10_000).unwrap();
        let Some(last) = records.last() else { break };
        offset = last.offset + 1;
        for record in &records {
            for event in parse_payload(&record.payload).events {
                *seen
                    .entry(event.get("eid").unwrap().to_owned())
                    .or_default() += 1;
            }
        }
    }
    for event_id in &acknowledged {
        assert_eq!(
            seen.get(event_id),
            Some(&1),
            "{event_id} acknowledged but stored {:?} times",
            seen.get(event_id)
        );
    }
    assert_eq!(seen.get("after-restart"), Some(&1));
    assert!(
        seen.values().all(|&count| count == 1),
        "no request is stored twice"
    );
    eprintln!(
        "{} acknowledged before kill -9, {} stored (the rest were in flight)",
        acknowledged.len(),
        seen.len() - 1
    );
}
