//! The audience as a query over weft's tables, before any dialect: which
//! per-customer aggregates it needs, which other audiences, and the test
//! each customer row must pass. `compile` builds it from a spec, checking
//! every name and value on the way; `sql` writes it out.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate, NaiveDateTime};
use serde_json::Value;

use crate::SpecError;
use crate::catalog::{Catalog, Kind};
use crate::spec::{self, Behaviour, Condition, Leaf, Measure, Op, Source, Spec, error};

/// A table the main query reads a row of per customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `profiles.customers`, alias `c`.
    Customers,
    /// `ml.scores`, alias `s`.
    Scores,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub table: Table,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
    Date(NaiveDate),
    Timestamp(NaiveDateTime),
}

/// What a test looks at.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Column(Column),
    /// A column of a behaviour source's row, alias `e`.
    Row(String),
    /// `COLUMN.KEY` of a self-describing column of a source row.
    Json {
        column: String,
        key: String,
        context: bool,
    },
    /// The value of aggregate `n`; `zero_when_empty`: a customer without
    /// rows has 0 (counts and sums) rather than no value.
    Aggregate {
        index: usize,
        zero_when_empty: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compare {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Test {
    Compare(Compare, Literal),
    /// Not equal, or missing.
    NotEqual(Literal),
    Between(Literal, Literal),
    In(Vec<Literal>),
    /// In none of them, or missing.
    NotIn(Vec<Literal>),
    TextContains(String),
    StartsWith(String),
    ListContains(String),
    IsSet,
    NotSet,
    /// A list with an element.
    ListNotEmpty,
    /// A list missing or empty.
    ListEmpty,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    /// Not, with a missing value inside counted as false.
    Not(Box<Expr>),
    Test(Target, Test),
    /// A member of referenced audience `n`.
    Member(usize),
}

/// One aggregate per customer over a behaviour source: a CTE `bN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    pub source: Source,
    pub filters: Vec<Expr>,
    /// Rows from this time on (and before the run's time).
    pub since: Option<NaiveDateTime>,
    pub until: NaiveDateTime,
    pub measure: Measure,
    pub of: Option<String>,
}

/// One customer-centric SELECT.
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    pub uses_scores: bool,
    /// Whether `profiles.customers` keeps history (`is_current`).
    pub current_only: bool,
    /// The aggregates it joins.
    pub aggregates: Vec<usize>,
    pub filter: Expr,
    pub columns: Vec<Column>,
    /// (seed, threshold): kept when the first 4 hex digits of
    /// md5(seed || customer_id) sort below the threshold.
    pub sample: Option<(String, String)>,
    pub order: Vec<(Column, bool)>,
    pub limit: Option<u64>,
}

/// An audience ready to be written in any dialect.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub name: String,
    pub aggregates: Vec<Aggregate>,
    /// Referenced audiences by name, in the order their CTEs are written.
    pub audiences: Vec<(String, Select)>,
    pub main: Select,
}

/// Finds the stored spec of a referenced audience.
pub trait Audiences {
    fn spec(&self, name: &str) -> Option<Spec>;
}

impl Audiences for HashMap<String, Spec> {
    fn spec(&self, name: &str) -> Option<Spec> {
        self.get(name).cloned()
    }
}

/// Builds the query of `spec`, as of `as_of`, checking every name and value
/// against the catalog and following references to other audiences.
pub fn compile(
    spec: &Spec,
    catalog: &Catalog,
    audiences: &dyn Audiences,
    as_of: NaiveDateTime,
) -> Result<Query, SpecError> {
    if catalog.customers.names().next().is_none() {
        return Err(error(
            "$",
            "profiles.customers does not exist yet: run the identity stage (weft run identity) first",
        ));
    }
    let mut compiler = Compiler {
        catalog,
        audiences,
        as_of,
        aggregates: Vec::new(),
        subs: Vec::new(),
        stack: vec![spec.name.clone()],
    };
    let main = compiler.select(spec, true)?;
    Ok(Query {
        name: spec.name.clone(),
        aggregates: compiler.aggregates,
        audiences: compiler.subs,
        main,
    })
}

struct Compiler<'a> {
    catalog: &'a Catalog,
    audiences: &'a dyn Audiences,
    as_of: NaiveDateTime,
    aggregates: Vec<Aggregate>,
    subs: Vec<(String, Select)>,
    /// The audiences being compiled, outermost first, to find cycles.
    stack: Vec<String>,
}

/// What one SELECT collects while its conditions compile.
#[derive(Default)]
struct Uses {
    scores: bool,
    aggregates: Vec<usize>,
}

impl Compiler<'_> {
    fn select(&mut self, spec: &Spec, outer: bool) -> Result<Select, SpecError> {
        let mut uses = Uses::default();
        let filter = self.condition(&spec.conditions, &mut uses)?;
        let mut columns = Vec::new();
        let mut order = Vec::new();
        // a referenced audience contributes its members only
        if outer {
            for named in &spec.select {
                let column = self.attribute(&named.name, &named.path, &mut uses)?;
                if column.name != "customer_id" && !columns.contains(&column) {
                    columns.push(column);
                }
            }
        }
        for item in &spec.order_by {
            let column = self.attribute(&item.field.name, &item.field.path, &mut uses)?;
            order.push((column, item.descending));
        }
        let sample = spec.sample.as_ref().and_then(|sample| {
            // 65536 buckets of the hash's first four hex digits
            let buckets = (sample.percent / 100.0 * 65536.0).round() as u32;
            (buckets < 65536).then(|| (format!("{}:", sample.seed), format!("{buckets:04x}")))
        });
        Ok(Select {
            uses_scores: uses.scores,
            current_only: self.catalog.customers.get("is_current") == Some(Kind::Bool),
            aggregates: uses.aggregates,
            filter,
            columns,
            sample,
            order,
            limit: spec.limit,
        })
    }

    /// A member attribute: a profile column, else a score column.
    fn attribute(&self, name: &str, path: &str, uses: &mut Uses) -> Result<Column, SpecError> {
        if self.catalog.customers.get(name).is_some() {
            return Ok(Column {
                table: Table::Customers,
                name: name.to_owned(),
            });
        }
        if self.catalog.scores.get(name).is_some() {
            uses.scores = true;
            return Ok(Column {
                table: Table::Scores,
                name: name.to_owned(),
            });
        }
        Err(error(
            path,
            &format!(
                "unknown attribute {name:?}: a column of profiles.customers ({}) or ml.scores ({})",
                list(self.catalog.customers.names()),
                list(self.catalog.scores.names()),
            ),
        ))
    }

    fn condition(&mut self, condition: &Condition, uses: &mut Uses) -> Result<Expr, SpecError> {
        Ok(match condition {
            Condition::All(items) => Expr::And(
                items
                    .iter()
                    .map(|c| self.condition(c, uses))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Any(items) => Expr::Or(
                items
                    .iter()
                    .map(|c| self.condition(c, uses))
                    .collect::<Result<_, _>>()?,
            ),
            Condition::Not(inner) => Expr::Not(Box::new(self.condition(inner, uses)?)),
            Condition::Trait(leaf) => {
                let kind = self
                    .catalog
                    .customers
                    .get(&leaf.field.name)
                    .ok_or_else(|| {
                        error(
                            &leaf.field.path,
                            &format!(
                                "unknown trait {:?}: profiles.customers has {}",
                                leaf.field.name,
                                list(self.catalog.customers.names())
                            ),
                        )
                    })?;
                let target = Target::Column(Column {
                    table: Table::Customers,
                    name: leaf.field.name.clone(),
                });
                Expr::Test(target, self.test(leaf, kind)?)
            }
            Condition::Score(leaf) => {
                let (column, kind) =
                    self.catalog.score_column(&leaf.field.name).ok_or_else(|| {
                        let known = if self.catalog.scores.names().next().is_none() {
                            "ml.scores does not exist yet: run the ml stage (weft run ml) first"
                                .to_owned()
                        } else {
                            format!("the scores are {}", self.catalog.score_names().join(", "))
                        };
                        error(
                            &leaf.field.path,
                            &format!("unknown score {:?}: {known}", leaf.field.name),
                        )
                    })?;
                uses.scores = true;
                let target = Target::Column(Column {
                    table: Table::Scores,
                    name: column,
                });
                Expr::Test(target, self.test(leaf, kind)?)
            }
            Condition::Consent { flag, given } => {
                let column = match flag.name.as_str() {
                    "marketing" => "consent_marketing",
                    "email" => "emailable",
                    other => {
                        return Err(error(
                            &flag.path,
                            &format!("unknown consent {other:?}: marketing or email"),
                        ));
                    }
                };
                if self.catalog.customers.get(column) != Some(Kind::Bool) {
                    return Err(error(
                        &flag.path,
                        &format!("profiles.customers has no {column} flag"),
                    ));
                }
                let target = Target::Column(Column {
                    table: Table::Customers,
                    name: column.to_owned(),
                });
                // consent not recorded is consent not given
                let test = Expr::Test(target, Test::Compare(Compare::Eq, Literal::Bool(true)));
                if *given {
                    test
                } else {
                    Expr::Not(Box::new(test))
                }
            }
            Condition::Behaviour(behaviour) => {
                let (index, zero_when_empty) = self.aggregate(behaviour)?;
                // the same aggregate twice in one audience is joined once
                if !uses.aggregates.contains(&index) {
                    uses.aggregates.push(index);
                }
                let kind = match behaviour.measure {
                    Measure::Count | Measure::CountDistinct => Kind::Integer,
                    _ => Kind::Float,
                };
                let leaf = Leaf {
                    field: spec::Named {
                        name: behaviour.measure.name().to_owned(),
                        path: behaviour.path.clone(),
                    },
                    op: behaviour.op,
                    value: behaviour.value.clone(),
                    path: behaviour.path.clone(),
                };
                if !matches!(
                    behaviour.op,
                    Op::Eq | Op::Ne | Op::Lt | Op::Lte | Op::Gt | Op::Gte | Op::Between
                ) {
                    return Err(error(
                        &format!("{}.op", behaviour.path),
                        "a behaviour compares its number with eq, ne, lt, lte, gt, gte or between",
                    ));
                }
                Expr::Test(
                    Target::Aggregate {
                        index,
                        zero_when_empty,
                    },
                    self.test(&leaf, kind)?,
                )
            }
            Condition::Audience(named) => Expr::Member(self.reference(named)?),
        })
    }

    fn reference(&mut self, named: &spec::Named) -> Result<usize, SpecError> {
        if self.stack.contains(&named.name) {
            let mut cycle = self.stack.clone();
            cycle.push(named.name.clone());
            return Err(error(
                &named.path,
                &format!(
                    "audiences refer to each other in a cycle: {}",
                    cycle.join(" → ")
                ),
            ));
        }
        if let Some(index) = self.subs.iter().position(|(name, _)| *name == named.name) {
            return Ok(index);
        }
        let spec = self.audiences.spec(&named.name).ok_or_else(|| {
            error(
                &named.path,
                &format!("no audience named {:?} is stored", named.name),
            )
        })?;
        self.stack.push(named.name.clone());
        let select = self.select(&spec, false).map_err(|inner| {
            error(
                &named.path,
                &format!(
                    "audience {:?} does not compile: {}: {}",
                    named.name, inner.path, inner.reason
                ),
            )
        })?;
        self.stack.pop();
        self.subs.push((named.name.clone(), select));
        Ok(self.subs.len() - 1)
    }

    fn aggregate(&mut self, behaviour: &Behaviour) -> Result<(usize, bool), SpecError> {
        let columns = self.catalog.source(behaviour.source);
        let table = behaviour.source.table();
        if columns.names().next().is_none() {
            return Err(error(
                &behaviour.path,
                &format!("{table} does not exist yet: load and model events first"),
            ));
        }
        for needed in ["domain_userid", behaviour.source.time_column()] {
            if columns.get(needed).is_none() {
                return Err(error(
                    &behaviour.path,
                    &format!("{table} has no {needed} column"),
                ));
            }
        }
        let mut filters = Vec::new();
        if let Some(event) = &behaviour.event {
            check_text(event, &format!("{}.event", behaviour.path))?;
            filters.push(Expr::Test(
                Target::Row("event_name".into()),
                Test::Compare(Compare::Eq, Literal::Text(event.clone())),
            ));
        }
        for filter in &behaviour.filters {
            let name = &filter.field.name;
            let (target, kind) = match name.split_once('.') {
                Some(_) => {
                    let (column, key) = weft_lake::sql::self_describing_path(name)
                        .map_err(|reason| error(&filter.field.path, &reason))?;
                    if columns.get(column) != Some(Kind::Json) {
                        return Err(error(
                            &filter.field.path,
                            &format!("{table} has no self-describing column {column}"),
                        ));
                    }
                    let target = Target::Json {
                        column: column.to_owned(),
                        key: key.to_owned(),
                        context: column.starts_with("contexts_"),
                    };
                    (target, Kind::Text)
                }
                None => {
                    let kind = columns.get(name).ok_or_else(|| {
                        error(
                            &filter.field.path,
                            &format!(
                                "unknown column {name:?} of {table}: it has {}",
                                list(columns.names())
                            ),
                        )
                    })?;
                    if kind == Kind::Json {
                        return Err(error(
                            &filter.field.path,
                            &format!("{name} is self-describing JSON: filter a key, {name}.KEY"),
                        ));
                    }
                    (Target::Row(name.clone()), kind)
                }
            };
            filters.push(Expr::Test(target, self.test(filter, kind)?));
        }
        let of = match &behaviour.of {
            None => None,
            Some(of) => {
                let kind = columns.get(&of.name).ok_or_else(|| {
                    error(
                        &of.path,
                        &format!(
                            "unknown column {:?} of {table}: it has {}",
                            of.name,
                            list(columns.names())
                        ),
                    )
                })?;
                let numeric = behaviour.measure != Measure::CountDistinct;
                if numeric && !kind.is_number() {
                    return Err(error(
                        &of.path,
                        &format!(
                            "{} of {} needs a number; {} is {}",
                            behaviour.measure.name(),
                            of.name,
                            of.name,
                            kind.name()
                        ),
                    ));
                }
                Some(of.name.clone())
            }
        };
        let since = behaviour
            .within_days
            .map(|days| self.as_of - Duration::days(i64::from(days)));
        let aggregate = Aggregate {
            source: behaviour.source,
            filters,
            since,
            until: self.as_of,
            measure: behaviour.measure,
            of,
        };
        // customers with no rows count 0 (and sum 0); min, max and avg are missing
        let zero_when_empty = matches!(
            behaviour.measure,
            Measure::Count | Measure::CountDistinct | Measure::Sum
        );
        let index = match self.aggregates.iter().position(|a| *a == aggregate) {
            Some(index) => index,
            None => {
                self.aggregates.push(aggregate);
                self.aggregates.len() - 1
            }
        };
        Ok((index, zero_when_empty))
    }

    /// The test of `leaf` on a value of `kind`, its value checked.
    fn test(&self, leaf: &Leaf, kind: Kind) -> Result<Test, SpecError> {
        let value_path = format!("{}.value", leaf.path);
        let field = &leaf.field.name;
        let wrong = |allowed: &str| {
            error(
                &format!("{}.op", leaf.path),
                &format!(
                    "{} does not apply to {field}, which is {}: use {allowed}",
                    leaf.op.name(),
                    kind.name()
                ),
            )
        };
        let allowed = match kind {
            Kind::Text => "eq, ne, in, not_in, contains, starts_with, is_set, not_set",
            Kind::Integer | Kind::Float => {
                "eq, ne, lt, lte, gt, gte, between, in, not_in, is_set, not_set"
            }
            Kind::Bool => "eq, ne, is_set, not_set",
            Kind::Date | Kind::Timestamp => {
                "eq, lt, lte, gt, gte, between, within_days, older_than_days, is_set, not_set"
            }
            Kind::TextList => "contains, is_set, not_set",
            Kind::Json | Kind::Other => "is_set, not_set",
        };
        let value = leaf.value.as_ref();
        let one = |value: Option<&Value>, path: &str| literal(value, kind, path, field);
        Ok(match leaf.op {
            Op::IsSet if kind == Kind::TextList => Test::ListNotEmpty,
            Op::NotSet if kind == Kind::TextList => Test::ListEmpty,
            Op::IsSet => Test::IsSet,
            Op::NotSet => Test::NotSet,
            _ if matches!(kind, Kind::Json | Kind::Other) => return Err(wrong(allowed)),
            Op::Eq if kind != Kind::TextList => {
                Test::Compare(Compare::Eq, one(value, &value_path)?)
            }
            Op::Ne if !matches!(kind, Kind::TextList | Kind::Date | Kind::Timestamp) => {
                Test::NotEqual(one(value, &value_path)?)
            }
            Op::Lt | Op::Lte | Op::Gt | Op::Gte
                if kind.is_number() || matches!(kind, Kind::Date | Kind::Timestamp) =>
            {
                let compare = match leaf.op {
                    Op::Lt => Compare::Lt,
                    Op::Lte => Compare::Lte,
                    Op::Gt => Compare::Gt,
                    _ => Compare::Gte,
                };
                Test::Compare(compare, one(value, &value_path)?)
            }
            Op::Between if kind.is_number() || matches!(kind, Kind::Date | Kind::Timestamp) => {
                let pair = value.and_then(Value::as_array).filter(|a| a.len() == 2);
                let Some(pair) = pair else {
                    return Err(error(&value_path, "between takes [low, high]"));
                };
                let low = one(Some(&pair[0]), &format!("{value_path}[0]"))?;
                let high = one(Some(&pair[1]), &format!("{value_path}[1]"))?;
                if literal_above(&low, &high) {
                    return Err(error(&value_path, "between's low is above its high"));
                }
                Test::Between(low, high)
            }
            Op::In | Op::NotIn if matches!(kind, Kind::Text | Kind::Integer | Kind::Float) => {
                let items = value
                    .and_then(Value::as_array)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| error(&value_path, "a non-empty list of values"))?;
                let items = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| one(Some(item), &format!("{value_path}[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?;
                if leaf.op == Op::In {
                    Test::In(items)
                } else {
                    Test::NotIn(items)
                }
            }
            Op::Contains | Op::StartsWith if kind == Kind::Text => {
                let text = literal(value, Kind::Text, &value_path, field)?;
                let Literal::Text(text) = text else {
                    unreachable!("text was asked for")
                };
                if leaf.op == Op::Contains {
                    Test::TextContains(text)
                } else {
                    Test::StartsWith(text)
                }
            }
            Op::Contains if kind == Kind::TextList => {
                let Literal::Text(text) = literal(value, Kind::Text, &value_path, field)? else {
                    unreachable!("text was asked for")
                };
                Test::ListContains(text)
            }
            Op::WithinDays | Op::OlderThanDays if matches!(kind, Kind::Date | Kind::Timestamp) => {
                let days = value
                    .and_then(Value::as_u64)
                    .filter(|d| *d <= 36_600)
                    .ok_or_else(|| error(&value_path, "whole days, 0 to 36600"))?;
                let start = self.as_of - Duration::days(days as i64);
                let (start, now) = if kind == Kind::Date {
                    (
                        Literal::Date(start.date()),
                        Literal::Date(self.as_of.date()),
                    )
                } else {
                    (Literal::Timestamp(start), Literal::Timestamp(self.as_of))
                };
                if leaf.op == Op::WithinDays {
                    Test::Between(start, now)
                } else {
                    Test::Compare(Compare::Lt, start)
                }
            }
            _ => return Err(wrong(allowed)),
        })
    }
}

/// A value of `kind`, as the spec wrote it.
fn literal(
    value: Option<&Value>,
    kind: Kind,
    path: &str,
    field: &str,
) -> Result<Literal, SpecError> {
    let expected = |what: &str| error(path, &format!("{field} is {}: give {what}", kind.name()));
    let Some(value) = value else {
        return Err(error(path, "missing"));
    };
    match kind {
        Kind::Text | Kind::TextList => match value {
            Value::String(text) => {
                check_text(text, path)?;
                Ok(Literal::Text(text.clone()))
            }
            _ => Err(expected("text")),
        },
        Kind::Integer => match value.as_i64() {
            Some(n) => Ok(Literal::Integer(n)),
            None => match value.as_f64() {
                Some(x) if x.is_finite() => Ok(Literal::Float(x)),
                _ => Err(expected("a number")),
            },
        },
        Kind::Float => value
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Literal::Float)
            .ok_or_else(|| expected("a number")),
        Kind::Bool => value
            .as_bool()
            .map(Literal::Bool)
            .ok_or_else(|| expected("true or false")),
        Kind::Date => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("a date, YYYY-MM-DD"))?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(Literal::Date)
                .map_err(|_| expected("a date, YYYY-MM-DD"))
        }
        Kind::Timestamp => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("a date or a UTC time, YYYY-MM-DD[THH:MM:SS]"))?;
            parse_time(text)
                .map(Literal::Timestamp)
                .ok_or_else(|| expected("a date or a UTC time, YYYY-MM-DD[THH:MM:SS]"))
        }
        Kind::Json | Kind::Other => Err(expected("nothing: only is_set / not_set apply")),
    }
}

/// A UTC time as specs and `--as-of` write it: `YYYY-MM-DD` (midnight),
/// `YYYY-MM-DDTHH:MM:SS`, with a space for the T, or RFC 3339 with an offset.
pub fn parse_time(text: &str) -> Option<NaiveDateTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.naive_utc())
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S"))
        .or_else(|_| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists"))
        })
        .ok()
}

/// Text a spec may carry into SQL: anything but NUL, which no engine stores.
fn check_text(text: &str, path: &str) -> Result<(), SpecError> {
    if text.contains('\0') {
        Err(error(path, "text may not hold a NUL character"))
    } else if text.len() > 4096 {
        Err(error(path, "text longer than 4096 bytes"))
    } else {
        Ok(())
    }
}

fn literal_above(low: &Literal, high: &Literal) -> bool {
    let number = |l: &Literal| match l {
        Literal::Integer(n) => Some(*n as f64),
        Literal::Float(x) => Some(*x),
        _ => None,
    };
    match (low, high) {
        (Literal::Date(a), Literal::Date(b)) => a > b,
        (Literal::Timestamp(a), Literal::Timestamp(b)) => a > b,
        _ => match (number(low), number(high)) {
            (Some(a), Some(b)) => a > b,
            _ => false,
        },
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "nothing yet".into()
    } else {
        names.join(", ")
    }
}
