//! `weft.toml`: one file, every key with a laptop-friendly default, every key
//! overridable by an environment variable (`WEFT_` + the key path in capitals,
//! nested keys joined by `__`, e.g. `WEFT_SERVER__ADDR`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// weft's own progress at info, the libraries' only when something is wrong.
pub const DEFAULT_LOG_FILTER: &str = "warn,weft=info,weft_collect=info,weft_enrich=info,weft_lake=info,weft_model=info,buoyant_kernel=off";

/// A config that could not be read: the message names the file and the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where every table, log and state file lives; nothing is written outside it.
    pub data_dir: PathBuf,
    /// Log filter in `tracing` syntax, e.g. `info` or `warn,weft_collect=debug`.
    pub log: String,
    pub server: ServerConfig,
    pub collector: CollectorConfig,
    pub raw_log: RawLogConfig,
    pub iglu: IgluConfig,
    pub loader: LoaderConfig,
    pub maintenance: MaintenanceConfig,
    pub enrichments: EnrichmentsConfig,
    pub model: ModelConfig,
    pub identity: IdentityConfig,
    pub ml: MlConfig,
    pub activation: ActivationConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./weft-data"),
            log: DEFAULT_LOG_FILTER.to_owned(),
            server: ServerConfig::default(),
            collector: CollectorConfig::default(),
            raw_log: RawLogConfig::default(),
            iglu: IgluConfig::default(),
            loader: LoaderConfig::default(),
            maintenance: MaintenanceConfig::default(),
            enrichments: EnrichmentsConfig::default(),
            model: ModelConfig::default(),
            identity: IdentityConfig::default(),
            ml: MlConfig::default(),
            activation: ActivationConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// Connections held open at once; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request head (request line plus headers) read before answering 431.
    pub max_header_bytes: usize,
    /// A client that has not sent its whole request head by then is disconnected.
    pub header_read_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 10_000,
            max_header_bytes: 64 * 1024,
            header_read_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// A body larger than this is kept whole but flagged as a size violation,
    /// and answered 200 so that the tracker does not send it again.
    pub max_payload_bytes: usize,
    /// A body larger than this is refused with 413 without being read.
    pub max_body_bytes: usize,
    /// Peers whose `X-Forwarded-For` is believed (load balancers, proxies).
    pub trusted_proxies: Vec<IpNet>,
    /// Extra paths mapped onto the standard ones, e.g.
    /// `"/com.acme/track" = "/com.snowplowanalytics.snowplow/tp2"`.
    pub paths: BTreeMap<String, String>,
    pub cookie: CookieConfig,
    pub redirect: RedirectConfig,
    pub cors: CorsConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_body_bytes: 2 * 1024 * 1024,
            trusted_proxies: Vec::new(),
            paths: BTreeMap::new(),
            cookie: CookieConfig::default(),
            redirect: RedirectConfig::default(),
            cors: CorsConfig::default(),
        }
    }
}

impl CollectorConfig {
    /// Whether `peer` is a proxy whose `X-Forwarded-For` header is believed.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    pub enabled: bool,
    pub name: String,
    /// `Domain` attribute of the cookie; none means the collector's own host.
    pub domain: Option<String>,
    pub expiration_days: u32,
    pub secure: bool,
    pub http_only: bool,
    /// `None`, `Lax` or `Strict`.
    pub same_site: String,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "sp".to_owned(),
            domain: None,
            expiration_days: 365,
            secure: true,
            http_only: true,
            same_site: "None".to_owned(),
        }
    }
}

/// Compaction and vacuum of the lake's tables.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// While `weft serve` runs, tables are compacted and vacuumed this often (0: never).
    pub interval_secs: u64,
    /// Compaction writes files up to this size.
    pub target_file_mb: u64,
    /// Vacuum deletes files that no table version of the last this many hours needs.
    pub vacuum_retention_hours: u64,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            interval_secs: 3600,
            target_file_mb: 128,
            vacuum_retention_hours: 168,
        }
    }
}

/// Web modelling: `derived.page_views`, `sessions`, `users`, `conversions`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Seconds between page pings, the trackers' `heartbeatDelay`.
    pub heartbeat_secs: u32,
    /// Seconds a page view with pings counts before its first ping, the trackers' `minimumVisitLength`.
    pub min_visit_length_secs: u32,
    /// Leave out events whose user agent is a bot (`dvce_type = 'bot'`).
    pub exclude_bots: bool,
    /// A session's `default_channel_group`: the first rule that matches its entry page.
    pub channels: Vec<ChannelRule>,
    /// Events that count as conversions besides purchase transactions.
    pub conversions: Vec<ConversionRule>,
    /// MiB of events a full build holds in memory, split by session, before
    /// it writes the rest to `data_dir/tmp` (unset: half the machine's memory).
    pub memory_mb: Option<u64>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            heartbeat_secs: 10,
            min_visit_length_secs: 5,
            exclude_bots: true,
            channels: ChannelRule::defaults(),
            conversions: vec![ConversionRule {
                name: "sign_up".into(),
                event_name: "sign_up".into(),
                ..ConversionRule::default()
            }],
            memory_mb: None,
        }
    }
}

/// Identity resolution (`weft run identity`): customer records from the
/// sources, web identities from the lake, linked into `identity.person_map`
/// and `profiles.customers`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Pairs at or above this match probability are linked.
    pub threshold: f64,
    /// Phones without a country code are read in this country (ISO 3166 alpha-2).
    pub default_region: String,
    /// Read 03/04/1990 as March 4th.
    pub month_first: bool,
    /// While `weft serve` runs: seconds between identity runs after the model
    /// changed (0: only `weft run identity`).
    pub interval_secs: u64,
    /// Customer record sources, most trusted first (survivorship's `most_trusted`).
    pub sources: Vec<IdentitySourceConfig>,
    pub web: WebIdentityConfig,
    /// Profile attribute → how its value is chosen among a customer's records:
    /// `most_trusted` (source order, then most recent), `most_recent`, `most_frequent`.
    pub survivorship: BTreeMap<String, String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            threshold: 0.9,
            default_region: "GB".to_owned(),
            month_first: false,
            interval_secs: 300,
            sources: Vec::new(),
            web: WebIdentityConfig::default(),
            survivorship: [
                ("first_name", "most_trusted"),
                ("last_name", "most_trusted"),
                ("email", "most_recent"),
                ("phone", "most_recent"),
                ("dob", "most_frequent"),
                ("address", "most_recent"),
            ]
            .into_iter()
            .map(|(a, r)| (a.to_owned(), r.to_owned()))
            .collect(),
        }
    }
}

/// One source of customer records.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct IdentitySourceConfig {
    /// The source's name in `identity.person_map` (`crm`, `orders`, …).
    pub name: String,
    /// A CSV or Parquet file (by its extension) …
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// … or a table of the lake, `schema.table`; with `postgres`, a table
    /// (`table` or `schema.table`) of that database instead.
    #[serde(default)]
    pub table: Option<String>,
    /// A PostgreSQL database holding `table`: `postgres://user:password@host:port/database`
    /// (a secret: never printed).
    #[serde(default)]
    pub postgres: Option<String>,
    /// The column holding each record's id.
    pub id_column: String,
    /// Column → identity field (first_name, last_name, full_name, email, phone, dob,
    /// street_number, address, city, postcode, state, country, national_id, user_id).
    pub map: BTreeMap<String, String>,
    /// The column with when the record was last true (for `most_recent`).
    #[serde(default)]
    pub updated_at: Option<String>,
    /// The column with the record's marketing consent (true/false, yes/no, 1/0).
    #[serde(default)]
    pub consent: Option<String>,
}

/// Web identities: each cookie seen with a user id (`derived.user_mapping`), an
/// email or a phone is a record of the source `web`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebIdentityConfig {
    pub enabled: bool,
    /// `COLUMN.KEY`: a self-describing column of `atomic.events` and the key of
    /// its data that holds an email, e.g. `contexts_com_acme_user_1.email`.
    pub emails: Vec<String>,
    /// `COLUMN.KEY` of a self-describing column holding a phone number,
    /// e.g. `contexts_com_acme_user_1.phone`.
    pub phones: Vec<String>,
}

impl Default for WebIdentityConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            emails: Vec::new(),
            phones: Vec::new(),
        }
    }
}

/// The propensity model (`weft run ml`): features of each customer as of a
/// cut-off, whether they converted in the window after it, a model trained on
/// earlier cut-offs and validated on the latest complete one, and scores.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MlConfig {
    pub enabled: bool,
    /// The registered model's name.
    pub name: String,
    /// Days after a cut-off in which a conversion counts.
    pub prediction_days: u32,
    /// Earlier cut-offs whose rows are stacked for training, `step_days` apart.
    pub training_cutoffs: u32,
    pub step_days: u32,
    /// A SQL file replacing the built-in feature spec (see the README).
    pub features: Option<PathBuf>,
    /// Feature prefix → `COLUMN.KEY` of a self-describing event whose key
    /// names a product category: one count per category, e.g.
    /// `product_views = "unstruct_event_com_acme_product_view_1.category"`.
    pub category_events: BTreeMap<String, String>,
    /// Feature name → `COLUMN.KEY` of a boolean that any event before the
    /// cut-off may set, e.g. `consent_marketing = "unstruct_event_com_acme_sign_up_1.consent_marketing"`.
    pub flags: BTreeMap<String, String>,
    /// Categories with their own model (empty: those bought in the training windows).
    pub categories: Vec<String>,
    /// A category needs this many converting training rows for a model of its own.
    pub min_category_positives: usize,
    /// `both`, `gbdt` or `logistic`.
    pub learners: String,
    /// Seconds for trying settings beyond each learner's first, per target.
    pub time_budget_secs: u64,
    pub seed: u64,
    /// Days after which the production model is retrained.
    pub retrain_days: u32,
    /// While `weft serve` runs: seconds between propensity runs (training
    /// when due, then scoring) after new events were modelled (0: only `weft run ml`).
    pub interval_secs: u64,
    /// Which new versions are promoted without `weft ml promote`: `never`,
    /// `first` (only when there is no production version) or `better` (also
    /// when its held-out AUC beats the production version's).
    pub promote: String,
}

impl Default for MlConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            name: "propensity".to_owned(),
            prediction_days: 14,
            training_cutoffs: 3,
            step_days: 7,
            features: None,
            category_events: BTreeMap::new(),
            flags: BTreeMap::new(),
            categories: Vec::new(),
            min_category_positives: 20,
            learners: "both".to_owned(),
            time_budget_secs: 60,
            seed: 42,
            retrain_days: 7,
            interval_secs: 3600,
            promote: "first".to_owned(),
        }
    }
}

/// One rule of the channel grouping. Each field lists the values it accepts
/// (compared in lower case; `(none)` for a missing value; a trailing `*`
/// matches a prefix); an empty field accepts anything.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelRule {
    pub name: String,
    pub mkt_medium: Vec<String>,
    pub mkt_source: Vec<String>,
    pub refr_medium: Vec<String>,
    pub refr_source: Vec<String>,
}

impl ChannelRule {
    fn new(name: &str, mkt_medium: &[&str], refr_medium: &[&str]) -> Self {
        let owned = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect();
        Self {
            name: name.to_owned(),
            mkt_medium: owned(mkt_medium),
            refr_medium: owned(refr_medium),
            ..Self::default()
        }
    }

    /// A grouping in the spirit of Google's default channel groups.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::new(
                "Paid Search",
                &["cpc", "ppc", "paidsearch", "paid_search"],
                &[],
            ),
            Self::new(
                "Paid Social",
                &["paid_social", "paidsocial", "social_paid", "paid-social"],
                &[],
            ),
            Self::new("Display", &["display", "banner", "cpm"], &[]),
            Self::new("Email", &["email", "e-mail", "e_mail", "newsletter"], &[]),
            Self::new("Affiliates", &["affiliate", "affiliates"], &[]),
            Self::new("Organic Search", &["(none)"], &["search"]),
            Self::new("Organic Social", &["(none)"], &["social"]),
            Self::new("Email", &["(none)"], &["email"]),
            Self::new("Referral", &["(none)"], &["unknown"]),
            Self::new("Direct", &["(none)"], &["(none)", "internal"]),
            Self::new("Unassigned", &[], &[]),
        ]
    }
}

/// An event that counts as a conversion: every event named `event_name` (and
/// of `vendor`, when given). For a self-describing event, `value_field` and
/// `currency_field` name top-level fields of its data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ConversionRule {
    pub name: String,
    pub event_name: String,
    pub vendor: Option<String>,
    /// The Iglu schema of the event's data (`iglu:com.acme/checkout/jsonschema/1-0-0`),
    /// needed for `value_field` and `currency_field`.
    pub schema: Option<String>,
    pub value_field: Option<String>,
    pub currency_field: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct RedirectConfig {
    /// `/r/tp2?u=…` answers 302 only when enabled (it is an open redirect otherwise).
    pub enabled: bool,
    /// Hosts a redirect may lead to (a host matches itself and its subdomains);
    /// empty allows any host.
    pub allowed_domains: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// `Access-Control-Max-Age` on preflight answers, so browsers preflight once an hour, not every few seconds.
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self { max_age_secs: 3600 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RawLogConfig {
    /// A segment file is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// fsync before acknowledging a request; turning it off trades durability for speed.
    pub fsync: bool,
}

impl Default for RawLogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 64 * 1024 * 1024,
            fsync: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoaderConfig {
    /// Raw log records per micro-batch: each batch is at most one commit per table.
    pub batch_records: usize,
    /// While `weft serve` runs, new records are loaded at least this often.
    pub interval_secs: u64,
    /// An event is dropped as a resend when the table has its id and fingerprint
    /// among events dated up to this many days before the newest.
    pub dedup_window_days: u32,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_records: 10_000,
            interval_secs: 5,
            dedup_window_days: 3,
        }
    }
}

/// The enrichments run on every event between validation and loading, each
/// with its own section (`[enrichments.referer]`, …). An unknown section is an error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EnrichmentsConfig {
    pub event_fingerprint: EventFingerprintConfig,
    pub user_agent: UserAgentConfig,
    pub campaign_attribution: CampaignAttributionConfig,
    pub referer: RefererConfig,
    pub ip_lookups: IpLookupsConfig,
    pub pii_pseudonymisation: PiiPseudonymisationConfig,
    pub ip_anonymisation: IpAnonymisationConfig,
    /// Joins against reference data (`[[enrichments.lookups]]`), each attaching
    /// the matching row as a derived context.
    pub lookups: Vec<LookupConfig>,
}

/// Snowplow's event fingerprint: MD5 of the tracker parameters except those
/// listed, which a resend may change. The loader drops an event whose id and
/// fingerprint it already has; disabled, events are deduplicated by nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EventFingerprintConfig {
    pub enabled: bool,
    pub excluded_parameters: Vec<String>,
}

impl Default for EventFingerprintConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            excluded_parameters: ["cv", "eid", "nuid", "stm"].map(String::from).to_vec(),
        }
    }
}

/// Browser, OS and device class (bots included) from the user agent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UserAgentConfig {
    pub enabled: bool,
}

impl Default for UserAgentConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CampaignAttributionConfig {
    pub enabled: bool,
    /// Page URL query parameters read for each marketing field, first found wins.
    pub medium: Vec<String>,
    pub source: Vec<String>,
    pub term: Vec<String>,
    pub content: Vec<String>,
    pub campaign: Vec<String>,
    /// Click id parameter → the ad network it belongs to (`mkt_clickid`, `mkt_network`).
    pub click_ids: BTreeMap<String, String>,
}

impl Default for CampaignAttributionConfig {
    fn default() -> Self {
        let names = |name: &str| vec![name.to_owned()];
        Self {
            enabled: true,
            medium: names("utm_medium"),
            source: names("utm_source"),
            term: names("utm_term"),
            content: names("utm_content"),
            campaign: names("utm_campaign"),
            click_ids: [
                ("gclid", "Google"),
                ("gbraid", "Google"),
                ("wbraid", "Google"),
                ("dclid", "DoubleClick"),
                ("msclkid", "Microsoft"),
                ("fbclid", "Facebook"),
                ("ttclid", "TikTok"),
                ("twclid", "Twitter"),
                ("li_fat_id", "LinkedIn"),
                ("epik", "Pinterest"),
                ("ScCid", "Snapchat"),
            ]
            .into_iter()
            .map(|(param, network)| (param.to_owned(), network.to_owned()))
            .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RefererConfig {
    pub enabled: bool,
    /// Hosts (and their subdomains) whose referers are `internal`, besides the page's own host.
    pub internal_domains: Vec<String>,
}

impl Default for RefererConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            internal_domains: Vec::new(),
        }
    }
}

/// `geo_*` fields from a MaxMind-format database. Without one (not set, or
/// not found) the enrichment is skipped with one warning.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IpLookupsConfig {
    pub enabled: bool,
    /// A GeoIP2 / GeoLite2 City (or Country) `.mmdb` file.
    pub database: Option<PathBuf>,
}

impl Default for IpLookupsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            database: None,
        }
    }
}

/// Replaces chosen values by their salted SHA-256, so events can still be
/// joined on them but no longer read. Off until fields are chosen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PiiPseudonymisationConfig {
    pub enabled: bool,
    /// Atomic fields, e.g. `user_id`, `network_userid`.
    pub fields: Vec<String>,
    /// Values inside self-describing events and contexts.
    pub json: Vec<JsonField>,
    /// The salt; prefer `salt_env`, so it stays out of files.
    pub salt: String,
    /// An environment variable holding the salt (used when `salt` is empty).
    pub salt_env: String,
}

/// A join of one event value against a CSV file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// Names the lookup in logs and bad rows.
    pub name: String,
    /// A CSV file with a header row …
    #[serde(default)]
    pub csv: Option<PathBuf>,
    /// … or a table of the lake, `schema.table` (read when weft starts).
    #[serde(default)]
    pub table: Option<String>,
    /// The column matched against the event's value.
    pub key_column: String,
    /// The event's value: an atomic field (`ti_sku`, `se_label`, …) …
    #[serde(default)]
    pub atomic: Option<String>,
    /// … or a value inside a self-describing event or context.
    #[serde(default)]
    pub json: Option<JsonField>,
    /// The Iglu URI of the context the matching row is attached as.
    pub schema: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JsonField {
    /// `unstruct_event` or `contexts`.
    pub field: String,
    /// The schemas it applies to: `iglu:com.acme/user/jsonschema/1-*-*`.
    pub schema: String,
    /// Where the value is inside the data: `$.email`, `$.customer.phone`, `$.items[*].email`.
    pub path: String,
}

/// Masks the end of `user_ipaddress` with `x`, as Snowplow's IP anonymisation does;
/// runs after every enrichment that needs the whole address, so it is never stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IpAnonymisationConfig {
    pub enabled: bool,
    /// IPv4 octets masked, from the end (1–4).
    pub ipv4_octets: u8,
    /// IPv6 segments masked, from the end (1–8).
    pub ipv6_segments: u8,
}

impl Default for IpAnonymisationConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ipv4_octets: 1,
            ipv6_segments: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct IgluConfig {
    /// Folders laid out `vendor/name/format/version`, searched after the schemas weft ships.
    /// In the environment: a comma-separated list.
    #[serde(deserialize_with = "list_or_comma_separated")]
    pub registries: Vec<PathBuf>,
}

fn describe(error: figment::Error) -> String {
    let key = error.path.join(".").to_lowercase();
    let source = match error.metadata.as_ref() {
        Some(metadata) => match &metadata.source {
            Some(figment::Source::File(path)) => format!(" in {}", path.display()),
            _ if metadata.name.contains("environment") && !key.is_empty() => format!(
                " in environment variable WEFT_{}",
                key.to_uppercase().replace('.', "__")
            ),
            _ => String::new(),
        },
        None => String::new(),
    };
    if key.is_empty() {
        format!("invalid config{source}: {}", error.kind)
    } else {
        format!("invalid config key {key}{source}: {}", error.kind)
    }
}

fn list_or_comma_separated<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrString {
        List(Vec<PathBuf>),
        String(String),
    }
    Ok(match ListOrString::deserialize(d)? {
        ListOrString::List(list) => list,
        ListOrString::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(PathBuf::from)
            .collect(),
    })
}

/// Activation: where syncs deliver. Destinations are defined here, by the
/// people who hold their credentials, and named by syncs; a secret can come
/// from the environment (`WEFT_ACTIVATION__DESTINATIONS__CRM__API_KEY`), and
/// never appears in a sync's spec, a log or a table.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ActivationConfig {
    /// Destination name → its settings (`type` = webhook, files, postgres,
    /// braze, meta or salesforce, and that type's keys; see the README).
    pub destinations: BTreeMap<String, serde_json::Value>,
}

impl Config {
    /// Defaults, then the TOML file (when given, it must exist; otherwise `./weft.toml`
    /// if present), then `WEFT_*` environment variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            None => {
                if Path::new("weft.toml").is_file() {
                    figment = figment.merge(Toml::file_exact("weft.toml"));
                }
            }
        }
        figment = figment.merge(Env::prefixed("WEFT_").split("__"));
        figment.extract().map_err(|error| {
            // figment reports one error per problem; one line each, naming key and source
            ConfigError(
                error
                    .into_iter()
                    .map(describe)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })
    }

    /// Where the collector's raw payload log lives.
    pub fn raw_log_dir(&self) -> PathBuf {
        self.data_dir.join("raw")
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's test jail returns its own error type
mod tests {
    use super::*;

    #[test]
    fn defaults_work_without_a_file() {
        figment::Jail::expect_with(|_jail| {
            let config = Config::load(None).unwrap();
            assert_eq!(config, Config::default());
            assert_eq!(config.server.addr.to_string(), "127.0.0.1:8080");
            assert_eq!(config.data_dir, PathBuf::from("./weft-data"));
            Ok(())
        });
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "weft.toml",
                r#"
                data_dir = "/srv/weft"
                [server]
                addr = "0.0.0.0:9000"
                [collector]
                trusted_proxies = ["10.0.0.0/8"]
                [collector.paths]
                "/com.acme/track" = "/com.snowplowanalytics.snowplow/tp2"
                "#,
            )?;
            jail.set_env("WEFT_SERVER__ADDR", "127.0.0.1:9100");
            jail.set_env("WEFT_COLLECTOR__COOKIE__NAME", "nuid");
            jail.set_env("WEFT_IGLU__REGISTRIES", "/a, /b");
            let config = Config::load(Some(Path::new("weft.toml"))).unwrap();
            assert_eq!(config.data_dir, PathBuf::from("/srv/weft"));
            assert_eq!(config.server.addr.to_string(), "127.0.0.1:9100");
            assert_eq!(config.collector.cookie.name, "nuid");
            assert_eq!(
                config.iglu.registries,
                vec![PathBuf::from("/a"), PathBuf::from("/b")]
            );
            assert!(
                config
                    .collector
                    .is_trusted_proxy("10.1.2.3".parse().unwrap())
            );
            assert!(
                !config
                    .collector
                    .is_trusted_proxy("192.0.2.1".parse().unwrap())
            );
            assert_eq!(config.collector.paths.len(), 1);
            Ok(())
        });
    }

    #[test]
    fn unknown_key_and_bad_value_name_the_key_and_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("weft.toml", "[server]\nadress = \"x\"\n")?;
            let error = Config::load(Some(Path::new("weft.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("adress"), "{error}");
            assert!(error.contains("weft.toml"), "{error}");

            jail.create_file("weft.toml", "[server]\naddr = \"not an address\"\n")?;
            let error = Config::load(Some(Path::new("weft.toml")))
                .unwrap_err()
                .to_string();
            assert!(error.contains("server.addr"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn missing_named_file_is_an_error() {
        let error = Config::load(Some(Path::new("/nonexistent/weft.toml"))).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/weft.toml"));
    }
}
