//! User agent: browser, OS and device class from the `useragent` field, with
//! the ua-parser project's regexes (uap-core 0.18, shipped in the binary as
//! JSON: `crates/weft-enrich/data/`). Bots and crawlers are flagged as the
//! device class `bot`.
//!
//! Fills `br_name` ("Chrome 131"), `br_family`, `br_version`, `br_type`
//! ("Browser", "Robot" or "Unknown"), `os_name` ("iOS 17.5"), `os_family`,
//! `os_manufacturer`, `dvce_type` (`desktop`, `mobile`, `tablet`, `bot` or
//! `unknown`) and `dvce_ismobile`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use ua_parser::{Extractor, Regexes};
use weft_core::Event;

use super::Enrichment;

/// Distinct user agents remembered; traffic repeats a few thousand of them.
const CACHE_ENTRIES: usize = 50_000;

static EXTRACTOR: LazyLock<Extractor<'static>> = LazyLock::new(|| {
    let regexes: Regexes<'static> =
        serde_json::from_str(include_str!("../../data/uap-regexes.json"))
            .expect("the shipped uap-core regexes parse");
    Extractor::try_from(regexes).expect("the shipped uap-core regexes compile")
});

/// What one user agent string says, once worked out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    pub browser_family: Option<String>,
    pub browser_version: Option<String>,
    pub browser_name: Option<String>,
    pub browser_type: &'static str,
    pub os_family: Option<String>,
    pub os_name: Option<String>,
    pub os_manufacturer: Option<&'static str>,
    pub device_class: &'static str,
}

#[derive(Default)]
pub struct UserAgent {
    cache: Mutex<HashMap<String, Arc<Parsed>>>,
}

impl UserAgent {
    pub fn new() -> Self {
        LazyLock::force(&EXTRACTOR);
        Self::default()
    }

    pub fn parse(&self, agent: &str) -> Arc<Parsed> {
        if let Some(hit) = self.lock().get(agent) {
            return Arc::clone(hit);
        }
        let parsed = Arc::new(parse(agent));
        let mut cache = self.lock();
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(agent.to_owned(), Arc::clone(&parsed));
        parsed
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Parsed>>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn version(parts: [Option<&str>; 3]) -> Option<String> {
    let parts: Vec<&str> = parts
        .into_iter()
        .map_while(|p| p.filter(|p| !p.is_empty()))
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

fn parse(agent: &str) -> Parsed {
    let (browser, os, device) = EXTRACTOR.extract(agent);
    let browser_family = browser
        .as_ref()
        .map(|b| b.family.to_string())
        .filter(|f| f != "Other");
    let browser_version = browser
        .as_ref()
        .and_then(|b| version([b.major, b.minor, b.patch]));
    let os_family = os
        .as_ref()
        .map(|o| o.os.to_string())
        .filter(|f| f != "Other");
    let os_version = os
        .as_ref()
        .and_then(|o| version([o.major.as_deref(), o.minor.as_deref(), o.patch.as_deref()]));
    let device_family = device
        .as_ref()
        .map(|d| d.device.to_string())
        .unwrap_or_default();
    let lower = agent.to_ascii_lowercase();
    let bot = device_family == "Spider"
        || [
            "bot",
            "crawler",
            "spider",
            "slurp",
            "headlesschrome",
            "lighthouse",
        ]
        .iter()
        .any(|word| lower.contains(word));
    let system = os_family.as_deref().unwrap_or_default();
    let device_class = if bot {
        "bot"
    } else if device_family == "iPad"
        || lower.contains("tablet")
        || lower.contains("kindle")
        // Android browsers on tablets leave out "Mobile"; apps' own clients never say it
        || (system == "Android" && lower.starts_with("mozilla/") && !lower.contains("mobile"))
    {
        "tablet"
    } else if matches!(system, "iOS" | "Android" | "Windows Phone" | "KaiOS")
        || lower.contains("mobile")
        || device_family == "iPhone"
    {
        "mobile"
    } else if matches!(
        system,
        "Windows" | "Mac OS X" | "Linux" | "Ubuntu" | "Chrome OS" | "Fedora" | "FreeBSD" | "Debian"
    ) {
        "desktop"
    } else {
        "unknown"
    };
    let os_manufacturer = match system {
        "iOS" | "Mac OS X" | "iPadOS" | "watchOS" => Some("Apple Inc."),
        "Windows" | "Windows Phone" => Some("Microsoft Corporation"),
        "Android" | "Chrome OS" => Some("Google Inc."),
        "" => None,
        _ => Some("Other"),
    };
    Parsed {
        browser_name: browser_family.as_ref().map(|family| {
            match browser.as_ref().and_then(|b| b.major) {
                Some(major) => format!("{family} {major}"),
                None => family.clone(),
            }
        }),
        browser_type: if bot {
            "Robot"
        } else if browser_family.is_some() {
            "Browser"
        } else {
            "Unknown"
        },
        browser_family,
        browser_version,
        os_name: os_family.as_ref().map(|family| match &os_version {
            Some(version) => format!("{family} {version}"),
            None => family.clone(),
        }),
        os_family,
        os_manufacturer,
        device_class,
    }
}

impl Enrichment for UserAgent {
    fn name(&self) -> &str {
        "user_agent"
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        let Some(agent) = event.useragent.as_deref().filter(|a| !a.trim().is_empty()) else {
            return Ok(());
        };
        let parsed = self.parse(agent);
        event.br_name = parsed.browser_name.clone();
        event.br_family = parsed.browser_family.clone();
        event.br_version = parsed.browser_version.clone();
        event.br_type = Some(parsed.browser_type.to_owned());
        event.os_name = parsed.os_name.clone();
        event.os_family = parsed.os_family.clone();
        event.os_manufacturer = parsed.os_manufacturer.map(str::to_owned);
        event.dvce_type = Some(parsed.device_class.to_owned());
        event.dvce_ismobile = Some(matches!(parsed.device_class, "mobile" | "tablet"));
        Ok(())
    }
}
