//! The enrichments on real values: campaign URLs from Google Ads, Meta and
//! email tools, referers from search engines with and without terms, social
//! networks and webmail, IPv4 and IPv6 addresses; and the chain as the loader
//! runs it.

use weft_core::Event;
use weft_core::config::{EnrichmentsConfig, RefererConfig};
use weft_enrich::enrichments::RefererClassification;
use weft_enrich::{Enrichments, FailureType, Resolver, process_payload_with};

use crate::{ETL, fixtures};

fn enrich(page_url: &str, referer: Option<&str>) -> Event {
    let url = url::Url::parse(page_url).unwrap();
    let mut event = Event {
        page_url: Some(page_url.to_owned()),
        page_urlhost: url.host_str().map(str::to_owned),
        page_urlquery: url.query().map(str::to_owned),
        page_referrer: referer.map(str::to_owned),
        user_ipaddress: Some("81.2.69.160".into()),
        ..Event::default()
    };
    Enrichments::from_config(&EnrichmentsConfig::default())
        .unwrap()
        .apply(&mut event)
        .unwrap();
    event
}

#[test]
fn campaigns_from_google_ads_meta_and_email_tools() {
    // Google Ads auto-tagging with ValueTrack utm parameters
    let google = enrich(
        "https://shop.example.com/p/sku-001?utm_source=google&utm_medium=cpc&utm_campaign=brand%20uk&utm_term=sourdough%20bread&gclid=Cj0KCQiA4-y8BhC3ARIsAHmjC_G",
        Some("https://www.google.com/"),
    );
    assert_eq!(google.mkt_medium.as_deref(), Some("cpc"));
    assert_eq!(google.mkt_source.as_deref(), Some("google"));
    assert_eq!(google.mkt_campaign.as_deref(), Some("brand uk"));
    assert_eq!(google.mkt_term.as_deref(), Some("sourdough bread"));
    assert_eq!(
        google.mkt_clickid.as_deref(),
        Some("Cj0KCQiA4-y8BhC3ARIsAHmjC_G")
    );
    assert_eq!(google.mkt_network.as_deref(), Some("Google"));

    // Meta ads: utm parameters with {{ad.name}} macros filled in, and fbclid
    let meta = enrich(
        "https://shop.example.com/?utm_source=facebook&utm_medium=paid_social&utm_campaign=prospecting&utm_content=carousel+v2&fbclid=IwAR2F4-dbP0l7Mn1IawQQGCINEz7PYXQvwjNwB_qa2ofrHyiLjcbCRxTDMs",
        Some("https://l.facebook.com/"),
    );
    assert_eq!(meta.mkt_content.as_deref(), Some("carousel v2"));
    assert_eq!(meta.mkt_network.as_deref(), Some("Facebook"));
    assert!(meta.mkt_clickid.as_deref().unwrap().starts_with("IwAR2F4"));

    // an email tool (Mailchimp-style tagging) and Microsoft Ads
    let email = enrich(
        "https://shop.example.com/c/dairy?utm_source=newsletter&utm_medium=email&utm_campaign=weekly_offers&mc_cid=5a1b2c&mc_eid=9f8e7d",
        None,
    );
    assert_eq!(email.mkt_medium.as_deref(), Some("email"));
    assert_eq!(email.mkt_clickid, None);
    let bing = enrich(
        "https://shop.example.com/?msclkid=2c3d4e5f6a7b8c9d&utm_source=bing",
        None,
    );
    assert_eq!(bing.mkt_network.as_deref(), Some("Microsoft"));

    // no campaign parameters: nothing invented
    let plain = enrich("https://shop.example.com/p/sku-001?colour=red", None);
    assert_eq!(
        (plain.mkt_medium, plain.mkt_source, plain.mkt_clickid),
        (None, None, None)
    );
}

#[test]
fn referers_from_search_social_email_and_the_site_itself() {
    let classify = |referer: &str| {
        let event = enrich("https://shop.example.com/p/sku-001", Some(referer));
        (event.refr_medium, event.refr_source, event.refr_term)
    };
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        classify("https://www.google.com/"),
        (some("search"), some("Google"), None)
    );
    assert_eq!(
        classify("https://www.google.co.uk/search?q=sourdough+loaf&hl=en"),
        (some("search"), some("Google"), some("sourdough loaf"))
    );
    assert_eq!(
        classify("https://www.bing.com/search?q=fresh%20bread&form=QBLH"),
        (some("search"), some("Bing"), some("fresh bread"))
    );
    assert_eq!(
        classify("https://duckduckgo.com/"),
        (some("search"), some("DuckDuckGo"), None)
    );
    assert_eq!(
        classify("https://search.yahoo.com/search?p=greek+yoghurt"),
        (some("search"), some("Yahoo!"), some("greek yoghurt"))
    );
    assert_eq!(
        classify("https://yandex.ru/search/?text=%D1%85%D0%BB%D0%B5%D0%B1"),
        (some("search"), some("Yandex"), some("хлеб"))
    );
    assert_eq!(
        classify("https://m.facebook.com/"),
        (some("social"), some("Facebook"), None)
    );
    assert_eq!(
        classify("https://l.instagram.com/?u=https%3A%2F%2Fshop.example.com"),
        (some("social"), some("Instagram"), None)
    );
    assert_eq!(
        classify("https://t.co/AbCdEf"),
        (some("social"), some("Twitter"), None)
    );
    assert_eq!(
        classify("https://mail.google.com/mail/u/0/"),
        (some("email"), some("Gmail"), None)
    );
    assert_eq!(
        classify("https://outlook.live.com/"),
        (some("email"), some("Outlook.com"), None)
    );
    assert_eq!(
        classify("https://www.googleadservices.com/pagead/aclk?sa=L"),
        (some("paid"), some("Google"), None)
    );
    assert_eq!(
        classify("https://shop.example.com/c/bread"),
        (some("internal"), None, None)
    );
    assert_eq!(
        classify("https://news.example.org/best-bread"),
        (some("unknown"), None, None)
    );
    // look-alikes are not the engine
    assert_eq!(
        classify("https://notgoogle.com/search?q=x").0,
        some("unknown")
    );
    assert_eq!(
        classify("https://google.evil.example.net/").0,
        some("unknown")
    );
    // not a web referer: left alone
    assert_eq!(
        classify("android-app://com.google.android.gm/"),
        (None, None, None)
    );
    assert_eq!(classify("not a url"), (None, None, None));

    let configured = RefererClassification::new(&RefererConfig {
        enabled: true,
        internal_domains: vec!["checkout.example.com".into()],
    })
    .unwrap();
    assert_eq!(
        configured
            .classify(
                "https://pay.checkout.example.com/done",
                Some("shop.example.com")
            )
            .unwrap()
            .0,
        "internal"
    );
    assert!(
        RefererClassification::new(&RefererConfig {
            enabled: true,
            internal_domains: vec!["https://x.com/".into()]
        })
        .is_err()
    );
}

#[test]
fn the_full_address_is_never_kept() {
    let event = enrich("https://shop.example.com/", None);
    assert_eq!(event.user_ipaddress.as_deref(), Some("81.2.69.x"));
}

#[test]
fn captured_traffic_is_enriched_on_the_way_in() {
    let enrichments = Enrichments::from_config(&EnrichmentsConfig::default()).unwrap();
    assert_eq!(
        enrichments.names(),
        [
            "user_agent",
            "campaign_attribution",
            "referer",
            "ip_anonymisation"
        ]
    );
    let resolver = Resolver::new(vec![
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/iglu"),
    ]);
    let mut events = 0;
    for fixture in fixtures() {
        let processed = process_payload_with(&fixture.payload, &resolver, &enrichments, ETL);
        for event in &processed.events {
            events += 1;
            if let Some(ip) = &event.user_ipaddress {
                assert!(
                    ip.ends_with(".x") || ip.ends_with(":x"),
                    "{}: {ip}",
                    fixture.name
                );
            }
        }
        assert!(
            processed
                .bad_rows
                .iter()
                .all(|row| row.failure_type != FailureType::EnrichmentFailures)
        );
    }
    assert!(events > 0);
}

#[test]
fn config_errors_name_the_key() {
    let mut config = EnrichmentsConfig::default();
    config.campaign_attribution.medium = vec![" ".into()];
    let error = Enrichments::from_config(&config).err().unwrap().to_string();
    assert!(
        error.contains("enrichments.campaign_attribution.medium"),
        "{error}"
    );
    let mut config = EnrichmentsConfig::default();
    config.ip_anonymisation.ipv4_octets = 7;
    let error = Enrichments::from_config(&config).err().unwrap().to_string();
    assert!(
        error.contains("enrichments.ip_anonymisation.ipv4_octets"),
        "{error}"
    );
    let mut config = EnrichmentsConfig::default();
    config.campaign_attribution.enabled = false;
    config.ip_anonymisation.enabled = false;
    config.user_agent.enabled = false;
    assert_eq!(
        Enrichments::from_config(&config).unwrap().names(),
        ["referer"]
    );
}

#[test]
fn user_agents_of_current_browsers_apps_and_crawlers() {
    let ua = weft_enrich::enrichments::UserAgent::new();
    let cases = [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            ("Chrome", "Chrome 131", "Windows", "desktop"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            ("Mobile Safari", "Mobile Safari 17", "iOS", "mobile"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
            ("Firefox", "Firefox 133", "Windows", "desktop"),
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86",
            ("Edge", "Edge 131", "Windows", "desktop"),
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
            ("Mobile Safari", "Mobile Safari 17", "iOS", "tablet"),
        ),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
            ("Chrome Mobile", "Chrome Mobile 131", "Android", "mobile"),
        ),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            ("Googlebot", "Googlebot 2", "", "bot"),
        ),
    ];
    for (agent, (family, name, os, class)) in cases {
        let parsed = ua.parse(agent);
        assert_eq!(parsed.browser_family.as_deref(), Some(family), "{agent}");
        assert_eq!(parsed.browser_name.as_deref(), Some(name), "{agent}");
        assert_eq!(parsed.os_family.as_deref().unwrap_or(""), os, "{agent}");
        assert_eq!(parsed.device_class, class, "{agent}");
    }
    assert_eq!(
        ua.parse("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
            .browser_type,
        "Robot"
    );

    // an Android app's own agent (Dalvik, as the Android tracker's HTTP client sends it)
    let app = ua.parse("Dalvik/2.1.0 (Linux; U; Android 14; Pixel 8 Build/AP2A.240805.005)");
    assert_eq!(
        (app.os_family.as_deref(), app.device_class),
        (Some("Android"), "mobile")
    );

    // garbage in: nothing invented, no panic
    let junk = ua.parse("\u{0}\u{1}}{not a browser");
    assert_eq!(
        (junk.browser_family.clone(), junk.device_class),
        (None, "unknown")
    );

    // through the chain: the event's fields
    let mut event = Event {
        useragent: Some(cases[1].0.into()),
        ..Event::default()
    };
    Enrichments::from_config(&EnrichmentsConfig::default())
        .unwrap()
        .apply(&mut event)
        .unwrap();
    assert_eq!(event.dvce_type.as_deref(), Some("mobile"));
    assert_eq!(event.dvce_ismobile, Some(true));
    assert_eq!(event.os_name.as_deref(), Some("iOS 17.5"));
    assert_eq!(event.os_manufacturer.as_deref(), Some("Apple Inc."));
    assert_eq!(event.br_version.as_deref(), Some("17.5"));
}

mod pii {
    use serde_json::json;
    use weft_core::Event;
    use weft_core::config::{JsonField, PiiPseudonymisationConfig};
    use weft_enrich::Enrichment;
    use weft_enrich::enrichments::PiiPseudonymisation;

    const SALT: &str = "pepper-and-salt-0123456789";

    fn config(salt: &str) -> PiiPseudonymisationConfig {
        PiiPseudonymisationConfig {
            enabled: true,
            fields: vec!["user_id".into(), "network_userid".into()],
            json: vec![
                JsonField {
                    field: "contexts".into(),
                    schema: "iglu:com.acme/user/jsonschema/1-*-*".into(),
                    path: "$.email".into(),
                },
                JsonField {
                    field: "unstruct_event".into(),
                    schema: "iglu:com.acme/newsletter_signup/jsonschema/1-0-*".into(),
                    path: "$.email".into(),
                },
                JsonField {
                    field: "contexts".into(),
                    schema: "iglu:com.acme/household/jsonschema/1-*-*".into(),
                    path: "$.members[*].email".into(),
                },
            ],
            salt: salt.into(),
            salt_env: String::new(),
        }
    }

    fn event() -> Event {
        Event {
            user_id: Some("1000042".into()),
            network_userid: Some("0fa58e88-2e5a-4312-9ad0-b97bdac824b4".into()),
            domain_userid: Some("d0a2304c-1243-4784-8287-0d0ffa13a84b".into()),
            unstruct_event: Some(
                json!({"schema": "iglu:com.acme/newsletter_signup/jsonschema/1-0-0", "data": {"email": "ann@example.com", "consent_marketing": true}}),
            ),
            contexts: Some(json!([
                {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"user_id": "1000042", "email": "ann@example.com"}},
                {"schema": "iglu:com.acme/user/jsonschema/2-0-0", "data": {"email": "other-major@example.com"}},
                {"schema": "iglu:com.acme/household/jsonschema/1-0-0", "data": {"members": [{"email": "a@example.com"}, {"email": "b@example.com"}]}},
            ])),
            ..Event::default()
        }
    }

    #[test]
    fn chosen_fields_and_json_paths_are_hashed_with_the_salt() {
        let pii = PiiPseudonymisation::new(&config(SALT)).unwrap();
        let mut e = event();
        pii.enrich(&mut e).unwrap();
        let email_hash = pii.hash("ann@example.com");
        assert_eq!(email_hash.len(), 64);
        assert_eq!(e.user_id, Some(pii.hash("1000042")));
        assert_ne!(
            e.network_userid.as_deref(),
            Some("0fa58e88-2e5a-4312-9ad0-b97bdac824b4")
        );
        assert_eq!(
            e.domain_userid.as_deref(),
            Some("d0a2304c-1243-4784-8287-0d0ffa13a84b"),
            "not chosen, kept"
        );
        let contexts = e.contexts.clone().unwrap();
        assert_eq!(contexts[0]["data"]["email"], email_hash.as_str());
        assert_eq!(
            contexts[0]["data"]["user_id"], "1000042",
            "only the chosen path"
        );
        assert_eq!(
            contexts[1]["data"]["email"], "other-major@example.com",
            "another model is not matched"
        );
        assert_eq!(
            contexts[2]["data"]["members"][1]["email"],
            pii.hash("b@example.com").as_str()
        );
        assert_eq!(
            e.unstruct_event.clone().unwrap()["data"]["email"],
            email_hash.as_str()
        );
        // the same email hashes the same in the event and the context: they still join
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("ann@example.com") && !text.contains(SALT));

        let other = PiiPseudonymisation::new(&config("another-salt-entirely-42")).unwrap();
        assert_ne!(
            other.hash("ann@example.com"),
            email_hash,
            "another salt, another hash"
        );
        assert_eq!(
            PiiPseudonymisation::new(&config(SALT))
                .unwrap()
                .hash("ann@example.com"),
            email_hash
        );
    }

    #[test]
    fn bad_settings_are_refused_with_their_key() {
        let refused = |config: PiiPseudonymisationConfig| {
            PiiPseudonymisation::new(&config).err().unwrap().to_string()
        };
        assert!(refused(config("short")).contains("pii_pseudonymisation.salt"));
        let mut c = config(SALT);
        c.fields = vec!["page_title".into()];
        assert!(refused(c).contains("pii_pseudonymisation.fields"));
        let mut c = config(SALT);
        c.json[0].path = "email".into();
        assert!(refused(c).contains("pii_pseudonymisation.json.path"));
        let mut c = config(SALT);
        c.json[0].schema = "com.acme/user".into();
        assert!(refused(c).contains("pii_pseudonymisation.json.schema"));
        let mut c = config("");
        c.salt_env = "WEFT_TEST_SALT_THAT_IS_NOT_SET".into();
        assert!(refused(c).contains("WEFT_TEST_SALT_THAT_IS_NOT_SET"));
    }
}

#[test]
fn ip_lookups_fill_geo_from_a_maxmind_database_before_the_address_is_masked() {
    let database = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/maxmind/GeoIP2-City-Test.mmdb");
    let mut config = EnrichmentsConfig::default();
    config.ip_lookups.database = Some(database);
    let enrichments = Enrichments::from_config(&config).unwrap();
    assert_eq!(
        enrichments.names(),
        [
            "user_agent",
            "campaign_attribution",
            "referer",
            "ip_lookups",
            "ip_anonymisation"
        ]
    );
    let locate = |ip: &str| {
        let mut event = Event {
            user_ipaddress: Some(ip.into()),
            ..Event::default()
        };
        enrichments.apply(&mut event).unwrap();
        event
    };
    let london = locate("81.2.69.160");
    assert_eq!(london.geo_country.as_deref(), Some("GB"));
    assert_eq!(london.geo_city.as_deref(), Some("London"));
    assert_eq!(london.geo_region.as_deref(), Some("ENG"));
    assert_eq!(london.geo_region_name.as_deref(), Some("England"));
    assert_eq!(london.geo_timezone.as_deref(), Some("Europe/London"));
    assert!(
        london
            .geo_latitude
            .is_some_and(|lat| (51.0..52.0).contains(&lat))
    );
    assert_eq!(
        london.user_ipaddress.as_deref(),
        Some("81.2.69.x"),
        "masked after the lookup"
    );
    let milton = locate("216.160.83.56");
    assert_eq!(
        (
            milton.geo_country.as_deref(),
            milton.geo_region.as_deref(),
            milton.geo_zipcode.as_deref()
        ),
        (Some("US"), Some("WA"), Some("98354"))
    );
    let ipv6 = locate("2001:218::1");
    assert_eq!(ipv6.geo_country.as_deref(), Some("JP"));
    // not in the database: no geo, no failure
    let private = locate("10.0.0.1");
    assert_eq!((private.geo_country, private.geo_city), (None, None));

    // a database that is not there: skipped (with a warning), not an error
    let mut config = EnrichmentsConfig::default();
    config.ip_lookups.database = Some("/nonexistent/GeoLite2-City.mmdb".into());
    assert!(
        !Enrichments::from_config(&config)
            .unwrap()
            .names()
            .contains(&"ip_lookups")
    );
    // a file that is not a database: refused at start-up
    let mut config = EnrichmentsConfig::default();
    config.ip_lookups.database =
        Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
    let error = Enrichments::from_config(&config).err().unwrap().to_string();
    assert!(error.contains("enrichments.ip_lookups.database"), "{error}");
}

mod lookup {
    use serde_json::json;
    use weft_core::Event;
    use weft_core::config::{EnrichmentsConfig, JsonField, LookupConfig};
    use weft_enrich::Enrichments;

    fn catalogue(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("catalogue.csv");
        std::fs::write(
            &path,
            "sku,brand,margin_band,organic\nSKU-001,Acme Bakery,high,true\nSKU-101,Fizz & Co,low,\n\"SKU-201\",\"Dairy, Ltd\",medium,false\nSKU-001,Duplicate,low,false\n",
        )
        .unwrap();
        path
    }

    fn config(csv: std::path::PathBuf) -> LookupConfig {
        LookupConfig {
            name: "catalogue".into(),
            csv: Some(csv),
            table: None,
            key_column: "sku".into(),
            atomic: None,
            json: Some(JsonField {
                field: "contexts".into(),
                schema: "iglu:com.acme/product_entity/jsonschema/1-*-*".into(),
                path: "$.sku".into(),
            }),
            schema: "iglu:com.acme/catalogue_entry/jsonschema/1-0-0".into(),
        }
    }

    fn with(lookups: Vec<LookupConfig>) -> Result<Enrichments, String> {
        let config = EnrichmentsConfig {
            lookups,
            ..EnrichmentsConfig::default()
        };
        Enrichments::from_config(&config).map_err(|e| e.to_string())
    }

    #[test]
    fn matching_rows_are_attached_as_derived_contexts() {
        let dir = tempfile::tempdir().unwrap();
        let enrichments = with(vec![config(catalogue(dir.path()))]).unwrap();
        assert!(enrichments.names().contains(&"lookup:catalogue"));
        let mut event = Event {
            contexts: Some(json!([
                {"schema": "iglu:com.acme/product_entity/jsonschema/1-0-1", "data": {"sku": "SKU-001"}},
                {"schema": "iglu:com.acme/product_entity/jsonschema/1-0-0", "data": {"sku": "SKU-201"}},
                {"schema": "iglu:com.acme/product_entity/jsonschema/1-0-1", "data": {"sku": "SKU-999"}},
                {"schema": "iglu:com.acme/product_entity/jsonschema/1-0-1", "data": {"sku": "SKU-001"}},
            ])),
            ..Event::default()
        };
        enrichments.apply(&mut event).unwrap();
        let derived = event.derived_contexts.unwrap();
        let derived = derived.as_array().unwrap();
        assert_eq!(
            derived.len(),
            2,
            "one per distinct match, none for the unknown SKU: {derived:?}"
        );
        assert_eq!(
            derived[0]["schema"],
            "iglu:com.acme/catalogue_entry/jsonschema/1-0-0"
        );
        assert_eq!(
            derived[0]["data"],
            json!({"sku": "SKU-001", "brand": "Acme Bakery", "margin_band": "high", "organic": "true"})
        );
        assert_eq!(derived[1]["data"]["brand"], "Dairy, Ltd");

        // from an atomic field instead: a transaction item's SKU
        let mut atomic = config(catalogue(dir.path()));
        atomic.json = None;
        atomic.atomic = Some("ti_sku".into());
        let enrichments = with(vec![atomic]).unwrap();
        let mut item = Event {
            ti_sku: Some("SKU-101".into()),
            ..Event::default()
        };
        enrichments.apply(&mut item).unwrap();
        assert_eq!(
            item.derived_contexts.unwrap()[0]["data"]["organic"],
            json!(null)
        );
    }

    #[test]
    fn a_bad_lookup_is_refused_at_start_up_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let csv = catalogue(dir.path());
        let mut missing = config(dir.path().join("nope.csv"));
        missing.name = "x".into();
        assert!(
            with(vec![missing])
                .unwrap_err()
                .contains("enrichments.lookups[0].csv")
        );
        let mut column = config(csv.clone());
        column.key_column = "SKU".into();
        assert!(
            with(vec![column])
                .unwrap_err()
                .contains("lookups[0].key_column")
        );
        let mut both = config(csv.clone());
        both.atomic = Some("ti_sku".into());
        assert!(with(vec![both]).unwrap_err().contains("exactly one"));
        let mut field = config(csv.clone());
        field.json = None;
        field.atomic = Some("dvce_screenwidth".into());
        assert!(with(vec![field]).unwrap_err().contains("lookups[0].atomic"));
        let mut schema = config(csv);
        schema.schema = "catalogue".into();
        assert!(
            with(vec![schema])
                .unwrap_err()
                .contains("lookups[0].schema")
        );
    }
}

#[test]
fn the_event_fingerprint_leaves_out_the_configured_parameters() {
    let resolver = Resolver::new(Vec::new());
    let fixture = fixtures()
        .into_iter()
        .find(|f| {
            !process_payload_with(&f.payload, &resolver, &Enrichments::none(), ETL)
                .events
                .is_empty()
        })
        .unwrap();
    let fingerprint = |config: &EnrichmentsConfig| {
        let enrichments = Enrichments::from_config(config).unwrap();
        process_payload_with(&fixture.payload, &resolver, &enrichments, ETL).events[0]
            .event_fingerprint
            .clone()
    };
    let default = fingerprint(&EnrichmentsConfig::default());
    assert_eq!(default.as_deref().map(str::len), Some(32));
    let mut config = EnrichmentsConfig::default();
    config
        .event_fingerprint
        .excluded_parameters
        .push("dtm".into());
    let without_dtm = fingerprint(&config);
    assert!(
        without_dtm.is_some() && without_dtm != default,
        "another parameter set, another fingerprint"
    );
    config.event_fingerprint.enabled = false;
    assert_eq!(fingerprint(&config), None);
}
