//! Every dialect's SQL, run on a real engine of that dialect over the same
//! tables, returns exactly the members DataFusion returns: DuckDB,
//! PostgreSQL (the local server), Spark SQL on Sail reading the Delta tables,
//! Snowflake SQL on fakesnow. Needs the Python packages of
//! requirements-test.txt (scripts/test installs them) and PostgreSQL on
//! 127.0.0.1:5432.

mod fixture;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{Value, json};
use weft_audience::dialect;
use weft_audience::engine::Engine;
use weft_audience::sql::{Shape, TABLES, Tables, render};
use weft_lake::catalog::Lake;

#[tokio::test]
async fn every_dialect_returns_the_members_datafusion_returns() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    let paths: BTreeMap<&str, String> = fixture::write_lake(dir.path())
        .await
        .into_iter()
        .map(|name| {
            let (schema, table) = name.split_once('.').unwrap();
            let path = lake.table_path(schema, table);
            (name, path.to_string_lossy().into_owned())
        })
        .collect();
    let engine = Engine::open(&lake).await.unwrap();
    let cases = fixture::cases();
    // Spark reads the Delta tables as temporary views named schema_table
    let spark_tables = TABLES.iter().fold(Tables::lake(), |tables, name| {
        tables.rename(name, &name.replace('.', "_"))
    });
    let mut expected = BTreeMap::new();
    let mut queries = Vec::new();
    for case in &cases.cases {
        let query = engine
            .compile(&case.spec, &cases.audiences, cases.as_of)
            .unwrap();
        let members: Vec<String> = engine
            .member_ids(&query)
            .await
            .unwrap()
            .into_iter()
            .collect();
        if let Some(by_hand) = &case.members {
            assert_eq!(&members, by_hand, "{} on DataFusion", case.spec.name);
        }
        for name in ["duckdb", "postgres", "spark", "snowflake"] {
            let dialect = dialect::by_name(name).unwrap();
            let tables = if name == "spark" {
                spark_tables.clone()
            } else {
                Tables::lake()
            };
            let id = format!("{}/{name}", case.spec.name);
            queries.push(json!({
                "id": id,
                "dialect": name,
                "sql": render(&query, dialect.as_ref(), &tables, Shape::Members),
            }));
            expected.insert(id, members.clone());
        }
    }
    let input = dir.path().join("queries.json");
    std::fs::write(
        &input,
        serde_json::to_vec(&json!({"tables": paths, "queries": queries})).unwrap(),
    )
    .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/engines/run_sql.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(&input)
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the engines script failed (pip install -r requirements-test.txt):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let sql_of = |id: &str| {
        queries
            .iter()
            .find(|q| q["id"] == id)
            .map(|q| q["sql"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let mut failures = Vec::new();
    for (id, members) in &expected {
        let result = &results["results"][id];
        match result.get("members").and_then(Value::as_array) {
            Some(got) => {
                let got: Vec<String> = got.iter().map(|m| m.as_str().unwrap().to_owned()).collect();
                if &got != members {
                    failures.push(format!(
                        "{id}: got {got:?}, DataFusion {members:?}\n{}",
                        sql_of(id)
                    ));
                }
            }
            None => failures.push(format!("{id}: {}\n{}", result["error"], sql_of(id))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} disagree:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n\n")
    );
}
