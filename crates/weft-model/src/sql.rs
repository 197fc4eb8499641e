//! The model SQL: one file per table in `sql/`, rendered for a dialect with
//! the configured heartbeat, bot filter, channel rules and conversion rules.

use std::collections::HashSet;

use weft_core::config::{ChannelRule, ConversionRule, ModelConfig};
use weft_enrich::SchemaKey;
use weft_lake::arrow_rows::schema_column;

use crate::ModelError;
use crate::dialect::Dialect;

pub const EVENTS_THIS_RUN: &str = include_str!("../sql/events_this_run.sql");
pub const USER_MAPPING: &str = include_str!("../sql/user_mapping.sql");
pub const PAGE_VIEW_FACTS: &str = include_str!("../sql/page_view_facts.sql");
pub const PAGE_VIEWS: &str = include_str!("../sql/page_views.sql");
pub const SESSIONS: &str = include_str!("../sql/sessions.sql");
pub const CONVERSIONS: &str = include_str!("../sql/conversions.sql");
pub const USERS: &str = include_str!("../sql/users.sql");

/// The page view events, with every column of events_this_run: the rows page_views
/// takes its page, referer, marketing, device and geo columns from.
pub const PAGE_VIEW_EVENTS: &str = "SELECT * FROM events_this_run WHERE event_name = 'page_view'\n";

/// The columns of events_this_run read only from page_view_events: a full build
/// keeps them for page view events alone, so every other statement must do
/// without them (the bucketed rebuild in the tests fails if one does not).
#[rustfmt::skip]
pub const PAGE_VIEW_COLUMNS: &[&str] = &[
    "page_title", "page_url", "page_urlscheme", "page_urlhost", "page_urlpath",
    "page_urlquery", "page_urlfragment",
    "page_referrer", "refr_urlscheme", "refr_urlhost", "refr_urlpath", "refr_urlquery",
    "refr_urlfragment", "refr_medium", "refr_source", "refr_term",
    "mkt_medium", "mkt_source", "mkt_term", "mkt_content", "mkt_campaign", "mkt_clickid",
    "mkt_network",
    "geo_country", "geo_region", "geo_region_name", "geo_city", "geo_zipcode",
    "geo_latitude", "geo_longitude", "geo_timezone",
    "user_ipaddress", "useragent", "br_family", "br_version", "br_lang", "br_colordepth",
    "br_renderengine", "os_family", "os_timezone", "dvce_type", "dvce_ismobile",
];

/// The web_page entity's column, where page views get their id.
const WEB_PAGE_COLUMN: &str = "contexts_com_snowplowanalytics_snowplow_web_page_1";

/// The model SQL for one dialect, over an `atomic.events` with these columns.
#[derive(Debug)]
pub struct ModelSql {
    dialect: Dialect,
    heartbeat: u32,
    min_visit_length: u32,
    exclude_bots: bool,
    channel_case: String,
    rules: Vec<Rule>,
    web_page_id: String,
}

/// A conversion rule, checked, with the event column it reads.
#[derive(Debug)]
struct Rule {
    rule: ConversionRule,
    /// The self-describing event's column, when the rule reads fields of it
    /// and the events table has it.
    column: Option<String>,
}

impl ModelSql {
    /// Checks the config and renders its parts; `columns` are those of
    /// `atomic.events` (`None`: assume every column the models may read exists).
    pub fn new(
        config: &ModelConfig,
        dialect: Dialect,
        columns: Option<&HashSet<String>>,
    ) -> Result<Self, ModelError> {
        if config.heartbeat_secs == 0 {
            return Err(ModelError::Config(
                "model.heartbeat_secs must be at least 1".into(),
            ));
        }
        let has = |column: &str| columns.is_none_or(|columns| columns.contains(column));
        let rules = config
            .conversions
            .iter()
            .enumerate()
            .map(|(index, rule)| check_rule(index, rule, &has))
            .collect::<Result<_, _>>()?;
        let web_page_id = if has(WEB_PAGE_COLUMN) {
            dialect.call(
                "json_str",
                &[WEB_PAGE_COLUMN.into(), "0".into(), "'id'".into()],
            )?
        } else {
            "CAST(NULL AS STRING)".into()
        };
        Ok(Self {
            dialect,
            heartbeat: config.heartbeat_secs,
            min_visit_length: config.min_visit_length_secs,
            exclude_bots: config.exclude_bots,
            channel_case: channel_case(&config.channels, dialect, "en.")?,
            rules,
            web_page_id,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Every event the model may use (scoped to a run by the caller), bots left out.
    pub fn events_this_run(&self) -> Result<String, ModelError> {
        let mut rule_columns = String::new();
        let mut seen = HashSet::new();
        for column in self.rules.iter().filter_map(|r| r.column.as_deref()) {
            if seen.insert(column) {
                rule_columns.push_str(", ");
                rule_columns.push_str(column);
            }
        }
        let bots = if self.exclude_bots {
            "AND coalesce(dvce_type, '') <> 'bot'"
        } else {
            ""
        };
        self.render(
            EVENTS_THIS_RUN,
            &[
                ("web_page_id", &self.web_page_id),
                ("rule_columns", &rule_columns),
                ("bots", bots),
            ],
        )
    }

    pub fn user_mapping(&self) -> Result<String, ModelError> {
        self.render(USER_MAPPING, &[])
    }

    /// What page_views adds to each page view's event, on few columns; page_views reads it.
    pub fn page_view_facts(&self) -> Result<String, ModelError> {
        self.render(
            PAGE_VIEW_FACTS,
            &[
                ("heartbeat", &self.heartbeat.to_string()),
                ("min_visit_length", &self.min_visit_length.to_string()),
            ],
        )
    }

    pub fn page_view_events(&self) -> String {
        PAGE_VIEW_EVENTS.to_owned()
    }

    pub fn page_views(&self) -> Result<String, ModelError> {
        self.render(PAGE_VIEWS, &[])
    }

    pub fn sessions(&self) -> Result<String, ModelError> {
        self.render(SESSIONS, &[("channel", &self.channel_case)])
    }

    pub fn conversions(&self) -> Result<String, ModelError> {
        let mut rules = String::new();
        for rule in &self.rules {
            rules.push_str(&self.rule_select(rule)?);
        }
        self.render(CONVERSIONS, &[("rules", &rules)])
    }

    pub fn users(&self) -> Result<String, ModelError> {
        self.render(USERS, &[])
    }

    /// A full build as named queries in the order they run; each reads the
    /// ones before it by name, and the first reads `atomic.events`.
    pub fn statements(&self) -> Result<Vec<(&'static str, String)>, ModelError> {
        Ok(vec![
            ("events_this_run", self.events_this_run()?),
            (
                "user_ids",
                "SELECT domain_userid, user_id, derived_tstamp FROM events_this_run\n\
                 WHERE user_id IS NOT NULL AND domain_userid IS NOT NULL\n"
                    .to_owned(),
            ),
            ("user_mapping", self.user_mapping()?),
            ("page_view_events", self.page_view_events()),
            ("page_view_facts", self.page_view_facts()?),
            ("page_views_this_run", self.page_views()?),
            ("sessions_this_run", self.sessions()?),
            ("conversions_this_run", self.conversions()?),
            (
                "user_sessions",
                "SELECT * FROM sessions_this_run\n".to_owned(),
            ),
            ("users_this_run", self.users()?),
        ])
    }

    /// The full build as one script of temporary views, for another engine
    /// to run over its own `atomic.events`.
    pub fn script(&self) -> Result<String, ModelError> {
        let mut out = format!(
            "-- weft web model, full build, {} dialect: reads atomic.events; each view is one table\n\n",
            self.dialect
        );
        for (name, sql) in self.statements()? {
            out.push_str(&format!(
                "CREATE OR REPLACE TEMPORARY VIEW {name} AS\n{};\n\n",
                sql.trim_end()
            ));
        }
        Ok(out)
    }

    fn rule_select(&self, rule: &Rule) -> Result<String, ModelError> {
        let d = self.dialect;
        let field = |name: &Option<String>| -> Result<Option<String>, ModelError> {
            match (name, &rule.column) {
                (Some(name), Some(column)) => Ok(Some(
                    d.call("json_str", &[column.clone(), d.literal(name)])?,
                )),
                _ => Ok(None),
            }
        };
        let value = field(&rule.rule.value_field)?.map_or_else(
            || "CAST(NULL AS DOUBLE)".to_owned(),
            |text| format!("CAST({text} AS DOUBLE)"),
        );
        let currency =
            field(&rule.rule.currency_field)?.unwrap_or_else(|| "CAST(NULL AS STRING)".to_owned());
        let mut filter = format!("event_name = {}", d.literal(&rule.rule.event_name));
        if let Some(vendor) = &rule.rule.vendor {
            filter.push_str(&format!(" AND event_vendor = {}", d.literal(vendor)));
        }
        Ok(format!(
            "\n  UNION ALL\n  SELECT event_id, {name} AS conversion_name, CAST(NULL AS STRING) AS order_id,\n    domain_sessionid, domain_userid, user_id, derived_tstamp,\n    {value} AS value, {currency} AS currency, NULL AS categories\n  FROM events_this_run\n  WHERE {filter}",
            name = d.literal(&rule.rule.name),
        ))
    }

    /// Expands the template's `@calls`, then fills its `{{placeholders}}` with
    /// parts already written in the dialect.
    fn render(&self, template: &str, parts: &[(&str, &str)]) -> Result<String, ModelError> {
        let mut sql = self.dialect.expand(template)?;
        for (name, text) in parts {
            sql = sql.replace(&format!("{{{{{name}}}}}"), text);
        }
        if let Some(at) = sql.find("{{") {
            let end = sql[at..].find("}}").map_or(sql.len(), |e| at + e + 2);
            return Err(ModelError::Sql(format!(
                "unfilled placeholder {}",
                &sql[at..end]
            )));
        }
        Ok(sql)
    }
}

fn check_rule(
    index: usize,
    rule: &ConversionRule,
    has: &dyn Fn(&str) -> bool,
) -> Result<Rule, ModelError> {
    let key = |field: &str| format!("model.conversions[{index}].{field}");
    if rule.name.trim().is_empty() {
        return Err(ModelError::Config(format!("{} is empty", key("name"))));
    }
    if rule.event_name.trim().is_empty() {
        return Err(ModelError::Config(format!(
            "{} is empty",
            key("event_name")
        )));
    }
    for (field, value) in [
        ("value_field", &rule.value_field),
        ("currency_field", &rule.currency_field),
    ] {
        if let Some(value) = value {
            if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ModelError::Config(format!(
                    "{} = {value:?}: a top-level field name of letters, digits and _",
                    key(field)
                )));
            }
            if rule.schema.is_none() {
                return Err(ModelError::Config(format!(
                    "{} needs {} (the event's iglu: schema URI)",
                    key(field),
                    key("schema")
                )));
            }
        }
    }
    let column = match &rule.schema {
        Some(uri) => {
            let schema: SchemaKey = uri.parse().map_err(|error| {
                ModelError::Config(format!("{} = {uri:?}: {error}", key("schema")))
            })?;
            // an event the table has never seen has no column yet: no values
            Some(schema_column("unstruct_event", &schema)).filter(|c| has(c))
        }
        None => None,
    };
    Ok(Rule {
        rule: rule.clone(),
        column,
    })
}

/// The channel rules as one CASE expression over the entry page view (`prefix`).
fn channel_case(
    rules: &[ChannelRule],
    dialect: Dialect,
    prefix: &str,
) -> Result<String, ModelError> {
    let mut case = String::from("CASE");
    for (index, rule) in rules.iter().enumerate() {
        if rule.name.trim().is_empty() {
            return Err(ModelError::Config(format!(
                "model.channels[{index}].name is empty"
            )));
        }
        let mut conditions = Vec::new();
        for (field, values) in [
            ("mkt_medium", &rule.mkt_medium),
            ("mkt_source", &rule.mkt_source),
            ("refr_medium", &rule.refr_medium),
            ("refr_source", &rule.refr_source),
        ] {
            if values.is_empty() {
                continue;
            }
            let column = format!("{prefix}{field}");
            let alternatives: Vec<String> = values
                .iter()
                .map(|value| {
                    let value = value.to_lowercase();
                    if value == "(none)" {
                        format!("coalesce({column}, '') = ''")
                    } else if let Some(start) = value.strip_suffix('*') {
                        format!(
                            "substr(lower({column}), 1, {}) = {}",
                            start.chars().count(),
                            dialect.literal(start)
                        )
                    } else {
                        format!("lower({column}) = {}", dialect.literal(&value))
                    }
                })
                .collect();
            conditions.push(format!("({})", alternatives.join(" OR ")));
        }
        let condition = if conditions.is_empty() {
            "TRUE".to_owned()
        } else {
            conditions.join(" AND ")
        };
        case.push_str(&format!(
            "\n    WHEN {condition} THEN {}",
            dialect.literal(&rule.name)
        ));
    }
    case.push_str("\n    ELSE 'Unassigned'\n  END");
    Ok(case)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> HashSet<String> {
        [WEB_PAGE_COLUMN, "unstruct_event_com_acme_checkout_1"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_table_renders_in_every_dialect() {
        let mut config = ModelConfig::default();
        config.conversions.push(ConversionRule {
            name: "checkout".into(),
            event_name: "checkout".into(),
            vendor: Some("com.acme".into()),
            schema: Some("iglu:com.acme/checkout/jsonschema/1-0-0".into()),
            value_field: Some("total".into()),
            currency_field: Some("currency".into()),
        });
        for dialect in Dialect::ALL {
            let sql = ModelSql::new(&config, dialect, Some(&columns())).unwrap();
            for text in [
                sql.events_this_run().unwrap(),
                sql.page_view_facts().unwrap(),
                sql.page_views().unwrap(),
                sql.sessions().unwrap(),
                sql.conversions().unwrap(),
                sql.users().unwrap(),
                sql.user_mapping().unwrap(),
            ] {
                assert!(!text.contains('@') && !text.contains("{{"), "{text}");
            }
            let conversions = sql.conversions().unwrap();
            assert!(
                conversions.contains("'checkout' AS conversion_name"),
                "{conversions}"
            );
            assert!(
                sql.events_this_run()
                    .unwrap()
                    .contains("unstruct_event_com_acme_checkout_1")
            );
        }
    }

    #[test]
    fn literals_from_config_are_quoted() {
        let mut config = ModelConfig::default();
        config.channels.insert(
            0,
            ChannelRule {
                name: "It's \\ odd".into(),
                mkt_source: vec!["o'brien".into(), "paid*".into(), "(none)".into()],
                ..ChannelRule::default()
            },
        );
        let spark = ModelSql::new(&config, Dialect::Spark, Some(&columns())).unwrap();
        let sessions = spark.sessions().unwrap();
        assert!(sessions.contains(r"THEN 'It\'s \\ odd'"), "{sessions}");
        assert!(sessions.contains(r"lower(en.mkt_source) = 'o\'brien'"));
        let duckdb = ModelSql::new(&config, Dialect::DuckDb, Some(&columns())).unwrap();
        assert!(duckdb.sessions().unwrap().contains(r"THEN 'It''s \ odd'"));
        assert!(sessions.contains("substr(lower(en.mkt_source), 1, 4) = 'paid'"));
        assert!(sessions.contains("coalesce(en.mkt_source, '') = ''"));
    }

    #[test]
    fn bad_rules_are_named() {
        let mut config = ModelConfig {
            conversions: vec![ConversionRule {
                name: "x".into(),
                event_name: "checkout".into(),
                value_field: Some("total".into()),
                ..ConversionRule::default()
            }],
            ..ModelConfig::default()
        };
        let error = ModelSql::new(&config, Dialect::DataFusion, Some(&columns())).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("model.conversions[0].value_field needs"),
            "{error}"
        );
        config.conversions[0].schema = Some("iglu:nope".into());
        let error = ModelSql::new(&config, Dialect::DataFusion, Some(&columns())).unwrap_err();
        assert!(
            error.to_string().contains("model.conversions[0].schema"),
            "{error}"
        );
        config.conversions[0].schema = Some("iglu:com.acme/checkout/jsonschema/1-0-0".into());
        config.conversions[0].value_field = Some("total') OR (1=1".into());
        assert!(ModelSql::new(&config, Dialect::DataFusion, Some(&columns())).is_err());
        let error = ModelSql::new(
            &ModelConfig {
                heartbeat_secs: 0,
                ..ModelConfig::default()
            },
            Dialect::Spark,
            None,
        )
        .unwrap_err();
        assert!(
            error.to_string().contains("model.heartbeat_secs"),
            "{error}"
        );
    }
}
