//! The model SQL written for Spark, run by a Spark engine (Sail) over the same
//! events, gives the tables weft's own run gives. Needs `pip install pysail
//! pyspark-client` (`scripts/test` installs them).

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use serde_json::Value;
use weft_core::config::ModelConfig;
use weft_model::{Dialect, ModelSql};

use crate::Setup;
use crate::simulated::simulate;

/// One row of whole-number totals per table; `{t}` is the table.
const AGGREGATES: [(&str, &str, &str); 5] = [
    (
        "page_views",
        "page_views_this_run",
        "SELECT count(*) AS n, sum(engaged_time_in_s) AS engaged, sum(absolute_time_in_s) AS absolute, \
         sum(vertical_percentage_scrolled) AS vertical, sum(horizontal_percentage_scrolled) AS horizontal, \
         sum(page_view_in_session_index) AS indexes, count(DISTINCT stitched_user_id) AS stitched, \
         count(DISTINCT CAST(session_date AS STRING)) AS dates FROM {t}",
    ),
    (
        "sessions",
        "sessions_this_run",
        "SELECT count(*) AS n, sum(page_views) AS page_views, sum(engaged_time_in_s) AS engaged, \
         sum(CASE WHEN is_bounce THEN 1 ELSE 0 END) AS bounces, sum(total_events) AS events, \
         sum(absolute_time_in_s) AS absolute, count(DISTINCT default_channel_group) AS channels, \
         sum(CASE WHEN default_channel_group = 'Paid Search' THEN 1 ELSE 0 END) AS paid_search, \
         count(DISTINCT stitched_user_id) AS stitched FROM {t}",
    ),
    (
        "users",
        "users_this_run",
        "SELECT count(*) AS n, sum(sessions) AS sessions, sum(page_views) AS page_views, \
         count(user_id) AS logged_in, count(DISTINCT first_channel) AS channels FROM {t}",
    ),
    (
        "conversions",
        "conversions_this_run",
        "SELECT count(*) AS n, count(DISTINCT domain_sessionid) AS sessions, count(order_id) AS orders, \
         CAST(round(sum(value) * 100) AS BIGINT) AS value_pence FROM {t}",
    ),
    (
        "user_mapping",
        "user_mapping",
        "SELECT count(*) AS n, count(DISTINCT user_id) AS users FROM {t}",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spark_sql_gives_what_weft_gives() {
    let simulated = simulate(25);
    let mut setup = Setup::new();
    setup.load(&simulated.events).await;
    setup.model().await;

    let columns: HashSet<String> = setup.query("SELECT * FROM atomic.events LIMIT 0").await[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let spark = ModelSql::new(&ModelConfig::default(), Dialect::Spark, Some(&columns)).unwrap();
    let aggregates: BTreeMap<&str, &str> = AGGREGATES
        .iter()
        .map(|(_, view, sql)| (*view, *sql))
        .collect();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/spark_model.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(setup.lake.table_path("atomic", "events"))
        .arg(serde_json::to_string(&spark.statements().unwrap()).unwrap())
        .arg(serde_json::to_string(&aggregates).unwrap())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "Spark could not run the model (pip install pysail pyspark-client):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let theirs: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();

    for (table, view, sql) in AGGREGATES {
        let ours = &setup
            .rows(&sql.replace("{t}", &format!("derived.{table}")))
            .await[0];
        assert!(
            ours["n"].as_u64().unwrap_or(0) > 0 || table == "conversions",
            "derived.{table} is empty"
        );
        assert_eq!(
            &theirs[view], ours,
            "derived.{table}: Spark (left) and weft (right) differ"
        );
    }
}
