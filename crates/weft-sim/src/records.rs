//! Customer records from the shop's other systems, with the noise real ones
//! have: typos, nicknames, swapped names, email case and dots, phone formats,
//! address abbreviations, old addresses after a move, missing fields, family
//! emails and phones, and several records for one person in one source.

use rand::Rng;
use rand::rngs::StdRng;

use crate::behaviour::PersonRun;
use crate::people::{Address, Identity, NICKNAMES, STREET_TYPES, Stream, pick, rng_for};
use crate::{DAY_MS, SimOptions, iso_time};

/// The domains of the employers people write in from.
const EMPLOYERS: [&str; 3] = ["acme-corp.co.uk", "nhs.net", "council.gov.uk"];

/// The systems records come from, and each one's columns.
pub const SOURCES: [(&str, &[&str]); 4] = [
    (
        "crm",
        &[
            "customer_ref",
            "first_name",
            "last_name",
            "email",
            "phone",
            "date_of_birth",
            "street",
            "city",
            "postcode",
            "country",
            "user_id",
            "created_at",
            "marketing_opt_in",
        ],
    ),
    (
        "orders",
        &[
            "order_id",
            "ordered_at",
            "full_name",
            "email",
            "phone",
            "shipping_address",
            "postcode",
            "country",
            "total",
            "currency",
        ],
    ),
    (
        "support",
        &[
            "ticket_id",
            "opened_at",
            "name",
            "email",
            "phone",
            "date_of_birth",
            "subject",
        ],
    ),
    (
        "newsletter",
        &[
            "subscriber_id",
            "subscribed_at",
            "email",
            "first_name",
            "consent",
        ],
    ),
];

/// Each source column that holds an identity, and the standard identity
/// field it is (`weft identity link --map COLUMN=FIELD`); the first column of
/// each source is its record id.
pub const IDENTITY_COLUMNS: [(&str, &str); 13] = [
    ("first_name", "first_name"),
    ("last_name", "last_name"),
    ("full_name", "full_name"),
    ("name", "full_name"),
    ("email", "email"),
    ("phone", "phone"),
    ("date_of_birth", "dob"),
    ("street", "address"),
    ("shipping_address", "address"),
    ("city", "city"),
    ("postcode", "postcode"),
    ("country", "country"),
    ("user_id", "user_id"),
];

#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// Index into [`SOURCES`].
    pub source: usize,
    /// In the source's column order; the first is the record's id.
    pub fields: Vec<String>,
}

impl CustomerRecord {
    pub fn id(&self) -> &str {
        &self.fields[0]
    }

    pub fn source_name(&self) -> &'static str {
        SOURCES[self.source].0
    }
}

pub(crate) fn records_of(options: &SimOptions, index: u64, run: &PersonRun) -> Vec<CustomerRecord> {
    let mut rng = rng_for(options.seed, Stream::Records, index);
    let identity = &run.identity;
    let mut out = Vec::new();
    if let Some(registered) = run.registered_at_ms {
        let copies = if rng.random_bool(0.08) { 2 } else { 1 };
        for _ in 0..copies {
            let (first, last) = names(&mut rng, identity);
            let address = address_of(&mut rng, identity, 0.5);
            let created =
                registered.max(options.start_ms() - 400 * DAY_MS) - rng.random_range(0..3_600_000);
            out.push(CustomerRecord {
                source: 0,
                fields: vec![
                    format!("CRM-{}", hex_id(&mut rng)),
                    first,
                    last,
                    email(&mut rng, identity),
                    phone(&mut rng, identity, 0.15),
                    birth_date(&mut rng, identity, "iso", 0.2),
                    address
                        .as_ref()
                        .map(|a| street(&mut rng, a))
                        .unwrap_or_default(),
                    address
                        .as_ref()
                        .map(|a| a.city.to_owned())
                        .unwrap_or_default(),
                    address
                        .as_ref()
                        .map(|a| postcode(&mut rng, a))
                        .unwrap_or_default(),
                    identity.country().code.to_owned(),
                    if rng.random_bool(0.9) {
                        identity.user_id.clone()
                    } else {
                        String::new()
                    },
                    iso_time(created),
                    run.truth.traits.consent_marketing.to_string(),
                ],
            });
        }
    }
    for order in &run.orders {
        let (first, last) = names(&mut rng, identity);
        let address = address_of(&mut rng, identity, 0.3);
        let full_name = if rng.random_bool(0.1) {
            format!("{last}, {first}")
        } else {
            format!("{first} {last}")
        };
        out.push(CustomerRecord {
            source: 1,
            fields: vec![
                order.id.clone(),
                iso_time(order.at_ms),
                full_name,
                email(&mut rng, identity),
                phone(&mut rng, identity, 0.05),
                address
                    .as_ref()
                    .map(|a| format!("{}, {}", street(&mut rng, a), a.city))
                    .unwrap_or_default(),
                address
                    .as_ref()
                    .map(|a| postcode(&mut rng, a))
                    .unwrap_or_default(),
                identity.country().code.to_owned(),
                format!("{:.2}", order.total),
                "GBP".to_owned(),
            ],
        });
    }
    if run.registered_at_ms.is_some() && rng.random_bool(0.15) {
        for _ in 0..rng.random_range(1..=2) {
            let (first, last) = names(&mut rng, identity);
            let opened = options.start_ms() + rng.random_range(0..options.days as i64 * DAY_MS);
            let email = if rng.random_bool(0.2) {
                // written in from work: one employer, and a mailbox of their own
                // (two people of one name there get two addresses, as the index keeps them)
                format!(
                    "{}.{}.{index}@{}",
                    crate::people::ascii_lower(identity.first_name),
                    crate::people::ascii_lower(identity.last_name).replace([' ', '\''], ""),
                    EMPLOYERS[(index % EMPLOYERS.len() as u64) as usize]
                )
            } else {
                email(&mut rng, identity)
            };
            out.push(CustomerRecord {
                source: 2,
                fields: vec![
                    format!("TCK-{}", hex_id(&mut rng)),
                    iso_time(opened),
                    format!("{first} {last}"),
                    email,
                    phone(&mut rng, identity, 0.4),
                    birth_date(&mut rng, identity, "uk", 0.6),
                    pick(
                        &mut rng,
                        &[
                            "Missing item",
                            "Late delivery",
                            "Refund request",
                            "Change address",
                            "Damaged product",
                        ],
                    )
                    .to_string(),
                ],
            });
        }
    }
    if let Some(subscribed) = run.newsletter_at_ms {
        let (first, _) = names(&mut rng, identity);
        out.push(CustomerRecord {
            source: 3,
            fields: vec![
                format!("NL-{}", hex_id(&mut rng)),
                iso_time(subscribed),
                // a subscriber is an address: the newsletter tool has no row without one
                std::iter::repeat_with(|| email(&mut rng, identity))
                    .find(|email| !email.is_empty())
                    .expect("an address, sooner or later"),
                if rng.random_bool(0.3) {
                    String::new()
                } else {
                    first
                },
                "true".to_owned(),
            ],
        });
    }
    out
}

fn hex_id(rng: &mut StdRng) -> String {
    format!("{:016X}", rng.random::<u64>())
}

/// First and last name as typed into one system.
fn names(rng: &mut StdRng, identity: &Identity) -> (String, String) {
    let mut first = match identity.nickname {
        Some(nick) if rng.random_bool(0.3) => nick.to_owned(),
        _ => identity.first_name.to_owned(),
    };
    let mut last = identity.last_name.to_owned();
    if rng.random_bool(0.05) {
        first = typo(rng, &first);
    }
    if rng.random_bool(0.05) {
        last = typo(rng, &last);
    }
    match rng.random_range(0..100) {
        0..5 => {
            first = first.to_uppercase();
            last = last.to_uppercase();
        }
        5..10 => {
            first = first.to_lowercase();
            last = last.to_lowercase();
        }
        _ => {}
    }
    if rng.random_bool(0.03) {
        std::mem::swap(&mut first, &mut last);
    }
    (first, last)
}

/// One keyboard slip: a dropped, doubled, swapped or replaced letter.
fn typo(rng: &mut StdRng, word: &str) -> String {
    let mut chars: Vec<char> = word.chars().collect();
    if chars.len() < 3 {
        return word.to_owned();
    }
    let at = rng.random_range(1..chars.len() - 1);
    match rng.random_range(0..4) {
        0 => {
            chars.remove(at);
        }
        1 => chars.insert(at, chars[at]),
        2 => chars.swap(at, at + 1),
        _ => chars[at] = char::from(b'a' + rng.random_range(0..26u8)),
    }
    chars.into_iter().collect()
}

fn email(rng: &mut StdRng, identity: &Identity) -> String {
    if let Some(family) = &identity.shared_email
        && rng.random_bool(0.5)
    {
        return family.clone();
    }
    if rng.random_bool(0.05) {
        return String::new();
    }
    let (local, domain) = identity.email.split_once('@').expect("an address");
    let mut local = local.to_owned();
    let mut domain = domain.to_owned();
    if domain == "gmail.com" && rng.random_bool(0.15) {
        // Gmail ignores dots, so people leave them out or add them
        local = if local.contains('.') {
            local.replace('.', "")
        } else {
            let mid = local.len() / 2;
            format!("{}.{}", &local[..mid], &local[mid..])
        };
    }
    if rng.random_bool(0.05) {
        local.push_str("+shop");
    }
    if rng.random_bool(0.15) {
        let mut chars = local.chars();
        local = chars
            .next()
            .map(|c| c.to_ascii_uppercase())
            .into_iter()
            .chain(chars)
            .collect();
        domain = domain.to_uppercase();
    }
    if rng.random_bool(0.02) {
        domain = domain.replacen(".com", ".con", 1);
    }
    format!("{local}@{domain}")
}

fn phone(rng: &mut StdRng, identity: &Identity, missing: f64) -> String {
    if rng.random_bool(missing) {
        return String::new();
    }
    let e164 = match &identity.shared_phone {
        Some(shared) if rng.random_bool(0.4) => shared,
        _ => &identity.phone,
    };
    let code = identity.country().phone_code;
    let national = &e164[code.len()..];
    let trunk = if code == "1" {
        String::new()
    } else {
        "0".to_owned()
    };
    let (a, b) = national.split_at(national.len().min(4));
    match rng.random_range(0..6) {
        0 => format!("+{e164}"),
        1 => format!("+{code} {a} {b}"),
        2 => format!("{trunk}{national}"),
        3 => format!("{trunk}{a} {b}"),
        4 => format!("({trunk}{a}) {}-{}", &b[..b.len() / 2], &b[b.len() / 2..]),
        _ => format!("00{code} {a} {b}"),
    }
}

fn birth_date(rng: &mut StdRng, identity: &Identity, style: &str, missing: f64) -> String {
    if rng.random_bool(missing) {
        return String::new();
    }
    let (y, mut m, mut d) = identity.birth_date;
    if rng.random_bool(0.03) && d <= 12 {
        std::mem::swap(&mut m, &mut d);
    }
    match style {
        "iso" => format!("{y:04}-{m:02}-{d:02}"),
        _ => format!("{d:02}/{m:02}/{y:04}"),
    }
}

/// The current address, or the one before a move, or none.
fn address_of(rng: &mut StdRng, identity: &Identity, old: f64) -> Option<Address> {
    if rng.random_bool(0.08) {
        return None;
    }
    match &identity.previous_address {
        Some(previous) if rng.random_bool(old) => Some(previous.clone()),
        _ => Some(identity.address.clone()),
    }
}

fn street(rng: &mut StdRng, address: &Address) -> String {
    let mut line = address.line();
    if rng.random_bool(0.4) {
        let (full, short) = STREET_TYPES[address.street_type];
        line = line.replace(full, short);
    }
    if address.unit.is_some() && rng.random_bool(0.3) {
        line = line.replace("Flat ", "Apt ");
    }
    if rng.random_bool(0.05) {
        line = line.to_uppercase();
    }
    line
}

fn postcode(rng: &mut StdRng, address: &Address) -> String {
    match rng.random_range(0..10) {
        0 => address.postcode.to_lowercase(),
        1 => address.postcode.replace(' ', ""),
        _ => address.postcode.clone(),
    }
}

/// Nicknames known to the simulator, for tests of the noise.
pub fn is_nickname_of(nick: &str, formal: &str) -> bool {
    NICKNAMES.iter().any(|(f, nicks)| {
        f.eq_ignore_ascii_case(formal) && nicks.iter().any(|n| n.eq_ignore_ascii_case(nick))
    })
}
