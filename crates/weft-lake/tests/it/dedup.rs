//! A tracker that re-sends events (the browser tracker re-sends its whole queue
//! when it cannot see the collector's answer) gets each event loaded once; the
//! same id with different content is a different event and is kept.

use serde_json::Value;
use weft_collect::CollectorPayload;

use crate::{Setup, strings};

const RETRY: &str = "js-tracker-4.10.1__08-retry-batch-no-cors-on-post.json";

/// The retry capture's POST of 6 events, with its body rewritten by `edit` and
/// received `later_ms` after the original.
fn retry_batch(later_ms: i64, edit: impl Fn(&str) -> String) -> CollectorPayload {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../weft-collect/testdata/snowplow")
        .join(RETRY);
    let mut capture: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let body = edit(capture["body"].as_str().unwrap());
    capture["body"] = Value::String(body);
    let received = capture["received_at_ms"].as_i64().unwrap() + later_ms;
    capture["received_at_ms"] = Value::from(received);
    CollectorPayload::from_capture(&capture, Some("203.0.113.9"), Some("nuid-1")).unwrap()
}

fn resent(body: &str) -> String {
    // a resend goes out later: only the sent time differs
    body.replace("\"stm\":\"1795324660212\"", "\"stm\":\"1795324721000\"")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resent_events_are_loaded_once_across_batches_and_restarts() {
    let setup = Setup::new();
    let original = retry_batch(0, str::to_owned);
    let resend = retry_batch(60_000, resent);
    assert_ne!(original.body, resend.body, "the resend must differ in stm");
    // the same ids with other content: other events, kept
    let changed = retry_batch(120_000, |body| {
        body.replace("browser-fixture", "another-app")
    });

    // one batch holds the original and its resend
    setup
        .append(&[original.clone(), resend.clone(), changed])
        .await;
    let report = setup.loader().with_batch_records(10).load().await.unwrap();
    assert_eq!((report.events, report.duplicates), (12, 6));

    // a restarted loader knows what the table has: resends in later batches are dropped too
    setup.append(&[resend.clone(), original]).await;
    let report = setup.loader().with_batch_records(1).load().await.unwrap();
    assert_eq!((report.events, report.duplicates), (0, 12));

    // and so does a loader that keeps running
    let loader = setup.loader().with_batch_records(1);
    setup.append(&[resend]).await;
    assert_eq!(loader.load().await.unwrap().duplicates, 6);
    setup.append(&[retry_batch(180_000, resent)]).await;
    assert_eq!(loader.load().await.unwrap().duplicates, 6);

    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 12);
    assert_eq!(
        setup
            .count("SELECT count(DISTINCT event_id) FROM atomic.events")
            .await,
        6
    );
    let apps = crate::sql::query(
        &setup.lake(),
        "SELECT app_id, count(*) FROM atomic.events GROUP BY app_id ORDER BY app_id",
    )
    .await
    .unwrap();
    assert_eq!(strings(&apps, 0), ["another-app", "browser-fixture"]);
    assert_eq!(strings(&apps, 1), ["6", "6"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_loaded_event_has_a_fingerprint() {
    let setup = Setup::new();
    setup.append(&crate::captures()).await;
    setup.loader().load().await.unwrap();
    assert_eq!(
        setup
            .count("SELECT count(*) FROM atomic.events WHERE length(event_fingerprint) = 32")
            .await,
        32
    );
}
