//! Compaction and vacuum: fewer files, the same rows, the loader's offsets kept.

use std::path::Path;

use weft_lake::{MaintenanceOptions, maintain};

use crate::{Setup, captures};

fn parquet_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            count += parquet_files(&path);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_and_vacuum_keep_every_row_and_the_offsets() {
    let setup = Setup::new();
    let payloads = captures();
    let (first, rest) = payloads.split_at(12);
    setup.append(first).await;
    // one record per batch: a file per commit
    setup.loader().with_batch_records(1).load().await.unwrap();
    let events_dir = setup.lake().table_path("atomic", "events");
    let before = parquet_files(&events_dir);
    let rows = setup.count("SELECT count(*) FROM atomic.events").await;
    let sessions = setup
        .count("SELECT count(DISTINCT domain_sessionid) FROM atomic.events")
        .await;
    assert!(before >= 10, "{before} files");

    // an orphan a writer left before dying, old enough to go
    let orphan = events_dir.join("part-orphan-of-a-crashed-writer.parquet");
    std::fs::write(&orphan, b"PAR1").unwrap();

    let options = MaintenanceOptions {
        vacuum_retention_hours: 0,
        ..MaintenanceOptions::default()
    };
    let done = maintain(&setup.lake(), &options).await.unwrap();
    let events = done.iter().find(|t| t.table == "atomic.events").unwrap();
    assert!(events.files_compacted >= 10, "{events:?}");
    assert!(events.files_written < events.files_compacted, "{events:?}");
    assert!(events.files_deleted >= events.files_compacted, "{events:?}");
    assert!(!orphan.exists());
    let after = parquet_files(&events_dir);
    assert!(after < before, "{after} files after, {before} before");
    assert_eq!(
        setup.count("SELECT count(*) FROM atomic.events").await,
        rows
    );
    assert_eq!(
        setup
            .count("SELECT count(DISTINCT domain_sessionid) FROM atomic.events")
            .await,
        sessions
    );

    // the loader carries on where it was: nothing repeated, the rest loaded
    let again = setup.loader().load().await.unwrap();
    assert_eq!(again.records, 0);
    setup.append(rest).await;
    setup.loader().load().await.unwrap();
    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 32);

    // maintaining again is harmless
    maintain(&setup.lake(), &options).await.unwrap();
    assert_eq!(setup.count("SELECT count(*) FROM atomic.events").await, 32);
}
