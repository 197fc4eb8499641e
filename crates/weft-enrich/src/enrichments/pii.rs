//! PII pseudonymisation: chosen atomic fields, and values inside
//! self-describing events and contexts picked by schema and path, replaced by
//! the hex SHA-256 of salt and value. The same value and salt give the same
//! hash, so pseudonymised ids still join; another salt gives other hashes. The
//! salt lives in config or an environment variable, never in a table.

use serde_json::Value;
use sha2::{Digest, Sha256};
use weft_core::Event;
use weft_core::config::PiiPseudonymisationConfig;

use super::json_path::JsonPath;
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

pub struct PiiPseudonymisation {
    fields: Vec<String>,
    json: Vec<JsonPath>,
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
            .map(|field| JsonPath::new(field, &key("json")))
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
}

impl Enrichment for PiiPseudonymisation {
    fn name(&self) -> &str {
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
        for path in &self.json {
            path.visit_mut(event, &mut |value| match value {
                Value::String(text) => *text = self.hash(text),
                Value::Number(number) => *value = Value::String(self.hash(&number.to_string())),
                _ => {}
            });
        }
        Ok(())
    }
}
