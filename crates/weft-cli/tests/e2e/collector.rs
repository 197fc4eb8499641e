//! The collector over real sockets: captured tracker requests sent byte for
//! byte, limits on heads, bodies, connections and slow clients, and the
//! commands a new user runs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Server, fixtures_dir, raw_http, read_response, sql, try_sql, weft};

#[test]
fn every_captured_tracker_request_is_accepted_over_a_real_socket() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let mut count = 0;
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let fixture: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let mut request = format!(
            "{} {} HTTP/1.1\r\n",
            fixture["method"].as_str().unwrap(),
            fixture["path"].as_str().unwrap()
        );
        for header in fixture["headers"].as_array().unwrap() {
            let name = header[0].as_str().unwrap();
            if name.eq_ignore_ascii_case("connection") {
                continue;
            }
            request.push_str(&format!("{name}: {}\r\n", header[1].as_str().unwrap()));
        }
        request.push_str("Connection: close\r\n\r\n");
        let mut bytes = request.into_bytes();
        if let Some(body) = fixture["body"].as_str() {
            bytes.extend_from_slice(body.as_bytes());
        }
        let (status, head, body) = raw_http(server.addr, &bytes);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(status, 200, "{name}: {head}");
        let head = head.to_ascii_lowercase();
        assert!(head.contains("access-control-allow-origin"), "{name}");
        match fixture["method"].as_str().unwrap() {
            "POST" => assert_eq!(body, b"ok", "{name}"),
            "GET" => assert!(body.starts_with(b"GIF89a"), "{name}"),
            _ => assert!(
                head.contains("access-control-allow-credentials: true"),
                "{name}"
            ),
        }
        count += 1;
    }
    assert_eq!(count, 20);
}

#[test]
fn oversized_head_is_refused_and_the_server_goes_on() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("WEFT_SERVER__MAX_HEADER_BYTES", "16384")]);
    let huge = format!(
        "GET /i?e=pv HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(huge.as_bytes());
    if let Some((status, _, _)) = read_response(&mut stream) {
        assert_eq!(status, 431);
    } // else: hyper may close the connection without an answer; either way it is refused
    let (status, _, _) = raw_http(
        server.addr,
        b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn body_over_the_hard_limit_is_refused_before_it_is_sent() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // announce 50 MiB and send none of it: the answer must not wait for the body
    stream
        .write_all(b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
        .unwrap();
    let (status, _, _) = read_response(&mut stream).expect("answered without reading the body");
    assert_eq!(status, 413);
}

#[test]
fn slow_clients_are_cut_off_and_connections_are_capped() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(
        data.path(),
        &[
            ("WEFT_SERVER__HEADER_READ_TIMEOUT_SECS", "1"),
            ("WEFT_SERVER__MAX_CONNECTIONS", "2"),
        ],
    );
    // slowloris: half a request head, then nothing
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /i?e=pv HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "slow client was not cut off"
    );

    // two idle keep-alive connections take both places
    let keep = |addr| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut stream).unwrap().0, 200);
        stream
    };
    let first = keep(server.addr);
    let _second = keep(server.addr);
    let mut third = TcpStream::connect(server.addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    third
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        read_response(&mut third).is_none(),
        "a third connection was served"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (status, _, _) = read_response(&mut third).expect("served once a place is free");
    assert_eq!(status, 200);
}

#[test]
fn quickstart_sends_traffic_and_reports_it() {
    let data = tempfile::tempdir().unwrap();
    let output = weft()
        .args([
            "quickstart",
            "--no-serve",
            "--visitors",
            "20",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sent_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("sent"))
        .unwrap();
    let requests: usize = sent_line
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(requests > 50, "{stdout}");
    assert!(
        sent_line.contains(&format!("{requests} accepted, 0 retried, 0 failed")),
        "{stdout}"
    );
    assert!(stdout.contains("people      20 "), "{stdout}");
    for file in [
        "truth/people.csv",
        "truth/identifiers.csv",
        "records/crm.csv",
        "iglu/com.acme/checkout/jsonschema/1-0-0",
    ] {
        assert!(data.path().join(file).is_file(), "{file}");
    }
    let events: usize = sent_line
        .split("carrying ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        stdout.contains(&format!("loaded      {events} events and 0 bad rows")),
        "{stdout}"
    );
    assert!(
        stdout.contains("| page_view"),
        "the SQL sample is shown: {stdout}"
    );
    assert!(data.path().join("raw/00000000000000000000.log").is_file());

    // the tables are there for SQL afterwards, in every format
    let count = |format: &str| {
        sql(
            data.path(),
            "SELECT count(*) AS n FROM atomic.events",
            format,
        )
    };
    assert_eq!(count("csv"), format!("n\n{events}\n"));
    assert_eq!(count("json").trim(), format!("[{{\"n\":{events}}}]"));
    assert!(count("table").contains(&format!("| {events} ")));
    // nothing left to load
    let output = weft()
        .args(["run", "load", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).contains("0 raw log records"));

    // compaction and vacuum leave every row where it was
    let output = weft()
        .args(["run", "maintain", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("maintain atomic.events: "), "{stdout}");
    assert!(stdout.contains("maintain atomic.bad_rows: "), "{stdout}");
    assert_eq!(count("csv"), format!("n\n{events}\n"));
}

#[test]
fn quickstart_models_sessions_and_a_rerun_or_rebuild_agrees() {
    let data = tempfile::tempdir().unwrap();
    let output = weft()
        .args([
            "quickstart",
            "--no-serve",
            "--visitors",
            "30",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let modelled = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("modelled"))
        .unwrap_or_else(|| panic!("no modelled line: {stdout}"));
    let sessions: usize = modelled.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(sessions > 30, "{stdout}");
    assert!(stdout.contains("conversion_rate_pct"), "{stdout}");
    assert!(
        stdout.contains("| Direct"),
        "the channels are shown: {stdout}"
    );
    // the shop's customer records and identified cookies are linked into customers
    let identity = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("identity"))
        .unwrap_or_else(|| panic!("no identity line: {stdout}"));
    let words: Vec<&str> = identity.split_whitespace().collect();
    let records: usize = words[1].parse().unwrap();
    let web: usize = words[words.iter().position(|w| *w == "and").unwrap() + 1]
        .parse()
        .unwrap();
    assert!(
        records > 0 && web > 0 && identity.contains("from 4 systems"),
        "{identity}"
    );
    assert_eq!(
        sql(
            data.path(),
            "SELECT count(*) AS n FROM identity.person_map WHERE kind = 'record'",
            "csv"
        ),
        format!("n\n{}\n", records + web),
        "{identity}"
    );
    // one current profile per customer, each with its records
    let customers: usize = words[words.iter().position(|w| *w == "→").unwrap() + 1]
        .parse()
        .unwrap();
    assert_eq!(
        sql(
            data.path(),
            "SELECT count(*) AS n, count(DISTINCT customer_id) AS c, min(records) AS r FROM profiles.customers WHERE is_current",
            "csv"
        ),
        format!("n,c,r\n{customers},{customers},1\n"),
        "{identity}"
    );
    // the quickstart explains its largest customer; every record is reached through its links
    let explained = stdout
        .lines()
        .find_map(|l| l.strip_prefix("weft identity explain "))
        .unwrap_or_else(|| panic!("no explanation: {stdout}"));
    let output = weft()
        .args(["identity", "explain", explained, "--json", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let why: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let records = why["records"].as_array().unwrap().len();
    assert_eq!(
        sql(
            data.path(),
            &format!(
                "SELECT records FROM profiles.customers WHERE is_current AND customer_id = '{explained}'"
            ),
            "csv"
        ),
        format!("records\n{records}\n")
    );
    assert!(records > 1, "{why}");
    assert_eq!(why["paths"].as_array().unwrap().len(), records - 1, "{why}");
    let output = weft()
        .args([
            "identity",
            "explain",
            "nobody@example.invalid",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    // a shop this small has too few buyers to learn from: said so, not failed
    assert!(
        stdout
            .lines()
            .any(|l| l.trim_start().starts_with("propensity")),
        "{stdout}"
    );
    // the example audiences: each stored one sized and run into audiences.membership
    let audiences = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("audiences") && l.contains("lapsed-customers"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let lapsed: usize = audiences
        .split("lapsed-customers ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{audiences}"));
    assert_eq!(
        sql(
            data.path(),
            "SELECT count(*) AS n FROM audiences.membership WHERE audience = 'lapsed-customers' AND exited_at IS NULL",
            "csv"
        ),
        format!("n\n{lapsed}\n"),
        "{audiences}"
    );
    // each stored example is synced to files, the largest also to the local webhook receiver:
    // exactly its consenting members, and the receiver took what the webhook sync sent
    let synced = |name: &str| -> usize {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("syncs       {name} ")))
            .unwrap_or_else(|| panic!("no {name} line: {stdout}"));
        sent_of(line)
    };
    assert_eq!(
        sql(
            data.path(),
            "SELECT count(*) AS n FROM audiences.membership m JOIN profiles.customers c \
             ON c.customer_id = m.customer_id AND c.is_current \
             WHERE m.audience = 'lapsed-customers' AND m.exited_at IS NULL AND c.consent_marketing",
            "csv"
        ),
        format!("n\n{}\n", synced("lapsed-customers-to-files")),
        "{stdout}"
    );
    let webhook_sent: usize = stdout
        .lines()
        .filter(|l| l.contains("-to-webhook → example-webhook: "))
        .map(sent_of)
        .sum();
    assert!(
        stdout.contains(&format!(
            "the local webhook receiver took {webhook_sent} rows"
        )),
        "{stdout}"
    );
    assert_eq!(
        sql(
            data.path(),
            "SELECT count(*) AS n FROM activation.sync_runs WHERE status = 'succeeded'",
            "csv"
        ),
        format!(
            "n\n{}\n",
            stdout
                .lines()
                .filter(|l| l.starts_with("  syncs ") && l.contains(" sent ("))
                .count()
        ),
        "{stdout}"
    );
    let count = || {
        sql(
            data.path(),
            "SELECT count(*) AS n FROM derived.sessions",
            "csv",
        )
    };
    assert_eq!(count(), format!("n\n{sessions}\n"));

    let run = |args: &[&str]| {
        let output = weft()
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(run(&["run", "model"]).contains("nothing new to model"));
    let rebuilt = run(&["run", "model", "--full"]);
    assert!(rebuilt.contains("full build): "), "{rebuilt}");
    assert!(
        rebuilt.contains(&format!("→ {sessions} sessions re-derived")),
        "{rebuilt}"
    );
    assert_eq!(count(), format!("n\n{sessions}\n"));

    // the same model, written for Spark
    let spark = run(&["model", "sql", "--dialect", "databricks"]);
    assert!(spark.contains("CREATE OR REPLACE TEMPORARY VIEW sessions_this_run AS"));
    assert!(spark.contains(
        "get_json_object(contexts_com_snowplowanalytics_snowplow_web_page_1, '$[0].id')"
    ));
    // a bad model setting is the user's mistake
    let output = weft()
        .args(["run", "model", "--data-dir"])
        .arg(data.path())
        .env("WEFT_MODEL__HEARTBEAT_SECS", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("model.heartbeat_secs"));
}

#[test]
fn serve_loads_continuously_and_holds_the_data_dir() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[("WEFT_LOADER__INTERVAL_SECS", "1")]);
    for n in 0..5 {
        let request = format!(
            "GET /i?e=pv&p=web&eid=00000000-0000-4000-8000-00000000000{n}&duid=cookie-{}&sid=session-{}&dtm=1773446400000&url=https%3A%2F%2Fshop.example.com%2F HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            n % 3 / 2,
            n % 3
        );
        assert_eq!(raw_http(server.addr, request.as_bytes()).0, 200);
    }
    let output = weft()
        .args(["run", "load", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("another weft process"));

    let started = Instant::now();
    loop {
        // the tables appear with the first load
        let output = try_sql(data.path(), "SELECT count(*) FROM atomic.events", "csv");
        if output
            .as_ref()
            .is_ok_and(|csv| csv.lines().nth(1) == Some("5"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "events were not loaded: {output:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // and the model follows the load: three sessions of two cookies
    loop {
        let output = try_sql(
            data.path(),
            "SELECT count(*) AS sessions, count(DISTINCT domain_userid) AS cookies FROM derived.sessions",
            "csv",
        );
        if output
            .as_ref()
            .is_ok_and(|csv| csv.lines().nth(1) == Some("3,2"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "events were not modelled: {output:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let output = weft()
        .args(["sql", "SELEC", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "a bad query is the user's mistake"
    );
}

#[test]
fn a_bad_config_gets_one_clear_line_and_exit_status_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("weft.toml");
    std::fs::write(&config, "[server]\naddr = \"nowhere\"\n").unwrap();
    let output = weft()
        .arg("--config")
        .arg(&config)
        .args(["serve"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.addr") && stderr.contains("weft.toml"),
        "{stderr}"
    );

    let output = weft()
        .env("WEFT_COLLECTOR__MAX_BODY_BYTES", "lots")
        .args(["serve"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WEFT_COLLECTOR__MAX_BODY_BYTES"),
        "{stderr}"
    );
}

/// The count after the ": " of a quickstart sync line ("… → DEST: 5 sent (…)").
fn sent_of(line: &str) -> usize {
    line.split(": ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}
