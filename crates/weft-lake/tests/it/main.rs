//! The loader over captured tracker traffic: events and bad rows land in Delta
//! tables once, SQL reads them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::datatypes::Int64Type;
use serde_json::Value;
use weft_collect::raw_log::FileLogOptions;
use weft_collect::{CollectorPayload, FileLog, RawLog};
use weft_enrich::Resolver;
use weft_lake::{Lake, Loader, sql};

mod dedup;
mod maintenance;

fn captures() -> Vec<CollectorPayload> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weft-collect/testdata/snowplow");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap())
        .filter(|capture| capture["method"] != "OPTIONS")
        .map(|capture| {
            CollectorPayload::from_capture(&capture, Some("203.0.113.9"), Some("nuid-1")).unwrap()
        })
        .collect()
}

fn resolver() -> Arc<Resolver> {
    Arc::new(Resolver::new(vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../weft-enrich/testdata/iglu"),
    ]))
}

struct Setup {
    dir: tempfile::TempDir,
    log: Arc<FileLog>,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log =
            Arc::new(FileLog::open(dir.path().join("raw"), FileLogOptions::default()).unwrap());
        Self { dir, log }
    }

    fn lake(&self) -> Lake {
        Lake::new(self.dir.path())
    }

    fn loader(&self) -> Loader {
        Loader::new(self.log.clone(), resolver(), self.lake()).with_batch_records(7)
    }

    async fn append(&self, payloads: &[CollectorPayload]) {
        for payload in payloads {
            self.log.append(payload).await.unwrap();
        }
    }

    async fn count(&self, sql_text: &str) -> i64 {
        let batches = sql::query(&self.lake(), sql_text).await.unwrap();
        batches[0].column(0).as_primitive::<Int64Type>().value(0)
    }
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let array = deltalake::arrow::compute::cast(
            batch.column(column),
            &deltalake::arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let array = array.as_string::<i32>();
        for i in 0..array.len() {
            out.push(if array.is_null(i) {
                "NULL".to_owned()
            } else {
                array.value(i).to_owned()
            });
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_traffic_lands_once_and_sql_reads_it() {
    let setup = Setup::new();
    setup.append(&captures()).await;
    let report = setup.loader().load().await.unwrap();
    assert_eq!(report.records, 19);
    assert_eq!(report.events, 32);
    assert_eq!(report.bad_rows, 0);
    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 32);
    assert_eq!(setup.count("SELECT count(*) FROM atomic.bad_rows").await, 0);

    let by_name = sql::query(
        &setup.lake(),
        "SELECT event_name, count(*) AS n FROM atomic.events GROUP BY event_name ORDER BY event_name",
    )
    .await
    .unwrap();
    let names = strings(&by_name, 0);
    let counts = strings(&by_name, 1);
    let pairs: Vec<(String, String)> = names.into_iter().zip(counts).collect();
    assert_eq!(
        pairs,
        [
            ("event", "6"),
            ("link_click", "6"),
            ("page_ping", "4"),
            ("page_view", "8"),
            ("transaction", "4"),
            ("transaction_item", "4"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .to_vec()
    );

    // self-describing data has a column per schema; SQL reaches into it
    let skus = sql::query(
        &setup.lake(),
        "SELECT contexts_com_acme_product_entity_1 FROM atomic.events \
         WHERE event_name = 'page_view' AND v_tracker = 'py-1.1.0'",
    )
    .await
    .unwrap();
    let skus = strings(&skus, 0);
    assert!(
        skus.iter().all(|s| s.contains("\"sku\":\"SKU-001\"")),
        "{skus:?}"
    );
    // and JSON functions read fields out of it
    let sku = sql::query(
        &setup.lake(),
        "SELECT json_get_str(contexts_com_acme_product_entity_1, 0, 'sku') FROM atomic.events \
         WHERE event_name = 'page_view' AND v_tracker = 'py-1.1.0'",
    )
    .await
    .unwrap();
    let sku = strings(&sku, 0);
    assert!(
        !sku.is_empty() && sku.iter().all(|s| s == "SKU-001"),
        "{sku:?}"
    );
    let targets = setup
        .count("SELECT count(*) FROM atomic.events WHERE unstruct_event_com_snowplowanalytics_snowplow_link_click_1 LIKE '%targetUrl%'")
        .await;
    assert_eq!(targets, 6);
    let partitions = setup
        .count("SELECT count(DISTINCT event_date) FROM atomic.events")
        .await;
    assert!(partitions >= 1);

    // loading again finds nothing new
    let again = setup.loader().load().await.unwrap();
    assert_eq!((again.records, again.events), (0, 0));
    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_the_two_commits_neither_drops_nor_repeats() {
    let setup = Setup::new();
    let mut payloads = captures();
    // one request whose events are all bad, so both tables get rows
    let mut broken = payloads[0].clone();
    broken.body = Some(bytes_of("{not json"));
    broken.method = "POST".into();
    broken.query = None;
    payloads.insert(3, broken);
    setup.append(&payloads).await;
    setup.loader().load().await.unwrap();
    assert_eq!(setup.count("SELECT count(*) FROM atomic.bad_rows").await, 1);

    // as if the loader died after committing the events of its last batch but
    // before the bad rows: remove the newest bad_rows commit
    let log_dir = setup
        .lake()
        .table_path("atomic", "bad_rows")
        .join("_delta_log");
    let mut commits: Vec<PathBuf> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    commits.sort();
    std::fs::remove_file(commits.last().unwrap()).unwrap();
    // and as if the first batch's bad rows were lost too
    std::fs::remove_file(&commits[commits.len() - 2]).unwrap();

    let report = setup.loader().load().await.unwrap();
    assert!(report.records > 0, "the missing batches are read again");
    assert_eq!(
        report.events, 0,
        "events the table has are not written again"
    );
    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 32);
    assert_eq!(setup.count("SELECT count(*) FROM atomic.bad_rows").await, 1);
    let failure = sql::query(
        &setup.lake(),
        "SELECT failure_type, payload FROM atomic.bad_rows",
    )
    .await
    .unwrap();
    assert_eq!(strings(&failure, 0), ["adapter_failures"]);
    assert_eq!(strings(&failure, 1), ["{not json"]);

    // more traffic later is appended after what is there (other events: the
    // same ones again would be dropped as resends)
    let later: Vec<CollectorPayload> = captures()[..2]
        .iter()
        .map(|payload| {
            let body = String::from_utf8_lossy(payload.body.as_deref().unwrap())
                .replace("browser-fixture", "later-app");
            CollectorPayload {
                body: Some(bytes_of(&body)),
                ..payload.clone()
            }
        })
        .collect();
    setup.append(&later).await;
    let report = setup.loader().load().await.unwrap();
    assert_eq!(report.events, 2);
    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 34);
    assert_eq!(
        setup.log.committed("weft-loader").unwrap(),
        Some(setup.log.end_offset())
    );
}

fn bytes_of(text: &str) -> weft_collect::payload::Bytes {
    weft_collect::payload::Bytes::copy_from_slice(text.as_bytes())
}

/// Python `deltalake` and a Spark engine (Sail) read the same tables weft wrote:
/// same rows, same columns. Needs `pip install deltalake pysail pyspark-client`
/// (`.ci/run` installs them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_deltalake_and_spark_read_what_weft_wrote() {
    let setup = Setup::new();
    let mut payloads = captures();
    let mut broken = payloads[0].clone();
    broken.body = Some(bytes_of("{not json"));
    payloads.push(broken);
    setup.append(&payloads).await;
    setup.loader().load().await.unwrap();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_lake.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(setup.lake().root())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the interop script failed (pip install deltalake pysail pyspark-client):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    for table in ["events", "bad_rows"] {
        let batches = sql::query(&setup.lake(), &format!("SELECT * FROM atomic.{table}"))
            .await
            .unwrap();
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let mut columns: Vec<String> = batches[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        columns.sort();
        for engine in ["deltalake", "spark"] {
            let theirs = &result[engine][table];
            assert_eq!(
                theirs["rows"].as_u64(),
                Some(rows as u64),
                "{engine} {table}"
            );
            let mut their_columns: Vec<String> = theirs["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            their_columns.sort();
            assert_eq!(their_columns, columns, "{engine} {table}");
        }
    }
    assert_eq!(result["spark"]["events_by_name"]["page_view"], 8);
    assert_eq!(result["spark"]["events_by_name"]["link_click"], 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_commit_cut_short_leaves_no_table_behind() {
    let setup = Setup::new();
    setup.append(&captures()[..3]).await;
    // what a crash during the very first commit leaves: folders, no commit
    std::fs::create_dir_all(
        setup
            .lake()
            .table_path("atomic", "events")
            .join("_delta_log"),
    )
    .unwrap();
    assert!(setup.lake().tables().unwrap().is_empty());
    let report = setup.loader().load().await.unwrap();
    assert_eq!(report.records, 3);
    assert_eq!(
        setup.count("SELECT count(*) FROM atomic.events").await,
        report.events as i64
    );
}
