//! kill -9 the loader while it commits, again and again: every acknowledged
//! event ends up in atomic.events exactly once.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{Server, raw_http, try_sql, weft};

#[test]
fn killing_the_loader_repeatedly_neither_drops_nor_repeats_events() {
    let data = tempfile::tempdir().unwrap();
    let events = 400;
    {
        let server = Server::start(data.path(), &[("WEFT_LOADER__INTERVAL_SECS", "3600")]);
        for n in 0..events {
            let request = format!(
                "GET /i?e=pv&p=web&eid=00000000-0000-4000-8000-{n:012}&url=https%3A%2F%2Fshop.example.com%2F{n} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            assert_eq!(raw_http(server.addr, request.as_bytes()).0, 200);
        }
        server.kill();
    }

    // before the first commit there is no table yet: nothing loaded
    let count = || {
        try_sql(
            data.path(),
            "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM atomic.events",
            "csv",
        )
        .ok()
        .and_then(|csv| csv.lines().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "0,0".to_owned())
    };
    // Small batches make many commits. Each run is killed a little after it
    // made a commit of its own, so the kill lands mid-load however slowly the
    // machine starts the loader (start-up compiles the user agent regexes).
    let commits = events_commits(data.path());
    let mut seen = Vec::new();
    for attempt in 0..8u64 {
        let before = commits();
        let mut loader = weft()
            .args(["run", "load", "--data-dir"])
            .arg(data.path())
            .env("WEFT_LOADER__BATCH_RECORDS", "15")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        while commits() == before && Instant::now() < deadline {
            if loader.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(attempt * 20));
        let _ = loader.kill();
        loader.wait().unwrap();
        seen.push(count());
    }
    eprintln!("rows after each kill: {seen:?}");
    assert!(
        seen.iter()
            .any(|s| s != "0,0" && s != &format!("{events},{events}")),
        "no kill landed mid-load: {seen:?}"
    );
    let finish = weft()
        .args(["run", "load", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        finish.status.success(),
        "{}",
        String::from_utf8_lossy(&finish.stderr)
    );

    assert_eq!(count(), format!("{events},{events}"));
}

/// How many commits `atomic.events` has: its Delta log's JSON files.
fn events_commits(data_dir: &Path) -> impl Fn() -> usize {
    let log = data_dir.join("lake/atomic/events/_delta_log");
    move || {
        std::fs::read_dir(&log)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
                    .count()
            })
            .unwrap_or(0)
    }
}
