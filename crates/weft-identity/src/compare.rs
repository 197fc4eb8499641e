//! Field comparisons: each puts a pair of records on one of a few levels of
//! agreement, best first, or says nothing when either value is missing.

use chrono::Datelike;
use strsim::jaro_winkler;

use crate::field::Field;
use crate::normalise::{formal_names, nicknames, same_first_name};
use crate::record::Record;

/// A pair's level on a comparison: 0 is the best agreement.
pub type Level = u8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    FirstName,
    LastName,
    Email,
    Phone,
    Dob,
    /// Street, number, unit, postcode and city together: one piece of
    /// evidence, not five that always move together.
    Location,
    NationalId,
    UserId,
}

impl Comparison {
    /// Every comparison, in the order patterns are written.
    pub const ALL: [Comparison; 8] = [
        Comparison::FirstName,
        Comparison::LastName,
        Comparison::Email,
        Comparison::Phone,
        Comparison::Dob,
        Comparison::Location,
        Comparison::NationalId,
        Comparison::UserId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Comparison::FirstName => "first_name",
            Comparison::LastName => "last_name",
            Comparison::Email => "email",
            Comparison::Phone => "phone",
            Comparison::Dob => "dob",
            Comparison::Location => "location",
            Comparison::NationalId => "national_id",
            Comparison::UserId => "user_id",
        }
    }

    /// The fields a comparison reads; it is used when any of them is mapped.
    pub fn fields(self) -> &'static [Field] {
        match self {
            Comparison::FirstName => &[Field::FirstName, Field::FullName],
            Comparison::LastName => &[Field::LastName, Field::FullName],
            Comparison::Email => &[Field::Email],
            Comparison::Phone => &[Field::Phone],
            Comparison::Dob => &[Field::Dob],
            Comparison::Location => &[Field::Address, Field::Postcode, Field::City],
            Comparison::NationalId => &[Field::NationalId],
            Comparison::UserId => &[Field::UserId],
        }
    }

    /// The names of the levels, best first.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Comparison::FirstName => &[
                "exact",
                "nickname",
                "jaro-winkler >= 0.92",
                "jaro-winkler >= 0.8",
                "different",
            ],
            Comparison::LastName => &[
                "exact",
                "jaro-winkler >= 0.92",
                "jaro-winkler >= 0.8",
                "different",
            ],
            Comparison::Email => &["exact", "same user, other domain or one typo", "different"],
            Comparison::Phone => &["exact", "one digit off", "different"],
            Comparison::Dob => &[
                "exact",
                "day and month swapped or one digit off",
                "same year",
                "different",
            ],
            Comparison::Location => &[
                "same street line and postcode",
                "same street line",
                "same postcode",
                "same street, other number",
                "same city",
                "different",
            ],
            Comparison::NationalId | Comparison::UserId => &["exact", "different"],
        }
    }

    /// Whether the level is full agreement on a name, where term frequencies apply.
    pub fn exact_name(self, level: Level) -> bool {
        level == 0 && matches!(self, Comparison::FirstName | Comparison::LastName)
    }

    /// The level of a pair; `None` when either side lacks the value.
    pub fn level(self, a: &Record, b: &Record) -> Option<Level> {
        match self {
            Comparison::FirstName => {
                let (a_first, b_first) = aligned_first_names(a, b);
                first_name_level(a_first, b_first)
            }
            Comparison::LastName => {
                let (a_last, b_last) = aligned_last_names(a, b);
                text_level(a_last, b_last, &[0.92, 0.8])
            }
            Comparison::Email => {
                if a.email.is_empty() || b.email.is_empty() {
                    return None;
                }
                Some(if a.email == b.email {
                    0
                } else if a.email_local() == b.email_local() || within_one_edit(&a.email, &b.email)
                {
                    1
                } else {
                    2
                })
            }
            Comparison::Phone => {
                if a.phone.is_empty() || b.phone.is_empty() {
                    return None;
                }
                Some(if a.phone == b.phone {
                    0
                } else if within_one_edit(&a.phone, &b.phone) {
                    1
                } else {
                    2
                })
            }
            Comparison::Dob => {
                let (x, y) = (a.dob?, b.dob?);
                Some(if x == y {
                    0
                } else if near_date(x, y) {
                    1
                } else if x.year() == y.year() {
                    2
                } else {
                    3
                })
            }
            Comparison::Location => location_level(a, b),
            Comparison::NationalId => id_level(&a.national_id, &b.national_id),
            Comparison::UserId => id_level(&a.user_id, &b.user_id),
        }
    }
}

/// Day and month swapped, or one digit of YYYYMMDD mistyped.
pub fn near_date(x: chrono::NaiveDate, y: chrono::NaiveDate) -> bool {
    let digits = |d: chrono::NaiveDate| {
        let n = d.year().unsigned_abs() * 10_000 + d.month() * 100 + d.day();
        (0..8).map(move |i| (n / 10_u32.pow(i)) % 10)
    };
    (x.year() == y.year() && x.day() == y.month() && x.month() == y.day())
        || digits(x).zip(digits(y)).filter(|(a, b)| a != b).count() <= 1
}

/// Whether one insertion, deletion or substitution (or none) turns `a` into
/// `b`: Levenshtein distance ≤ 1 in one pass, without its table.
pub fn within_one_edit(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (la, lb) = (a.chars().count(), b.chars().count());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    // past the common prefix, the rest must agree after one edit
    let prefix: usize = a
        .chars()
        .zip(b.chars())
        .take_while(|(x, y)| x == y)
        .map(|(x, _)| x.len_utf8())
        .sum();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    fn rest(s: &str) -> &str {
        s.chars().next().map_or(s, |c| &s[c.len_utf8()..])
    }
    match la.cmp(&lb) {
        std::cmp::Ordering::Equal => rest(ra) == rest(rb),
        std::cmp::Ordering::Greater => rest(ra) == rb,
        std::cmp::Ordering::Less => ra == rest(rb),
    }
}

/// Whether `b` is `a` with two neighbouring letters swapped.
fn transposed(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() != b.len() {
        return false;
    }
    let differ: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    differ.len() == 2
        && differ[1] == differ[0] + 1
        && a[differ[0]] == b[differ[1]]
        && a[differ[1]] == b[differ[0]]
}

/// Whether `b`'s names are the other way round from `a`'s ("Smith John").
fn swapped(a: &Record, b: &Record) -> bool {
    !a.first.is_empty()
        && !a.last.is_empty()
        && a.first != a.last
        && a.first == b.last
        && a.last == b.first
}

fn aligned_first_names<'a>(a: &'a Record, b: &'a Record) -> (&'a str, &'a str) {
    if swapped(a, b) {
        (&a.first, &b.last)
    } else {
        (&a.first, &b.first)
    }
}

fn aligned_last_names<'a>(a: &'a Record, b: &'a Record) -> (&'a str, &'a str) {
    if swapped(a, b) {
        (&a.last, &b.first)
    } else {
        (&a.last, &b.last)
    }
}

/// Whether two records' first names could be one person's, allowing for
/// swapped names, nicknames and typos on either: used by the clustering guards.
pub fn first_names_compatible(a: &Record, b: &Record) -> bool {
    let (x, y) = aligned_first_names(a, b);
    one_first_name(x, y) || one_first_name(&a.first, &b.last) || one_first_name(&a.last, &b.first)
}

fn one_first_name(x: &str, y: &str) -> bool {
    if x.is_empty() || y.is_empty() || first_name_level(x, y).is_some_and(|level| level <= 3) {
        return true;
    }
    // one slip of the keyboard, also in a short name ("zoe", "ze"), two
    // letters swapped ("rja"), or a slip in a nickname ("ady" for andy, andrew)
    within_one_edit(x, y)
        || transposed(x, y)
        || nicknames(x).iter().any(|n| within_one_edit(n, y))
        || nicknames(y).iter().any(|n| within_one_edit(n, x))
        || formal_names(x)
            .iter()
            .any(|f| jaro_winkler(f, y) >= 0.85 || formal_names(y).contains(f))
        || formal_names(y).iter().any(|f| jaro_winkler(f, x) >= 0.85)
}

fn first_name_level(a: &str, b: &str) -> Option<Level> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some(if a == b {
        0
    } else if same_first_name(a, b) {
        1
    } else {
        match text_level(a, b, &[0.92, 0.8]) {
            Some(level) => level + 1,
            None => 4,
        }
    })
}

/// 0 exact, then one level per Jaro–Winkler threshold met, then "different".
fn text_level(a: &str, b: &str, thresholds: &[f64]) -> Option<Level> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    if a == b {
        return Some(0);
    }
    let similarity = jaro_winkler(a, b);
    let met = thresholds.iter().position(|t| similarity >= *t);
    Some(met.map_or(thresholds.len() + 1, |i| i + 1) as Level)
}

fn id_level(a: &str, b: &str) -> Option<Level> {
    (!a.is_empty() && !b.is_empty()).then_some(if a == b { 0 } else { 1 })
}

fn location_level(a: &Record, b: &Record) -> Option<Level> {
    let (x, y) = (&a.address, &b.address);
    let has_street = !x.street.is_empty() && !y.street.is_empty();
    let has_postcode = !a.postcode.is_empty() && !b.postcode.is_empty();
    let has_city = !a.city.is_empty() && !b.city.is_empty();
    if !has_street && !has_postcode && !has_city {
        return None;
    }
    let same_street =
        has_street && (x.street == y.street || jaro_winkler(&x.street, &y.street) >= 0.92);
    let same_line = same_street && x.number == y.number && x.unit == y.unit && !x.number.is_empty();
    let same_postcode = has_postcode && a.postcode == b.postcode;
    Some(if same_line && same_postcode {
        0
    } else if same_line {
        1
    } else if same_postcode {
        2
    } else if same_street && (!has_city || a.city == b.city) {
        3
    } else if has_city && a.city == b.city {
        4
    } else {
        5
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_is_what_levenshtein_calls_distance_one() {
        let words = [
            "", "a", "ab", "ba", "abc", "abd", "acb", "abcd", "zoe", "ze", "zoë", "zoé", "jon",
            "john",
        ];
        for a in words {
            for b in words {
                assert_eq!(
                    within_one_edit(a, b),
                    strsim::levenshtein(a, b) <= 1,
                    "{a:?} {b:?}"
                );
            }
        }
    }
    use crate::record::{NormaliseOptions, RawRecord};

    fn record(values: &[(Field, &str)]) -> Record {
        let raw = RawRecord {
            source: "s".into(),
            id: "1".into(),
            values: values.iter().map(|(f, v)| (*f, (*v).to_owned())).collect(),
        };
        Record::normalise(&raw, 0, &NormaliseOptions::default())
    }

    #[test]
    fn levels_grade_agreement() {
        let a = record(&[
            (Field::FirstName, "Robert"),
            (Field::LastName, "Smith"),
            (Field::Dob, "1980-03-04"),
        ]);
        let b = record(&[
            (Field::FirstName, "Bob"),
            (Field::LastName, "Smiht"),
            (Field::Dob, "04/03/1980"),
        ]);
        let c = record(&[
            (Field::FirstName, "Smith"),
            (Field::LastName, "Robert"),
            (Field::Dob, "1980-04-03"),
        ]);
        assert_eq!(Comparison::FirstName.level(&a, &b), Some(1));
        assert_eq!(Comparison::LastName.level(&a, &b), Some(1));
        assert_eq!(Comparison::Dob.level(&a, &b), Some(0));
        assert_eq!(
            Comparison::FirstName.level(&a, &c),
            Some(0),
            "swapped names"
        );
        assert_eq!(
            Comparison::Dob.level(&a, &c),
            Some(1),
            "day and month swapped"
        );
        assert_eq!(Comparison::Email.level(&a, &b), None);
    }

    #[test]
    fn location_is_one_piece_of_evidence() {
        let a = record(&[
            (Field::Address, "Flat 3, 12 High Street"),
            (Field::Postcode, "NR3 0UT"),
            (Field::City, "Norwich"),
        ]);
        let b = record(&[
            (Field::Address, "Apt 3, 12 High St, Norwich"),
            (Field::Postcode, "nr30ut"),
        ]);
        let c = record(&[(Field::Address, "14 High St"), (Field::Postcode, "NR3 0UT")]);
        assert_eq!(Comparison::Location.level(&a, &b), Some(0));
        assert_eq!(Comparison::Location.level(&a, &c), Some(2));
    }
}
