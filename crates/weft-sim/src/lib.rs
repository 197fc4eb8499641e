//! Synthetic shop traffic as real Snowplow trackers send it.
//!
//! Deterministic for a seed: the same visitors, visits and events every run.
//! Browsers send POST batches with plain-JSON contexts (as the JavaScript
//! tracker does); server-side and app trackers send `GET /i` with base64
//! contexts (as the Python and Node trackers do).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

pub const TP2_PATH: &str = "/com.snowplowanalytics.snowplow/tp2";
const PAYLOAD_DATA: &str = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4";
const CONTEXTS: &str = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0";
const UNSTRUCT: &str = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0";
const WEB_PAGE: &str = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0";
const PRODUCT: &str = "iglu:com.acme/product_entity/jsonschema/1-0-0";
const LINK_CLICK: &str = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1";

const USER_AGENTS: [&str; 4] = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
];
const PRODUCTS: [(&str, &str, f64); 6] = [
    ("SKU-001", "Sourdough loaf", 3.49),
    ("SKU-002", "Sparkling water 6x", 4.99),
    ("SKU-003", "Greek yoghurt", 2.29),
    ("SKU-004", "Apples 1kg", 2.99),
    ("SKU-005", "Sea salt crisps", 1.79),
    ("SKU-006", "Dish soap", 2.49),
];
const REFERERS: [&str; 4] = [
    "https://www.google.com/search?q=online+grocery",
    "https://www.facebook.com/",
    "",
    "https://news.example.org/best-bread",
];

/// The schemas of the simulated shop's own events and entities, by Iglu URI.
pub const SCHEMAS: &[(&str, &str)] = &[(
    PRODUCT,
    include_str!("../iglu/com.acme/product_entity/jsonschema/1-0-0"),
)];

/// One HTTP request a tracker would send.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerRequest {
    pub method: &'static str,
    /// Path and query string.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
    /// How many events it carries.
    pub events: usize,
}

#[derive(Debug, Clone)]
pub struct TrafficOptions {
    pub visitors: usize,
    pub seed: u64,
    pub site: String,
    /// Start of the simulated period, ms since the epoch.
    pub start_ms: i64,
}

impl Default for TrafficOptions {
    fn default() -> Self {
        Self {
            visitors: 100,
            seed: 42,
            site: "https://shop.example.com".into(),
            start_ms: 1_795_000_000_000,
        }
    }
}

/// Every request the simulated visitors' trackers send, in time order per visitor.
pub fn traffic(options: &TrafficOptions) -> Vec<TrackerRequest> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut requests = Vec::new();
    for visitor in 0..options.visitors {
        let profile = Visitor::new(&mut rng, visitor, options);
        requests.extend(profile.visits(&mut rng, options));
    }
    requests
}

struct Visitor {
    duid: String,
    user_agent: &'static str,
    browser: bool,
    user_id: Option<String>,
}

impl Visitor {
    fn new(rng: &mut StdRng, index: usize, _options: &TrafficOptions) -> Self {
        Self {
            duid: uuid(rng),
            user_agent: USER_AGENTS[rng.random_range(0..USER_AGENTS.len())],
            browser: rng.random_bool(0.7),
            user_id: rng
                .random_bool(0.3)
                .then(|| format!("customer-{index}@example.com")),
        }
    }

    fn visits(&self, rng: &mut StdRng, options: &TrafficOptions) -> Vec<TrackerRequest> {
        let mut out = Vec::new();
        let mut clock = options.start_ms + rng.random_range(0..86_400_000);
        for visit_index in 1..=rng.random_range(1..=3u32) {
            let sid = uuid(rng);
            let mut events: Vec<Value> = Vec::new();
            let referer = REFERERS[rng.random_range(0..REFERERS.len())];
            let mut previous_url = referer.to_owned();
            for _ in 0..rng.random_range(1..=5) {
                let (sku, name, price) = PRODUCTS[rng.random_range(0..PRODUCTS.len())];
                let url = format!("{}/products/{}", options.site, sku.to_lowercase());
                let page_view_id = uuid(rng);
                let contexts = vec![
                    json!({"schema": WEB_PAGE, "data": {"id": page_view_id}}),
                    json!({"schema": PRODUCT, "data": {"sku": sku, "name": name, "price": price}}),
                ];
                let base = |e: &str, clock: i64, rng: &mut StdRng| -> Value {
                    let mut event = json!({
                        "e": e, "eid": uuid(rng), "tv": "js-4.10.1", "tna": "sp", "aid": "shop",
                        "p": "web", "dtm": clock.to_string(), "stm": (clock + 3).to_string(),
                        "duid": self.duid, "sid": sid, "vid": visit_index.to_string(),
                        "url": url, "page": name, "res": "1920x1080", "vp": "1280x720",
                        "cd": "24", "tz": "Europe/London", "lang": "en-GB", "cs": "UTF-8",
                    });
                    if let Some(uid) = &self.user_id {
                        event["uid"] = json!(uid);
                    }
                    event
                };
                let mut page_view = base("pv", clock, rng);
                if !previous_url.is_empty() {
                    page_view["refr"] = json!(previous_url);
                }
                events.push(with_contexts(page_view, &contexts));
                for ping in 1..=rng.random_range(0..4) {
                    clock += 10_000;
                    let mut event = base("pp", clock, rng);
                    event["pp_miy"] = json!("0");
                    event["pp_may"] = json!((ping * 400).to_string());
                    events.push(with_contexts(event, &contexts));
                }
                if rng.random_bool(0.3) {
                    clock += 2_000;
                    let mut event = base("se", clock, rng);
                    for (key, value) in [
                        ("se_ca", "shop"),
                        ("se_ac", "add-to-basket"),
                        ("se_la", sku),
                    ] {
                        event[key] = json!(value);
                    }
                    event["se_va"] = json!(format!("{price:.2}"));
                    events.push(with_contexts(event, &contexts));
                }
                if rng.random_bool(0.1) {
                    clock += 1_000;
                    let mut event = base("ue", clock, rng);
                    let link = json!({"schema": LINK_CLICK, "data": {"targetUrl": format!("{}/offers", options.site)}});
                    event["ue_pr"] = json!(json!({"schema": UNSTRUCT, "data": link}).to_string());
                    events.push(with_contexts(event, &contexts));
                }
                previous_url = url;
                clock += rng.random_range(5_000..60_000);
            }
            out.extend(self.send(events, rng));
            clock += rng.random_range(3_600_000..5 * 86_400_000);
        }
        out
    }

    /// Browsers batch POSTs with plain JSON; other trackers send one GET per event.
    fn send(&self, events: Vec<Value>, rng: &mut StdRng) -> Vec<TrackerRequest> {
        let headers = vec![("user-agent", self.user_agent.to_owned())];
        if self.browser {
            let mut out = Vec::new();
            let mut rest = events.as_slice();
            while !rest.is_empty() {
                let size = rng.random_range(1..=rest.len().min(10));
                let (batch, remaining) = rest.split_at(size);
                rest = remaining;
                let body = json!({"schema": PAYLOAD_DATA, "data": batch}).to_string();
                let mut headers = headers.clone();
                headers.push(("content-type", "application/json; charset=UTF-8".into()));
                headers.push(("origin", "https://shop.example.com".into()));
                out.push(TrackerRequest {
                    method: "POST",
                    path: TP2_PATH.into(),
                    headers,
                    body: Some(body),
                    events: batch.len(),
                });
            }
            out
        } else {
            events
                .into_iter()
                .map(|event| {
                    let mut query = form_urlencoded::Serializer::new(String::new());
                    if let Value::Object(map) = event {
                        for (key, value) in map {
                            let value = value.as_str().unwrap_or_default().to_owned();
                            match key.as_str() {
                                // GET trackers base64-encode JSON parameters
                                "co" => query.append_pair("cx", &URL_SAFE_NO_PAD.encode(value)),
                                "ue_pr" => {
                                    query.append_pair("ue_px", &URL_SAFE_NO_PAD.encode(value))
                                }
                                _ => query.append_pair(&key, &value),
                            };
                        }
                    }
                    TrackerRequest {
                        method: "GET",
                        path: format!("/i?{}", query.finish()),
                        headers: headers.clone(),
                        body: None,
                        events: 1,
                    }
                })
                .collect()
        }
    }
}

fn with_contexts(mut event: Value, contexts: &[Value]) -> Value {
    event["co"] = json!(json!({"schema": CONTEXTS, "data": contexts}).to_string());
    event
}

fn uuid(rng: &mut StdRng) -> String {
    // random bits with the version (4) and variant (RFC 9562) bits set
    let bits = rng.random::<u128>() & !(0xf << 76) & !(0b11 << 62) | (0x4 << 76) | (0b10 << 62);
    Uuid::from_u128(bits).to_string()
}

/// A `payload_data` POST body with `events` events from the simulated shop,
/// as the browser tracker batches them.
pub fn event_batch(events: usize, seed: u64) -> String {
    let mut all: Vec<Value> = Vec::new();
    let mut options = TrafficOptions {
        visitors: 20,
        seed,
        ..TrafficOptions::default()
    };
    while all.len() < events {
        for request in traffic(&options) {
            if let Some(body) = request.body
                && let Ok(Value::Object(mut envelope)) = serde_json::from_str::<Value>(&body)
                && let Some(Value::Array(batch)) = envelope.remove("data")
            {
                all.extend(batch);
            }
        }
        options.seed += 1;
    }
    all.truncate(events);
    json!({"schema": PAYLOAD_DATA, "data": all}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_traffic_and_both_tracker_styles() {
        let options = TrafficOptions {
            visitors: 50,
            ..TrafficOptions::default()
        };
        let a = traffic(&options);
        assert_eq!(a, traffic(&options));
        assert!(
            a.iter()
                .any(|r| r.method == "GET" && r.path.contains("cx="))
        );
        assert!(a.iter().any(|r| r.method == "POST" && r.events > 1));
        let events: usize = a.iter().map(|r| r.events).sum();
        assert!(events > 100, "{events}");
        let other = traffic(&TrafficOptions { seed: 7, ..options });
        assert_ne!(a, other);
    }

    #[test]
    fn event_batch_has_exactly_the_events_asked_for() {
        let body: Value = serde_json::from_str(&event_batch(25, 3)).unwrap();
        assert_eq!(body["data"].as_array().unwrap().len(), 25);
        assert_eq!(body["schema"], PAYLOAD_DATA);
    }
}
