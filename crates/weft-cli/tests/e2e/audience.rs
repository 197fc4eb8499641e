//! `weft audience …` and `/admin/audiences…` over a lake of hand-built
//! tables whose members are known (the weft-audience tests' fixture):
//! stored, versioned, sized, previewed, written as SQL, overlapped, run
//! into audiences.membership, and bad specs refused with their JSON path.

use std::path::Path;

use serde_json::Value;

use crate::{Server, sql, weft};

#[path = "../../../weft-audience/tests/fixture/mod.rs"]
pub mod fixture;

const AS_OF: &str = "2026-12-01";

/// The weft-audience tests' hand-built tables, written into `data_dir`'s lake.
fn fixture_lake(data_dir: &Path) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(fixture::write_lake(data_dir));
}

fn audience(data_dir: &Path, args: &[&str]) -> (i32, String, String) {
    let output = weft()
        .arg("audience")
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

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn audiences_are_stored_sized_run_and_versioned_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    fixture_lake(dir.path());
    let specs = tempfile::tempdir().unwrap();
    let gb = write(
        specs.path(),
        "gb.yaml",
        "name: gb\ndescription: in Britain\nconditions:\n  - {trait: country, op: eq, value: GB}\nselect: [email]\n",
    );
    let bread = write(
        specs.path(),
        "bread.json",
        r#"{"name": "bread", "conditions": {"behaviour": {"event": "product_view",
            "where": [{"field": "unstruct_event_com_acme_product_view_1.category", "op": "eq", "value": "bread"}],
            "within_days": 30, "op": "gte", "value": 1}}}"#,
    );
    let (code, out, err) = audience(dir.path(), &["create", &gb, "--as-of", AS_OF]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created audience gb (version 1)"), "{out}");
    let (code, _, err) = audience(dir.path(), &["create", &gb]);
    assert_eq!(code, 2);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(audience(dir.path(), &["create", &bread]).0, 0);

    let (_, out, _) = audience(dir.path(), &["list"]);
    assert!(
        out.contains("gb") && out.contains("in Britain") && out.contains("bread"),
        "{out}"
    );
    let (code, out, err) = audience(dir.path(), &["size", "gb", "--as-of", AS_OF]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("gb: 2 customers"), "{out}");
    // a file not stored is sized as it is
    let (_, out, _) = audience(dir.path(), &["size", &bread, "--as-of", AS_OF]);
    assert!(out.starts_with("bread: 3 customers"), "{out}");

    let (code, out, err) = audience(
        dir.path(),
        &["preview", "gb", "--format", "json", "--as-of", AS_OF],
    );
    assert_eq!(code, 0, "{err}");
    let rows: Value = serde_json::from_str(&out).unwrap();
    let emails: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["ada@x.com", "eve@x.com"]);

    let (code, out, _) = audience(
        dir.path(),
        &[
            "sql",
            "gb",
            "--dialect",
            "spark",
            "--table",
            "profiles.customers=crm.people",
        ],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("FROM crm.people c") && out.contains("c.country = 'GB'"),
        "{out}"
    );
    let (code, _, err) = audience(dir.path(), &["sql", "gb", "--dialect", "oracle"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown dialect"), "{err}");

    let (_, out, _) = audience(dir.path(), &["overlap", "gb", "bread", "--as-of", AS_OF]);
    assert!(out.contains("gb ∩ bread: 2"), "{out}");
    assert!(out.contains("in any: 3"), "{out}");

    let (code, out, err) = audience(dir.path(), &["run", "--as-of", AS_OF]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("gb v1: 2 members, 2 entered, 0 exited"),
        "{out}"
    );
    assert!(
        out.contains("bread v1: 3 members, 3 entered, 0 exited"),
        "{out}"
    );

    // a changed spec is a new version; its run moves people in and out
    let fr = write(
        specs.path(),
        "gb2.yaml",
        "name: gb\nconditions: {trait: country, op: in, value: [FR, GB]}\n",
    );
    let (_, out, _) = audience(dir.path(), &["update", &fr]);
    assert!(out.contains("audience gb is at version 2"), "{out}");
    let narrowed = write(
        specs.path(),
        "gb3.yaml",
        "name: gb\nconditions: {trait: country, op: eq, value: FR}\n",
    );
    audience(dir.path(), &["update", &narrowed]);
    let (_, out, _) = audience(dir.path(), &["run", "gb", "--as-of", AS_OF]);
    assert!(
        out.contains("gb v3: 1 members, 1 entered, 2 exited"),
        "{out}"
    );
    let history = sql(
        dir.path(),
        "SELECT customer_id, exited_at IS NULL AS open FROM audiences.membership \
         WHERE audience = 'gb' ORDER BY customer_id",
        "csv",
    );
    assert_eq!(history, "customer_id,open\nc1,false\nc2,true\nc5,false\n");
    let runs = sql(
        dir.path(),
        "SELECT audience, version, members, entered, exited FROM audiences.runs ORDER BY run_at, audience",
        "csv",
    );
    assert!(
        runs.contains("gb,1,2,2,0") && runs.contains("gb,3,1,1,2"),
        "{runs}"
    );
    let (_, out, _) = audience(dir.path(), &["show", "gb"]);
    let detail: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(detail["version"], 3);
    assert_eq!(detail["versions"].as_array().unwrap().len(), 3);

    // bad specs: one line with the JSON path, exit status 2, nothing stored
    let bad = write(
        specs.path(),
        "bad.yaml",
        "name: bad\nconditions:\n  all:\n    - {trait: country, op: eq, value: GB}\n    - {trait: revenue, op: contains, value: 1}\n",
    );
    let (code, _, err) = audience(dir.path(), &["create", &bad]);
    assert_eq!(code, 2);
    assert!(err.contains("$.conditions.all[1].op"), "{err}");
    assert!(err.contains("contains does not apply to revenue"), "{err}");
    let (code, _, err) = audience(dir.path(), &["show", "bad"]);
    assert_eq!(code, 2, "{err}");
    let cycle = write(
        specs.path(),
        "cycle.yaml",
        "name: bread\nconditions: {audience: bread}\n",
    );
    let (code, _, err) = audience(dir.path(), &["update", &cycle]);
    assert_eq!(code, 2);
    assert!(err.contains("cycle"), "{err}");
    let (code, _, _) = audience(dir.path(), &["delete", "bread"]);
    assert_eq!(code, 0);
    assert_eq!(audience(dir.path(), &["size", "bread"]).0, 2);
}

#[test]
fn the_admin_api_speaks_json_and_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    fixture_lake(dir.path());
    let server = Server::start(dir.path(), &[]);
    let client = reqwest::blocking::Client::new();
    let post = |path: &str, body: &str| {
        client
            .post(server.url(path))
            .body(body.to_owned())
            .send()
            .unwrap()
    };
    let created = post(
        "/admin/audiences",
        "name: gb\nconditions: {trait: country, op: eq, value: GB}\nselect: [email]\n",
    );
    assert_eq!(created.status(), 201);
    assert_eq!(
        post(
            "/admin/audiences",
            "name: gb\nconditions: {trait: country, op: is_set}\n"
        )
        .status(),
        409
    );
    let bad = post(
        "/admin/audiences",
        r#"{"name": "x", "conditions": {"any": [{"score": "cheese", "op": "gte", "value": 1}]}}"#,
    );
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().unwrap();
    assert_eq!(body["error"]["path"], "$.conditions.any[0].score");
    assert!(
        body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("unknown score")
    );
    assert_eq!(post("/admin/audiences", "{not json").status(), 400);
    let huge = format!(
        "name: x\ndescription: {}\nconditions: []\n",
        "a".repeat(2 << 20)
    );
    // the server stops reading at the limit and closes the connection: the
    // client must not pool it for the next request
    let too_big = client
        .post(server.url("/admin/audiences"))
        .header(reqwest::header::CONNECTION, "close")
        .body(huge)
        .send()
        .unwrap();
    assert_eq!(too_big.status(), 413);

    let list: Value = client
        .get(server.url("/admin/audiences"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list[0]["name"], "gb");
    let size: Value = client
        .get(server.url(&format!("/admin/audiences/gb/size?as_of={AS_OF}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(size["size"], 2);
    let unsaved: Value = post(
        &format!("/admin/audiences/size?as_of={AS_OF}"),
        r#"{"name": "emailable", "conditions": {"consent": "email"}}"#,
    )
    .json()
    .unwrap();
    assert_eq!(unsaved["size"], 3);
    let preview: Value = client
        .get(server.url("/admin/audiences/gb/preview?rows=1"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(preview["rows"].as_array().unwrap().len(), 1);
    assert_eq!(preview["rows"][0]["email"], "ada@x.com");
    let sql_text = client
        .get(server.url("/admin/audiences/gb/sql?dialect=bigquery"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(sql_text.contains("-- audience gb, bigquery"), "{sql_text}");
    assert_eq!(
        client
            .get(server.url("/admin/audiences/gb/sql?dialect=cobol"))
            .send()
            .unwrap()
            .status(),
        400
    );
    post(
        "/admin/audiences",
        "name: fr\nconditions: {trait: country, op: in, value: [FR, GB]}\n",
    );
    let overlap: Value = post("/admin/audiences/overlap", r#"{"names": ["gb", "fr"]}"#)
        .json()
        .unwrap();
    assert_eq!(overlap["pairs"][0][2], 2);
    assert_eq!(overlap["any"], 3);
    assert_eq!(
        post("/admin/audiences/overlap", r#"{"names": ["gb"]}"#).status(),
        400
    );
    assert_eq!(
        post("/admin/audiences/overlap", r#"{"names": ["gb", "nope"]}"#).status(),
        404
    );
    let run: Value = post(&format!("/admin/audiences/gb/run?as_of={AS_OF}"), "")
        .json()
        .unwrap();
    assert_eq!(run["members"], 2);
    let mismatched = client
        .put(server.url("/admin/audiences/gb"))
        .body("name: fr\nconditions: {trait: country, op: is_set}\n")
        .send()
        .unwrap();
    assert_eq!(mismatched.status(), 400);
    let updated: Value = client
        .put(server.url("/admin/audiences/gb"))
        .body("name: gb\nconditions: {trait: country, op: is_set}\n")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(updated["version"], 2);
    assert_eq!(
        client
            .get(server.url("/admin/audiences/nope"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        client
            .delete(server.url("/admin/audiences/fr"))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        client
            .delete(server.url("/admin/audiences/fr"))
            .send()
            .unwrap()
            .status(),
        404
    );
}
