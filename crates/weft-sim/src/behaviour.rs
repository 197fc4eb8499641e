//! One person's visits over the simulated period, as tracker requests.
//!
//! What a person does is drawn from their hidden traits: intent drives how
//! often they come, how long they stay, how much they look at and put in the
//! cart; affinity chooses the categories; the true probability of buying in
//! the prediction window is a function of the traits, and the outcome is drawn
//! from it before the visits that show it are written.

use std::fmt::Write as _;
use std::sync::LazyLock;

use rand::Rng;
use rand::rngs::StdRng;

use crate::catalog::{CATEGORIES, CONTENT_PAGES, Product, SEARCH_TERMS, products_of};
use crate::people::{
    Channel, Device, DeviceKind, Identity, Stream, Traits, normal, pick, rng_for, sigmoid,
};
use crate::schemas;
use crate::tracker::{
    COLLECTOR_COOKIE, CONTEXTS, PAYLOAD_DATA, Params, TP2_PATH, TrackerRequest, UNSTRUCT,
    write_json_string,
};
use crate::{DAY_MS, SimOptions};

/// The fixed text of the contexts every event carries, with plain quotes (for
/// the app's base64) and with escaped quotes (for a browser's JSON string).
struct ContextPieces {
    web_page: String,
    web_page_end: String,
    product_sku: String,
    product_name: String,
    product_price: String,
    product_category: String,
    product_end: String,
}

static CONTEXT_PIECES: LazyLock<[ContextPieces; 2]> = LazyLock::new(|| {
    let pieces = |q: &str| {
        let quoted = |template: &str| template.replace('"', q);
        ContextPieces {
            web_page: quoted(&format!(
                r#"{{"schema":"{CONTEXTS}","data":[{{"schema":"{}","data":{{"id":""#,
                schemas::WEB_PAGE
            )),
            web_page_end: quoted(r#""}}"#),
            product_sku: quoted(&format!(
                r#",{{"schema":"{}","data":{{"sku":""#,
                schemas::PRODUCT
            )),
            product_name: quoted(r#"","name":""#),
            product_price: quoted(r#"","price":"#),
            product_category: quoted(r#","category":""#),
            product_end: quoted(r#""}}"#),
        }
    };
    [pieces("\""), pieces("\\\"")]
});

/// Logit of buying in the prediction window, for average traits.
const BASE_LOGIT: f64 = -4.1;
/// How strongly intent moves the odds of buying.
const INTENT_WEIGHT: f64 = 1.5;
/// Seconds between page pings, as the tracker's `heartbeatDelay`.
const HEARTBEAT_SECS: i64 = 10;
/// Share of visitors that are crawlers rendering the site (the tracker fires for them).
const CRAWLER_SHARE: f64 = 0.01;
/// Most events one browser POST carries.
const MAX_BATCH: usize = 10;

/// What the simulator knows about one person and nobody else does.
#[derive(Debug, Clone)]
pub struct PersonTruth {
    pub person_id: String,
    /// A search engine's crawler, not a person: never buys, never registers.
    pub crawler: bool,
    pub traits: Traits,
    /// True probability of buying anything in the prediction window.
    pub p_convert: f64,
    pub converted: bool,
    /// True probability, and outcome, of buying in each category in the window.
    pub p_category: [f64; CATEGORIES.len()],
    pub converted_category: [bool; CATEGORIES.len()],
    pub orders_before_cutoff: u32,
    /// Registered by the end of the period (those who buy always are).
    pub registered: bool,
    pub emailable: bool,
    pub devices: usize,
    pub visits: usize,
    pub events: usize,
    pub requests: usize,
}

/// The outcome part of the truth: drawn from the traits alone.
pub(crate) struct Outcome {
    pub p_convert: f64,
    pub converted: bool,
    pub p_category: [f64; CATEGORIES.len()],
    /// Categories of the window's basket (empty unless converted).
    pub basket: Vec<usize>,
    pub orders_before_cutoff: u32,
}

impl Outcome {
    pub(crate) fn draw(rng: &mut StdRng, traits: &Traits, options: &SimOptions) -> Self {
        let channel_boost = match (traits.preferred_channel, traits.consent_marketing) {
            (Channel::Email, true) => 0.35,
            _ => 0.0,
        };
        let logit = BASE_LOGIT + INTENT_WEIGHT * traits.intent + channel_boost
            - 0.4 * traits.price_sensitivity;
        let p_convert = sigmoid(logit);
        let mut p_category = [0.0; CATEGORIES.len()];
        for (c, p) in p_category.iter_mut().enumerate() {
            let w = traits.affinity[c];
            *p = p_convert * (w + (1.0 - w) * extra_category_rate(w));
        }
        let converted = rng.random_bool(p_convert);
        let basket = if converted {
            basket(rng, traits)
        } else {
            Vec::new()
        };
        // the same propensity over the longer past shows as earlier orders
        let past_days = f64::from(options.days - options.prediction_days);
        let p_before = 1.0 - (1.0 - p_convert).powf(past_days / f64::from(options.prediction_days));
        let mut orders_before_cutoff: u32 = 0;
        while orders_before_cutoff < 3
            && rng.random_bool(p_before * 0.9f64.powi(orders_before_cutoff as i32))
        {
            orders_before_cutoff += 1;
        }
        Self {
            p_convert,
            converted,
            p_category,
            basket,
            orders_before_cutoff,
        }
    }
}

/// Chance that a category other than the first lands in the same basket.
fn extra_category_rate(affinity: f64) -> f64 {
    (1.5 * affinity).min(0.6)
}

/// A basket's categories: one by affinity, then each other by its own chance.
fn basket(rng: &mut StdRng, traits: &Traits) -> Vec<usize> {
    let first = by_weight(rng, &traits.affinity);
    let mut categories = vec![first];
    for (c, &w) in traits.affinity.iter().enumerate() {
        if c != first && rng.random_bool(extra_category_rate(w)) {
            categories.push(c);
        }
    }
    categories
}

fn by_weight(rng: &mut StdRng, weights: &[f64]) -> usize {
    let mut x = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (index, w) in weights.iter().enumerate() {
        if x < *w {
            return index;
        }
        x -= w;
    }
    weights.len() - 1
}

fn poisson(rng: &mut StdRng, mean: f64) -> u32 {
    // Knuth's method; means here are small
    let limit = (-mean).exp();
    let mut product: f64 = rng.random();
    let mut count = 0;
    while product > limit && count < 200 {
        product *= rng.random::<f64>();
        count += 1;
    }
    count
}

/// A browser or app install as it changes over time: cookies can be cleared.
struct DeviceState {
    device: Device,
    /// `res` and `vp` as the tracker sends them.
    screen: String,
    viewport: String,
    duid: String,
    nuid: String,
    sessions: u32,
    /// The user id the tracker has set, while logged in.
    user_id: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Arrival {
    OrganicSearch,
    PaidSearch,
    PaidSocial,
    Email,
    Referral,
    Direct,
}

/// What a visit is for.
enum Purpose {
    Browse,
    Purchase(Vec<usize>),
}

/// Everything one person sends, and who they are.
pub struct PersonRun {
    pub requests: Vec<TrackerRequest>,
    pub truth: PersonTruth,
    pub identity: Identity,
    /// Every (domain_userid, network_userid) the person's devices used.
    pub cookies: Vec<(String, String)>,
    /// Order ids and times, for the orders source of customer records.
    pub orders: Vec<Order>,
    pub registered_at_ms: Option<i64>,
    pub newsletter_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: String,
    pub at_ms: i64,
    pub total: f64,
}

struct Run<'a> {
    crawler: bool,
    options: &'a SimOptions,
    rng: StdRng,
    identity: Identity,
    traits: Traits,
    devices: Vec<DeviceState>,
    cookies: Vec<(String, String)>,
    requests: Vec<TrackerRequest>,
    events: usize,
    registered_at: Option<i64>,
    newsletter_at: Option<i64>,
    orders: Vec<Order>,
    /// Events of the page being viewed, not yet sent.
    pending: Vec<Params>,
    spare: Vec<Params>,
}

pub(crate) fn simulate_person(options: &SimOptions, index: u64) -> PersonRun {
    let seed = options.seed;
    let identity = Identity::of(seed, index);
    let crawler = rng_for(seed, Stream::Crawler, index).random_bool(CRAWLER_SHARE);
    let mut traits = Traits::draw(&mut rng_for(seed, Stream::Traits, index));
    let mut outcome = Outcome::draw(
        &mut rng_for(seed, Stream::Traits, index ^ (1 << 40)),
        &traits,
        options,
    );
    if crawler {
        traits.registers = false;
        traits.registered_before_start = false;
        traits.consent_marketing = false;
        traits.newsletter = false;
        outcome = Outcome {
            p_convert: 0.0,
            converted: false,
            p_category: [0.0; CATEGORIES.len()],
            basket: Vec::new(),
            orders_before_cutoff: 0,
        };
    }
    let mut rng = rng_for(seed, Stream::Devices, index);
    let device_count = match rng.random_range(0..100) {
        _ if crawler => 1,
        0..55 => 1,
        55..85 => 2,
        _ => 3,
    };
    let mut devices = Vec::new();
    let mut cookies = Vec::new();
    for _ in 0..device_count {
        let device = if crawler {
            Device::crawler(&mut rng)
        } else {
            Device::draw(&mut rng, identity.country())
        };
        let (duid, nuid) = (uuid(&mut rng), uuid(&mut rng));
        cookies.push((duid.clone(), nuid.clone()));
        devices.push(DeviceState {
            screen: format!("{}x{}", device.screen.0, device.screen.1),
            viewport: format!("{}x{}", device.viewport.0, device.viewport.1),
            device,
            duid,
            nuid,
            sessions: 0,
            user_id: None,
        });
    }
    let mut run = Run {
        crawler,
        options,
        rng: rng_for(seed, Stream::Behaviour, index),
        identity,
        traits,
        devices,
        cookies,
        requests: Vec::new(),
        events: 0,
        registered_at: None,
        newsletter_at: None,
        orders: Vec::new(),
        pending: Vec::new(),
        spare: Vec::new(),
    };
    let visits = run.plan_visits(&outcome);
    let visit_count = visits.len();
    if run.traits.registered_before_start {
        run.registered_at = Some(options.start_ms() - DAY_MS);
    }
    for (at, purpose) in visits {
        run.visit(at, purpose);
    }
    let truth = PersonTruth {
        person_id: person_id(index),
        crawler,
        p_convert: outcome.p_convert,
        converted: outcome.converted,
        p_category: outcome.p_category,
        converted_category: std::array::from_fn(|c| outcome.basket.contains(&c)),
        orders_before_cutoff: outcome.orders_before_cutoff,
        registered: run.registered_at.is_some(),
        emailable: run.emailable(options.end_ms),
        devices: device_count,
        visits: visit_count,
        events: run.events,
        requests: run.requests.len(),
        traits: run.traits.clone(),
    };
    PersonRun {
        requests: run.requests,
        truth,
        identity: run.identity,
        cookies: run.cookies,
        orders: run.orders,
        registered_at_ms: run.registered_at,
        newsletter_at_ms: run.newsletter_at,
    }
}

pub fn person_id(index: u64) -> String {
    format!("P{index:07}")
}

fn uuid(rng: &mut StdRng) -> String {
    random_uuid(rng).to_string()
}

fn random_uuid(rng: &mut StdRng) -> uuid::Uuid {
    // random bits with the version (4) and variant (RFC 9562) bits set
    let bits = rng.random::<u128>() & !(0xf << 76) & !(0b11 << 62) | (0x4 << 76) | (0b10 << 62);
    uuid::Uuid::from_u128(bits)
}

impl Run<'_> {
    /// Visit times and purposes: everyone visits before the cut-off, more often
    /// and more recently the keener they are; buyers come back to buy.
    fn plan_visits(&mut self, outcome: &Outcome) -> Vec<(i64, Purpose)> {
        let options = self.options;
        let start = options.start_ms();
        let cutoff = options.cutoff_ms();
        let past = (cutoff - start) as f64;
        let intent = self.traits.intent;
        let rate = 1.1 * (0.55 * intent + 0.4 * normal(&mut self.rng)).exp();
        let recency = (0.35 * intent).exp();
        let mut visits: Vec<(i64, Purpose)> = Vec::new();
        let before = 1 + poisson(&mut self.rng, rate).min(40);
        for _ in 0..before {
            let u: f64 = self.rng.random();
            let at = start + (past * (1.0 - u.powf(recency))) as i64;
            visits.push((at.min(cutoff - 60_000), Purpose::Browse));
        }
        visits.sort_by_key(|(at, _)| *at);
        // earlier orders happen on any of those visits: a person's propensity
        // is the same before the cut-off as after, whichever earlier cut-off
        // a model looks back from
        for _ in 0..outcome.orders_before_cutoff {
            let pick = self.rng.random_range(0..visits.len());
            let categories = basket(&mut self.rng, &self.traits);
            visits[pick].1 = Purpose::Purchase(categories);
        }
        let window = (options.end_ms - cutoff) as f64;
        let after = poisson(&mut self.rng, 0.8 * rate * window / past);
        for _ in 0..after {
            let at = cutoff + (window * self.rng.random::<f64>()) as i64;
            visits.push((at, Purpose::Browse));
        }
        if outcome.converted {
            let at = cutoff + (window * self.rng.random::<f64>()) as i64;
            visits.push((at, Purpose::Purchase(outcome.basket.clone())));
        }
        visits.sort_by_key(|(at, _)| *at);
        visits
    }

    fn emailable(&self, at: i64) -> bool {
        self.traits.consent_marketing
            && (self.newsletter_at.is_some_and(|t| t <= at)
                || self.registered_at.is_some_and(|t| t <= at))
    }

    fn arrival(&mut self, returning: bool, at: i64) -> Arrival {
        let email = if self.emailable(at) { 14.0 } else { 0.0 };
        let (email_boost, paid_boost) = match self.traits.preferred_channel {
            Channel::Email => (3.0, 1.0),
            Channel::PaidMedia => (1.0, 2.0),
        };
        let direct = if returning { 33.0 } else { 22.0 };
        let weights = [
            30.0,
            14.0 * paid_boost,
            12.0 * paid_boost,
            email * email_boost,
            8.0,
            direct,
        ];
        [
            Arrival::OrganicSearch,
            Arrival::PaidSearch,
            Arrival::PaidSocial,
            Arrival::Email,
            Arrival::Referral,
            Arrival::Direct,
        ][by_weight(&mut self.rng, &weights)]
    }

    fn visit(&mut self, mut at: i64, purpose: Purpose) {
        // the main device most of the time
        let device = if self.devices.len() == 1 || self.rng.random_bool(0.65) {
            0
        } else {
            self.rng.random_range(0..self.devices.len())
        };
        let clears =
            self.devices[device].device.kind != DeviceKind::App && self.rng.random_bool(0.05);
        if clears && self.devices[device].sessions > 0 {
            let (duid, nuid) = (uuid(&mut self.rng), uuid(&mut self.rng));
            self.cookies.push((duid.clone(), nuid.clone()));
            let state = &mut self.devices[device];
            state.duid = duid;
            state.nuid = nuid;
            state.sessions = 0;
            state.user_id = None;
        } else if self.rng.random_bool(0.35) {
            // logged out since the last visit
            self.devices[device].user_id = None;
        }
        let returning = self.devices[device].sessions > 0;
        self.devices[device].sessions += 1;
        let session = Session {
            device,
            sid: uuid(&mut self.rng),
            index: self.devices[device].sessions,
        };
        let arrival = if self.crawler {
            Arrival::Direct
        } else {
            self.arrival(returning, at)
        };
        let favourite = by_weight(&mut self.rng, &self.traits.affinity);
        let (landing, referer) = self.landing(arrival, favourite);
        let mut page = self.page(&session, &mut at, landing, referer);

        if self.crawler {
            // a crawl: many pages, quickly, following links
            for _ in 0..self.rng.random_range(5..25) {
                let next = self.next_page(favourite);
                let referer = page.url.clone();
                page = self.page(&session, &mut at, next, Some(referer));
            }
            self.flush(&session, at);
            return;
        }
        let registered = self.registered_at.is_some_and(|t| t <= at);
        if self.traits.registers
            && !registered
            && matches!(purpose, Purpose::Browse)
            && self.rng.random_bool(0.3)
        {
            page = self.sign_up(&session, &mut at, &page);
        } else if registered && self.devices[device].user_id.is_none() && self.rng.random_bool(0.2)
        {
            page = self.login(&session, &mut at, &page);
        }
        if self.traits.newsletter && self.newsletter_at.is_none() && self.rng.random_bool(0.3) {
            self.newsletter_signup(&session, &mut at, &page);
        }

        match purpose {
            Purpose::Browse => {
                let keen = sigmoid(0.2 + 0.5 * self.traits.intent + 0.5 * normal(&mut self.rng));
                let mut pages = 1;
                while pages < 25 && self.rng.random_bool(keen.min(0.85)) {
                    let next = self.next_page(favourite);
                    let referer = page.url.clone();
                    page = self.page(&session, &mut at, next, Some(referer));
                    pages += 1;
                }
            }
            Purpose::Purchase(categories) => {
                let mut items = Vec::new();
                for &category in &categories {
                    let count = if self.traits.price_sensitivity > 0.7 {
                        1
                    } else {
                        self.rng.random_range(1..=2)
                    };
                    for _ in 0..count {
                        let product = *pick(&mut self.rng, products_of(category));
                        let referer = page.url.clone();
                        page =
                            self.page(&session, &mut at, Landing::Product(product), Some(referer));
                        let quantity = self.rng.random_range(1..=3);
                        self.add_to_cart(&session, &mut at, &page, product, quantity);
                        items.push((product, quantity));
                    }
                }
                let referer = page.url.clone();
                page = self.page(&session, &mut at, Landing::Cart, Some(referer));
                let referer = page.url.clone();
                page = self.page(&session, &mut at, Landing::Checkout, Some(referer));
                // guests sign up and customers sign in, then come back to pay
                let signed_in = if self.registered_at.is_none_or(|t| t > at) {
                    Some(self.sign_up(&session, &mut at, &page))
                } else if self.devices[device].user_id.is_none() {
                    Some(self.login(&session, &mut at, &page))
                } else {
                    None
                };
                page = match signed_in {
                    Some(previous) => {
                        self.page(&session, &mut at, Landing::Checkout, Some(previous.url))
                    }
                    None => page,
                };
                self.purchase(&session, &mut at, &page, &items);
                let referer = page.url.clone();
                self.page(&session, &mut at, Landing::Confirmation, Some(referer));
            }
        }
        self.flush(&session, at);
    }

    fn landing(&mut self, arrival: Arrival, favourite: usize) -> (Landing, Option<String>) {
        let rng = &mut self.rng;
        let category = CATEGORIES[favourite].slug;
        let product = *pick(rng, products_of(favourite));
        let focused = if rng.random_bool(0.6) {
            Landing::Product(product)
        } else {
            Landing::Category(favourite)
        };
        match arrival {
            Arrival::OrganicSearch => {
                let referer = match rng.random_range(0..4) {
                    0 => format!(
                        "https://www.bing.com/search?q={}",
                        pick(rng, SEARCH_TERMS[favourite]).replace(' ', "+")
                    ),
                    1 => "https://duckduckgo.com/".to_owned(),
                    2 => "https://www.google.co.uk/".to_owned(),
                    _ => "https://www.google.com/".to_owned(),
                };
                let landing = match rng.random_range(0..4) {
                    0 => Landing::Home,
                    1 => Landing::Content(rng.random_range(0..CONTENT_PAGES.len())),
                    _ => focused,
                };
                (landing, Some(referer))
            }
            Arrival::PaidSearch => {
                let term = pick(rng, SEARCH_TERMS[favourite]).replace(' ', "+");
                let (source, click, referer) = if rng.random_bool(0.85) {
                    ("google", "gclid", "https://www.google.com/")
                } else {
                    ("bing", "msclkid", "https://www.bing.com/")
                };
                let query = format!(
                    "utm_source={source}&utm_medium=cpc&utm_campaign=generic_{category}&utm_term={term}&{click}={}",
                    click_id(rng)
                );
                (focused.with_query(query), Some(referer.to_owned()))
            }
            Arrival::PaidSocial => {
                let (source, referer) = if rng.random_bool(0.7) {
                    ("facebook", "https://m.facebook.com/")
                } else {
                    ("instagram", "https://l.instagram.com/")
                };
                let query = format!(
                    "utm_source={source}&utm_medium=paid_social&utm_campaign=prospecting_{category}&utm_content=carousel&fbclid={}",
                    click_id(rng)
                );
                (focused.with_query(query), Some(referer.to_owned()))
            }
            Arrival::Email => {
                let query = format!(
                    "utm_source=newsletter&utm_medium=email&utm_campaign=weekly_offers&utm_content={category}"
                );
                (focused.with_query(query), None)
            }
            Arrival::Referral => {
                let referer = pick(
                    rng,
                    &[
                        "https://www.bbcgoodfood.com/recipes/collection/easy-bread",
                        "https://www.reddit.com/r/UKFrugal/comments/1abcde/online_grocery_deals/",
                        "https://www.mumsnet.com/talk/food_and_recipes",
                        "https://news.example.org/best-supermarket-deliveries",
                    ],
                )
                .to_string();
                let landing = if rng.random_bool(0.5) {
                    Landing::Content(rng.random_range(0..CONTENT_PAGES.len()))
                } else {
                    focused
                };
                (landing, Some(referer))
            }
            Arrival::Direct => (Landing::Home, None),
        }
    }

    fn next_page(&mut self, favourite: usize) -> Landing {
        let rng = &mut self.rng;
        let category = if rng.random_bool(0.7) {
            favourite
        } else {
            rng.random_range(0..CATEGORIES.len())
        };
        match rng.random_range(0..100) {
            0..42 => Landing::Product(*pick(rng, products_of(category))),
            42..64 => Landing::Category(category),
            64..76 => Landing::Search(category),
            76..83 => Landing::Cart,
            83..90 => Landing::Home,
            90..96 => Landing::Content(rng.random_range(0..CONTENT_PAGES.len())),
            _ => Landing::Account,
        }
    }

    /// A page view, its product view, pings while the person stays, and a cart add.
    fn page(
        &mut self,
        session: &Session,
        at: &mut i64,
        landing: Landing,
        referer: Option<String>,
    ) -> Page {
        self.flush(session, *at);
        let site = &self.options.site;
        let (path, title, product) = landing.describe();
        let url = match landing.query() {
            Some(query) if path.contains('?') => format!("{site}{path}&{query}"),
            Some(query) => format!("{site}{path}?{query}"),
            None => format!("{site}{path}"),
        };
        let page = Page {
            url,
            title,
            id: uuid(&mut self.rng),
            product,
            height: self.rng.random_range(1800..6000),
        };
        let mut pv = self.event(session, "pv", *at, &page);
        if let Some(referer) = &referer {
            pv.put("refr", referer);
        }
        self.pending.push(pv);
        if let Some(product) = product {
            *at += self.rng.random_range(200..1500);
            let mut event = self.event(session, "ue", *at, &page);
            put_unstruct(&mut event, schemas::PRODUCT_VIEW, |out| {
                let _ = write!(
                    out,
                    "{{\"sku\":\"{}\",\"category\":\"{}\"}}",
                    product.sku, CATEGORIES[product.category].slug
                );
            });
            self.pending.push(event);
        }
        if let Landing::Search(category) = landing {
            *at += self.rng.random_range(300..2000);
            let term = *pick(&mut self.rng, SEARCH_TERMS[category]);
            let mut event = self.event(session, "se", *at, &page);
            event.put("se_ca", "search");
            event.put("se_ac", "search");
            event.put("se_la", term);
            event.put_fmt("se_va", format_args!("{}", self.rng.random_range(0..40)));
            self.pending.push(event);
        }
        // engaged seconds grow with intent; pings while engaged
        let mean =
            18.0 * (0.35 * self.traits.intent).exp() * if product.is_some() { 1.4 } else { 1.0 };
        let engaged = if self.crawler {
            0
        } else {
            (-mean * (1.0 - self.rng.random::<f64>()).ln()).min(900.0) as i64
        };
        let viewport = i64::from(self.devices[session.device].device.viewport.1);
        let max_scroll = (page.height - viewport).max(0);
        let mut scrolled = 0;
        for ping in 1..=engaged / HEARTBEAT_SECS {
            let mut event = self.event(session, "pp", *at + ping * HEARTBEAT_SECS * 1000, &page);
            let low = scrolled;
            scrolled = (scrolled + self.rng.random_range(0..=max_scroll / 4 + 1)).min(max_scroll);
            event.put("pp_mix", "0");
            event.put("pp_max", "0");
            event.put_fmt("pp_miy", format_args!("{low}"));
            event.put_fmt("pp_may", format_args!("{scrolled}"));
            self.pending.push(event);
            if self.pending.len() >= MAX_BATCH {
                let sent = *at + ping * HEARTBEAT_SECS * 1000 + 40;
                self.flush(session, sent);
            }
        }
        *at += engaged * 1000 + self.rng.random_range(1_000..20_000);
        if let Some(product) = product
            && !self.crawler
            && self.rng.random_bool(sigmoid(
                -2.0 + 0.8 * self.traits.intent - 0.8 * self.traits.price_sensitivity,
            ))
        {
            let quantity = self.rng.random_range(1..=2);
            let mut cart_at = *at - 900;
            self.add_to_cart(session, &mut cart_at, &page, product, quantity);
        }
        page
    }

    fn add_to_cart(
        &mut self,
        session: &Session,
        at: &mut i64,
        page: &Page,
        product: Product,
        quantity: u32,
    ) {
        *at += self.rng.random_range(500..3000);
        let mut event = self.event(session, "ue", *at, page);
        put_unstruct(&mut event, schemas::ADD_TO_CART, |out| {
            let _ = write!(
                out,
                "{{\"sku\":\"{}\",\"category\":\"{}\",\"quantity\":{quantity},\"unit_price\":{:.2},\"currency\":\"GBP\"}}",
                product.sku, CATEGORIES[product.category].slug, product.price
            );
        });
        self.pending.push(event);
    }

    /// The user entity, with `q` for its quotes (see [`Params::put_with`]).
    fn user_context(&self, q: &str, out: &mut String) {
        let user_id = &self.identity.user_id;
        let email = &self.identity.email;
        let _ = write!(
            out,
            "{{{q}schema{q}:{q}{}{q},{q}data{q}:{{{q}user_id{q}:{q}{user_id}{q},{q}email{q}:{q}{email}{q}}}}}",
            schemas::USER
        );
    }

    fn login(&mut self, session: &Session, at: &mut i64, page: &Page) -> Page {
        let referer = page.url.clone();
        let page = self.page(session, at, Landing::Login, Some(referer));
        self.devices[session.device].user_id = Some(self.identity.user_id.clone());
        let mut event = self.event_with(session, "ue", *at, &page, true);
        put_unstruct(&mut event, schemas::LOGIN, |out| {
            out.push_str("{\"method\":\"password\"}")
        });
        self.pending.push(event);
        *at += self.rng.random_range(1_000..4_000);
        page
    }

    fn sign_up(&mut self, session: &Session, at: &mut i64, page: &Page) -> Page {
        let referer = page.url.clone();
        let page = self.page(session, at, Landing::Register, Some(referer));
        self.registered_at = Some(*at);
        self.devices[session.device].user_id = Some(self.identity.user_id.clone());
        let consent = self.traits.consent_marketing;
        let mut event = self.event_with(session, "ue", *at, &page, true);
        put_unstruct(&mut event, schemas::SIGN_UP, |out| {
            let _ = write!(
                out,
                "{{\"method\":\"email\",\"consent_marketing\":{consent}}}"
            );
        });
        self.pending.push(event);
        *at += self.rng.random_range(2_000..8_000);
        page
    }

    fn newsletter_signup(&mut self, session: &Session, at: &mut i64, page: &Page) {
        *at += self.rng.random_range(1_000..5_000);
        self.newsletter_at = Some(*at);
        let mut event = self.event(session, "ue", *at, page);
        let email = self.identity.email.clone();
        put_unstruct(&mut event, schemas::NEWSLETTER_SIGNUP, |out| {
            out.push_str("{\"email\":");
            write_json_string(&email, out);
            out.push_str(",\"consent_marketing\":true,\"list\":\"weekly_offers\"}");
        });
        self.pending.push(event);
    }

    fn purchase(&mut self, session: &Session, at: &mut i64, page: &Page, items: &[(Product, u32)]) {
        let order_id = format!(
            "ORD-{}",
            &uuid(&mut self.rng)[..13].to_uppercase().replace('-', "")
        );
        let subtotal: f64 = items.iter().map(|(p, q)| p.price * f64::from(*q)).sum();
        let shipping = if subtotal >= 40.0 { 0.0 } else { 3.95 };
        let total = subtotal + shipping;
        let country = self.identity.country().code;
        let city = self.identity.address.city;
        *at += self.rng.random_range(3_000..15_000);
        let mut tr = self.event(session, "tr", *at, page);
        tr.put("tr_id", &order_id);
        tr.put("tr_af", "acme-web");
        tr.put_fmt("tr_tt", format_args!("{total:.2}"));
        tr.put_fmt("tr_tx", format_args!("{:.2}", total / 6.0));
        tr.put_fmt("tr_sh", format_args!("{shipping:.2}"));
        tr.put("tr_ci", city);
        tr.put("tr_co", country);
        tr.put("tr_cu", "GBP");
        self.pending.push(tr);
        for (product, quantity) in items {
            let mut ti = self.event(session, "ti", *at, page);
            ti.put("ti_id", &order_id);
            ti.put("ti_sk", product.sku);
            ti.put("ti_nm", product.name);
            ti.put("ti_ca", CATEGORIES[product.category].slug);
            ti.put_fmt("ti_pr", format_args!("{:.2}", product.price));
            ti.put_fmt("ti_qu", format_args!("{quantity}"));
            ti.put("ti_cu", "GBP");
            self.pending.push(ti);
        }
        let mut categories: Vec<&str> = items
            .iter()
            .map(|(p, _)| CATEGORIES[p.category].slug)
            .collect();
        categories.dedup();
        let mut event = self.event(session, "ue", *at + 5, page);
        put_unstruct(&mut event, schemas::CHECKOUT, |out| {
            let _ = write!(
                out,
                "{{\"order_id\":\"{order_id}\",\"total\":{total:.2},\"currency\":\"GBP\",\"items\":{},\"categories\":[",
                items.len()
            );
            for (i, category) in categories.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "\"{category}\"");
            }
            out.push_str("]}");
        });
        self.pending.push(event);
        self.orders.push(Order {
            id: order_id,
            at_ms: *at,
            total,
        });
    }

    fn event(&mut self, session: &Session, kind: &'static str, at: i64, page: &Page) -> Params {
        self.event_with(session, kind, at, page, false)
    }

    /// The parameters every event of this tracker carries.
    fn event_with(
        &mut self,
        session: &Session,
        kind: &'static str,
        at: i64,
        page: &Page,
        with_user: bool,
    ) -> Params {
        let mut params = self.spare.pop().unwrap_or_default();
        let eid = random_uuid(&mut self.rng);
        let state = &self.devices[session.device];
        let device = &state.device;
        let app = device.kind == DeviceKind::App;
        params.put("e", kind);
        params.put(
            "eid",
            eid.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        );
        params.put("tv", if app { "andr-6.0.8" } else { "js-4.1.0" });
        params.put("tna", "sp");
        params.put("aid", if app { "acme-app" } else { "acme-shop" });
        params.put("p", if app { "mob" } else { "web" });
        let mut number = itoa::Buffer::new();
        params.put("dtm", number.format(at));
        params.put("ttm", number.format(at));
        params.put("duid", &state.duid);
        params.put("sid", &session.sid);
        params.put("vid", number.format(session.index));
        if let Some(user_id) = &state.user_id {
            params.put("uid", user_id);
        }
        params.put("url", &page.url);
        params.put("page", &page.title);
        params.put("res", &state.screen);
        params.put("vp", &state.viewport);
        params.put_with("ds", false, |out| {
            out.push_str(number.format(device.viewport.0));
            out.push('x');
            out.push_str(number.format(page.height));
        });
        params.put("cd", "24");
        params.put("tz", device.time_zone);
        params.put("lang", device.language);
        params.put("cs", "UTF-8");
        params.put("cookie", "1");
        // the web_page entity on every event, the product on a product page's; browsers
        // post it inside a JSON string, so it is written with escaped quotes right away
        let pieces = &CONTEXT_PIECES[usize::from(!app)];
        let product = page.product;
        let page_id = &page.id;
        let user = with_user.then(|| {
            let mut json = String::new();
            self.user_context(if app { "\"" } else { "\\\"" }, &mut json);
            json
        });
        params.put_with("co", !app, |out| {
            out.push_str(&pieces.web_page);
            out.push_str(page_id);
            out.push_str(&pieces.web_page_end);
            if let Some(product) = product {
                out.push_str(&pieces.product_sku);
                out.push_str(product.sku);
                out.push_str(&pieces.product_name);
                out.push_str(product.name);
                out.push_str(&pieces.product_price);
                let _ = write!(out, "{:.2}", product.price);
                out.push_str(&pieces.product_category);
                out.push_str(CATEGORIES[product.category].slug);
                out.push_str(&pieces.product_end);
            }
            if let Some(user) = &user {
                out.push(',');
                out.push_str(user);
            }
            out.push_str("]}");
        });
        self.events += 1;
        params
    }

    /// Sends the pending events: browsers one POST batch, the app a GET each.
    fn flush(&mut self, session: &Session, sent_at: i64) {
        if self.pending.is_empty() {
            return;
        }
        let sent_at = sent_at + self.rng.random_range(20..400);
        let state = &self.devices[session.device];
        let device = &state.device;
        let mut headers = vec![
            ("user-agent", device.user_agent.to_owned()),
            ("cookie", format!("{COLLECTOR_COOKIE}={}", state.nuid)),
            ("x-forwarded-for", device.ip.clone()),
            ("accept-language", device.language.to_owned()),
        ];
        let mut pending = std::mem::take(&mut self.pending);
        if device.kind == DeviceKind::App {
            for params in pending.drain(..) {
                self.requests.push(TrackerRequest {
                    method: "GET",
                    path: format!("/i?{}", params.query(sent_at)),
                    headers: headers.clone(),
                    body: None,
                    events: 1,
                    sent_at_ms: sent_at,
                    client_ip: device.ip.clone(),
                    network_user_id: state.nuid.clone(),
                });
                self.spare.push(params.cleared());
            }
        } else {
            let mut body = String::with_capacity(1024 * pending.len());
            let _ = write!(body, "{{\"schema\":\"{PAYLOAD_DATA}\",\"data\":[");
            for (i, params) in pending.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                params.write_json(sent_at, &mut body);
            }
            body.push_str("]}");
            let page_url = pending
                .last()
                .and_then(|p| p.get("url"))
                .unwrap_or_default()
                .to_owned();
            headers.push(("content-type", "application/json; charset=UTF-8".into()));
            headers.push(("origin", self.options.site.clone()));
            headers.push(("referer", page_url));
            self.requests.push(TrackerRequest {
                method: "POST",
                path: TP2_PATH.into(),
                headers,
                body: Some(body),
                events: pending.len(),
                sent_at_ms: sent_at,
                client_ip: device.ip.clone(),
                network_user_id: state.nuid.clone(),
            });
            self.spare.extend(pending.drain(..).map(Params::cleared));
        }
        self.pending = pending;
    }
}

fn put_unstruct(params: &mut Params, schema: &str, data: impl FnOnce(&mut String)) {
    let mut out = String::with_capacity(200);
    let _ = write!(
        out,
        "{{\"schema\":\"{UNSTRUCT}\",\"data\":{{\"schema\":\"{schema}\",\"data\":"
    );
    data(&mut out);
    out.push_str("}}");
    params.put("ue_pr", &out);
}

fn click_id(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    (0..24)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

struct Session {
    device: usize,
    sid: String,
    index: u32,
}

struct Page {
    url: String,
    title: String,
    id: String,
    product: Option<Product>,
    height: i64,
}

/// Where a page view lands, and the campaign query of an arrival.
#[derive(Clone)]
enum Landing {
    Home,
    Category(usize),
    Product(Product),
    Search(usize),
    Content(usize),
    Cart,
    Checkout,
    Confirmation,
    Account,
    Login,
    Register,
    Campaign(Box<Landing>, String),
}

impl Landing {
    fn with_query(self, query: String) -> Landing {
        Landing::Campaign(Box::new(self), query)
    }

    fn query(&self) -> Option<&str> {
        match self {
            Landing::Campaign(_, query) => Some(query),
            _ => None,
        }
    }

    fn describe(&self) -> (String, String, Option<Product>) {
        const SHOP: &str = "Acme Grocer";
        match self {
            Landing::Home => ("/".into(), format!("{SHOP} | Groceries delivered"), None),
            Landing::Category(c) => (
                format!("/c/{}", CATEGORIES[*c].slug.replace('_', "-")),
                format!("{} | {SHOP}", CATEGORIES[*c].title),
                None,
            ),
            Landing::Product(p) => (
                format!("/p/{}/{}", p.sku.to_lowercase(), p.slug),
                format!("{} | {SHOP}", p.name),
                Some(*p),
            ),
            Landing::Search(c) => (
                format!("/search?q={}", CATEGORIES[*c].slug),
                format!("Search results | {SHOP}"),
                None,
            ),
            Landing::Content(i) => {
                let (path, title) = CONTENT_PAGES[*i];
                (path.into(), format!("{title} | {SHOP}"), None)
            }
            Landing::Cart => ("/cart".into(), format!("Your basket | {SHOP}"), None),
            Landing::Checkout => ("/checkout".into(), format!("Checkout | {SHOP}"), None),
            Landing::Confirmation => (
                "/checkout/confirmation".into(),
                format!("Thank you for your order | {SHOP}"),
                None,
            ),
            Landing::Account => ("/account".into(), format!("Your account | {SHOP}"), None),
            Landing::Login => ("/account/login".into(), format!("Sign in | {SHOP}"), None),
            Landing::Register => (
                "/account/register".into(),
                format!("Create an account | {SHOP}"),
                None,
            ),
            Landing::Campaign(inner, _) => inner.describe(),
        }
    }
}

impl Params {
    fn cleared(mut self) -> Self {
        self.clear();
        self
    }
}
