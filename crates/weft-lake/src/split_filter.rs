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
