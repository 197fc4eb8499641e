//! Iglu schema resolution and validation. Schemas are looked up by their key
//! first among those weft ships (and any added with `with_schema`), then in
//! each configured registry folder laid out `vendor/name/format/version`.
//! Each schema is compiled once and kept.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use jsonschema::Validator;
use serde_json::Value;

use crate::schema_key::SchemaKey;

/// The schemas weft ships, by key.
const SHIPPED: &[(&str, &str)] = &[
    (
        "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
        include_str!("../iglu/com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"),
    ),
    (
        "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
        include_str!("../iglu/com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"),
    ),
    (
        "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0",
        include_str!("../iglu/com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgluError {
    #[error("{0}")]
    InvalidKey(#[from] crate::schema_key::InvalidSchemaKey),
    #[error("schema {key} not found among the shipped schemas or in {searched}")]
    NotFound { key: String, searched: String },
    #[error("schema {key} at {location} is not a usable JSON Schema: {reason}")]
    InvalidSchema {
        key: String,
        location: String,
        reason: String,
    },
    #[error("{key}: {path} {message}")]
    Invalid {
        key: String,
        path: String,
        message: String,
    },
    #[error("not a self-describing JSON: {0}")]
    NotSelfDescribing(String),
}

pub struct Resolver {
    inline: HashMap<SchemaKey, (String, String)>,
    registries: Vec<PathBuf>,
    compiled: RwLock<HashMap<SchemaKey, Arc<Validator>>>,
}

impl Resolver {
    /// The shipped schemas, then `registries` in order.
    pub fn new(registries: Vec<PathBuf>) -> Self {
        let mut resolver = Self {
            inline: HashMap::new(),
            registries,
            compiled: RwLock::new(HashMap::new()),
        };
        for (uri, text) in SHIPPED {
            resolver = resolver
                .with_schema(uri, text)
                .expect("shipped schema keys are valid");
        }
        resolver
    }

    /// The resolver a configuration describes: the shipped schemas, the folders of
    /// `iglu.registries`, then `<data_dir>/iglu`, the data directory's own registry.
    pub fn from_config(config: &weft_core::Config) -> Self {
        let mut registries = config.iglu.registries.clone();
        registries.push(config.data_dir.join("iglu"));
        Self::new(registries)
    }

    /// Adds a schema by its key, ahead of the registry folders.
    pub fn with_schema(mut self, uri: &str, text: &str) -> Result<Self, IgluError> {
        let key: SchemaKey = uri.parse()?;
        self.inline
            .insert(key, (format!("shipped schema {uri}"), text.to_owned()));
        Ok(self)
    }

    /// Validates a self-describing JSON (`{"schema": …, "data": …}`) against its
    /// schema; returns the key, or every way it fails.
    pub fn validate(&self, self_describing: &Value) -> Result<SchemaKey, Vec<IgluError>> {
        let (Some(Value::String(uri)), Some(data)) =
            (self_describing.get("schema"), self_describing.get("data"))
        else {
            return Err(vec![IgluError::NotSelfDescribing(
                "expected an object with \"schema\" and \"data\"".into(),
            )]);
        };
        let key: SchemaKey = uri.parse().map_err(|e| vec![IgluError::InvalidKey(e)])?;
        let validator = self.validator(&key).map_err(|e| vec![e])?;
        let errors: Vec<IgluError> = validator
            .iter_errors(data)
            .map(|error| IgluError::Invalid {
                key: key.to_string(),
                path: match error.instance_path().to_string() {
                    path if path.is_empty() => "/".to_owned(),
                    path => path,
                },
                message: error.to_string(),
            })
            .collect();
        if errors.is_empty() {
            Ok(key)
        } else {
            Err(errors)
        }
    }

    fn validator(&self, key: &SchemaKey) -> Result<Arc<Validator>, IgluError> {
        if let Some(validator) = self
            .compiled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
        {
            return Ok(Arc::clone(validator));
        }
        let (location, text) = self.find(key)?;
        let invalid = |reason: String| IgluError::InvalidSchema {
            key: key.to_string(),
            location: location.clone(),
            reason,
        };
        let mut schema: Value = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if let Some(declared) = schema.get("self") {
            let declared_key = ["vendor", "name", "format", "version"]
                .map(|field| declared.get(field).and_then(Value::as_str).unwrap_or(""));
            let expected = [
                key.vendor.as_str(),
                key.name.as_str(),
                key.format.as_str(),
                &key.version(),
            ];
            if declared_key != expected {
                return Err(invalid(format!(
                    "its \"self\" says {}",
                    declared_key.join("/")
                )));
            }
        }
        // Iglu's self-describing meta-schema is not a draft the validator knows: Snowplow's schemas are draft 4
        if let Value::Object(map) = &mut schema {
            map.remove("$schema");
            map.remove("self");
        }
        let validator = jsonschema::draft4::new(&schema).map_err(|e| invalid(e.to_string()))?;
        let validator = Arc::new(validator);
        self.compiled
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), Arc::clone(&validator));
        Ok(validator)
    }

    fn find(&self, key: &SchemaKey) -> Result<(String, String), IgluError> {
        if let Some(found) = self.inline.get(key) {
            return Ok(found.clone());
        }
        for registry in &self.registries {
            let path = schema_path(registry, key);
            match std::fs::read_to_string(&path) {
                Ok(text) => return Ok((path.display().to_string(), text)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(IgluError::InvalidSchema {
                        key: key.to_string(),
                        location: path.display().to_string(),
                        reason: error.to_string(),
                    });
                }
            }
        }
        Err(IgluError::NotFound {
            key: key.to_string(),
            searched: if self.registries.is_empty() {
                "no registry folder (iglu.registries is empty)".to_owned()
            } else {
                self.registries
                    .iter()
                    .map(|r| r.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

fn schema_path(registry: &Path, key: &SchemaKey) -> PathBuf {
    registry
        .join(&key.vendor)
        .join(&key.name)
        .join(&key.format)
        .join(key.version())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fixtures_registry() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/iglu")
    }

    #[test]
    fn shipped_and_registry_schemas_validate() {
        let resolver = Resolver::new(vec![fixtures_registry()]);
        let click = json!({"schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
                           "data": {"targetUrl": "https://x.example/", "elementClasses": ["a"]}});
        assert_eq!(resolver.validate(&click).unwrap().name, "link_click");
        let product = json!({"schema": "iglu:com.acme/product_entity/jsonschema/1-0-0",
                             "data": {"sku": "SKU-1", "price": 2.5}});
        assert!(resolver.validate(&product).is_ok());
    }

    #[test]
    fn violations_name_the_schema_and_the_path() {
        let resolver = Resolver::new(vec![fixtures_registry()]);
        let product = json!({"schema": "iglu:com.acme/product_entity/jsonschema/1-0-0",
                             "data": {"price": -1, "colour": "red"}});
        let errors = resolver.validate(&product).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(text.iter().any(|e| e.contains("sku")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("/price")), "{text:?}");
        assert!(text.iter().any(|e| e.contains("colour")), "{text:?}");
        assert!(
            text.iter()
                .all(|e| e.starts_with("iglu:com.acme/product_entity/jsonschema/1-0-0"))
        );
    }

    #[test]
    fn unknown_schemas_and_bad_schema_files_are_reported() {
        let resolver = Resolver::new(vec![fixtures_registry()]);
        let unknown = json!({"schema": "iglu:com.acme/nothing/jsonschema/1-0-0", "data": {}});
        assert!(matches!(
            resolver.validate(&unknown).unwrap_err()[..],
            [IgluError::NotFound { .. }]
        ));
        let not_a_key = json!({"schema": "com.acme/nothing", "data": {}});
        assert!(matches!(
            resolver.validate(&not_a_key).unwrap_err()[..],
            [IgluError::InvalidKey(_)]
        ));
        assert!(matches!(
            resolver.validate(&json!([1])).unwrap_err()[..],
            [IgluError::NotSelfDescribing(_)]
        ));

        let dir = std::env::temp_dir().join(format!("weft-iglu-test-{}", std::process::id()));
        let folder = dir.join("com.acme/broken/jsonschema");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("1-0-0"), "{ not json").unwrap();
        std::fs::write(folder.join("1-0-1"), r#"{"self": {"vendor": "com.other", "name": "broken", "format": "jsonschema", "version": "1-0-1"}}"#).unwrap();
        std::fs::write(folder.join("1-0-2"), r#"{"type": 12}"#).unwrap();
        let resolver = Resolver::new(vec![dir.clone()]);
        for version in ["1-0-0", "1-0-1", "1-0-2"] {
            let instance =
                json!({"schema": format!("iglu:com.acme/broken/jsonschema/{version}"), "data": {}});
            assert!(
                matches!(
                    resolver.validate(&instance).unwrap_err()[..],
                    [IgluError::InvalidSchema { .. }]
                ),
                "{version}"
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
