//! Writes a compiled audience as SQL text in one dialect: a CTE per
//! behaviour aggregate (one row per customer) and per referenced audience,
//! then one SELECT over `profiles.customers`, one row per customer.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::dialect::Dialect;
use crate::plan::{Aggregate, Column, Compare, Expr, Literal, Query, Select, Table, Target, Test};
use crate::spec::Measure;

/// The tables an audience reads, by their lake name (`profiles.customers`),
/// and what they are called in the engine that runs the SQL.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tables(BTreeMap<String, String>);

impl Tables {
    /// Names as in weft's lake (`schema.table`).
    pub fn lake() -> Self {
        Self::default()
    }

    /// Renames `lake` (`profiles.customers`) to `name` (`analytics.customers`).
    pub fn rename(mut self, lake: &str, name: &str) -> Self {
        self.0.insert(lake.to_owned(), name.to_owned());
        self
    }

    /// `LAKE=NAME` pairs, as `--table` takes them.
    pub fn parse(pairs: &[String]) -> Result<Self, String> {
        let mut tables = Self::lake();
        for pair in pairs {
            let (lake, name) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not LAKE_TABLE=NAME"))?;
            if !TABLES.contains(&lake) {
                return Err(format!("{lake:?} is not one of {}", TABLES.join(", ")));
            }
            if name.is_empty() || name.split('.').any(str::is_empty) {
                return Err(format!("{pair:?}: the name is empty"));
            }
            tables = tables.rename(lake, name);
        }
        Ok(tables)
    }

    fn name(&self, lake: &str, dialect: &dyn Dialect) -> String {
        let name = self.0.get(lake).map(String::as_str).unwrap_or(lake);
        name.split('.')
            .map(|part| dialect.ident(part))
            .collect::<Vec<_>>()
            .join(".")
    }
}

/// The tables an audience query may read.
pub const TABLES: [&str; 7] = [
    "profiles.customers",
    "ml.scores",
    "identity.person_map",
    "atomic.events",
    "derived.conversions",
    "derived.sessions",
    "derived.page_views",
];

/// What the final SELECT returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// One row per member: customer_id and the selected attributes.
    Members,
    /// One row: `size`, the number of customers matching (before `limit`).
    Count,
}

/// The query as text.
pub fn render(query: &Query, dialect: &dyn Dialect, tables: &Tables, shape: Shape) -> String {
    let writer = Writer { dialect, tables };
    let mut ctes = Vec::new();
    for (index, aggregate) in query.aggregates.iter().enumerate() {
        ctes.push(writer.aggregate(index, aggregate));
    }
    for (index, (name, select)) in query.audiences.iter().enumerate() {
        let body = writer.select(select, Shape::Members, false);
        ctes.push(format!(
            "{} AS (\n  -- audience {name}\n{}\n)",
            audience_cte(index),
            indent(&body)
        ));
    }
    let mut sql = format!("-- audience {}, {}\n", query.name, dialect.name());
    if !ctes.is_empty() {
        sql.push_str("WITH ");
        sql.push_str(&ctes.join(",\n"));
        sql.push('\n');
    }
    sql.push_str(&writer.select(&query.main, shape, true));
    sql
}

fn aggregate_cte(index: usize) -> String {
    format!("b{}", index + 1)
}

fn audience_cte(index: usize) -> String {
    format!("audience_{}", index + 1)
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

struct Writer<'a> {
    dialect: &'a dyn Dialect,
    tables: &'a Tables,
}

impl Writer<'_> {
    fn aggregate(&self, index: usize, aggregate: &Aggregate) -> String {
        let d = self.dialect;
        let column = |name: &str| format!("e.{}", d.ident(name));
        let value = match (aggregate.measure, &aggregate.of) {
            (Measure::Count, _) | (_, None) => "count(*)".to_owned(),
            (Measure::CountDistinct, Some(of)) => format!("count(DISTINCT {})", column(of)),
            (measure, Some(of)) => format!("{}({})", measure.name(), column(of)),
        };
        let time = column(aggregate.source.time_column());
        let mut conditions = Vec::new();
        if let Some(since) = aggregate.since {
            conditions.push(format!("{time} >= {}", d.timestamp(since)));
        }
        conditions.push(format!("{time} < {}", d.timestamp(aggregate.until)));
        for filter in &aggregate.filters {
            conditions.push(self.expr(filter, false));
        }
        let mut sql = String::new();
        let _ = write!(
            sql,
            "{} AS (\n  -- {} per customer: {}\n  SELECT m.customer_id, {value} AS value\n  FROM {} e\n  JOIN {} m ON m.kind = 'domain_userid' AND m.value = e.domain_userid\n  WHERE {}\n  GROUP BY m.customer_id\n)",
            aggregate_cte(index),
            aggregate.source.name(),
            aggregate.measure.name(),
            self.tables.name(aggregate.source.table(), d),
            self.tables.name("identity.person_map", d),
            conditions.join("\n    AND "),
        );
        sql
    }

    fn column(&self, column: &Column) -> String {
        let alias = match column.table {
            Table::Customers => "c",
            Table::Scores => "s",
        };
        format!("{alias}.{}", self.dialect.ident(&column.name))
    }

    fn select(&self, select: &Select, shape: Shape, outer: bool) -> String {
        let d = self.dialect;
        let mut sql = String::new();
        match shape {
            Shape::Count => sql.push_str("SELECT count(*) AS size\n"),
            Shape::Members => {
                let mut columns = vec!["c.customer_id".to_owned()];
                columns.extend(select.columns.iter().map(|c| self.column(c)));
                let _ = writeln!(sql, "SELECT {}", columns.join(", "));
            }
        }
        let _ = writeln!(sql, "FROM {} c", self.tables.name("profiles.customers", d));
        if select.uses_scores {
            let _ = writeln!(
                sql,
                "LEFT JOIN {} s ON s.customer_id = c.customer_id",
                self.tables.name("ml.scores", d)
            );
        }
        for index in &select.aggregates {
            let name = aggregate_cte(*index);
            let _ = writeln!(
                sql,
                "LEFT JOIN {name} ON {name}.customer_id = c.customer_id"
            );
        }
        let mut conditions = Vec::new();
        if select.current_only {
            conditions.push("c.is_current".to_owned());
        }
        match &select.filter {
            Expr::And(items) => conditions.extend(items.iter().map(|e| self.expr(e, false))),
            other => conditions.push(self.expr(other, false)),
        }
        if let Some((seed, threshold)) = &select.sample {
            let hash = d.md5_hex(&format!("{} || c.customer_id", d.string(seed)));
            conditions.push(format!("substr({hash}, 1, 4) < {}", d.string(threshold)));
        }
        let _ = write!(sql, "WHERE {}", conditions.join("\n  AND "));
        let ordered = select.limit.is_some() || (outer && !select.order.is_empty());
        if shape == Shape::Members && ordered {
            let mut order: Vec<String> = select
                .order
                .iter()
                .map(|(column, descending)| {
                    let direction = if *descending { "DESC" } else { "ASC" };
                    format!("{} {direction} NULLS LAST", self.column(column))
                })
                .collect();
            // ties broken the same way in every engine
            order.push("c.customer_id".to_owned());
            let _ = write!(sql, "\nORDER BY {}", order.join(", "));
            if let Some(limit) = select.limit {
                let _ = write!(sql, "\nLIMIT {limit}");
            }
        }
        sql
    }

    /// `expr` as SQL; `nested` when it sits inside AND / OR / NOT.
    fn expr(&self, expr: &Expr, nested: bool) -> String {
        let d = self.dialect;
        match expr {
            Expr::And(items) | Expr::Or(items) if items.len() == 1 => self.expr(&items[0], nested),
            Expr::And(items) | Expr::Or(items) => {
                let joiner = if matches!(expr, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                let parts: Vec<String> = items.iter().map(|e| self.expr(e, true)).collect();
                format!("({})", parts.join(joiner))
            }
            Expr::Not(inner) => {
                let body = self.expr(inner, true);
                if nullable(inner) {
                    format!("NOT coalesce({body}, FALSE)")
                } else if matches!(&**inner, Expr::And(v) | Expr::Or(v) if v.len() > 1) {
                    format!("NOT {body}")
                } else {
                    format!("NOT ({body})")
                }
            }
            Expr::Member(index) => format!(
                "c.customer_id IN (SELECT customer_id FROM {})",
                audience_cte(*index)
            ),
            Expr::Test(target, test) => {
                let value = match target {
                    Target::Column(column) => self.column(column),
                    Target::Row(name) => format!("e.{}", d.ident(name)),
                    Target::Json {
                        column,
                        key,
                        context,
                    } => d.json_text(&format!("e.{}", d.ident(column)), key, *context),
                    Target::Aggregate {
                        index,
                        zero_when_empty,
                    } => {
                        let name = format!("{}.value", aggregate_cte(*index));
                        if *zero_when_empty {
                            format!("coalesce({name}, 0)")
                        } else {
                            name
                        }
                    }
                };
                self.test(&value, test, nested)
            }
        }
    }

    fn test(&self, value: &str, test: &Test, nested: bool) -> String {
        let d = self.dialect;
        let group = |text: String| if nested { format!("({text})") } else { text };
        match test {
            Test::Compare(compare, literal) => {
                let op = match compare {
                    Compare::Eq => "=",
                    Compare::Lt => "<",
                    Compare::Lte => "<=",
                    Compare::Gt => ">",
                    Compare::Gte => ">=",
                };
                format!("{value} {op} {}", self.literal(literal))
            }
            Test::NotEqual(literal) => {
                format!("({value} <> {} OR {value} IS NULL)", self.literal(literal))
            }
            Test::Between(low, high) => group(format!(
                "{value} BETWEEN {} AND {}",
                self.literal(low),
                self.literal(high)
            )),
            Test::In(items) => format!("{value} IN ({})", self.literals(items)),
            Test::NotIn(items) => format!(
                "({value} NOT IN ({}) OR {value} IS NULL)",
                self.literals(items)
            ),
            Test::TextContains(text) => d.text_contains(value, &d.string(text)),
            Test::StartsWith(text) => d.starts_with(value, &d.string(text)),
            Test::ListContains(text) => d.list_contains(value, &d.string(text)),
            Test::IsSet => format!("{value} IS NOT NULL"),
            Test::NotSet => format!("{value} IS NULL"),
            Test::ListNotEmpty => format!("coalesce({}, 0) > 0", d.list_length(value)),
            Test::ListEmpty => format!("coalesce({}, 0) = 0", d.list_length(value)),
        }
    }

    fn literals(&self, items: &[Literal]) -> String {
        items
            .iter()
            .map(|l| self.literal(l))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn literal(&self, literal: &Literal) -> String {
        let d = self.dialect;
        match literal {
            Literal::Text(text) => d.string(text),
            Literal::Integer(n) => n.to_string(),
            Literal::Float(x) => {
                let text = x.to_string();
                if text.contains('.') {
                    text
                } else {
                    format!("{text}.0")
                }
            }
            Literal::Bool(true) => "TRUE".into(),
            Literal::Bool(false) => "FALSE".into(),
            Literal::Date(date) => d.date(*date),
            Literal::Timestamp(time) => d.timestamp(*time),
        }
    }
}

/// Whether an expression can be NULL (so NOT must treat NULL as false).
fn nullable(expr: &Expr) -> bool {
    match expr {
        Expr::And(items) | Expr::Or(items) => items.iter().any(nullable),
        Expr::Not(_) | Expr::Member(_) => false,
        Expr::Test(
            Target::Aggregate {
                zero_when_empty: true,
                ..
            },
            _,
        ) => false,
        Expr::Test(
            _,
            Test::NotEqual(_)
            | Test::NotIn(_)
            | Test::IsSet
            | Test::NotSet
            | Test::ListNotEmpty
            | Test::ListEmpty,
        ) => false,
        Expr::Test(..) => true,
    }
}
