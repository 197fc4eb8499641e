//! Values inside an event's self-describing event or contexts, picked by
//! schema (`iglu:com.acme/user/jsonschema/1-*-*`) and path (`$.email`,
//! `$.items[*].sku`): the small subset of JSONPath enrichments need.

use serde_json::Value;
use weft_core::Event;
use weft_core::config::JsonField;

use super::EnrichmentConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Unstruct,
    Contexts,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Every,
}

pub(crate) struct JsonPath {
    place: Place,
    /// vendor, name, format, and the version's model-revision-addition with `*` wildcards.
    schema: [String; 4],
    path: Vec<Step>,
}

impl JsonPath {
    /// `key` is the config key the field came from, for errors.
    pub(crate) fn new(field: &JsonField, key: &str) -> Result<Self, EnrichmentConfigError> {
        let place = match field.field.as_str() {
            "unstruct_event" => Place::Unstruct,
            "contexts" => Place::Contexts,
            other => {
                return Err(EnrichmentConfigError::new(
                    &format!("{key}.field"),
                    format!("{other:?} is not unstruct_event or contexts"),
                ));
            }
        };
        Ok(Self {
            place,
            schema: parse_criterion(&field.schema).ok_or_else(|| {
                EnrichmentConfigError::new(
                    &format!("{key}.schema"),
                    format!(
                        "{:?} is not like iglu:vendor/name/jsonschema/1-*-*",
                        field.schema
                    ),
                )
            })?,
            path: parse_path(&field.path).ok_or_else(|| {
                EnrichmentConfigError::new(
                    &format!("{key}.path"),
                    format!("{:?} is not like $.email or $.items[*].email", field.path),
                )
            })?,
        })
    }

    /// Calls `visit` with every value the path reaches in the event.
    pub(crate) fn visit_mut(&self, event: &mut Event, visit: &mut dyn FnMut(&mut Value)) {
        match self.place {
            Place::Unstruct => {
                if let Some(unstruct) = event.unstruct_event.as_mut() {
                    self.visit_entity(unstruct, visit);
                }
            }
            Place::Contexts => {
                if let Some(Value::Array(contexts)) = event.contexts.as_mut() {
                    for context in contexts {
                        self.visit_entity(context, visit);
                    }
                }
            }
        }
    }

    fn visit_entity(&self, entity: &mut Value, visit: &mut dyn FnMut(&mut Value)) {
        let Some(uri) = entity.get("schema").and_then(Value::as_str) else {
            return;
        };
        if !matches_criterion(uri, &self.schema) {
            return;
        }
        if let Some(data) = entity.get_mut("data") {
            walk(data, &self.path, visit);
        }
    }
}

fn walk(value: &mut Value, path: &[Step], visit: &mut dyn FnMut(&mut Value)) {
    match path.split_first() {
        None => visit(value),
        Some((Step::Key(key), rest)) => {
            if let Some(child) = value.get_mut(key) {
                walk(child, rest, visit);
            }
        }
        Some((Step::Every, rest)) => {
            if let Value::Array(items) = value {
                for item in items {
                    walk(item, rest, visit);
                }
            }
        }
    }
}

pub(crate) fn parse_criterion(uri: &str) -> Option<[String; 4]> {
    let rest = uri.strip_prefix("iglu:")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [vendor, name, format, version] = parts.as_slice() else {
        return None;
    };
    let numbers: Vec<&str> = version.split('-').collect();
    let valid = numbers.len() == 3
        && numbers
            .iter()
            .all(|n| *n == "*" || n.parse::<u32>().is_ok());
    (valid && !vendor.is_empty() && !name.is_empty()).then(|| {
        [
            vendor.to_string(),
            name.to_string(),
            format.to_string(),
            version.to_string(),
        ]
    })
}

fn matches_criterion(uri: &str, criterion: &[String; 4]) -> bool {
    let Some(actual) = parse_criterion(uri) else {
        return false;
    };
    actual[..3] == criterion[..3]
        && actual[3]
            .split('-')
            .zip(criterion[3].split('-'))
            .all(|(have, want)| want == "*" || have == want)
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let rest = path.strip_prefix("$.")?;
    let mut steps = Vec::new();
    for part in rest.split('.') {
        let (key, every) = match part.strip_suffix("[*]") {
            Some(key) => (key, true),
            None => (part, false),
        };
        if key.is_empty() || key.contains(['[', ']', '*', '$']) {
            return None;
        }
        steps.push(Step::Key(key.to_owned()));
        if every {
            steps.push(Step::Every);
        }
    }
    Some(steps)
}
