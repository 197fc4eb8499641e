//! A physical-plan rewrite: window functions over wide rows are computed a
//! whole sorted partition at a time rather than streamed.
//!
//! DataFusion's streaming window operator slices every column of its input
//! batch for each window partition it meets. The web model ranks page views
//! within sessions and events within page views: hundreds of thousands of
//! partitions of a few rows each, over rows of seventy columns, so slicing
//! took most of a page-view build. The whole-partition operator computes the
//! functions from their argument and ordering columns alone and appends them
//! to the batch. Its input is sorted already (the streaming one needs that
//! too), so it holds no more than the sort did.

use std::sync::Arc;

use deltalake::datafusion::common::Result;
use deltalake::datafusion::common::config::ConfigOptions;
use deltalake::datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::physical_plan::InputOrderMode;
use deltalake::datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};

/// Inputs with more columns than this are wide enough that slicing them per
/// window partition costs more than computing a partition whole.
const WIDE: usize = 16;

/// Runs window functions over wide sorted input a partition at a time (see the module).
#[derive(Debug, Default)]
pub struct WholeWindowsOverWideRows;

impl PhysicalOptimizerRule for WholeWindowsOverWideRows {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(window) = node.downcast_ref::<BoundedWindowAggExec>() else {
                return Ok(Transformed::no(node));
            };
            // the whole-partition operator needs its partitions sorted, not merely grouped
            if window.input_order_mode != InputOrderMode::Sorted
                || window.input().schema().fields().len() <= WIDE
            {
                return Ok(Transformed::no(node));
            }
            let whole = WindowAggExec::try_new(
                window.window_expr().to_vec(),
                Arc::clone(window.input()),
                !window.partition_keys().is_empty(),
            )?;
            Ok(Transformed::yes(Arc::new(whole) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "whole_windows_over_wide_rows"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{Array, Int64Array};
    use deltalake::datafusion::physical_plan::displayable;
    use deltalake::datafusion::prelude::SessionContext;

    /// Rows of 20 columns: a session, a time, and 18 of padding.
    async fn session() -> SessionContext {
        let config = crate::sql::session_config().expect("default settings");
        let context = SessionContext::new_with_state(crate::sql::state_with_rules(config));
        let padding: Vec<String> = (0..18).map(|i| format!("'p{i}' AS p{i}")).collect();
        context
            .sql(&format!(
                "CREATE TABLE t AS SELECT value % 7 AS s, value AS ts, {} FROM range(1000)",
                padding.join(", ")
            ))
            .await
            .expect("table")
            .collect()
            .await
            .expect("created");
        context
    }

    #[tokio::test]
    async fn ranks_over_wide_rows_are_computed_a_partition_at_a_time() {
        let context = session().await;
        let sql = "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY s ORDER BY ts DESC) AS n, \
                   count(*) OVER (PARTITION BY s) AS c FROM t) WHERE n = 1 ORDER BY s";
        let frame = context.sql(sql).await.expect("plans");
        let plan = frame.clone().create_physical_plan().await.expect("plans");
        let text = displayable(plan.as_ref()).indent(true).to_string();
        assert!(text.contains("WindowAggExec"), "{text}");
        assert!(!text.contains("BoundedWindowAggExec"), "{text}");

        let batches = frame.collect().await.expect("runs");
        let column = |name: &str| -> Vec<i64> {
            batches
                .iter()
                .flat_map(|batch| {
                    let values = batch.column_by_name(name).expect("column");
                    let values = values
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .expect("BIGINT");
                    (0..values.len())
                        .map(|i| values.value(i))
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        // the newest row of each session, and how many rows it has
        assert_eq!(column("s"), (0..7).collect::<Vec<i64>>());
        assert_eq!(column("ts"), vec![994, 995, 996, 997, 998, 999, 993]);
        assert_eq!(
            column("c"),
            (0..7)
                .map(|s| if s < 1000 % 7 { 143 } else { 142 })
                .collect::<Vec<i64>>()
        );
    }

    #[tokio::test]
    async fn narrow_rows_keep_the_streaming_window() {
        let context = session().await;
        let frame = context
            .sql("SELECT s, row_number() OVER (PARTITION BY s ORDER BY ts) AS n FROM t")
            .await
            .expect("plans");
        let plan = frame.create_physical_plan().await.expect("plans");
        let text = displayable(plan.as_ref()).indent(true).to_string();
        assert!(text.contains("BoundedWindowAggExec"), "{text}");
    }
}
