//! Iglu schema keys: `iglu:vendor/name/format/model-revision-addition`.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaKey {
    pub vendor: String,
    pub name: String,
    pub format: String,
    pub model: u32,
    pub revision: u32,
    pub addition: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{uri:?} is not an Iglu schema URI (iglu:vendor/name/format/M-R-A)")]
pub struct InvalidSchemaKey {
    pub uri: String,
}

impl SchemaKey {
    /// `M-R-A`, as Snowplow's `event_version` holds it.
    pub fn version(&self) -> String {
        format!("{}-{}-{}", self.model, self.revision, self.addition)
    }
}

impl FromStr for SchemaKey {
    type Err = InvalidSchemaKey;

    fn from_str(uri: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidSchemaKey {
            uri: uri.to_owned(),
        };
        let path = uri.strip_prefix("iglu:").ok_or_else(invalid)?;
        let mut parts = path.split('/');
        let (Some(vendor), Some(name), Some(format), Some(version), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(invalid());
        };
        let valid_part = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !(valid_part(vendor) && valid_part(name) && valid_part(format)) {
            return Err(invalid());
        }
        let mut numbers = version.split('-').map(|n| {
            if n.is_empty() || (n.len() > 1 && n.starts_with('0')) {
                None
            } else {
                n.parse::<u32>().ok()
            }
        });
        let (Some(Some(model)), Some(Some(revision)), Some(Some(addition)), None) = (
            numbers.next(),
            numbers.next(),
            numbers.next(),
            numbers.next(),
        ) else {
            return Err(invalid());
        };
        if model == 0 {
            return Err(invalid());
        }
        Ok(Self {
            vendor: vendor.to_owned(),
            name: name.to_owned(),
            format: format.to_owned(),
            model,
            revision,
            addition,
        })
    }
}

impl fmt::Display for SchemaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "iglu:{}/{}/{}/{}",
            self.vendor,
            self.name,
            self.format,
            self.version()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let uri = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1";
        let key: SchemaKey = uri.parse().unwrap();
        assert_eq!(key.vendor, "com.snowplowanalytics.snowplow");
        assert_eq!(key.name, "link_click");
        assert_eq!((key.model, key.revision, key.addition), (1, 0, 1));
        assert_eq!(key.version(), "1-0-1");
        assert_eq!(key.to_string(), uri);
    }

    #[test]
    fn rejects_what_is_not_a_schema_key() {
        for bad in [
            "",
            "iglu:",
            "com.acme/x/jsonschema/1-0-0",
            "iglu:com.acme/x/jsonschema/1-0",
            "iglu:com.acme/x/jsonschema/0-0-0",
            "iglu:com.acme/x/jsonschema/1-0-0-0",
            "iglu:com.acme/x/jsonschema/1-01-0",
            "iglu:com.acme/x/y/jsonschema/1-0-0",
            "iglu:com.acme//jsonschema/1-0-0",
            "iglu:com acme/x/jsonschema/1-0-0",
            "iglu:com.acme/x/jsonschema/1-0-99999999999",
        ] {
            assert!(bad.parse::<SchemaKey>().is_err(), "{bad}");
        }
    }
}
