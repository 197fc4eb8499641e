//! A query-plan rewrite DataFusion lacks: a grouped `count(DISTINCT x)` next
//! to plain counts.
//!
//! DataFusion turns `SELECT g, count(DISTINCT x), min(t) … GROUP BY g` into
//! two cheap groupings (by `g, x`, then by `g`) instead of a set of `x` per
//! group, but only when every other aggregate is a sum, min or max. A count
//! beside it (`count(*)`, as a per-user roll-up has) keeps the slow plan.
//! Within a group a count is the sum of ones over its rows, so this rule
//! writes each plain `count(e)` as `sum(CASE WHEN e IS NULL THEN 0 ELSE 1
//! END)` (with the original names and types restored above it), and
//! DataFusion's own rewrite then applies.

use std::sync::Arc;

use deltalake::datafusion::common::Result;
use deltalake::datafusion::common::tree_node::Transformed;
use deltalake::datafusion::functions_aggregate::expr_fn::sum;
use deltalake::datafusion::logical_expr::expr::{AggregateFunction, AggregateFunctionParams};
use deltalake::datafusion::logical_expr::{
    Aggregate, Expr, LogicalPlan, Projection, cast, col, lit, when,
};
use deltalake::datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

/// Rewrites plain counts beside a distinct aggregate as sums (see the module).
#[derive(Debug, Default)]
pub struct CountsBesideDistinct;

/// The name of DataFusion's rule this one prepares for.
pub const SINGLE_DISTINCT: &str = "single_distinct_aggregation_to_group_by";

impl OptimizerRule for CountsBesideDistinct {
    fn name(&self) -> &str {
        "counts_beside_distinct_as_sums"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        match rewritten(&aggregate)? {
            Some(plan) => Ok(Transformed::yes(plan)),
            None => Ok(Transformed::no(LogicalPlan::Aggregate(aggregate))),
        }
    }
}

/// The aggregate function under an optional alias.
fn function(expr: &Expr) -> Option<&AggregateFunction> {
    match expr {
        Expr::AggregateFunction(f) => Some(f),
        Expr::Alias(alias) => match alias.expr.as_ref() {
            Expr::AggregateFunction(f) => Some(f),
            _ => None,
        },
        _ => None,
    }
}

fn plain(f: &AggregateFunction) -> bool {
    let AggregateFunctionParams {
        filter, order_by, ..
    } = &f.params;
    filter.is_none() && order_by.is_empty()
}

fn rewritten(aggregate: &Aggregate) -> Result<Option<LogicalPlan>> {
    if aggregate.group_expr.is_empty()
        || matches!(aggregate.group_expr.first(), Some(Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    let mut distinct_args = Vec::new();
    let mut counts = 0;
    for expr in &aggregate.aggr_expr {
        let Some(f) = function(expr) else {
            return Ok(None);
        };
        if !plain(f) {
            return Ok(None);
        }
        let name = f.func.name().to_ascii_lowercase();
        if f.params.distinct {
            distinct_args.push(&f.params.args);
        } else if name == "count" && f.params.args.len() == 1 {
            counts += 1;
        } else if !matches!(name.as_str(), "sum" | "min" | "max") {
            return Ok(None);
        }
    }
    // DataFusion's rewrite wants one distinct argument list, and a count to turn
    let one_distinct = distinct_args
        .first()
        .is_some_and(|first| distinct_args.iter().all(|a| a == first));
    if !one_distinct || counts == 0 {
        return Ok(None);
    }

    let aggr_expr: Vec<Expr> = aggregate
        .aggr_expr
        .iter()
        .map(|expr| {
            let f = function(expr).expect("checked above");
            if f.params.distinct || !f.func.name().eq_ignore_ascii_case("count") {
                return Expr::AggregateFunction(f.clone());
            }
            let argument = &f.params.args[0];
            let one = match argument {
                Expr::Literal(value, _) if !value.is_null() => lit(1i64),
                _ => when(argument.clone().is_null(), lit(0i64))
                    .otherwise(lit(1i64))
                    .expect("a complete CASE"),
            };
            sum(one)
        })
        .collect();
    let inner = Aggregate::try_new(
        Arc::clone(&aggregate.input),
        aggregate.group_expr.clone(),
        aggr_expr,
    )?;
    // the same names, qualifiers and types as before, over the new columns
    let before = aggregate.schema.as_ref();
    let after = Arc::clone(&inner.schema);
    if before.fields().len() != after.fields().len() {
        return Ok(None);
    }
    let mut seen = std::collections::HashSet::new();
    if !after
        .iter()
        .all(|(q, f)| seen.insert((q.cloned(), f.name().clone())))
    {
        return Ok(None); // two aggregates would share a name
    }
    let exprs = (0..before.fields().len())
        .map(|i| {
            let (qualifier, field) = before.qualified_field(i);
            let (new_qualifier, new_field) = after.qualified_field(i);
            let column = col(deltalake::datafusion::common::Column::new(
                new_qualifier.cloned(),
                new_field.name(),
            ));
            let typed = if new_field.data_type() == field.data_type() {
                column
            } else {
                cast(column, field.data_type().clone())
            };
            typed.alias_qualified(qualifier.cloned(), field.name())
        })
        .collect();
    let projection = Projection::try_new(exprs, Arc::new(LogicalPlan::Aggregate(inner)))?;
    Ok(Some(LogicalPlan::Projection(projection)))
}

#[cfg(test)]
mod tests {
    use deltalake::datafusion::prelude::{SessionConfig, SessionContext};

    async fn rows(context: &SessionContext, sql: &str) -> String {
        let batches = context.sql(sql).await.unwrap().collect().await.unwrap();
        deltalake::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    const EVENTS: &str = "CREATE TABLE e (u TEXT, s TEXT, t BIGINT) AS VALUES \
        ('a', 's1', 1), ('a', 's1', 5), ('a', 's2', 3), ('a', NULL, 9), \
        ('b', 's3', 2), ('b', NULL, NULL), (NULL, 's4', 4)";

    #[tokio::test]
    async fn counts_beside_a_distinct_count_are_two_groupings_with_the_same_rows() {
        let ours =
            SessionContext::new_with_state(crate::sql::state_with_rules(SessionConfig::new()));
        let theirs = SessionContext::new();
        for context in [&ours, &theirs] {
            context.sql(EVENTS).await.unwrap().collect().await.unwrap();
        }
        let sql = "SELECT u, count(*) AS n, count(t) AS with_t, count(DISTINCT s) AS sessions, \
                   min(t) AS first, max(t) AS last, sum(t) AS total FROM e GROUP BY u ORDER BY u";
        let expected = rows(&theirs, sql).await;
        assert_eq!(rows(&ours, sql).await, expected);
        assert!(
            expected.contains("| a | 4 | 4      | 2        | 1     | 9    | 18    |"),
            "{expected}"
        );
        assert!(
            expected.contains("| b | 2 | 1      | 1        | 2     | 2    | 2     |"),
            "{expected}"
        );
        // the distinct count became a grouping by (u, s) under one by u
        let plan = |context: &SessionContext| {
            let context = context.clone();
            async move {
                let frame = context.sql(sql).await.unwrap();
                frame
                    .into_optimized_plan()
                    .unwrap()
                    .display_indent()
                    .to_string()
            }
        };
        let aggregates = |plan: &str| plan.matches("Aggregate:").count();
        assert_eq!(aggregates(&plan(&ours).await), 2, "{}", plan(&ours).await);
        assert_eq!(aggregates(&plan(&theirs).await), 1);
        // the same names and types as without the rule
        let schema = |context: &SessionContext| {
            let context = context.clone();
            async move { context.sql(sql).await.unwrap().schema().as_arrow().clone() }
        };
        let (a, b) = (schema(&ours).await, schema(&theirs).await);
        let types = |s: &deltalake::arrow::datatypes::Schema| {
            s.fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(types(&a), types(&b));
    }

    #[tokio::test]
    async fn other_aggregates_are_left_alone() {
        let ours =
            SessionContext::new_with_state(crate::sql::state_with_rules(SessionConfig::new()));
        ours.sql(EVENTS).await.unwrap().collect().await.unwrap();
        for sql in [
            // no distinct: nothing to prepare
            "SELECT u, count(*) FROM e GROUP BY u",
            // two distinct arguments: DataFusion's rewrite does not apply
            "SELECT u, count(*), count(DISTINCT s), count(DISTINCT t) FROM e GROUP BY u",
            // an average beside it cannot be summed up from groups
            "SELECT u, count(*), avg(t), count(DISTINCT s) FROM e GROUP BY u",
        ] {
            let plan = ours
                .sql(sql)
                .await
                .unwrap()
                .into_optimized_plan()
                .unwrap()
                .display_indent()
                .to_string();
            assert_eq!(plan.matches("Aggregate:").count(), 1, "{sql}: {plan}");
        }
    }
}
