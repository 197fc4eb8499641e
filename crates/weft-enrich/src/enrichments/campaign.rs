//! Campaign attribution: `mkt_*` fields from the page URL's campaign
//! parameters (`utm_*` by default) and click ids (`gclid`, `fbclid`, …).

use weft_core::Event;
use weft_core::config::CampaignAttributionConfig;

use super::{Enrichment, EnrichmentConfigError, query_value};

pub struct CampaignAttribution {
    medium: Vec<String>,
    source: Vec<String>,
    term: Vec<String>,
    content: Vec<String>,
    campaign: Vec<String>,
    click_ids: Vec<(String, String)>,
}

impl CampaignAttribution {
    pub fn new(config: &CampaignAttributionConfig) -> Result<Self, EnrichmentConfigError> {
        let names = |key: &str, names: &[String]| {
            if names.iter().any(|n| n.trim().is_empty()) {
                return Err(EnrichmentConfigError::new(
                    &format!("campaign_attribution.{key}"),
                    "a parameter name is empty",
                ));
            }
            Ok(names.to_vec())
        };
        let click_ids = config
            .click_ids
            .iter()
            .map(|(param, network)| {
                if param.trim().is_empty() || network.trim().is_empty() {
                    Err(EnrichmentConfigError::new(
                        "campaign_attribution.click_ids",
                        "click id parameters and networks must not be empty",
                    ))
                } else {
                    Ok((param.clone(), network.clone()))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            medium: names("medium", &config.medium)?,
            source: names("source", &config.source)?,
            term: names("term", &config.term)?,
            content: names("content", &config.content)?,
            campaign: names("campaign", &config.campaign)?,
            click_ids,
        })
    }
}

impl Enrichment for CampaignAttribution {
    fn name(&self) -> &str {
        "campaign_attribution"
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        let Some(query) = event.page_urlquery.as_deref() else {
            return Ok(());
        };
        let medium = query_value(query, &self.medium);
        let source = query_value(query, &self.source);
        let term = query_value(query, &self.term);
        let content = query_value(query, &self.content);
        let campaign = query_value(query, &self.campaign);
        let click = url::form_urlencoded::parse(query.as_bytes()).find_map(|(key, value)| {
            self.click_ids
                .iter()
                .find(|(param, _)| *param == key && !value.is_empty())
                .map(|(_, network)| (value.into_owned(), network.clone()))
        });
        event.mkt_medium = medium;
        event.mkt_source = source;
        event.mkt_term = term;
        event.mkt_content = content;
        event.mkt_campaign = campaign;
        if let Some((click_id, network)) = click {
            event.mkt_clickid = Some(click_id);
            event.mkt_network = Some(network);
        }
        Ok(())
    }
}
