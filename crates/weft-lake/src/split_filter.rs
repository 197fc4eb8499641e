//! A physical-plan rewrite: a filter's function calls run on the rows its
//! comparisons keep.
//!
//! DataFusion evaluates a filter's conjuncts over the whole batch unless
//! fewer than a fifth of the rows are left by those before. A behavioural
//! audience filters events by time, by name and by a field of a JSON context;
//! the JSON lookup costs far more per row than the comparisons, and with
//! about a fifth of the rows passing those it ran on every event. Split into
//! two filters, the comparisons first, the lookup runs only on the rows they
//! keep.

use std::sync::Arc;

use deltalake::datafusion::common::Result;
use deltalake::datafusion::common::config::ConfigOptions;
use deltalake::datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use deltalake::datafusion::physical_expr::utils::{conjunction, split_conjunction};
use deltalake::datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use deltalake::datafusion::physical_optimizer::PhysicalOptimizerRule;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::physical_plan::filter::{FilterExec, FilterExecBuilder};

/// Splits each filter into its comparisons, then its function calls (see the module).
#[derive(Debug, Default)]
pub struct CallsAfterComparisons;

impl PhysicalOptimizerRule for CallsAfterComparisons {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(filter) = node.downcast_ref::<FilterExec>() else {
                return Ok(Transformed::no(node));
            };
            let (calls, comparisons): (Vec<_>, Vec<_>) = split_conjunction(filter.predicate())
                .into_iter()
                .partition(|conjunct| calls_a_function(conjunct));
            if calls.is_empty() || comparisons.is_empty() {
                return Ok(Transformed::no(node));
            }
            // the comparisons keep every column; the calls' filter ends as the
            // original did (its projection, limit and batch size)
            let first = FilterExecBuilder::from(filter)
                .with_predicate(conjunction(comparisons.into_iter().cloned()))
                .apply_projection(None)?
                .with_fetch(None)
                .build()?;
            let then = FilterExecBuilder::from(filter)
                .with_predicate(conjunction(calls.into_iter().cloned()))
                .with_input(Arc::new(first))
                .build()?;
            Ok(Transformed::yes(Arc::new(then) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "calls_after_comparisons"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn calls_a_function(expr: &Arc<dyn PhysicalExpr>) -> bool {
    expr.downcast_ref::<ScalarFunctionExpr>().is_some()
        || expr.children().iter().any(|child| calls_a_function(child))
}

#[cfg(test)]
mod tests {
    use deltalake::arrow::array::{Array, Int64Array};
    use deltalake::datafusion::physical_plan::displayable;
    use deltalake::datafusion::prelude::SessionContext;

    async fn session() -> SessionContext {
        let config = crate::sql::session_config().expect("default settings");
        let mut context = SessionContext::new_with_state(crate::sql::state_with_rules(config));
        crate::sql::register_functions(&mut context).expect("JSON functions");
        context
            .sql(
                r#"CREATE TABLE t (n BIGINT, j VARCHAR) AS VALUES
                  (1, '{"k":"a"}'), (2, '{"k":"b"}'), (3, 'not json'), (4, '{"k":"a"}'), (5, NULL)"#,
            )
            .await
            .expect("table")
            .collect()
            .await
            .expect("created");
        context
    }

    #[tokio::test]
    async fn json_lookups_filter_the_rows_the_comparisons_keep() {
        let context = session().await;
        let frame = context
            .sql("SELECT n FROM t WHERE n > 1 AND json_get_str(j, 'k') = 'a' AND n < 5")
            .await
            .expect("plans");
        let plan = frame.clone().create_physical_plan().await.expect("plans");
        let text = displayable(plan.as_ref()).indent(true).to_string();
        let lookup = text.find("FilterExec: json_get_str").expect(&text);
        let comparisons = text.find("FilterExec: n@0 > 1 AND n@0 < 5").expect(&text);
        assert!(lookup < comparisons, "the lookup filters above: {text}");

        let batches = frame.collect().await.expect("runs");
        let found: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                let column = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                (0..column.len())
                    .map(|i| column.value(i))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(found, vec![4]);
    }

    #[tokio::test]
    async fn a_filter_of_comparisons_or_of_calls_alone_stays_whole() {
        let context = session().await;
        for sql in [
            "SELECT n FROM t WHERE n > 1 AND n < 5",
            "SELECT n FROM t WHERE json_get_str(j, 'k') = 'a'",
        ] {
            let plan = context
                .sql(sql)
                .await
                .expect("plans")
                .create_physical_plan()
                .await
                .expect("plans");
            let text = displayable(plan.as_ref()).indent(true).to_string();
            assert_eq!(text.matches("FilterExec").count(), 1, "{text}");
        }
    }
}
