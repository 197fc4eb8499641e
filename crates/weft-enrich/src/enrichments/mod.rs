//! Enrichments: what weft adds to each valid event before it is loaded —
//! marketing attribution, referer classification, privacy masking. Each is
//! one file behind [`Enrichment`], switched on and configured in
//! `[enrichments.NAME]`; [`Enrichments`] runs them in a fixed order, IP
//! anonymisation last, so nothing stored holds the full address.

mod campaign;
mod ip_anonymisation;
mod ip_lookups;
mod json_path;
mod lookup;
mod pii;
mod referer;
mod user_agent;

use std::collections::HashMap;

use serde_json::{Map, Value};
use weft_core::Event;
use weft_core::config::EnrichmentsConfig;

pub use campaign::CampaignAttribution;
pub use ip_anonymisation::IpAnonymisation;
pub use ip_lookups::IpLookups;
pub use lookup::Lookup;
pub use pii::PiiPseudonymisation;
pub use referer::RefererClassification;
pub use user_agent::{Parsed as ParsedUserAgent, UserAgent};

/// One enrichment of one event.
pub trait Enrichment: Send + Sync {
    /// The name used in config (`[enrichments.NAME]`) and in bad rows.
    fn name(&self) -> &str;

    /// Enriches the event in place. An error makes the event a bad row
    /// (`enrichment_failures`) carrying this enrichment's name and the message.
    fn enrich(&self, event: &mut Event) -> Result<(), String>;
}

/// A config value no enrichment can run with; reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("invalid config key enrichments.{key}: {reason}")]
pub struct EnrichmentConfigError {
    pub key: String,
    pub reason: String,
}

impl EnrichmentConfigError {
    pub(crate) fn new(key: &str, reason: impl Into<String>) -> Self {
        Self {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The configured enrichments, in the order they run.
pub struct Enrichments {
    chain: Vec<Box<dyn Enrichment>>,
    /// Parameters left out of the event fingerprint; `None` computes none.
    fingerprint_excluded: Option<Vec<String>>,
}

impl Default for Enrichments {
    fn default() -> Self {
        Self {
            chain: Vec::new(),
            fingerprint_excluded: Some(
                crate::fingerprint::DEFAULT_EXCLUDED
                    .map(String::from)
                    .to_vec(),
            ),
        }
    }
}

/// An enrichment that failed on an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrichmentFailure {
    pub enrichment: String,
    pub message: String,
}

impl std::fmt::Display for EnrichmentFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.enrichment, self.message)
    }
}

impl std::fmt::Debug for Enrichments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Enrichments {
    /// None at all: events are loaded as the trackers sent them (with the default fingerprint).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn from_config(config: &EnrichmentsConfig) -> Result<Self, EnrichmentConfigError> {
        Self::from_config_with_tables(config, &HashMap::new())
    }

    /// As configured, with the rows of the lake tables that lookups name
    /// (`[[enrichments.lookups]] table = "schema.table"`), read by the caller.
    pub fn from_config_with_tables(
        config: &EnrichmentsConfig,
        tables: &HashMap<String, Vec<Map<String, Value>>>,
    ) -> Result<Self, EnrichmentConfigError> {
        let mut chain: Vec<Box<dyn Enrichment>> = Vec::new();
        if config.user_agent.enabled {
            chain.push(Box::new(UserAgent::new()));
        }
        if config.campaign_attribution.enabled {
            chain.push(Box::new(CampaignAttribution::new(
                &config.campaign_attribution,
            )?));
        }
        if config.referer.enabled {
            chain.push(Box::new(RefererClassification::new(&config.referer)?));
        }
        if config.ip_lookups.enabled {
            match &config.ip_lookups.database {
                Some(path) if path.is_file() => {
                    chain.push(Box::new(IpLookups::open(path).map_err(|reason| {
                        EnrichmentConfigError::new("ip_lookups.database", reason)
                    })?))
                }
                Some(path) => tracing::warn!(
                    database = %path.display(),
                    "ip_lookups: the MaxMind database is not there; events get no geo_* fields"
                ),
                None => tracing::warn!(
                    "ip_lookups: no MaxMind database configured (enrichments.ip_lookups.database); events get no geo_* fields"
                ),
            }
        }
        for (index, lookup) in config.lookups.iter().enumerate() {
            let rows = lookup.table.as_ref().and_then(|table| tables.get(table));
            chain.push(Box::new(Lookup::new(
                lookup,
                index,
                rows.map(Vec::as_slice),
            )?));
        }
        if config.pii_pseudonymisation.enabled {
            chain.push(Box::new(PiiPseudonymisation::new(
                &config.pii_pseudonymisation,
            )?));
        }
        // last: every enrichment before it may need the full address
        if config.ip_anonymisation.enabled {
            chain.push(Box::new(IpAnonymisation::new(&config.ip_anonymisation)?));
        }
        let fingerprint = &config.event_fingerprint;
        if fingerprint
            .excluded_parameters
            .iter()
            .any(|p| p.trim().is_empty())
        {
            return Err(EnrichmentConfigError::new(
                "event_fingerprint.excluded_parameters",
                "a parameter name is empty",
            ));
        }
        Ok(Self {
            chain,
            fingerprint_excluded: fingerprint
                .enabled
                .then(|| fingerprint.excluded_parameters.clone()),
        })
    }

    /// Whether the fingerprint is the one `canonical_event` already computes.
    pub fn default_fingerprint(&self) -> bool {
        self.fingerprint_excluded
            .as_ref()
            .is_some_and(|excluded| *excluded == crate::fingerprint::DEFAULT_EXCLUDED)
    }

    /// The event fingerprint of these tracker parameters, as configured.
    pub fn fingerprint(
        &self,
        params: &std::collections::BTreeMap<String, String>,
    ) -> Option<String> {
        let excluded = self.fingerprint_excluded.as_ref()?;
        let excluded: Vec<&str> = excluded.iter().map(String::as_str).collect();
        Some(crate::fingerprint::event_fingerprint(params, &excluded))
    }

    /// Names of the enrichments that run, in order.
    pub fn names(&self) -> Vec<&str> {
        self.chain.iter().map(|e| e.name()).collect()
    }

    /// Runs every enrichment on the event; the first failure stops the chain.
    pub fn apply(&self, event: &mut Event) -> Result<(), EnrichmentFailure> {
        for enrichment in &self.chain {
            enrichment
                .enrich(event)
                .map_err(|message| EnrichmentFailure {
                    enrichment: enrichment.name().to_owned(),
                    message,
                })?;
        }
        Ok(())
    }
}

/// The value of the first of `names` present in a URL query (`a=1&b=2`), decoded.
pub(crate) fn query_value(query: &str, names: &[String]) -> Option<String> {
    names.iter().find_map(|name| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(key, value)| key == name.as_str() && !value.is_empty())
            .map(|(_, value)| value.into_owned())
    })
}
