//! Tracker parameters → the canonical event, the way Snowplow's enrich reads
//! them: one atomic field per parameter (`se_ca` → `se_category`, `res` →
//! `dvce_screenwidth` and `dvce_screenheight`, …), URLs split into their parts,
//! self-describing JSON decoded, and the timestamps reconciled.
//!
//! A parameter that cannot be read is a tracker protocol violation: every such
//! field is reported, and the event goes to the bad rows instead of the lake.

use url::Url;
use uuid::Uuid;
use weft_collect::CollectorPayload;
use weft_collect::protocol::RawEvent;
use weft_core::Event;

use crate::fingerprint::{DEFAULT_EXCLUDED, event_fingerprint};
use crate::schema_key::SchemaKey;

/// One field of an event that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}{}", value.as_ref().map(|v| format!(" (got {v:?})")).unwrap_or_default())]
pub struct FieldFailure {
    /// The tracker parameter (or parameters) at fault.
    pub field: String,
    pub value: Option<String>,
    pub reason: String,
}

const SNOWPLOW_VENDOR: &str = "com.snowplowanalytics.snowplow";
const PLATFORMS: [&str; 8] = ["web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot"];

/// The canonical event for one raw event of `payload`, loaded at `etl_tstamp`
/// (ms since the epoch), or every field that could not be read.
pub fn canonical_event(
    payload: &CollectorPayload,
    raw: &RawEvent,
    etl_tstamp: i64,
) -> Result<Event, Vec<FieldFailure>> {
    let mut read = Reader {
        raw,
        failures: Vec::new(),
    };
    let mut event = Event {
        etl_tstamp: Some(etl_tstamp),
        collector_tstamp: Some(payload.received_at_ms),
        v_collector: Some(payload.collector.clone()),
        v_etl: Some(format!("weft-{}", weft_core::VERSION)),
        ..Event::default()
    };

    // what happened
    let kind = read.text("e");
    let standard_schema = match kind.as_deref() {
        Some("pv") => Some(("page_view", SNOWPLOW_VENDOR, "page_view")),
        Some("pp") => Some(("page_ping", SNOWPLOW_VENDOR, "page_ping")),
        Some("se") => Some(("struct", "com.google.analytics", "event")),
        Some("tr") => Some(("transaction", SNOWPLOW_VENDOR, "transaction")),
        Some("ti") => Some(("transaction_item", SNOWPLOW_VENDOR, "transaction_item")),
        Some("ue") => None,
        Some(other) => {
            read.fail("e", Some(other), "unknown event type");
            None
        }
        None => {
            read.fail("e", None, "missing: every event needs a type");
            None
        }
    };
    if let Some((name, vendor, schema_name)) = standard_schema {
        event.event = Some(name.to_owned());
        event.event_vendor = Some(vendor.to_owned());
        event.event_name = Some(schema_name.to_owned());
        event.event_format = Some("jsonschema".to_owned());
        event.event_version = Some("1-0-0".to_owned());
    }
    match raw.unstruct() {
        Ok(Some(unstruct)) => {
            if kind.as_deref() == Some("ue") {
                event.event = Some("unstruct".to_owned());
                match unstruct
                    .get("schema")
                    .and_then(|s| s.as_str())
                    .map(str::parse::<SchemaKey>)
                {
                    Some(Ok(key)) => {
                        event.event_vendor = Some(key.vendor.clone());
                        event.event_name = Some(key.name.clone());
                        event.event_format = Some(key.format.clone());
                        event.event_version = Some(key.version());
                    }
                    Some(Err(error)) => read.fail("ue_pr/ue_px", None, &error.to_string()),
                    None => read.fail("ue_pr/ue_px", None, "the event has no schema"),
                }
            }
            event.unstruct_event = Some(unstruct);
        }
        Ok(None) if kind.as_deref() == Some("ue") => {
            read.fail(
                "ue_pr/ue_px",
                None,
                "a self-describing event needs ue_pr or ue_px",
            );
        }
        Ok(None) => {}
        Err(error) => read.fail("ue_pr/ue_px", None, &error.to_string()),
    }
    match raw.contexts() {
        Ok(contexts) => event.contexts = contexts.map(serde_json::Value::Array),
        Err(error) => read.fail("co/cx", None, &error.to_string()),
    }

    // who and where
    event.app_id = read.text("aid");
    event.platform = read.text("p");
    match event.platform.as_deref() {
        Some(platform) if PLATFORMS.contains(&platform) => {}
        Some(platform) => read.fail(
            "p",
            Some(platform),
            "not a platform (web, mob, pc, srv, app, tv, cnsl, iot)",
        ),
        None => read.fail("p", None, "missing: every event needs a platform"),
    }
    event.event_id = match read.text("eid") {
        Some(eid) => match Uuid::parse_str(&eid) {
            Ok(uuid) => Some(uuid.to_string()),
            Err(_) => {
                read.fail("eid", Some(&eid), "not a UUID");
                None
            }
        },
        // as Snowplow does: an event without an id gets one
        None => Some(Uuid::new_v4().to_string()),
    };
    event.txn_id = read.integer("tid");
    event.name_tracker = read.text("tna");
    event.v_tracker = read.text("tv");
    event.user_id = read.text("uid");
    event.user_ipaddress = read.text("ip").or_else(|| payload.ip.clone());
    event.user_fingerprint = read.text("fp");
    event.domain_userid = read.text("duid");
    event.domain_sessionidx = read.integer("vid");
    event.domain_sessionid = read.text("sid");
    event.network_userid = read
        .text("tnuid")
        .or_else(|| payload.network_user_id.clone())
        .or_else(|| read.text("nuid"));
    event.useragent = read.text("ua").or_else(|| payload.user_agent.clone());
    event.refr_domain_userid = read.text("refr_duid");

    // the page
    event.page_title = read.text("page");
    if let Some(url) = read.text("url") {
        if let Some(parts) = read.url("url", &url) {
            event.page_urlscheme = Some(parts.scheme);
            event.page_urlhost = parts.host;
            event.page_urlport = parts.port;
            event.page_urlpath = Some(parts.path);
            event.page_urlquery = parts.query;
            event.page_urlfragment = parts.fragment;
        }
        event.page_url = Some(url);
    }
    if let Some(referrer) = read.text("refr") {
        if let Some(parts) = read.url("refr", &referrer) {
            event.refr_urlscheme = Some(parts.scheme);
            event.refr_urlhost = parts.host;
            event.refr_urlport = parts.port;
            event.refr_urlpath = Some(parts.path);
            event.refr_urlquery = parts.query;
            event.refr_urlfragment = parts.fragment;
        }
        event.page_referrer = Some(referrer);
    }

    // the device and browser
    event.os_timezone = read.text("tz");
    event.br_lang = read.text("lang");
    event.doc_charset = read.text("cs");
    event.br_colordepth = read.text("cd");
    event.br_cookies = read.flag("cookie");
    (event.doc_width, event.doc_height) = read.dimensions("ds");
    (event.dvce_screenwidth, event.dvce_screenheight) = read.dimensions("res");
    (event.br_viewwidth, event.br_viewheight) = read.dimensions("vp");
    event.br_features_pdf = read.flag("f_pdf");
    event.br_features_flash = read.flag("f_fla");
    event.br_features_java = read.flag("f_java");
    event.br_features_director = read.flag("f_dir");
    event.br_features_quicktime = read.flag("f_qt");
    event.br_features_realplayer = read.flag("f_realp");
    event.br_features_windowsmedia = read.flag("f_wma");
    event.br_features_gears = read.flag("f_gears");
    event.br_features_silverlight = read.flag("f_ag");

    // structured events, page pings, ecommerce
    event.se_category = read.text("se_ca");
    event.se_action = read.text("se_ac");
    event.se_label = read.text("se_la");
    event.se_property = read.text("se_pr");
    event.se_value = read.float("se_va");
    event.pp_xoffset_min = read.integer("pp_mix");
    event.pp_xoffset_max = read.integer("pp_max");
    event.pp_yoffset_min = read.integer("pp_miy");
    event.pp_yoffset_max = read.integer("pp_may");
    event.tr_orderid = read.text("tr_id");
    event.tr_affiliation = read.text("tr_af");
    event.tr_total = read.float("tr_tt");
    event.tr_tax = read.float("tr_tx");
    event.tr_shipping = read.float("tr_sh");
    event.tr_city = read.text("tr_ci");
    event.tr_state = read.text("tr_st");
    event.tr_country = read.text("tr_co");
    event.tr_currency = read.text("tr_cu");
    event.ti_orderid = read.text("ti_id");
    event.ti_sku = read.text("ti_sk");
    event.ti_name = read.text("ti_nm").or_else(|| read.text("ti_na"));
    event.ti_category = read.text("ti_ca");
    event.ti_price = read.float("ti_pr");
    event.ti_quantity = read.integer("ti_qu");
    event.ti_currency = read.text("ti_cu");

    // when: the device's clock is corrected by its skew against the collector's
    event.dvce_created_tstamp = read.timestamp("dtm");
    event.dvce_sent_tstamp = read.timestamp("stm");
    event.true_tstamp = read.timestamp("ttm");
    event.refr_device_tstamp = read.timestamp("refr_dtm");
    event.derived_tstamp = Some(derived_tstamp(
        payload.received_at_ms,
        event.dvce_created_tstamp,
        event.dvce_sent_tstamp,
        event.true_tstamp,
    ));
    event.event_fingerprint = Some(event_fingerprint(&raw.params, &DEFAULT_EXCLUDED));

    if read.failures.is_empty() {
        Ok(event)
    } else {
        Err(read.failures)
    }
}

/// Snowplow's derived timestamp: the true timestamp when the tracker knows it,
/// otherwise the creation time shifted by how far the device's clock is off
/// (collector time minus sent time), otherwise the collector's time.
pub fn derived_tstamp(
    collector: i64,
    created: Option<i64>,
    sent: Option<i64>,
    true_tstamp: Option<i64>,
) -> i64 {
    match (true_tstamp, created, sent) {
        (Some(true_tstamp), _, _) => true_tstamp,
        (None, Some(created), Some(sent)) => collector.saturating_sub(sent.saturating_sub(created)),
        _ => collector,
    }
}

struct UrlParts {
    scheme: String,
    host: Option<String>,
    port: Option<i64>,
    path: String,
    query: Option<String>,
    fragment: Option<String>,
}

struct Reader<'a> {
    raw: &'a RawEvent,
    failures: Vec<FieldFailure>,
}

impl Reader<'_> {
    fn fail(&mut self, field: &str, value: Option<&str>, reason: &str) {
        self.failures.push(FieldFailure {
            field: field.to_owned(),
            value: value.map(|v| v.chars().take(200).collect()),
            reason: reason.to_owned(),
        });
    }

    /// A parameter's value; an empty value counts as absent, as in Snowplow.
    fn text(&self, param: &str) -> Option<String> {
        self.raw
            .get(param)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    fn integer(&mut self, param: &str) -> Option<i64> {
        let value = self.text(param)?;
        match value.trim().parse::<i64>() {
            Ok(number) => Some(number),
            // some trackers send whole numbers as floats ("3.0")
            Err(_) => match value.trim().parse::<f64>() {
                Ok(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => Some(float as i64),
                _ => {
                    self.fail(param, Some(&value), "not a whole number");
                    None
                }
            },
        }
    }

    fn float(&mut self, param: &str) -> Option<f64> {
        let value = self.text(param)?;
        match value.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Some(number),
            _ => {
                self.fail(param, Some(&value), "not a number");
                None
            }
        }
    }

    fn flag(&mut self, param: &str) -> Option<bool> {
        let value = self.text(param)?;
        match value.as_str() {
            "1" | "true" => Some(true),
            "0" | "false" => Some(false),
            _ => {
                self.fail(param, Some(&value), "not 1 or 0");
                None
            }
        }
    }

    fn timestamp(&mut self, param: &str) -> Option<i64> {
        let value = self.text(param)?;
        match value.trim().parse::<i64>() {
            // from 1970 to the year 9999, in milliseconds
            Ok(ms) if (0..=253_402_300_799_999).contains(&ms) => Some(ms),
            _ => {
                self.fail(
                    param,
                    Some(&value),
                    "not a timestamp in milliseconds since the epoch",
                );
                None
            }
        }
    }

    /// `WIDTHxHEIGHT`.
    fn dimensions(&mut self, param: &str) -> (Option<i64>, Option<i64>) {
        let Some(value) = self.text(param) else {
            return (None, None);
        };
        let parsed = value
            .split_once('x')
            .and_then(|(w, h)| Some((w.trim().parse::<i64>().ok()?, h.trim().parse::<i64>().ok()?)))
            .filter(|(w, h)| *w >= 0 && *h >= 0);
        match parsed {
            Some((width, height)) => (Some(width), Some(height)),
            None => {
                self.fail(param, Some(&value), "not WIDTHxHEIGHT");
                (None, None)
            }
        }
    }

    fn url(&mut self, param: &str, value: &str) -> Option<UrlParts> {
        match Url::parse(value) {
            Ok(url) => Some(UrlParts {
                scheme: url.scheme().to_owned(),
                host: url.host_str().map(str::to_owned),
                port: url.port_or_known_default().map(i64::from),
                path: url.path().to_owned(),
                query: url.query().map(str::to_owned),
                fragment: url.fragment().map(str::to_owned),
            }),
            Err(error) => {
                self.fail(param, Some(value), &format!("not a URL: {error}"));
                None
            }
        }
    }
}
