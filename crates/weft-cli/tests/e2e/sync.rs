//! `weft sync …` over the weft-audience fixture lake: a mirror sync to CSV
//! files and to the local PostgreSQL server. A first run sends every
//! consenting member, a rerun sends nothing, a dry run sends nothing, the
//! run history is in activation.sync_runs, and bad specs are refused.

use std::path::Path;
use std::process::Command;

use crate::{sql, weft};

use crate::audience::fixture;

fn sync(data_dir: &Path, config: &Path, args: &[&str]) -> (i32, String, String) {
    let output = weft()
        .arg("--config")
        .arg(config)
        .args(args)
        .env("WEFT_DATA_DIR", data_dir)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn psql(query: &str) -> String {
    let output = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-At",
            "-c",
            query,
        ])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[test]
fn syncs_send_members_once_and_record_their_runs() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fixture::write_lake(dir.path()));
    let table = format!("weft_e2e_sync_{}", std::process::id());
    psql(&format!("DROP TABLE IF EXISTS {table}"));
    let out = dir.path().join("files");
    let config = dir.path().join("weft.toml");
    std::fs::write(
        &config,
        format!(
            "[activation.destinations.out]\ntype = \"files\"\npath = {:?}\nformat = \"csv\"\n\n\
             [activation.destinations.warehouse]\ntype = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/postgres\"\n\
             table = \"{table}\"\npurpose = \"internal\"\n",
            out.to_string_lossy()
        ),
    )
    .unwrap();
    let spec = |name: &str, body: &str| {
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, body).unwrap();
        path.to_string_lossy().into_owned()
    };
    let everyone = spec(
        "everyone",
        r#"{"name": "everyone", "conditions": [{"trait": "sessions", "op": "gte", "value": 0}]}"#,
    );
    assert_eq!(
        sync(dir.path(), &config, &["audience", "create", &everyone]).0,
        0
    );

    // A destination that is not configured, or a column that does not exist, is refused with its path.
    let (code, _, stderr) = sync(
        dir.path(),
        &config,
        &[
            "sync",
            "create",
            &spec(
                "bad",
                r#"{"name": "bad", "audience": "everyone", "destination": "nowhere"}"#,
            ),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("$.destination") && stderr.contains("out, warehouse"),
        "{stderr}"
    );
    let (code, _, stderr) = sync(
        dir.path(),
        &config,
        &[
            "sync",
            "create",
            &spec(
                "bad2",
                r#"{"name": "bad2", "audience": "everyone", "destination": "out", "fields": {"e": "no_such"}}"#,
            ),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("$.fields.e"), "{stderr}");

    let to_files = spec(
        "to_files",
        r#"{"name": "to-files", "audience": "everyone", "destination": "out", "mode": "mirror",
            "fields": {"email": "email", "country": "country"}}"#,
    );
    let to_pg = spec(
        "to_pg",
        r#"{"name": "to-pg", "audience": "everyone", "destination": "warehouse", "mode": "mirror",
            "fields": {"email": "email", "sessions": "sessions"}}"#,
    );
    for file in [&to_files, &to_pg] {
        let (code, _, stderr) = sync(dir.path(), &config, &["sync", "create", file]);
        assert_eq!(code, 0, "{stderr}");
    }

    // Dry run: counts, nothing sent, nothing recorded.
    let (code, stdout, stderr) = sync(
        dir.path(),
        &config,
        &["sync", "run", "to-files", "--dry-run", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let dry: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // c2 refused marketing consent and c4 never gave it: 3 of 5 members go to a marketing destination.
    assert_eq!(
        (
            dry["added"].as_u64(),
            dry["to_send"].as_u64(),
            dry["without_consent"].as_u64()
        ),
        (Some(3), Some(3), Some(2))
    );
    assert!(!out.exists(), "a dry run writes nothing");

    let (code, stdout, stderr) = sync(dir.path(), &config, &["sync", "run", "to-files", "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let first: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (first["delivered"].as_u64(), first["status"].as_str()),
        (Some(3), Some("succeeded"))
    );
    let run_dir = out.join("to-files").join(first["run_id"].as_str().unwrap());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["complete"], true);
    let mut csv = String::new();
    for entry in std::fs::read_dir(&run_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "csv") {
            csv.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    for email in ["ada@x.com", "ob@y.org", "eve@x.com"] {
        assert!(csv.contains(email), "{email} in {csv}");
    }
    assert!(!csv.contains("zoe@x.com"), "no consent, never sent");

    // The internal warehouse table gets everyone, once; a rerun sends nothing.
    let (code, stdout, stderr) = sync(dir.path(), &config, &["sync", "run", "to-pg"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("5 added"), "{stdout}");
    assert_eq!(psql(&format!("SELECT count(*) FROM {table}")), "5");
    assert_eq!(
        psql(&format!("SELECT sessions FROM {table} WHERE key = 'c1'")),
        "5"
    );
    let (code, stdout, _) = sync(dir.path(), &config, &["sync", "run", "to-pg", "--json"]);
    assert_eq!(code, 0);
    let rerun: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (rerun["to_send"].as_u64(), rerun["unchanged"].as_u64()),
        (Some(0), Some(5))
    );

    let (code, stdout, _) = sync(dir.path(), &config, &["sync", "status", "to-pg"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("5 rows delivered, 0 failing"), "{stdout}");
    let history = sql(
        dir.path(),
        "SELECT sync, dry_run, added, delivered, status FROM activation.sync_runs ORDER BY started_at",
        "csv",
    );
    assert_eq!(
        history.lines().skip(1).collect::<Vec<_>>(),
        [
            "to-files,false,3,3,succeeded",
            "to-pg,false,5,5,succeeded",
            "to-pg,false,0,0,succeeded"
        ]
    );
    let (code, stdout, _) = sync(dir.path(), &config, &["sync", "list"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("to-pg\tv1\taudience everyone → warehouse (mirror)"),
        "{stdout}"
    );

    // A journey: GB members down one branch whose sync sends them to files, the rest down another.
    let gb = spec(
        "gb",
        r#"{"name": "gb", "conditions": [{"trait": "country", "op": "eq", "value": "GB"}]}"#,
    );
    assert_eq!(sync(dir.path(), &config, &["audience", "create", &gb]).0, 0);
    let (code, _, stderr) = sync(
        dir.path(),
        &config,
        &[
            "journey",
            "create",
            &spec(
                "bad_journey",
                "name: j\nentry: everyone\nbranches:\n  - {name: uk, audience: no-such}\n",
            ),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("$.branches[0].audience"), "{stderr}");
    let journey = spec(
        "journey",
        "name: by-country\nentry: everyone\nbranches:\n  - {name: uk, audience: gb}\n  - {name: rest}\n",
    );
    let (code, _, stderr) = sync(dir.path(), &config, &["journey", "create", &journey]);
    assert_eq!(code, 0, "{stderr}");
    let uk_sync = spec(
        "uk_sync",
        r#"{"name": "uk-files", "journey": "by-country", "branch": "uk", "destination": "out",
            "fields": {"email": "email"}}"#,
    );
    let (code, _, stderr) = sync(dir.path(), &config, &["sync", "create", &uk_sync]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = sync(
        dir.path(),
        &config,
        &["journey", "run", "by-country", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let run: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(run["branches"], serde_json::json!({"uk": 2, "rest": 3}));
    assert_eq!(
        (run["entered"].as_u64(), run["unrouted"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(run["syncs"][0]["sync"], "uk-files");
    assert_eq!(
        run["syncs"][0]["delivered"], 2,
        "c1 and c5, both consenting"
    );
    let (code, stdout, _) = sync(
        dir.path(),
        &config,
        &["journey", "run", "by-country", "--json"],
    );
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (again["entered"].as_u64(), again["moved"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(again["syncs"][0]["to_send"], 0);
    let (code, stdout, _) = sync(dir.path(), &config, &["journey", "status", "by-country"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("uk\t2 members\tsyncs: uk-files → out"),
        "{stdout}"
    );
    // the fixture's conversions all came before the journey
    let (code, stdout, stderr) = sync(
        dir.path(),
        &config,
        &["journey", "results", "by-country", "--json"],
    );
    assert_eq!(code, 0, "{stderr}");
    let results: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let counts: Vec<_> = results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["branch"].as_str().unwrap(),
                r["customers"].as_u64(),
                r["converted"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [("rest", Some(3), Some(0)), ("uk", Some(2), Some(0))]
    );
    assert_eq!(
        sync(dir.path(), &config, &["journey", "results", "no-such"]).0,
        2
    );
    assert_eq!(
        sql(
            dir.path(),
            "SELECT to_branch, count(*) AS n FROM activation.journey_history \
             WHERE change = 'entered' GROUP BY to_branch ORDER BY to_branch",
            "csv",
        ),
        "to_branch,n\nrest,3\nuk,2\n"
    );
    psql(&format!("DROP TABLE IF EXISTS {table}"));
}

#[test]
fn the_admin_api_stores_runs_and_reports_syncs_and_journeys() {
    let dir = tempfile::tempdir().unwrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(fixture::write_lake(dir.path()));
    let out = dir.path().join("files");
    let out_text = out.to_string_lossy().into_owned();
    let server = crate::Server::start(
        dir.path(),
        &[
            ("WEFT_ACTIVATION__DESTINATIONS__OUT__TYPE", "files"),
            ("WEFT_ACTIVATION__DESTINATIONS__OUT__PATH", &out_text),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let send = |method: reqwest::Method, path: &str, body: &str| {
        let response = client
            .request(method, server.url(path))
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        (status, json)
    };
    use reqwest::Method;
    assert_eq!(
        send(
            Method::POST,
            "/admin/audiences",
            "name: everyone\nconditions: [{trait: sessions, op: gte, value: 0}]\n"
        )
        .0,
        201
    );
    assert_eq!(
        send(
            Method::POST,
            "/admin/audiences",
            "name: gb\nconditions: [{trait: country, op: eq, value: GB}]\n"
        )
        .0,
        201
    );
    let (status, body) = send(
        Method::POST,
        "/admin/syncs",
        "name: s\naudience: everyone\ndestination: out\nfields: {e: nope}\n",
    );
    assert_eq!(status, 400);
    assert_eq!(body["error"]["path"], "$.fields.e");
    let sync =
        "name: s\naudience: everyone\ndestination: out\nmode: mirror\nfields: {email: email}\n";
    assert_eq!(send(Method::POST, "/admin/syncs", sync).0, 201);
    assert_eq!(send(Method::POST, "/admin/syncs", sync).0, 409);
    assert_eq!(send(Method::POST, "/admin/syncs/nope/run", "").0, 404);
    let (status, dry) = send(Method::POST, "/admin/syncs/s/run?dry_run=true", "");
    assert_eq!((status, dry["to_send"].as_u64()), (200, Some(3)));
    assert!(!out.exists(), "a dry run writes nothing");
    let (status, run) = send(Method::POST, "/admin/syncs/s/run", "");
    assert_eq!(status, 200);
    assert_eq!(
        (run["delivered"].as_u64(), run["status"].as_str()),
        (Some(3), Some("succeeded"))
    );
    let (status, report) = send(Method::GET, "/admin/syncs/s/status", "");
    assert_eq!(status, 200);
    assert_eq!(report["delivered"], 3);
    assert_eq!(report["runs"].as_array().unwrap().len(), 1);
    let (status, list) = send(Method::GET, "/admin/syncs", "");
    assert_eq!(status, 200);
    assert_eq!(list[0]["spec"]["name"], "s");
    // a PUT does not rename
    let (status, body) = send(Method::PUT, "/admin/syncs/other", sync);
    assert_eq!(
        (status, body["error"]["path"].as_str()),
        (400, Some("$.name"))
    );

    let journey = "name: j\nentry: everyone\nholdout_percent: 0\nbranches: [{name: uk, audience: gb}, {name: rest}]\n";
    assert_eq!(send(Method::POST, "/admin/journeys", journey).0, 201);
    let (status, body) = send(
        Method::POST,
        "/admin/journeys",
        "name: k\nentry: everyone\nbranches: [{name: a, percent: 70}, {name: b, percent: 40}]\n",
    );
    assert_eq!(
        (status, body["error"]["path"].as_str()),
        (400, Some("$.branches[1].percent"))
    );
    let (status, run) = send(Method::POST, "/admin/journeys/j/run", "");
    assert_eq!(status, 200);
    assert_eq!(run["branches"], serde_json::json!({"uk": 2, "rest": 3}));
    let (status, results) = send(Method::GET, "/admin/journeys/j/results", "");
    assert_eq!(status, 200, "{results}");
    assert_eq!(
        results["branches"].as_array().map(Vec::len),
        Some(2),
        "{results}"
    );
    let (status, report) = send(Method::GET, "/admin/journeys/j/status", "");
    assert_eq!(status, 200);
    assert_eq!(report["branches"]["uk"], 2);
    assert_eq!(send(Method::DELETE, "/admin/journeys/j", "").0, 204);
    assert_eq!(send(Method::GET, "/admin/journeys/j", "").0, 404);
    assert_eq!(send(Method::DELETE, "/admin/syncs/s", "").0, 204);
    server.kill();
}
