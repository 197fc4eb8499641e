//! The simulated people: who they are (names, contacts, addresses), their
//! hidden traits, their devices and households. Each person is derived from
//! the seed and their index alone, so people can be generated in any order and
//! in parallel and still come out the same.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::catalog::CATEGORIES;

/// Independent random streams per person, so adding a draw to one aspect does
/// not shift every other.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Identity = 1,
    Traits = 2,
    Household = 3,
    Behaviour = 4,
    Records = 5,
    Devices = 6,
    Crawler = 7,
}

pub(crate) fn rng_for(seed: u64, stream: Stream, index: u64) -> StdRng {
    // splitmix64 of the three, so neighbouring indices get unrelated seeds
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((stream as u64) << 56)
        .wrapping_add(index);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

pub(crate) fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// A standard normal draw (Box–Muller).
pub(crate) fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

pub(crate) fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Email,
    PaidMedia,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::PaidMedia => "paid_media",
        }
    }
}

/// What drives a person's behaviour; never sent, only shown through behaviour.
#[derive(Debug, Clone)]
pub struct Traits {
    /// Standard normal; the main driver of visiting, engaging and buying.
    pub intent: f64,
    /// Share of interest per category (sums to 1).
    pub affinity: [f64; CATEGORIES.len()],
    /// 0 (indifferent) to 1 (buys only on promotion, smaller baskets).
    pub price_sensitivity: f64,
    pub preferred_channel: Channel,
    /// Whether the person has or opens an account.
    pub registers: bool,
    /// Whether the account predates the simulated period.
    pub registered_before_start: bool,
    pub consent_marketing: bool,
    /// Signs up to the newsletter (with consent) during the period.
    pub newsletter: bool,
}

impl Traits {
    pub(crate) fn draw(rng: &mut StdRng) -> Self {
        let intent = normal(rng);
        let mut affinity = [0.0; CATEGORIES.len()];
        for a in &mut affinity {
            *a = (1.1 * normal(rng)).exp();
        }
        let total: f64 = affinity.iter().sum();
        affinity.iter_mut().for_each(|a| *a /= total);
        let registers = rng.random_bool(sigmoid(-0.7 + 0.9 * intent));
        let consent_marketing = rng.random_bool(if registers { 0.6 } else { 0.25 });
        Self {
            intent,
            affinity,
            price_sensitivity: rng.random(),
            preferred_channel: if rng.random_bool(0.5) {
                Channel::Email
            } else {
                Channel::PaidMedia
            },
            registers,
            registered_before_start: registers && rng.random_bool(0.5),
            consent_marketing,
            newsletter: consent_marketing && rng.random_bool(0.5),
        }
    }
}

pub struct Country {
    pub code: &'static str,
    pub time_zones: &'static [&'static str],
    pub languages: &'static [&'static str],
    pub phone_code: &'static str,
    /// National mobile numbers: leading digits, then how many random digits follow.
    pub mobile: (&'static str, usize),
    /// City and the postcode pattern (`#` a digit, `@` a letter).
    pub cities: &'static [(&'static str, &'static str)],
    pub ip_first_octets: &'static [u8],
}

pub const COUNTRIES: [Country; 6] = [
    Country {
        code: "GB",
        time_zones: &["Europe/London"],
        languages: &["en-GB", "en-GB", "en-US", "pl-PL", "en"],
        phone_code: "44",
        mobile: ("7", 9),
        cities: &[
            ("London", "SW# #@@"),
            ("London", "E## #@@"),
            ("London", "N# #@@"),
            ("Manchester", "M## #@@"),
            ("Birmingham", "B## #@@"),
            ("Leeds", "LS# #@@"),
            ("Bristol", "BS# #@@"),
            ("Glasgow", "G## #@@"),
            ("Edinburgh", "EH# #@@"),
            ("Cardiff", "CF## #@@"),
            ("Brighton", "BN# #@@"),
            ("Norwich", "NR# #@@"),
        ],
        ip_first_octets: &[81, 86, 90, 92, 109, 176, 212],
    },
    Country {
        code: "IE",
        time_zones: &["Europe/Dublin"],
        languages: &["en-IE", "en-GB", "ga-IE"],
        phone_code: "353",
        mobile: ("8", 8),
        cities: &[("Dublin", "D0# @###"), ("Cork", "T12 @###")],
        ip_first_octets: &[78, 87, 89],
    },
    Country {
        code: "FR",
        time_zones: &["Europe/Paris"],
        languages: &["fr-FR", "fr"],
        phone_code: "33",
        mobile: ("6", 8),
        cities: &[("Paris", "750##"), ("Lyon", "6900#")],
        ip_first_octets: &[82, 88, 93],
    },
    Country {
        code: "DE",
        time_zones: &["Europe/Berlin"],
        languages: &["de-DE", "de"],
        phone_code: "49",
        mobile: ("15", 9),
        cities: &[("Berlin", "10###"), ("Hamburg", "20###")],
        ip_first_octets: &[84, 91, 217],
    },
    Country {
        code: "NL",
        time_zones: &["Europe/Amsterdam"],
        languages: &["nl-NL", "en-GB"],
        phone_code: "31",
        mobile: ("6", 8),
        cities: &[("Amsterdam", "10## @@"), ("Utrecht", "35## @@")],
        ip_first_octets: &[77, 83, 145],
    },
    Country {
        code: "US",
        time_zones: &["America/New_York", "America/Chicago", "America/Los_Angeles"],
        languages: &["en-US"],
        phone_code: "1",
        mobile: ("", 10),
        cities: &[("New York", "100##"), ("Chicago", "606##")],
        ip_first_octets: &[24, 68, 73, 98],
    },
];

/// Formal names with the nicknames people also go by.
pub const NICKNAMES: &[(&str, &[&str])] = &[
    ("Robert", &["Bob", "Rob", "Bobby"]),
    ("William", &["Bill", "Will"]),
    ("Elizabeth", &["Liz", "Beth", "Lizzie"]),
    ("Margaret", &["Maggie", "Meg"]),
    ("James", &["Jim", "Jimmy"]),
    ("Katherine", &["Kate", "Katie"]),
    ("Michael", &["Mike"]),
    ("Jennifer", &["Jen", "Jenny"]),
    ("Richard", &["Rich", "Rick"]),
    ("Thomas", &["Tom"]),
    ("Charles", &["Charlie"]),
    ("Christopher", &["Chris"]),
    ("Daniel", &["Dan", "Danny"]),
    ("Matthew", &["Matt"]),
    ("Anthony", &["Tony"]),
    ("Joseph", &["Joe"]),
    ("Samantha", &["Sam"]),
    ("Alexander", &["Alex"]),
    ("Rebecca", &["Becky", "Becca"]),
    ("Patricia", &["Pat", "Trish"]),
    ("Susan", &["Sue"]),
    ("Deborah", &["Debbie"]),
    ("Victoria", &["Vicky"]),
    ("Edward", &["Ed", "Ted"]),
    ("Benjamin", &["Ben"]),
    ("Jessica", &["Jess"]),
    ("Nicholas", &["Nick"]),
    ("Andrew", &["Andy"]),
];

const OTHER_FIRST_NAMES: &[&str] = &[
    "Sarah", "Laura", "Emma", "Sophie", "Oliver", "Harry", "George", "Jack", "Amelia", "Priya",
    "Mohammed", "Aisha", "Wei", "Lucas", "Chloé", "Hannah", "Grace", "Noah", "Leo", "Isla",
    "Freya", "Zoë", "Mia", "Zara", "Omar", "Raj", "Anya", "Luca", "Siobhán", "Björn",
];

pub const LAST_NAMES: &[&str] = &[
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "James",
    "Phillips",
    "Mason",
    "Mitchell",
    "Rose",
    "Davis",
    "Morris",
    "Harris",
    "Martin",
    "Cooper",
    "King",
    "Lee",
    "Baker",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Moore",
    "Young",
    "Allen",
    "Scott",
    "Ward",
    "Murphy",
    "O'Brien",
    "Müller",
    "García",
    "Nguyen",
    "Kowalski",
    "Fernández",
    "Chen",
    "Singh",
    "Ahmed",
    "Ali",
    "Begum",
    "Shah",
    "Dubois",
    "van Dijk",
];

/// Street names and types; the types have common abbreviations.
const STREETS: &[&str] = &[
    "High", "Church", "Station", "Victoria", "Park", "Mill", "Green", "Queens", "Kings", "Manor",
    "Elm", "Oak", "Windsor", "York", "Albert", "Meadow", "Chapel", "Bridge",
];
pub const STREET_TYPES: &[(&str, &str)] = &[
    ("Street", "St"),
    ("Road", "Rd"),
    ("Avenue", "Ave"),
    ("Lane", "Ln"),
    ("Drive", "Dr"),
    ("Close", "Cl"),
    ("Crescent", "Cres"),
];
const EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "gmail.com",
    "gmail.com",
    "hotmail.co.uk",
    "outlook.com",
    "yahoo.co.uk",
    "icloud.com",
    "btinternet.com",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub unit: Option<u32>,
    pub number: u32,
    pub street: &'static str,
    /// Index into [`STREET_TYPES`].
    pub street_type: usize,
    pub city: &'static str,
    pub postcode: String,
}

impl Address {
    fn draw(rng: &mut StdRng, country: &Country) -> Self {
        let (city, pattern) = *pick(rng, country.cities);
        Self {
            unit: rng.random_bool(0.15).then(|| rng.random_range(1..40)),
            number: rng.random_range(1..220),
            street: *pick(rng, STREETS),
            street_type: rng.random_range(0..STREET_TYPES.len()),
            city,
            postcode: fill_pattern(rng, pattern),
        }
    }

    /// The street line written out in full: "Flat 3, 12 High Street".
    pub fn line(&self) -> String {
        let street = format!(
            "{} {} {}",
            self.number, self.street, STREET_TYPES[self.street_type].0
        );
        match self.unit {
            Some(unit) => format!("Flat {unit}, {street}"),
            None => street,
        }
    }
}

fn fill_pattern(rng: &mut StdRng, pattern: &str) -> String {
    pattern
        .chars()
        .map(|c| match c {
            '#' => char::from(b'0' + rng.random_range(0..10u8)),
            '@' => char::from(b'A' + rng.random_range(0..26u8)),
            other => other,
        })
        .collect()
}

/// Who a person is, as they would tell a shop.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Index into [`COUNTRIES`].
    pub country: usize,
    pub first_name: &'static str,
    /// The short name they sometimes give instead, if their name has one.
    pub nickname: Option<&'static str>,
    pub last_name: &'static str,
    pub email: String,
    /// E.164 without the plus: country code and national number.
    pub phone: String,
    pub birth_date: (i32, u32, u32),
    pub address: Address,
    /// Where they lived before moving, if they moved; older records still say so.
    pub previous_address: Option<Address>,
    /// The shop's account id, once registered.
    pub user_id: String,
    /// A family email or phone shared with the other member of the household.
    pub shared_email: Option<String>,
    pub shared_phone: Option<String>,
    pub household: Option<u64>,
}

impl Identity {
    pub fn country(&self) -> &'static Country {
        &COUNTRIES[self.country]
    }

    /// Derived from the seed and the index alone.
    pub(crate) fn of(seed: u64, index: u64) -> Self {
        let mut identity = Self::alone(seed, index);
        // people come in pairs (2k, 2k+1); some pairs share a household
        let pair = index / 2;
        let mut rng = rng_for(seed, Stream::Household, pair);
        if rng.random_bool(0.12) {
            let first = if index.is_multiple_of(2) {
                identity.clone()
            } else {
                Self::alone(seed, index - 1)
            };
            identity.household = Some(pair);
            if !index.is_multiple_of(2) {
                if rng.random_bool(0.8) {
                    identity.last_name = first.last_name;
                }
                identity.country = first.country;
                identity.address = first.address.clone();
                identity.previous_address = None;
            } else {
                rng.random_bool(0.8);
            }
            let family = format!(
                "the{}s{}@{}",
                ascii_lower(first.last_name).replace([' ', '\''], ""),
                rng.random_range(1..99),
                pick(&mut rng, EMAIL_DOMAINS)
            );
            if rng.random_bool(0.5) {
                identity.shared_email = Some(family);
            }
            let landline = format!("{}{}", first.country().phone_code, digits(&mut rng, "1", 9));
            if rng.random_bool(0.5) {
                identity.shared_phone = Some(landline);
            }
        }
        identity
    }

    fn alone(seed: u64, index: u64) -> Self {
        let mut rng = rng_for(seed, Stream::Identity, index);
        let country = if rng.random_bool(0.85) {
            0
        } else {
            rng.random_range(1..COUNTRIES.len())
        };
        let (first_name, nickname) = if rng.random_bool(0.45) {
            let (formal, nicks) = pick(&mut rng, NICKNAMES);
            (*formal, Some(*pick(&mut rng, nicks)))
        } else {
            (*pick(&mut rng, OTHER_FIRST_NAMES), None)
        };
        let last_name = *pick(&mut rng, LAST_NAMES);
        let birth_year = rng.random_range(1948..2007);
        let first = ascii_lower(
            nickname
                .filter(|_| rng.random_bool(0.2))
                .unwrap_or(first_name),
        );
        let last = ascii_lower(last_name).replace([' ', '\''], "");
        let local = match rng.random_range(0..5) {
            0 => format!("{first}.{last}"),
            1 => format!("{first}{last}{}", birth_year % 100),
            2 => format!("{}.{last}", &first[..1]),
            3 => format!("{first}_{last}{}", rng.random_range(1..999)),
            _ => format!("{first}.{last}{}", rng.random_range(1..99)),
        };
        // the index keeps every address distinct, as a shop's accounts are
        let email = format!("{local}.{index}@{}", pick(&mut rng, EMAIL_DOMAINS));
        let c = &COUNTRIES[country];
        let phone = format!(
            "{}{}",
            c.phone_code,
            digits(&mut rng, c.mobile.0, c.mobile.1)
        );
        let address = Address::draw(&mut rng, c);
        let previous_address = rng.random_bool(0.25).then(|| Address::draw(&mut rng, c));
        Self {
            country,
            first_name,
            nickname,
            last_name,
            email,
            phone,
            birth_date: (
                birth_year,
                rng.random_range(1..=12),
                rng.random_range(1..=28),
            ),
            address,
            previous_address,
            user_id: format!("{}", 1_000_000 + index),
            shared_email: None,
            shared_phone: None,
            household: None,
        }
    }
}

fn digits(rng: &mut StdRng, prefix: &str, count: usize) -> String {
    let mut out = prefix.to_owned();
    for _ in 0..count {
        out.push(char::from(b'0' + rng.random_range(0..10u8)));
    }
    out
}

/// Lower case with the accents this name list uses taken off, as email addresses are.
pub fn ascii_lower(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'é' | 'ë' => 'e',
            'á' => 'a',
            'ü' => 'u',
            'ö' => 'o',
            'í' => 'i',
            other => other.to_ascii_lowercase(),
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Desktop,
    Mobile,
    Tablet,
    /// The shop's mobile app, whose tracker sends `GET /i` with base64 JSON.
    App,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Desktop => "desktop",
            DeviceKind::Mobile => "mobile",
            DeviceKind::Tablet => "tablet",
            DeviceKind::App => "app",
        }
    }
}

const DESKTOP_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
];
const MOBILE_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
];
const TABLET_AGENTS: &[&str] = &[
    "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
];
const APP_AGENTS: &[&str] = &[
    "AcmeGrocer/5.2.1 (iPhone; iOS 17.5; Scale/3.00)",
    "AcmeGrocer/5.2.1 (Linux; Android 14; Pixel 8)",
];

/// Crawlers that run the page's JavaScript, so its tracker fires for them too.
const CRAWLER_AGENTS: &[(&str, &str)] = &[
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "66.249",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/131.0.6778.69 Safari/537.36",
        "66.249",
    ),
    (
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/131.0.0.0 Safari/537.36",
        "157.55",
    ),
];

/// One browser or app install: its own cookies, user agent, screen and network.
#[derive(Debug, Clone)]
pub struct Device {
    pub kind: DeviceKind,
    pub user_agent: &'static str,
    pub screen: (u32, u32),
    pub viewport: (u32, u32),
    pub time_zone: &'static str,
    pub language: &'static str,
    pub ip: String,
}

impl Device {
    /// A crawler's rendering browser, from its operator's address range.
    pub(crate) fn crawler(rng: &mut StdRng) -> Self {
        let (agent, range) = *pick(rng, CRAWLER_AGENTS);
        Self {
            kind: DeviceKind::Desktop,
            user_agent: agent,
            screen: (1024, 1024),
            viewport: (1024, 1024),
            time_zone: "America/Los_Angeles",
            language: "en-US",
            ip: format!(
                "{range}.{}.{}",
                rng.random::<u8>(),
                rng.random_range(1..255u8)
            ),
        }
    }

    pub(crate) fn draw(rng: &mut StdRng, country: &Country) -> Self {
        let kind = match rng.random_range(0..100) {
            0..45 => DeviceKind::Desktop,
            45..85 => DeviceKind::Mobile,
            85..93 => DeviceKind::Tablet,
            _ => DeviceKind::App,
        };
        let (agents, screens): (&[&str], &[(u32, u32)]) = match kind {
            DeviceKind::Desktop => (
                DESKTOP_AGENTS,
                &[
                    (1920, 1080),
                    (2560, 1440),
                    (1536, 864),
                    (1440, 900),
                    (1366, 768),
                ],
            ),
            DeviceKind::Mobile => (
                MOBILE_AGENTS,
                &[(390, 844), (393, 852), (412, 915), (360, 800)],
            ),
            DeviceKind::Tablet => (TABLET_AGENTS, &[(810, 1080), (820, 1180), (800, 1280)]),
            DeviceKind::App => (APP_AGENTS, &[(390, 844), (412, 915)]),
        };
        let screen = *pick(rng, screens);
        let viewport = match kind {
            DeviceKind::Desktop => (
                screen.0 - rng.random_range(0..400) / 10 * 10,
                screen.1 - rng.random_range(100..260),
            ),
            _ => (screen.0, screen.1 - rng.random_range(60..160)),
        };
        let ip = if kind != DeviceKind::Desktop && rng.random_bool(0.2) {
            format!(
                "2a00:{:x}:{:x}:{:x}::{:x}",
                rng.random_range(0x1000..0xffffu32),
                rng.random::<u16>(),
                rng.random::<u16>(),
                rng.random_range(1..0xffffu32)
            )
        } else {
            format!(
                "{}.{}.{}.{}",
                pick(rng, country.ip_first_octets),
                rng.random::<u8>(),
                rng.random::<u8>(),
                rng.random_range(1..255u8)
            )
        };
        Self {
            kind,
            user_agent: *pick(rng, agents),
            screen,
            viewport,
            time_zone: *pick(rng, country.time_zones),
            language: *pick(rng, country.languages),
            ip,
        }
    }
}
