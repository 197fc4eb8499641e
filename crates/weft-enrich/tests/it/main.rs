//! Canonical events from requests captured from real trackers, field by field.

mod enrichments;
mod process;

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use serde_json::Value;
use weft_collect::CollectorPayload;
use weft_collect::protocol::{RawEvent, parse_payload};
use weft_core::Event;
use weft_enrich::canonical::derived_tstamp;
use weft_enrich::canonical_event;

pub const ETL: i64 = 1_795_400_000_000;

pub struct Fixture {
    pub name: String,
    pub payload: CollectorPayload,
}

pub fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../weft-collect/testdata/snowplow");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if json["method"] == "OPTIONS" {
            continue;
        }
        out.push(Fixture {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            payload: CollectorPayload::from_capture(
                &json,
                Some("203.0.113.9"),
                Some("0fa58e88-2e5a-4312-9ad0-b97bdac824b4"),
            )
            .unwrap(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(out.len(), 19);
    out
}

/// Every event of every fixture, with the raw parameters it came from.
fn events() -> Vec<(String, RawEvent, Event)> {
    let mut out = Vec::new();
    for fixture in fixtures() {
        let parsed = parse_payload(&fixture.payload);
        assert!(parsed.errors.is_empty(), "{}", fixture.name);
        for raw in parsed.events {
            let event = canonical_event(&fixture.payload, &raw, ETL)
                .unwrap_or_else(|failures| panic!("{}: {failures:?}", fixture.name));
            out.push((fixture.name.clone(), raw, event));
        }
    }
    out
}

fn field(event: &Event, name: &str) -> Value {
    serde_json::to_value(event).unwrap()[name].clone()
}

/// The one-to-one parameter → field pairs of the tracker protocol table.
fn protocol_table() -> Vec<(String, String)> {
    let table = include_str!("../../testdata/tracker_params_to_atomic.tsv");
    let mut pairs = Vec::new();
    for line in table.lines().skip(1) {
        let mut columns = line.split('\t');
        let (Some(params), Some(fields)) = (columns.next(), columns.next()) else {
            continue;
        };
        let params: Vec<&str> = params.split(',').collect();
        let fields: Vec<&str> = fields.split(',').collect();
        if params.len() != fields.len() || fields.iter().any(|f| f.contains(['(', '*', ' '])) {
            continue; // WxH pairs, feature flags and legacy events are checked below
        }
        for (param, field) in params.iter().zip(fields) {
            // these are derived rather than copied, and checked on their own
            if [
                "e",
                "ip",
                "ua",
                "nuid",
                "tnuid",
                "ue_pr / ue_px",
                "co / cx",
                "cookie",
            ]
            .contains(param)
                || param.contains('|')
            {
                continue;
            }
            pairs.push((param.to_string(), field.to_owned()));
        }
    }
    assert!(pairs.len() > 40, "{pairs:?}");
    pairs
}

#[test]
fn every_tracker_parameter_lands_in_its_atomic_field() {
    let table = protocol_table();
    let mut checked = 0;
    for (fixture, raw, event) in events() {
        for (param, field_name) in &table {
            let Some(sent) = raw.get(param) else { continue };
            let stored = field(&event, field_name);
            let same = match &stored {
                Value::String(text) => text == sent,
                Value::Number(number) => number.as_f64() == sent.parse::<f64>().ok(),
                _ => false,
            };
            assert!(
                same,
                "{fixture}: {param}={sent:?} but {field_name}={stored}"
            );
            checked += 1;
        }
    }
    assert!(checked > 400, "{checked}");
}

#[test]
fn page_views_carry_url_parts_devices_and_contexts() {
    let events = events();
    let (_, raw, event) = events
        .iter()
        .find(|(name, _, _)| name == "python-tracker-1.1.0__get-01-pv.json")
        .unwrap();
    assert_eq!(event.event.as_deref(), Some("page_view"));
    assert_eq!(
        (
            event.event_vendor.as_deref(),
            event.event_name.as_deref(),
            event.event_version.as_deref()
        ),
        (
            Some("com.snowplowanalytics.snowplow"),
            Some("page_view"),
            Some("1-0-0")
        )
    );
    assert_eq!(event.page_urlscheme.as_deref(), Some("https"));
    assert_eq!(event.page_urlhost.as_deref(), Some("shop.example.com"));
    assert_eq!(event.page_urlport, Some(443));
    assert_eq!(event.page_urlpath.as_deref(), Some("/products/blue-tshirt"));
    assert_eq!(
        event.page_urlquery.as_deref(),
        Some("utm_source=newsletter&utm_medium=email&utm_campaign=spring")
    );
    assert_eq!(event.refr_urlhost.as_deref(), Some("www.google.com"));
    assert_eq!(event.refr_urlquery.as_deref(), Some("q=tshirt"));
    assert_eq!(
        (event.dvce_screenwidth, event.dvce_screenheight),
        (Some(1920), Some(1080))
    );
    assert_eq!(
        (event.br_viewwidth, event.br_viewheight),
        (Some(1280), Some(720))
    );
    assert_eq!(
        event.useragent.as_deref(),
        Some("Mozilla/5.0 (X11; Linux x86_64) fixture")
    );
    assert_eq!(event.user_ipaddress.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        event.network_userid.as_deref(),
        Some("0fa58e88-2e5a-4312-9ad0-b97bdac824b4")
    );
    let contexts = event.contexts.as_ref().unwrap().as_array().unwrap();
    assert_eq!(
        contexts[0]["schema"],
        "iglu:com.acme/product_entity/jsonschema/1-0-0"
    );
    assert_eq!(contexts[0]["data"]["sku"], "SKU-001");
    let created: i64 = raw.get("dtm").unwrap().parse().unwrap();
    let sent: i64 = raw.get("stm").unwrap().parse().unwrap();
    assert_eq!(
        event.derived_tstamp,
        Some(event.collector_tstamp.unwrap() - (sent - created))
    );
    assert_eq!(event.etl_tstamp, Some(ETL));
}

#[test]
fn browser_events_take_the_user_agent_header_and_plain_json() {
    let events = events();
    let (_, _, ping) = events
        .iter()
        .find(|(name, _, _)| name == "js-tracker-4.10.1__04-pp.json")
        .unwrap();
    assert_eq!(ping.event.as_deref(), Some("page_ping"));
    assert_eq!(ping.pp_yoffset_max, Some(160));
    assert_eq!(ping.pp_xoffset_min, None, "omitted offsets stay empty");
    assert!(
        ping.useragent
            .as_deref()
            .unwrap()
            .contains("HeadlessChrome")
    );
    assert_eq!(ping.br_cookies, Some(true));
    assert_eq!((ping.doc_width, ping.doc_height), (Some(1265), Some(3064)));
    let contexts = ping.contexts.as_ref().unwrap().as_array().unwrap();
    assert!(contexts.iter().any(|c| c["schema"] == "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"));

    let (_, _, click) = events
        .iter()
        .find(|(name, _, _)| name == "js-tracker-4.10.1__05-ue-link-click.json")
        .unwrap();
    assert_eq!(click.event.as_deref(), Some("unstruct"));
    assert_eq!(click.event_name.as_deref(), Some("link_click"));
    assert_eq!(click.event_version.as_deref(), Some("1-0-1"));
    let unstruct = click.unstruct_event.as_ref().unwrap();
    assert!(
        unstruct["data"]["targetUrl"]
            .as_str()
            .unwrap()
            .starts_with("http")
    );
}

#[test]
fn ecommerce_and_structured_events_are_typed() {
    for (name, raw, event) in events() {
        match raw.get("e").unwrap() {
            "se" => {
                assert_eq!(event.event.as_deref(), Some("struct"), "{name}");
                assert_eq!(event.se_value, Some(19.99));
                assert_eq!(event.event_vendor.as_deref(), Some("com.google.analytics"));
            }
            "tr" => {
                assert_eq!(event.tr_orderid.as_deref(), Some("ORDER-1001"));
                assert_eq!(event.tr_total, Some(39.98));
                assert_eq!(event.tr_currency.as_deref(), Some("GBP"));
            }
            "ti" => {
                assert_eq!(event.ti_name.as_deref(), Some("Blue T-shirt"), "{name}");
                assert_eq!(event.ti_quantity, Some(2));
                assert_eq!(event.ti_price, Some(19.99));
                if let Some(ttm) = raw.get("ttm") {
                    let ttm: i64 = ttm.parse().unwrap();
                    assert_eq!(event.true_tstamp, Some(ttm));
                    assert_eq!(event.derived_tstamp, Some(ttm), "the true timestamp wins");
                }
            }
            _ => {}
        }
    }
}

fn broken(params: &[(&str, &str)]) -> Vec<String> {
    let payload = fixtures().remove(0).payload;
    let mut raw = RawEvent {
        params: BTreeMap::from([
            ("e".to_owned(), "pv".to_owned()),
            ("p".to_owned(), "web".to_owned()),
            (
                "eid".to_owned(),
                "6fd59cd1-df07-4341-ae80-c029547c3f41".to_owned(),
            ),
        ]),
    };
    for (key, value) in params {
        if value.is_empty() {
            raw.params.remove(*key);
        } else {
            raw.params.insert((*key).to_owned(), (*value).to_owned());
        }
    }
    match canonical_event(&payload, &raw, ETL) {
        Ok(_) => Vec::new(),
        Err(failures) => failures.into_iter().map(|f| f.field).collect(),
    }
}

#[test]
fn unreadable_fields_are_each_reported() {
    assert!(broken(&[]).is_empty());
    for (params, field) in [
        (vec![("e", "")], "e"),
        (vec![("e", "zz")], "e"),
        (vec![("p", "moon")], "p"),
        (vec![("p", "")], "p"),
        (vec![("eid", "not-a-uuid")], "eid"),
        (vec![("dtm", "soon")], "dtm"),
        (vec![("stm", "-5")], "stm"),
        (vec![("res", "big")], "res"),
        (vec![("vp", "10x")], "vp"),
        (vec![("se_va", "lots")], "se_va"),
        (vec![("se_va", "NaN")], "se_va"),
        (vec![("vid", "three")], "vid"),
        (vec![("cookie", "maybe")], "cookie"),
        (vec![("url", "not a url")], "url"),
        (vec![("e", "ue")], "ue_pr/ue_px"),
        (vec![("e", "ue"), ("ue_px", "%%%")], "ue_pr/ue_px"),
        (
            vec![
                ("e", "ue"),
                (
                    "ue_pr",
                    r#"{"schema":"iglu:x","data":{"schema":"nope","data":{}}}"#,
                ),
            ],
            "ue_pr/ue_px",
        ),
        (vec![("co", "[]")], "co/cx"),
    ] {
        let failures = broken(&params);
        assert!(
            failures.contains(&field.to_owned()),
            "{params:?} gave {failures:?}"
        );
    }
    // every problem is named, not just the first
    let mut failures = broken(&[("dtm", "x"), ("res", "y"), ("se_va", "z")]);
    failures.sort();
    assert_eq!(failures, ["dtm", "res", "se_va"]);
    // an event without an id gets one
    assert!(broken(&[("eid", "")]).is_empty());
}

#[test]
fn derived_timestamp_follows_snowplow() {
    assert_eq!(
        derived_tstamp(10_000, Some(1_000), Some(1_500), None),
        9_500
    );
    assert_eq!(
        derived_tstamp(10_000, Some(1_000), Some(1_500), Some(42)),
        42
    );
    assert_eq!(derived_tstamp(10_000, Some(1_000), None, None), 10_000);
    assert_eq!(derived_tstamp(10_000, None, None, None), 10_000);
}

proptest! {
    #[test]
    fn any_parameters_give_an_event_or_named_failures(
        params in proptest::collection::btree_map(
            prop_oneof![
                Just("e".to_owned()), Just("p".to_owned()), Just("url".to_owned()), Just("dtm".to_owned()),
                Just("res".to_owned()), Just("se_va".to_owned()), Just("ue_px".to_owned()), Just("cx".to_owned()),
                Just("vid".to_owned()), Just("ti_qu".to_owned()), "[a-z_]{1,6}",
            ],
            ".{0,40}",
            0..12,
        )
    ) {
        let payload = fixtures().remove(0).payload;
        match canonical_event(&payload, &RawEvent { params }, ETL) {
            Ok(event) => prop_assert!(event.event.is_some() && event.event_id.is_some()),
            Err(failures) => prop_assert!(failures.iter().all(|f| !f.field.is_empty() && !f.reason.is_empty())),
        }
    }
}
