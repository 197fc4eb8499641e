//! Referer classification: `refr_medium` (search, social, email, paid,
//! internal, unknown), `refr_source` (e.g. Google) and `refr_term` (the search
//! terms, where the referer carries them) from `page_referrer`, as Snowplow's
//! referer parser does, with the list of known referers kept here.

use weft_core::Event;
use weft_core::config::RefererConfig;

use super::{Enrichment, EnrichmentConfigError};

struct Known {
    source: &'static str,
    medium: &'static str,
    /// Hosts it is known by: `example.com` matches it and its subdomains;
    /// `google.*` matches `google.` followed by any country or generic suffix.
    hosts: &'static [&'static str],
    /// Query parameters that carry the search terms.
    terms: &'static [&'static str],
}

const fn known(
    source: &'static str,
    medium: &'static str,
    hosts: &'static [&'static str],
    terms: &'static [&'static str],
) -> Known {
    Known {
        source,
        medium,
        hosts,
        terms,
    }
}

/// Checked in order: webmail and ad hosts before the search engines that share their domains.
const KNOWN: &[Known] = &[
    known(
        "Gmail",
        "email",
        &["mail.google.com", "inbox.google.com"],
        &[],
    ),
    known(
        "Outlook.com",
        "email",
        &[
            "outlook.live.com",
            "outlook.office.com",
            "outlook.office365.com",
            "mail.live.com",
        ],
        &[],
    ),
    known(
        "Yahoo! Mail",
        "email",
        &["mail.yahoo.com", "mail.yahoo.co.uk", "mail.yahoo.*"],
        &[],
    ),
    known("AOL Mail", "email", &["mail.aol.com"], &[]),
    known(
        "Proton Mail",
        "email",
        &["mail.proton.me", "mail.protonmail.com"],
        &[],
    ),
    known("iCloud Mail", "email", &["icloud.com"], &[]),
    known("GMX", "email", &["gmx.net", "gmx.com", "gmx.de"], &[]),
    known("Web.de", "email", &["web.de"], &[]),
    known(
        "Google",
        "paid",
        &[
            "googleadservices.com",
            "doubleclick.net",
            "googlesyndication.com",
        ],
        &[],
    ),
    known("Bing Ads", "paid", &["bat.bing.com"], &[]),
    known("Google", "search", &["google.*"], &["q", "query"]),
    known("Bing", "search", &["bing.com"], &["q"]),
    known(
        "Yahoo!",
        "search",
        &["search.yahoo.com", "yahoo.*"],
        &["p", "q"],
    ),
    known("DuckDuckGo", "search", &["duckduckgo.com"], &["q"]),
    known("Yandex", "search", &["yandex.*", "ya.ru"], &["text"]),
    known("Baidu", "search", &["baidu.com"], &["wd", "word", "kw"]),
    known("Ecosia", "search", &["ecosia.org"], &["q"]),
    known("Qwant", "search", &["qwant.com"], &["q"]),
    known("Startpage", "search", &["startpage.com"], &["query", "q"]),
    known("Brave Search", "search", &["search.brave.com"], &["q"]),
    known("Naver", "search", &["search.naver.com"], &["query"]),
    known("Seznam", "search", &["search.seznam.cz"], &["q"]),
    known("Ask", "search", &["ask.com"], &["q"]),
    known("AOL", "search", &["search.aol.com"], &["q", "query"]),
    known("Facebook", "social", &["facebook.com", "fb.me"], &[]),
    known("Instagram", "social", &["instagram.com"], &[]),
    known("Twitter", "social", &["twitter.com", "t.co", "x.com"], &[]),
    known("LinkedIn", "social", &["linkedin.com", "lnkd.in"], &[]),
    known("Reddit", "social", &["reddit.com", "redd.it"], &[]),
    known("Pinterest", "social", &["pinterest.*", "pin.it"], &[]),
    known("YouTube", "social", &["youtube.com", "youtu.be"], &[]),
    known("TikTok", "social", &["tiktok.com"], &[]),
    known("WhatsApp", "social", &["whatsapp.com", "wa.me"], &[]),
    known("Threads", "social", &["threads.net", "threads.com"], &[]),
    known("Bluesky", "social", &["bsky.app"], &[]),
    known("Mastodon", "social", &["mastodon.social"], &[]),
    known("Snapchat", "social", &["snapchat.com"], &[]),
    known("VKontakte", "social", &["vk.com"], &[]),
    known("Tumblr", "social", &["tumblr.com"], &[]),
    known("Quora", "social", &["quora.com"], &[]),
];

pub struct RefererClassification {
    internal: Vec<String>,
}

impl RefererClassification {
    pub fn new(config: &RefererConfig) -> Result<Self, EnrichmentConfigError> {
        let internal = config
            .internal_domains
            .iter()
            .map(|domain| {
                let domain = domain.trim().trim_start_matches('.').to_ascii_lowercase();
                if domain.is_empty() || domain.contains(['/', ':', ' ']) {
                    Err(EnrichmentConfigError::new(
                        "referer.internal_domains",
                        format!("{domain:?} is not a host name"),
                    ))
                } else {
                    Ok(domain)
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { internal })
    }

    /// Medium, source and term of a referer URL seen on a page of `page_host`.
    pub fn classify(
        &self,
        referer: &str,
        page_host: Option<&str>,
    ) -> Option<(&'static str, Option<&'static str>, Option<String>)> {
        let url = url::Url::parse(referer).ok()?;
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        let host = url.host_str()?.to_ascii_lowercase();
        let internal = page_host.is_some_and(|page| page.eq_ignore_ascii_case(&host))
            || self.internal.iter().any(|domain| is_within(&host, domain));
        if internal {
            return Some(("internal", None, None));
        }
        let Some(known) = KNOWN
            .iter()
            .find(|k| k.hosts.iter().any(|pattern| matches_host(&host, pattern)))
        else {
            return Some(("unknown", None, None));
        };
        let term = url
            .query_pairs()
            .find(|(key, value)| known.terms.contains(&key.as_ref()) && !value.trim().is_empty())
            .map(|(_, value)| value.trim().to_owned());
        Some((known.medium, Some(known.source), term))
    }
}

fn is_within(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

/// `google.*`: `google` (at the start or after a dot), then a public suffix
/// of one or two short labels (`.com`, `.de`, `.co.uk`).
fn matches_host(host: &str, pattern: &str) -> bool {
    let Some(name) = pattern.strip_suffix(".*") else {
        return is_within(host, pattern);
    };
    host.match_indices(name).any(|(at, _)| {
        let starts_label = at == 0 || host.as_bytes()[at - 1] == b'.';
        let suffix = host[at + name.len()..].strip_prefix('.');
        starts_label
            && suffix.is_some_and(|suffix| {
                let labels: Vec<&str> = suffix.split('.').collect();
                (1..=2).contains(&labels.len()) && labels.iter().all(|l| (2..=3).contains(&l.len()))
            })
    })
}

impl Enrichment for RefererClassification {
    fn name(&self) -> &str {
        "referer"
    }

    fn enrich(&self, event: &mut Event) -> Result<(), String> {
        let Some(referer) = event.page_referrer.as_deref() else {
            return Ok(());
        };
        if let Some((medium, source, term)) = self.classify(referer, event.page_urlhost.as_deref())
        {
            event.refr_medium = Some(medium.to_owned());
            event.refr_source = source.map(str::to_owned);
            event.refr_term = term;
        }
        Ok(())
    }
}
