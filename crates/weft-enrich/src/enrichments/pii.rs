//! PII pseudonymisation: chosen atomic fields, and values inside
//! self-describing events and contexts picked by schema and path, replaced by
//! the hex SHA-256 of salt and value. The same value and salt give the same
//! hash, so pseudonymised ids still join; another salt gives other hashes. The
//! salt lives in config or an environment variable, never in a table.

use serde_json::Value;
use sha2::{Digest, Sha256};
use weft_core::Event;
use weft_core::config::PiiPseudonymisationConfig;

use super::{Enrichment, EnrichmentConfigError};

/// The atomic fields that can hold personal data.
const FIELDS: &[&str] = &[
    "user_id",
    "user_ipaddress",
    "user_fingerprint",
    "domain_userid",
    "network_userid",
    "ip_organization",
    "ip_domain",
    "tr_city",
    "refr_domain_userid",
    "domain_sessionid",
    "se_label",
    "se_property",
    "mkt_clickid",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Unstruct,
    Contexts,
}

struct JsonField {
    place: Place,
    /// vendor, name, format, and the version's model-revision-addition with `*` wildcards.
    schema: [String; 4],
    path: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Every,
}

pub struct PiiPseudonymisation {
    fields: Vec<String>,
    json: Vec<JsonField>,
    salt: String,
}

impl PiiPseudonymisation {
    pub fn new(config: &PiiPseudonymisationConfig) -> Result<Self, EnrichmentConfigError> {
        let key = |k: &str| format!("pii_pseudonymisation.{k}");
        for field in &config.fields {
            if !FIELDS.contains(&field.as_str()) {
                return Err(EnrichmentConfigError::new(
                    &key("fields"),
                    format!("{field:?} is not one of {}", FIELDS.join(", ")),
                ));
            }
        }
        let json = config
            .json
            .iter()
            .map(|field| {
                let place = match field.field.as_str() {
                    "unstruct_event" => Place::Unstruct,
                    "contexts" => Place::Contexts,
                    other => {
                        return Err(EnrichmentConfigError::new(
                            &key("json.field"),
                            format!("{other:?} is not unstruct_event or contexts"),
                        ));
                    }
                };
                Ok(JsonField {
                    place,
                    schema: parse_criterion(&field.schema).ok_or_else(|| {
                        EnrichmentConfigError::new(
                            &key("json.schema"),
                            format!(
                                "{:?} is not like iglu:vendor/name/jsonschema/1-*-*",
                                field.schema
                            ),
                        )
                    })?,
                    path: parse_path(&field.path).ok_or_else(|| {
                        EnrichmentConfigError::new(
                            &key("json.path"),
                            format!("{:?} is not like $.email or $.items[*].email", field.path),
                        )
                    })?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let salt = if config.salt.is_empty() && !config.salt_env.is_empty() {
            std::env::var(&config.salt_env).map_err(|_| {
                EnrichmentConfigError::new(
                    &key("salt_env"),
                    format!("the environment variable {} is not set", config.salt_env),
                )
            })?
        } else {
            config.salt.clone()
        };
        if salt.len() < 16 {
            return Err(EnrichmentConfigError::new(
                &key("salt"),
                "a salt of at least 16 characters is needed (set salt_env to an environment variable holding it)",
            ));
        }
        Ok(Self {
            fields: config.fields.clone(),
            json,
            salt,
        })
    }

    pub fn hash(&self, value: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.salt.as_bytes());
        hasher.update(value.as_bytes());
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    fn field<'e>(&self, event: &'e mut Event, name: &str) -> Option<&'e mut Option<String>> {
        Some(match name {
            "user_id" => &mut event.user_id,
            "user_ipaddress" => &mut event.user_ipaddress,
            "user_fingerprint" => &mut event.user_fingerprint,
            "domain_userid" => &mut event.domain_userid,
            "network_userid" => &mut event.network_userid,
            "ip_organization" => &mut event.ip_organization,
            "ip_domain" => &mut event.ip_domain,
            "tr_city" => &mut event.tr_city,
            "refr_domain_userid" => &mut event.refr_domain_userid,
            "domain_sessionid" => &mut event.domain_sessionid,
            "se_label" => &mut event.se_label,
            "se_property" => &mut event.se_property,
            "mkt_clickid" => &mut event.mkt_clickid,
            _ => return None,
        })
    }

    fn hash_json(&self, entity: &mut Value, field: &JsonField) {
        let Some(uri) = entity.get("schema").and_then(Value::as_str) else {
            return;
        };
        if !matches_criterion(uri, &field.schema) {
            return;
        }
        if let Some(data) = entity.get_mut("data") {
            self.hash_at(data, &field.path);
        }
    }

    fn hash_at(&self, value: &mut Value, path: &[Step]) {
        match path.split_first() {
            None => match value {
                Value::String(text) => *text = self.hash(text),
                Value::Number(number) => *value = Value::String(self.hash(&number.to_string())),
                _ => {}
            },
            Some((Step::Key(key), rest)) => {
                if let Some(child) = value.get_mut(key) {
                    self.hash_at(child, rest);
                }
            }
            Some((Step::Every, rest)) => {
                if let Value::Array(items) = value {
                    for item in items {
                        self.hash_at(item, rest);
                    }
                }
            }
        }
    }
}

fn parse_criterion(uri: &str) -> Option<[String; 4]> {
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

impl Enrichment for PiiPseudonymisation {
    fn name(&self) -> &'static str {
        "pii_pseudonymisation"
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        for name in &self.fields {
            if let Some(slot) = self.field(event, name)
                && let Some(value) = slot.as_deref()
            {
                *slot = Some(self.hash(value));
            }
        }
        for field in &self.json {
            match field.place {
                Place::Unstruct => {
                    // the event's envelope holds the self-describing event itself
                    if let Some(unstruct) = event.unstruct_event.as_mut() {
                        if let Some(inner) = unstruct
                            .get_mut("data")
                            .filter(|d| d.get("schema").is_some())
                        {
                            self.hash_json(inner, field);
                        } else {
                            self.hash_json(unstruct, field);
                        }
                    }
                }
                Place::Contexts => {
                    if let Some(Value::Array(contexts)) = event.contexts.as_mut() {
                        for context in contexts {
                            self.hash_json(context, field);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
