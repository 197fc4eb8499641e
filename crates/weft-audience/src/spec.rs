//! The audience spec as a marketer (or the web UI) writes it, in JSON or
//! YAML, read into typed conditions that each remember their JSON path so
//! any later complaint can point at the place in the file.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::SpecError;

/// A whole audience: who is in it and what a member row carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    pub name: String,
    pub description: Option<String>,
    pub conditions: Condition,
    /// Attributes each member row carries beside `customer_id`.
    pub select: Vec<Named>,
    pub sample: Option<Sample>,
    pub order_by: Vec<Order>,
    pub limit: Option<u64>,
}

/// A name written in the spec, with where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Share of the matching customers kept, 0 < percent ≤ 100.
    pub percent: f64,
    /// Customers are kept by a hash of seed and customer id: the same
    /// customer stays in (or out) run after run. Defaults to the name.
    pub seed: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub field: Named,
    pub descending: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    /// A column of `profiles.customers`.
    Trait(Leaf),
    /// A column of `ml.scores`: `overall`, a category, or the column's name.
    Score(Leaf),
    /// `marketing` or `email` consent, given (or not).
    Consent {
        flag: Named,
        given: bool,
    },
    Behaviour(Behaviour),
    /// The members of another stored audience.
    Audience(Named),
}

/// `field op value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub field: Named,
    pub op: Op,
    /// As written; its type is checked against the field's.
    pub value: Option<Value>,
    pub path: String,
}

/// An aggregate of a customer's events, conversions, sessions or page views
/// compared with a number: "viewed bread at least 2 times in the last 30 days".
#[derive(Debug, Clone, PartialEq)]
pub struct Behaviour {
    pub source: Source,
    /// Shorthand for `event_name = …` (events only).
    pub event: Option<String>,
    pub filters: Vec<Leaf>,
    pub within_days: Option<u32>,
    pub measure: Measure,
    /// The column a measure other than `count` aggregates.
    pub of: Option<Named>,
    pub op: Op,
    pub value: Option<Value>,
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Events,
    Conversions,
    Sessions,
    PageViews,
}

impl Source {
    pub const ALL: [Source; 4] = [
        Source::Events,
        Source::Conversions,
        Source::Sessions,
        Source::PageViews,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Events => "events",
            Source::Conversions => "conversions",
            Source::Sessions => "sessions",
            Source::PageViews => "page_views",
        }
    }

    /// The lake table, `schema.table`.
    pub fn table(self) -> &'static str {
        match self {
            Source::Events => "atomic.events",
            Source::Conversions => "derived.conversions",
            Source::Sessions => "derived.sessions",
            Source::PageViews => "derived.page_views",
        }
    }

    /// The time a row happened, which `within_days` looks at.
    pub fn time_column(self) -> &'static str {
        match self {
            Source::Events => "derived_tstamp",
            Source::Conversions => "conversion_tstamp",
            Source::Sessions | Source::PageViews => "start_tstamp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    Count,
    CountDistinct,
    Sum,
    Min,
    Max,
    Avg,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Measure::Count => "count",
            Measure::CountDistinct => "count_distinct",
            Measure::Sum => "sum",
            Measure::Min => "min",
            Measure::Max => "max",
            Measure::Avg => "avg",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Between,
    In,
    NotIn,
    Contains,
    StartsWith,
    IsSet,
    NotSet,
    /// A date or time in the last N days (relative to the run's "today").
    WithinDays,
    /// A date or time more than N days ago.
    OlderThanDays,
}

impl Op {
    pub const ALL: [Op; 15] = [
        Op::Eq,
        Op::Ne,
        Op::Lt,
        Op::Lte,
        Op::Gt,
        Op::Gte,
        Op::Between,
        Op::In,
        Op::NotIn,
        Op::Contains,
        Op::StartsWith,
        Op::IsSet,
        Op::NotSet,
        Op::WithinDays,
        Op::OlderThanDays,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Between => "between",
            Op::In => "in",
            Op::NotIn => "not_in",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::IsSet => "is_set",
            Op::NotSet => "not_set",
            Op::WithinDays => "within_days",
            Op::OlderThanDays => "older_than_days",
        }
    }

    fn parse(text: &str) -> Option<Op> {
        let symbol = match text {
            "=" | "==" => Some(Op::Eq),
            "!=" | "<>" | "≠" => Some(Op::Ne),
            "<" => Some(Op::Lt),
            "<=" | "≤" => Some(Op::Lte),
            ">" => Some(Op::Gt),
            ">=" | "≥" => Some(Op::Gte),
            _ => None,
        };
        symbol.or_else(|| Op::ALL.into_iter().find(|op| op.name() == text))
    }

    /// Whether the op takes no value.
    pub fn is_unary(self) -> bool {
        matches!(self, Op::IsSet | Op::NotSet)
    }
}

/// Reads a spec from JSON or YAML text (JSON is YAML, so one reader does both).
pub fn parse(text: &str) -> Result<Spec, SpecError> {
    from_value(&parse_value(text)?)
}

/// The JSON value of a JSON or YAML text.
pub fn parse_value(text: &str) -> Result<Value, SpecError> {
    if text.len() > 1 << 20 {
        return Err(error("$", "a spec is at most 1 MiB"));
    }
    let value: Value = serde_yaml_ng::from_str(text).map_err(|error| SpecError {
        path: "$".into(),
        reason: format!("not JSON or YAML: {error}"),
    })?;
    // deeply nested groups would only exhaust the stack
    if depth(&value) > 64 {
        return Err(error("$", "conditions nest more than 64 deep"));
    }
    Ok(value)
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Reads a spec from a JSON value.
pub fn from_value(value: &Value) -> Result<Spec, SpecError> {
    let object = Object::new(value, "$")?;
    object.allow(&[
        "name",
        "description",
        "conditions",
        "select",
        "sample",
        "order_by",
        "limit",
    ])?;
    let name = object.text("name")?.ok_or_else(|| object.missing("name"))?;
    check_name(&name, &object.child("name"))?;
    let description = object.text("description")?;
    let conditions = match object.get("conditions") {
        Some(value) => condition(value, &object.child("conditions"))?,
        None => return Err(object.missing("conditions")),
    };
    let select = match object.get("select") {
        Some(value) => names(value, &object.child("select"))?,
        None => Vec::new(),
    };
    let sample = match object.get("sample") {
        Some(value) => Some(sample(value, &object.child("sample"), &name)?),
        None => None,
    };
    let order_by = match object.get("order_by") {
        Some(value) => orders(value, &object.child("order_by"))?,
        None => Vec::new(),
    };
    let limit = match object.get("limit") {
        Some(value) => Some(value.as_u64().filter(|n| *n > 0).ok_or_else(|| {
            error(
                &object.child("limit"),
                "a whole number of customers, above 0",
            )
        })?),
        None => None,
    };
    Ok(Spec {
        name,
        description,
        conditions,
        select,
        sample,
        order_by,
        limit,
    })
}

/// Audience names: lower-case letters, digits, `_` and `-`, so they can name
/// files, URLs and partitions as they are.
pub fn check_name(name: &str, path: &str) -> Result<(), SpecError> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if fine {
        Ok(())
    } else {
        Err(error(
            path,
            "a name is 1 to 64 lower-case letters, digits, _ and -, starting with a letter or digit",
        ))
    }
}

fn condition(value: &Value, path: &str) -> Result<Condition, SpecError> {
    // a bare list is "all of these"
    if let Value::Array(items) = value {
        if items.is_empty() {
            return Err(error(path, "an empty group: give it a condition"));
        }
        return Ok(Condition::All(conditions(items, path)?));
    }
    let object = Object::new(value, path)?;
    const KINDS: [&str; 8] = [
        "all",
        "any",
        "not",
        "trait",
        "score",
        "consent",
        "behaviour",
        "audience",
    ];
    let kinds: Vec<&str> = KINDS
        .iter()
        .copied()
        .filter(|k| object.get(k).is_some_and(|v| !v.is_null()))
        .collect();
    let kind = match kinds.as_slice() {
        [kind] => *kind,
        [] => {
            return Err(error(
                path,
                &format!(
                    "a condition is one of {{{}}}: {}",
                    KINDS.join(", "),
                    object.keys_found()
                ),
            ));
        }
        many => {
            return Err(error(
                path,
                &format!(
                    "a condition has one kind, this one has {}: nest them in all/any",
                    many.join(" and ")
                ),
            ));
        }
    };
    let inner = object.child(kind);
    match kind {
        "all" | "any" => {
            object.allow(&[kind])?;
            let items = object
                .get(kind)
                .and_then(Value::as_array)
                .ok_or_else(|| error(&inner, "a list of conditions"))?;
            if items.is_empty() {
                return Err(error(&inner, "an empty group: give it a condition"));
            }
            let items = conditions(items, &inner)?;
            Ok(if kind == "all" {
                Condition::All(items)
            } else {
                Condition::Any(items)
            })
        }
        "not" => {
            object.allow(&["not"])?;
            let value = object.get("not").expect("the kind is there");
            Ok(Condition::Not(Box::new(condition(value, &inner)?)))
        }
        "trait" | "score" => {
            let leaf = leaf(&object, kind, path)?;
            Ok(if kind == "trait" {
                Condition::Trait(leaf)
            } else {
                Condition::Score(leaf)
            })
        }
        "consent" => {
            object.allow(&["consent", "value"])?;
            let flag = object.required_text("consent")?;
            let given = match object.get("value") {
                None => true,
                Some(Value::Bool(given)) => *given,
                Some(_) => return Err(error(&object.child("value"), "true or false")),
            };
            Ok(Condition::Consent {
                flag: Named {
                    name: flag,
                    path: inner,
                },
                given,
            })
        }
        "behaviour" => Ok(Condition::Behaviour(behaviour(
            object.get("behaviour").expect("the kind is there"),
            &inner,
        )?)),
        "audience" => {
            object.allow(&["audience"])?;
            let name = object.required_text("audience")?;
            check_name(&name, &inner)?;
            Ok(Condition::Audience(Named { name, path: inner }))
        }
        _ => unreachable!("kinds are listed above"),
    }
}

fn conditions(items: &[Value], path: &str) -> Result<Vec<Condition>, SpecError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| condition(item, &format!("{path}[{i}]")))
        .collect()
}

/// `{KIND: field, op: …, value: …}`.
fn leaf(object: &Object, kind: &str, path: &str) -> Result<Leaf, SpecError> {
    object.allow(&[kind, "op", "value"])?;
    let field = object.required_text(kind)?;
    let (op, value) = op_and_value(object)?;
    Ok(Leaf {
        field: Named {
            name: field,
            path: object.child(kind),
        },
        op,
        value,
        path: path.to_owned(),
    })
}

fn op_and_value(object: &Object) -> Result<(Op, Option<Value>), SpecError> {
    let op_text = object.text("op")?.ok_or_else(|| object.missing("op"))?;
    let op = Op::parse(&op_text).ok_or_else(|| {
        let names: Vec<&str> = Op::ALL.iter().map(|op| op.name()).collect();
        error(
            &object.child("op"),
            &format!("unknown operator {op_text:?}: one of {}", names.join(", ")),
        )
    })?;
    let value = object.get("value").cloned();
    match (op.is_unary(), &value) {
        (true, Some(_)) => Err(error(
            &object.child("value"),
            &format!("{} takes no value", op.name()),
        )),
        (false, None) => Err(object.missing("value")),
        _ => Ok((op, value)),
    }
}

fn behaviour(value: &Value, path: &str) -> Result<Behaviour, SpecError> {
    let object = Object::new(value, path)?;
    object.allow(&[
        "source",
        "event",
        "where",
        "within_days",
        "measure",
        "of",
        "op",
        "value",
    ])?;
    let source = match object.text("source")? {
        None => Source::Events,
        Some(name) => Source::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                error(
                    &object.child("source"),
                    &format!(
                        "unknown source {name:?}: events, conversions, sessions or page_views"
                    ),
                )
            })?,
    };
    let event = object.text("event")?;
    if event.is_some() && source != Source::Events {
        return Err(error(
            &object.child("event"),
            "event names an event of source events; filter other sources with where",
        ));
    }
    let filters = match object.get("where") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let path = format!("{}[{i}]", object.child("where"));
                let filter = Object::new(item, &path)?;
                if filter.get("field").is_none() {
                    return Err(filter.missing("field"));
                }
                leaf(&filter, "field", &path)
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(error(
                &object.child("where"),
                "a list of {field, op, value} filters",
            ));
        }
    };
    let within_days = match object.get("within_days") {
        None => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|n| (1..=36_600).contains(n))
                .ok_or_else(|| error(&object.child("within_days"), "whole days, 1 to 36600"))?
                as u32,
        ),
    };
    let measure = match object.text("measure")? {
        None => Measure::Count,
        Some(name) => [
            Measure::Count,
            Measure::CountDistinct,
            Measure::Sum,
            Measure::Min,
            Measure::Max,
            Measure::Avg,
        ]
        .into_iter()
        .find(|m| m.name() == name)
        .ok_or_else(|| {
            error(
                &object.child("measure"),
                &format!("unknown measure {name:?}: count, count_distinct, sum, min, max or avg"),
            )
        })?,
    };
    let of = object.text("of")?.map(|name| Named {
        name,
        path: object.child("of"),
    });
    match (measure, &of) {
        (Measure::Count, Some(of)) => {
            return Err(error(&of.path, "count counts rows: drop of"));
        }
        (Measure::Count, None) => {}
        (_, None) => {
            return Err(error(
                path,
                &format!("{} needs of: the column it aggregates", measure.name()),
            ));
        }
        _ => {}
    }
    let (op, value) = op_and_value(&object)?;
    Ok(Behaviour {
        source,
        event,
        filters,
        within_days,
        measure,
        of,
        op,
        value,
        path: path.to_owned(),
    })
}

fn names(value: &Value, path: &str) -> Result<Vec<Named>, SpecError> {
    let items = value
        .as_array()
        .ok_or_else(|| error(path, "a list of attribute names"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{path}[{i}]");
            match item {
                Value::String(name) => Ok(Named {
                    name: name.clone(),
                    path,
                }),
                _ => Err(error(&path, "an attribute name")),
            }
        })
        .collect()
}

fn sample(value: &Value, path: &str, name: &str) -> Result<Sample, SpecError> {
    let object = Object::new(value, path)?;
    object.allow(&["percent", "seed"])?;
    let percent = object
        .get("percent")
        .ok_or_else(|| object.missing("percent"))?
        .as_f64()
        .filter(|p| *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| {
            error(
                &object.child("percent"),
                "a percentage above 0, at most 100",
            )
        })?;
    let seed = object.text("seed")?.unwrap_or_else(|| name.to_owned());
    Ok(Sample {
        percent,
        seed,
        path: path.to_owned(),
    })
}

fn orders(value: &Value, path: &str) -> Result<Vec<Order>, SpecError> {
    let items = value
        .as_array()
        .ok_or_else(|| error(path, "a list of {field, desc}"))?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{path}[{i}]");
            if let Value::String(name) = item {
                return Ok(Order {
                    field: Named {
                        name: name.clone(),
                        path,
                    },
                    descending: false,
                });
            }
            let object = Object::new(item, &path)?;
            object.allow(&["field", "desc"])?;
            let name = object
                .text("field")?
                .ok_or_else(|| object.missing("field"))?;
            let descending = match object.get("desc") {
                None => false,
                Some(Value::Bool(desc)) => *desc,
                Some(_) => return Err(error(&object.child("desc"), "true or false")),
            };
            Ok(Order {
                field: Named {
                    name,
                    path: object.child("field"),
                },
                descending,
            })
        })
        .collect()
}

pub(crate) fn error(path: &str, reason: &str) -> SpecError {
    SpecError {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A JSON object being read, with its path.
struct Object<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Object<'a> {
    fn new(value: &'a Value, path: &str) -> Result<Self, SpecError> {
        match value {
            Value::Object(map) => Ok(Self {
                map,
                path: path.to_owned(),
            }),
            _ => Err(error(path, "an object ({…})")),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn child(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn missing(&self, key: &str) -> SpecError {
        error(&self.child(key), "missing")
    }

    fn keys_found(&self) -> String {
        if self.map.is_empty() {
            "this one is empty".into()
        } else {
            let keys: Vec<&str> = self.map.keys().map(String::as_str).collect();
            format!("this one has {}", keys.join(", "))
        }
    }

    /// Rejects keys outside `allowed`, so a typo is not silently ignored.
    fn allow(&self, allowed: &[&str]) -> Result<(), SpecError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(error(
                &self.child(key),
                &format!("unknown key here: expected {}", allowed.join(", ")),
            )),
            None => Ok(()),
        }
    }

    /// Text that must be there.
    fn required_text(&self, key: &str) -> Result<String, SpecError> {
        self.text(key)?.ok_or_else(|| self.missing(key))
    }

    fn text(&self, key: &str) -> Result<Option<String>, SpecError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(error(&self.child(key), "text")),
        }
    }
}
