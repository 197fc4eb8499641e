//! Rules over normalised values: blocking rules (which pairs are compared at
//! all) and deterministic rules (which pairs are linked outright). Both are
//! lists of key parts joined by `+`: `email`, `postcode+street_number`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::field::Field;
use crate::record::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyPart {
    Field(Field),
    /// The email's part before the `@`: the same user at a mistyped domain.
    EmailLocal,
    /// The first letter of the first name.
    FirstInitial,
}

impl KeyPart {
    fn value(self, record: &Record) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self {
            KeyPart::Field(field) => Cow::Borrowed(match field {
                Field::FirstName => &record.first,
                Field::LastName => &record.last,
                Field::FullName => {
                    return if record.first.is_empty() || record.last.is_empty() {
                        Cow::Borrowed("")
                    } else {
                        Cow::Owned(format!("{} {}", record.first, record.last))
                    };
                }
                Field::Email => &record.email,
                Field::Phone => &record.phone,
                Field::Dob => {
                    return record
                        .dob
                        .map_or(Cow::Borrowed(""), |d| Cow::Owned(d.to_string()));
                }
                Field::StreetNumber => &record.address.number,
                Field::Address => {
                    let a = &record.address;
                    return if a.street.is_empty() {
                        Cow::Borrowed("")
                    } else {
                        Cow::Owned(format!("{} {} {}", a.unit, a.number, a.street))
                    };
                }
                Field::City => &record.city,
                Field::Postcode => &record.postcode,
                Field::State => &record.state,
                Field::Country => &record.country,
                Field::NationalId => &record.national_id,
                Field::UserId => &record.user_id,
            }),
            KeyPart::EmailLocal => Cow::Borrowed(if record.email.is_empty() {
                ""
            } else {
                record.email_local()
            }),
            KeyPart::FirstInitial => Cow::Borrowed(record.first.get(..1).unwrap_or("")),
        }
    }

    /// The identity field the part reads.
    pub fn field(self) -> Field {
        match self {
            KeyPart::Field(field) => field,
            KeyPart::EmailLocal => Field::Email,
            KeyPart::FirstInitial => Field::FirstName,
        }
    }
}

/// Key parts that must all be present and equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Rule {
    pub parts: Vec<KeyPart>,
}

impl Rule {
    /// The rule's key for a record: `None` when a part is missing.
    pub fn key(&self, record: &Record) -> Option<u64> {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for part in &self.parts {
            let value = part.value(record);
            if value.is_empty() {
                return None;
            }
            value.hash(&mut hasher);
        }
        Some(hasher.finish())
    }

    /// Whether both records have every part, equal.
    pub fn matches(&self, a: &Record, b: &Record) -> bool {
        self.parts.iter().all(|part| {
            let x = part.value(a);
            !x.is_empty() && x == part.value(b)
        })
    }

    /// Whether every field the rule reads is among `mapped`.
    pub fn usable(&self, mapped: &[Field]) -> bool {
        self.parts.iter().all(|part| match part.field() {
            Field::FirstName | Field::LastName => {
                mapped.contains(&part.field()) || mapped.contains(&Field::FullName)
            }
            field => mapped.contains(&field),
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                f.write_str("+")?;
            }
            match part {
                KeyPart::Field(field) => f.write_str(field.name())?,
                KeyPart::EmailLocal => f.write_str("email_local")?,
                KeyPart::FirstInitial => f.write_str("first_initial")?,
            }
        }
        Ok(())
    }
}

impl FromStr for Rule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = text
            .split('+')
            .map(|part| match part.trim() {
                "email_local" => Ok(KeyPart::EmailLocal),
                "first_initial" => Ok(KeyPart::FirstInitial),
                other => other.parse().map(KeyPart::Field),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if parts.is_empty() {
            return Err("an empty rule".to_owned());
        }
        Ok(Self { parts })
    }
}

/// The blocking rules worth having for the mapped fields.
pub fn default_blocking(mapped: &[Field]) -> Vec<Rule> {
    usable(
        &[
            "email",
            "email_local",
            "phone",
            "national_id",
            "user_id",
            "dob",
            "postcode+street_number",
            "last_name+first_initial+postcode",
            "first_name+last_name+city",
        ],
        mapped,
    )
}

/// Deterministic rules, in order: identifiers that name one person.
pub fn default_deterministic(mapped: &[Field]) -> Vec<Rule> {
    usable(
        &[
            "user_id",
            "national_id",
            "email+first_name",
            "phone+first_name+last_name",
        ],
        mapped,
    )
}

/// The built-in rules whose fields are all mapped.
fn usable(rules: &[&str], mapped: &[Field]) -> Vec<Rule> {
    rules
        .iter()
        .map(|text| text.parse::<Rule>().expect("a valid built-in rule"))
        .filter(|rule| rule.usable(mapped))
        .collect()
}

/// What blocking produced.
#[derive(Debug, Clone, Default)]
pub struct BlockingStats {
    /// Candidate pairs per rule, before pairs found by several rules were merged.
    pub pairs_per_rule: Vec<usize>,
    pub candidate_pairs: usize,
    /// Blocks left out for being larger than the limit, and their records.
    pub oversized_blocks: usize,
    pub oversized_records: usize,
}

/// Every pair of records that shares a key of any rule, each pair once, as
/// `(lower index << 32) | higher index`, sorted; `keys[r][i]` is record `i`'s
/// key under rule `r` ([`Rule::key`]).
pub fn candidate_pairs(keys: &[Vec<Option<u64>>], max_block: usize) -> (Vec<u64>, BlockingStats) {
    let mut stats = BlockingStats::default();
    let mut pairs = Vec::new();
    for rule_keys in keys {
        let mut blocks: HashMap<u64, Vec<u32>> = HashMap::new();
        for (index, key) in rule_keys.iter().enumerate() {
            if let Some(key) = key {
                blocks.entry(*key).or_default().push(index as u32);
            }
        }
        let before = pairs.len();
        for members in blocks.values() {
            if members.len() > max_block {
                stats.oversized_blocks += 1;
                stats.oversized_records += members.len();
                continue;
            }
            for (i, &a) in members.iter().enumerate() {
                for &b in &members[i + 1..] {
                    pairs.push(((a as u64) << 32) | b as u64);
                }
            }
        }
        stats.pairs_per_rule.push(pairs.len() - before);
    }
    pairs.sort_unstable();
    pairs.dedup();
    stats.candidate_pairs = pairs.len();
    (pairs, stats)
}

pub fn unpack(pair: u64) -> (usize, usize) {
    ((pair >> 32) as usize, (pair & 0xFFFF_FFFF) as usize)
}
