//! A sync's spec, read from JSON or YAML: which audience (or journey
//! branch) goes to which configured destination, how, and with which
//! fields. Credentials are not part of it: they live with the destination
//! in the config.

use serde::Serialize;
use serde_json::{Map, Value};
use weft_audience::spec::{check_name, parse_value};

use crate::{SpecError, spec_error};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncSpec {
    pub name: String,
    pub description: Option<String>,
    pub source: Source,
    /// A destination named in `[activation.destinations]`.
    pub destination: String,
    pub mode: Mode,
    /// The `profiles.customers` column that identifies a row at the
    /// destination (`customer_id` unless said otherwise).
    pub key: String,
    /// (destination field, `profiles.customers` column), in spec order.
    pub fields: Vec<(String, String)>,
    /// A row the destination refused this many runs running is abandoned
    /// (not sent again until it changes).
    pub abandon_after: i64,
}

/// Where a sync's rows come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Audience(String),
    /// The members a journey put on one of its branches.
    Branch {
        journey: String,
        branch: String,
    },
}

/// What a run asks the destination to do with the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Create or update added and changed rows; rows that left are left alone.
    Upsert,
    /// Create added rows only; changes are not sent.
    Insert,
    /// Update added and changed rows that already exist at the destination.
    Update,
    /// Upsert added and changed rows, delete rows that left.
    Mirror,
    /// Add members when they enter, remove them when they exit.
    Membership,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Upsert,
        Mode::Insert,
        Mode::Update,
        Mode::Mirror,
        Mode::Membership,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mode::Upsert => "upsert",
            Mode::Insert => "insert",
            Mode::Update => "update",
            Mode::Mirror => "mirror",
            Mode::Membership => "membership",
        }
    }

    fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == text)
    }
}

/// Reads a sync spec (JSON or YAML text).
pub fn parse(text: &str) -> Result<(Value, SyncSpec), SpecError> {
    let value = parse_value(text)?;
    let spec = from_value(&value)?;
    Ok((value, spec))
}

const KEYS: [&str; 10] = [
    "name",
    "description",
    "audience",
    "journey",
    "branch",
    "destination",
    "mode",
    "key",
    "fields",
    "abandon_after",
];

pub fn from_value(value: &Value) -> Result<SyncSpec, SpecError> {
    let object = value
        .as_object()
        .ok_or_else(|| spec_error("$", "a sync spec is an object"))?;
    unknown_keys(object, &KEYS, "$")?;
    let name = text(object, "name", "$")?.ok_or_else(|| spec_error("$.name", "required"))?;
    check_name(&name, "$.name")?;
    let source = match (
        text(object, "audience", "$")?,
        text(object, "journey", "$")?,
        text(object, "branch", "$")?,
    ) {
        (Some(audience), None, None) => Source::Audience(audience),
        (None, Some(journey), Some(branch)) => Source::Branch { journey, branch },
        (None, Some(_), None) => return Err(spec_error("$.branch", "a journey needs its branch")),
        (None, None, Some(_)) => return Err(spec_error("$.journey", "a branch needs its journey")),
        (None, None, None) => {
            return Err(spec_error("$.audience", "required (or journey and branch)"));
        }
        _ => {
            return Err(spec_error(
                "$.audience",
                "an audience or a journey branch, not both",
            ));
        }
    };
    let destination =
        text(object, "destination", "$")?.ok_or_else(|| spec_error("$.destination", "required"))?;
    let mode = match text(object, "mode", "$")? {
        None => Mode::Upsert,
        Some(mode) => Mode::parse(&mode).ok_or_else(|| {
            let names: Vec<_> = Mode::ALL.iter().map(|m| m.name()).collect();
            spec_error(
                "$.mode",
                format!("unknown mode {mode:?}: one of {}", names.join(", ")),
            )
        })?,
    };
    let key = text(object, "key", "$")?.unwrap_or_else(|| "customer_id".to_owned());
    let fields = match object.get("fields") {
        None => Vec::new(),
        Some(Value::Object(fields)) => fields
            .iter()
            .map(|(field, column)| match column {
                Value::String(column) if !field.is_empty() => Ok((field.clone(), column.clone())),
                _ => Err(spec_error(
                    &format!("$.fields.{field}"),
                    "a destination field maps to a column name",
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(spec_error(
                "$.fields",
                "an object: destination field → column",
            ));
        }
    };
    let abandon_after = match object.get("abandon_after") {
        None => 5,
        Some(value) => value
            .as_i64()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| spec_error("$.abandon_after", "a whole number from 1 to 1000"))?,
    };
    Ok(SyncSpec {
        name,
        description: text(object, "description", "$")?,
        source,
        destination,
        mode,
        key,
        fields,
        abandon_after,
    })
}

/// `object[key]` as text (absent or null: None); `path` is the object's.
pub(crate) fn text(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, SpecError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
        Some(_) => Err(spec_error(&format!("{path}.{key}"), "a non-empty string")),
    }
}

/// The first key of `object` not among `keys`, as an error at its path.
pub(crate) fn unknown_keys(
    object: &Map<String, Value>,
    keys: &[&str],
    path: &str,
) -> Result<(), SpecError> {
    match object.keys().find(|k| !keys.contains(&k.as_str())) {
        Some(unknown) => Err(spec_error(
            &format!("{path}.{unknown}"),
            format!("unknown key: one of {}", keys.join(", ")),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_yaml_spec_with_defaults() {
        let (_, spec) = parse(
            "name: lapsed-to-crm\naudience: lapsed\ndestination: crm\nfields:\n  Email: email\n  First: first_name\n",
        )
        .unwrap();
        assert_eq!(spec.source, Source::Audience("lapsed".into()));
        assert_eq!(spec.mode, Mode::Upsert);
        assert_eq!(spec.key, "customer_id");
        assert_eq!(
            spec.fields,
            [
                ("Email".into(), "email".into()),
                ("First".into(), "first_name".into())
            ]
        );
    }

    #[test]
    fn bad_specs_say_where() {
        let cases = [
            ("[]", "$"),
            (
                "{\"name\": \"x\", \"audience\": \"a\", \"destination\": \"d\", \"secret\": 1}",
                "$.secret",
            ),
            ("{\"audience\": \"a\", \"destination\": \"d\"}", "$.name"),
            (
                "{\"name\": \"Bad Name\", \"audience\": \"a\", \"destination\": \"d\"}",
                "$.name",
            ),
            ("{\"name\": \"x\", \"destination\": \"d\"}", "$.audience"),
            (
                "{\"name\": \"x\", \"audience\": \"a\", \"journey\": \"j\", \"branch\": \"b\", \"destination\": \"d\"}",
                "$.audience",
            ),
            (
                "{\"name\": \"x\", \"journey\": \"j\", \"destination\": \"d\"}",
                "$.branch",
            ),
            ("{\"name\": \"x\", \"audience\": \"a\"}", "$.destination"),
            (
                "{\"name\": \"x\", \"audience\": \"a\", \"destination\": \"d\", \"mode\": \"replace\"}",
                "$.mode",
            ),
            (
                "{\"name\": \"x\", \"audience\": \"a\", \"destination\": \"d\", \"fields\": [\"email\"]}",
                "$.fields",
            ),
            (
                "{\"name\": \"x\", \"audience\": \"a\", \"destination\": \"d\", \"fields\": {\"e\": 1}}",
                "$.fields.e",
            ),
            (
                "{\"name\": \"x\", \"audience\": \"a\", \"destination\": \"d\", \"abandon_after\": 0}",
                "$.abandon_after",
            ),
            (
                "{\"name\": 7, \"audience\": \"a\", \"destination\": \"d\"}",
                "$.name",
            ),
            ("name: [unclosed", "$"),
        ];
        for (text, path) in cases {
            let error = parse(text).unwrap_err();
            assert_eq!(error.path, path, "{text}: {error}");
        }
    }
}
