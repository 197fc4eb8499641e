//! Every operator, time window, group and reference of the spec on
//! hand-built tables whose members are known, run on DataFusion.

mod fixture;

use std::collections::BTreeSet;

use deltalake::datafusion::sql::sqlparser::dialect::{
    BigQueryDialect, DuckDbDialect, GenericDialect, MySqlDialect, PostgreSqlDialect,
    SnowflakeDialect,
};
use deltalake::datafusion::sql::sqlparser::parser::Parser;
use weft_audience::engine::Engine;
use weft_audience::sql::{Shape, Tables, render};
use weft_audience::{dialect, spec};

#[tokio::test]
async fn each_case_selects_exactly_its_members() {
    let cases = fixture::cases();
    let engine = Engine::from_context(fixture::session().await)
        .await
        .unwrap();
    let mut failures = Vec::new();
    for case in &cases.cases {
        let query = engine
            .compile(&case.spec, &cases.audiences, cases.as_of)
            .unwrap_or_else(|e| panic!("{}: {e}", case.spec.name));
        let members = engine.member_ids(&query).await.unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n{}",
                case.spec.name,
                render(
                    &query,
                    &dialect::DataFusion,
                    &Tables::lake(),
                    Shape::Members
                )
            )
        });
        let size = engine.size(&query).await.unwrap();
        assert_eq!(size as usize, members.len(), "{}: size", case.spec.name);
        if let Some(expected) = &case.members {
            let expected: BTreeSet<String> = expected.iter().cloned().collect();
            if members != expected {
                failures.push(format!(
                    "{}: got {members:?}, expected {expected:?}",
                    case.spec.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_sample_is_a_stable_subset_of_about_its_share() {
    let cases = fixture::cases();
    let engine = Engine::from_context(fixture::session().await)
        .await
        .unwrap();
    let everyone = spec::parse(
        r#"{"name": "everyone", "conditions": {"trait": "customer_id", "op": "is_set"}}"#,
    )
    .unwrap();
    let all = engine
        .member_ids(
            &engine
                .compile(&everyone, &cases.audiences, cases.as_of)
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 5);
    let mut sizes = Vec::new();
    for percent in [1, 30, 50, 90, 100] {
        let mut sampled = everyone.clone();
        sampled.sample = Some(spec::Sample {
            percent: f64::from(percent),
            seed: "s".into(),
            path: "$.sample".into(),
        });
        let query = engine
            .compile(&sampled, &cases.audiences, cases.as_of)
            .unwrap();
        let first = engine.member_ids(&query).await.unwrap();
        let again = engine.member_ids(&query).await.unwrap();
        assert_eq!(first, again, "a sample is the same run after run");
        assert!(first.is_subset(&all));
        sizes.push(first.len());
    }
    assert_eq!(*sizes.last().unwrap(), 5, "100% keeps everyone");
    assert!(sizes.windows(2).all(|w| w[0] <= w[1]), "{sizes:?}");
}

#[tokio::test]
async fn a_sample_keeps_its_share_of_many_customers() {
    use deltalake::datafusion::prelude::SessionContext;
    let context = SessionContext::new();
    context.sql("CREATE SCHEMA profiles").await.unwrap();
    context
        .sql("CREATE TABLE profiles.customers AS SELECT concat('c', CAST(value AS VARCHAR)) AS customer_id FROM generate_series(1, 20000)")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let engine = Engine::from_context(context).await.unwrap();
    let spec = spec::parse(
        "name: tenth\nconditions: {trait: customer_id, op: is_set}\nsample: {percent: 10}\n",
    )
    .unwrap();
    let query = engine
        .compile(
            &spec,
            &std::collections::HashMap::new(),
            chrono::Utc::now().naive_utc(),
        )
        .unwrap();
    let size = engine.size(&query).await.unwrap();
    assert!((1800..=2200).contains(&size), "10% of 20000 kept {size}");
}

#[tokio::test]
async fn every_dialect_writes_sql_its_parser_reads() {
    let cases = fixture::cases();
    let engine = Engine::from_context(fixture::session().await)
        .await
        .unwrap();
    for case in &cases.cases {
        let query = engine
            .compile(&case.spec, &cases.audiences, cases.as_of)
            .unwrap();
        for dialect in dialect::all() {
            for shape in [Shape::Members, Shape::Count] {
                let sql = render(&query, dialect.as_ref(), &Tables::lake(), shape);
                let parsed = match dialect.name() {
                    "datafusion" => Parser::parse_sql(&GenericDialect {}, &sql),
                    "postgres" => Parser::parse_sql(&PostgreSqlDialect {}, &sql),
                    "duckdb" => Parser::parse_sql(&DuckDbDialect {}, &sql),
                    // sqlparser's Databricks dialect lacks Spark's backslash
                    // escapes; MySQL's has them and backticks too
                    "spark" => Parser::parse_sql(&MySqlDialect {}, &sql),
                    "snowflake" => Parser::parse_sql(&SnowflakeDialect {}, &sql),
                    "bigquery" => Parser::parse_sql(&BigQueryDialect {}, &sql),
                    other => panic!("no parser for {other}"),
                };
                if let Err(error) = parsed {
                    panic!("{} in {}: {error}\n{sql}", case.spec.name, dialect.name());
                }
            }
        }
    }
}

#[tokio::test]
async fn hostile_values_reach_sql_only_as_literals() {
    let engine = Engine::from_context(fixture::session().await)
        .await
        .unwrap();
    let cases = fixture::cases();
    for hostile in [
        "'; DROP TABLE profiles.customers; --",
        "\\'; SELECT 1; --",
        "a\\",
        "\"quoted\" `ticks` [brackets]",
        "line\nbreak\ttab",
        "ünïcødé 東京 🎉",
        "SELECT * FROM x WHERE 1=1",
    ] {
        let spec = spec::from_value(&serde_json::json!({
            "name": "hostile",
            "conditions": {"all": [
                {"trait": "last_name", "op": "eq", "value": hostile},
                {"trait": "last_name", "op": "contains", "value": hostile},
                {"behaviour": {"event": hostile, "where": [{"field": "unstruct_event_com_acme_product_view_1.category", "op": "in", "value": [hostile]}], "op": "gte", "value": 1}}
            ]}
        }))
        .unwrap();
        let query = engine
            .compile(&spec, &cases.audiences, cases.as_of)
            .unwrap();
        // runs, and matches no one: the value was compared, not executed
        assert!(
            engine.member_ids(&query).await.unwrap().is_empty(),
            "{hostile}"
        );
        for dialect in dialect::all() {
            let sql = render(&query, dialect.as_ref(), &Tables::lake(), Shape::Members);
            let statements = match dialect.name() {
                "spark" => Parser::parse_sql(&MySqlDialect {}, &sql),
                "snowflake" => Parser::parse_sql(&SnowflakeDialect {}, &sql),
                "bigquery" => Parser::parse_sql(&BigQueryDialect {}, &sql),
                "postgres" => Parser::parse_sql(&PostgreSqlDialect {}, &sql),
                "duckdb" => Parser::parse_sql(&DuckDbDialect {}, &sql),
                _ => Parser::parse_sql(&GenericDialect {}, &sql),
            }
            .unwrap_or_else(|e| panic!("{}: {e}\n{sql}", dialect.name()));
            assert_eq!(
                statements.len(),
                1,
                "{}: one statement\n{sql}",
                dialect.name()
            );
        }
    }
}

#[tokio::test]
async fn invalid_specs_name_the_place_and_the_reason() {
    let cases = fixture::cases();
    let engine = Engine::from_context(fixture::session().await)
        .await
        .unwrap();
    let check = |text: &str| -> weft_audience::SpecError {
        let spec = match spec::parse(text) {
            Ok(spec) => spec,
            Err(error) => return error,
        };
        match engine.compile(&spec, &cases.audiences, cases.as_of) {
            Ok(_) => panic!("accepted: {text}"),
            Err(weft_audience::AudienceError::Spec(error)) => error,
            Err(other) => panic!("{text}: {other}"),
        }
    };
    let cases_and_paths = [
        (
            r#"{"name": "x", "conditions": {"trait": "shoe_size", "op": "eq", "value": 1}}"#,
            "$.conditions.trait",
            "unknown trait",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "op": "gt", "value": "GB"}}"#,
            "$.conditions.op",
            "does not apply to country",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "revenue", "op": "eq", "value": "lots"}}"#,
            "$.conditions.value",
            "revenue is number",
        ),
        (
            r#"{"name": "x", "conditions": {"all": [{"trait": "country", "op": "eq", "value": "GB"}, {"score": "cheese", "op": "gte", "value": 0.5}]}}"#,
            "$.conditions.all[1].score",
            "unknown score",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "op": "like", "value": "G%"}}"#,
            "$.conditions.op",
            "unknown operator",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "dob", "op": "between", "value": ["2000-01-01"]}}"#,
            "$.conditions.value",
            "between takes",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "dob", "op": "eq", "value": "yesterday"}}"#,
            "$.conditions.value",
            "a date",
        ),
        (
            r#"{"name": "x", "conditions": {"any": []}}"#,
            "$.conditions.any",
            "empty group",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "score": "overall", "op": "eq", "value": 1}}"#,
            "$.conditions",
            "one kind",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "op": "eq", "value": "GB", "vlaue": 2}}"#,
            "$.conditions.vlaue",
            "unknown key",
        ),
        (
            r#"{"name": "x", "conditions": {"behaviour": {"source": "orders", "op": "gte", "value": 1}}}"#,
            "$.conditions.behaviour.source",
            "unknown source",
        ),
        (
            r#"{"name": "x", "conditions": {"behaviour": {"measure": "sum", "op": "gte", "value": 1}}}"#,
            "$.conditions.behaviour",
            "needs of",
        ),
        (
            r#"{"name": "x", "conditions": {"behaviour": {"source": "conversions", "measure": "sum", "of": "categories", "op": "gte", "value": 1}}}"#,
            "$.conditions.behaviour.of",
            "needs a number",
        ),
        (
            r#"{"name": "x", "conditions": {"behaviour": {"where": [{"field": "unstruct_event_com_acme_product_view_1.category'--", "op": "eq", "value": "a"}], "op": "gte", "value": 1}}}"#,
            "$.conditions.behaviour.where[0].field",
            "letters, digits",
        ),
        (
            r#"{"name": "x", "conditions": {"behaviour": {"where": [{"field": "unstruct_event_com_acme_nothing_1.category", "op": "eq", "value": "a"}], "op": "gte", "value": 1}}}"#,
            "$.conditions.behaviour.where[0].field",
            "no self-describing column",
        ),
        (
            r#"{"name": "x", "conditions": {"behaviour": {"op": "contains", "value": 1}}}"#,
            "$.conditions.behaviour.op",
            "compares its number",
        ),
        (
            r#"{"name": "x", "conditions": {"audience": "nobody"}}"#,
            "$.conditions.audience",
            "no audience named",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "last_name", "op": "eq", "value": "a\u0000b"}}"#,
            "$.conditions.value",
            "NUL",
        ),
        (
            r#"{"name": "Bad Name!", "conditions": {"trait": "country", "op": "is_set"}}"#,
            "$.name",
            "lower-case",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "op": "is_set", "value": 1}}"#,
            "$.conditions.value",
            "takes no value",
        ),
        (
            r#"{"name": "x", "conditions": {"consent": "sms"}}"#,
            "$.conditions.consent",
            "unknown consent",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "op": "is_set"}, "select": ["shoe_size"]}"#,
            "$.select[0]",
            "unknown attribute",
        ),
        (
            r#"{"name": "x", "conditions": {"trait": "country", "op": "is_set"}, "sample": {"percent": 0}}"#,
            "$.sample.percent",
            "percentage",
        ),
        ("name: x\nconditions: [\n", "$", "not JSON or YAML"),
    ];
    for (text, path, reason) in cases_and_paths {
        let error = check(text);
        assert_eq!(error.path, path, "{text}: {error}");
        assert!(error.reason.contains(reason), "{text}: {error}");
    }
}

#[tokio::test]
async fn a_cycle_of_references_is_rejected_where_it_closes() {
    let cases = fixture::cases();
    let engine = Engine::from_context(fixture::session().await)
        .await
        .unwrap();
    let mut stored = cases.audiences.clone();
    for (name, other) in [("a", "b"), ("b", "c"), ("c", "a")] {
        let spec = spec::from_value(&serde_json::json!({
            "name": name,
            "conditions": {"all": [{"trait": "country", "op": "is_set"}, {"audience": other}]}
        }))
        .unwrap();
        stored.insert(name.to_owned(), spec);
    }
    let error = engine
        .compile(&stored["a"], &stored, cases.as_of)
        .unwrap_err()
        .to_string();
    assert!(error.contains("$.conditions.all[1].audience"), "{error}");
    assert!(error.contains("a → b → c → a"), "{error}");
    // a spec referring to itself
    let error = engine
        .compile(
            &spec::parse(r#"{"name": "gb", "conditions": {"audience": "gb"}}"#).unwrap(),
            &stored,
            cases.as_of,
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("gb → gb"), "{error}");
}

#[test]
fn yaml_and_json_read_the_same() {
    let json = spec::parse(
        r#"{"name": "x", "conditions": {"all": [{"score": "bread", "op": ">=", "value": 0.66}, {"consent": "email"}]}, "limit": 10}"#,
    )
    .unwrap();
    let yaml = spec::parse(
        "name: x\nconditions:\n  all:\n    - score: bread\n      op: \">=\"\n      value: 0.66\n    - consent: email\nlimit: 10\n",
    )
    .unwrap();
    assert_eq!(json, yaml);
}
