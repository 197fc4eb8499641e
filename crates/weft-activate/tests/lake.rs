//! What activation reads from real Delta tables: a sync's rows from
//! `profiles.customers` (only members, only with consent, one row per
//! key), and a journey's results from its history and the conversions.

use std::collections::BTreeSet;

use chrono::{TimeZone, Utc};
use deltalake::datafusion::prelude::SessionContext;
use deltalake::protocol::SaveMode;
use serde_json::json;
use weft_activate::journey::{self, BranchResult, Moves};
use weft_activate::rows::{Purpose, read};
use weft_lake::Lake;

async fn customers(lake: &Lake, values: &str) {
    let sql = format!(
        "SELECT * FROM (VALUES {values}) AS t(customer_id, email, revenue, consent_marketing, is_current)"
    );
    write(lake, "profiles.customers", &sql).await;
}

async fn write(lake: &Lake, name: &str, sql: &str) {
    let (schema, table) = name.split_once('.').unwrap();
    let batches = SessionContext::new()
        .sql(sql)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    lake.table(schema, table)
        .await
        .unwrap()
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .await
        .unwrap();
}

#[tokio::test]
async fn members_with_consent_give_one_row_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    customers(
        &lake,
        "('c1', 'a@x.test', 10.5, true, true),
         ('c2', 'b@x.test', NULL, true, true),
         ('c3', 'c@x.test', 3.0, false, true),
         ('c4', NULL, 4.0, true, true),
         ('c6', 'shared@x.test', 6.0, true, true),
         ('c5', 'shared@x.test', 5.0, true, true),
         ('c7', 'old@x.test', 7.0, true, false),
         ('c9', 'not-member@x.test', 9.0, true, true)",
    )
    .await;
    let members: BTreeSet<String> = ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]
        .map(String::from)
        .into();
    let mapping = [
        ("email".to_owned(), "email".to_owned()),
        ("revenue".to_owned(), "revenue".to_owned()),
    ];
    let rows = read(&lake, &members, "email", &mapping, Purpose::Marketing)
        .await
        .unwrap();
    let got: Vec<_> = rows
        .rows
        .iter()
        .map(|row| (row.key.as_str(), row.values()))
        .collect();
    // in key order; of two members with one key the smaller customer id wins
    assert_eq!(
        got,
        vec![
            ("a@x.test", vec![json!("a@x.test"), json!(10.5)]),
            ("b@x.test", vec![json!("b@x.test"), json!(null)]),
            ("shared@x.test", vec![json!("shared@x.test"), json!(5.0)]),
        ]
    );
    assert_eq!((rows.without_consent, rows.without_key), (1, 2));

    // an internal store takes everyone, keyed by customer id
    let everyone = read(&lake, &members, "customer_id", &mapping, Purpose::Internal)
        .await
        .unwrap();
    let keys: Vec<_> = everyone.rows.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["c1", "c2", "c3", "c4", "c5", "c6"]);
    assert_eq!((everyone.without_consent, everyone.without_key), (0, 0));
}

#[tokio::test]
async fn journey_results_count_conversions_after_the_first_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::new(dir.path());
    let day = |d: u32| Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0).unwrap();
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    // c1..c3 enter email on the 1st, c4 c5 the holdout; c3 moves to ads on the 5th
    let first = Moves {
        entered: pairs(&[
            ("c1", "email"),
            ("c2", "email"),
            ("c3", "email"),
            ("c4", "holdout"),
            ("c5", "holdout"),
        ]),
        ..Moves::default()
    };
    journey::record(&lake, "j", "r1", day(1), &first)
        .await
        .unwrap();
    // with nothing modelled yet, nobody has converted
    let nothing = journey::results(&lake, "j").await.unwrap();
    assert_eq!(
        nothing
            .iter()
            .map(|r| (r.branch.as_str(), r.customers, r.converted))
            .collect::<Vec<_>>(),
        [("email", 3, 0), ("holdout", 2, 0)]
    );
    let second = Moves {
        moved: vec![("c3".into(), "email".into(), "ads".into())],
        entered: pairs(&[("c6", "ads")]),
        ..Moves::default()
    };
    journey::record(&lake, "j", "r2", day(5), &second)
        .await
        .unwrap();
    // another journey's history is not counted
    journey::record(&lake, "other", "r3", day(1), &first)
        .await
        .unwrap();
    write(
        &lake,
        "identity.person_map",
        "SELECT * FROM (VALUES ('c1', 'domain_userid', 'd1'), ('c1', 'domain_userid', 'd1b'),
           ('c2', 'domain_userid', 'd2'), ('c3', 'domain_userid', 'd3'), ('c4', 'domain_userid', 'd4'),
           ('c6', 'domain_userid', 'd6'), ('c2', 'email', 'd5')) AS t(customer_id, kind, value)",
    )
    .await;
    write(
        &lake,
        "derived.conversions",
        "SELECT domain_userid, arrow_cast(CAST(t AS TIMESTAMP), 'Timestamp(Microsecond, Some(\"UTC\"))') AS conversion_tstamp,
           CAST(value AS DOUBLE) AS value
         FROM (VALUES ('d1', '2026-11-02T00:00:00', 10.0), ('d1b', '2026-11-03T00:00:00', 5.0),
           ('d2', '2026-10-30T00:00:00', 99.0), ('d3', '2026-11-06T00:00:00', 7.0),
           ('d4', '2026-11-20T00:00:00', 20.0), ('d6', '2026-11-04T00:00:00', 1.0),
           ('d5', '2026-11-20T00:00:00', 1.0)) AS v(domain_userid, t, value)",
    )
    .await;
    let results = journey::results(&lake, "j").await.unwrap();
    // email: c1 twice (two cookies), c2 only before entering, c3 counted
    // where it started; ads: c6 converted before it entered; holdout: c4
    let rate = |converted: usize, customers: usize| converted as f64 / customers as f64;
    let expected = [
        BranchResult {
            branch: "ads".into(),
            customers: 1,
            converted: 0,
            conversions: 0,
            revenue: 0.0,
            conversion_rate: 0.0,
            lift: Some(-1.0),
        },
        BranchResult {
            branch: "email".into(),
            customers: 3,
            converted: 2,
            conversions: 3,
            revenue: 22.0,
            conversion_rate: rate(2, 3),
            lift: Some(rate(2, 3) / 0.5 - 1.0),
        },
        BranchResult {
            branch: "holdout".into(),
            customers: 2,
            converted: 1,
            conversions: 1,
            revenue: 20.0,
            conversion_rate: 0.5,
            lift: None,
        },
    ];
    assert_eq!(results, expected);
}
