//! Field normalisation: the forms two spellings of the same value share.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{Datelike, NaiveDate};

/// Lower-case ASCII letters only: accents transliterated, everything else
/// dropped ("O'Brien" → "obrien", "van Dijk" → "vandijk", "Zoë" → "zoe").
pub fn name(text: &str) -> String {
    ascii_fold(text)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Splits a full name into first and last: "Last, First" or "First … Last".
pub fn split_full_name(text: &str) -> (String, String) {
    if let Some((last, first)) = text.split_once(',') {
        let first = first.split_whitespace().next().unwrap_or("");
        return (name(first), name(last));
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] => (String::new(), String::new()),
        [only] => (name(only), String::new()),
        [first, rest @ ..] => {
            // surname particles stay with the surname: "Anna van Dijk"
            let start = rest
                .iter()
                .position(|w| PARTICLES.contains(&w.to_ascii_lowercase().as_str()))
                .unwrap_or(rest.len() - 1);
            (name(first), name(&rest[start..].join(" ")))
        }
    }
}

const PARTICLES: [&str; 9] = ["van", "von", "de", "der", "den", "da", "di", "le", "la"];

/// The formal names a first name may stand for ("bob" → ["robert"]); empty
/// when it is no known nickname.
pub fn formal_names(first: &str) -> &'static [&'static str] {
    static TABLE: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let mut table: HashMap<&'static str, Vec<&'static str>> = HashMap::new();
            for (formal, nicks) in NICKNAMES {
                for nick in *nicks {
                    table.entry(nick).or_default().push(formal);
                }
            }
            table
        })
        .get(first)
        .map_or(&[], Vec::as_slice)
}

/// The nicknames of a formal first name ("andrew" → ["andy", "drew"]).
pub fn nicknames(formal: &str) -> &'static [&'static str] {
    NICKNAMES
        .iter()
        .find(|(name, _)| *name == formal)
        .map_or(&[], |(_, nicks)| nicks)
}

/// Whether two normalised first names are one name: equal, or a nickname of
/// the other, or nicknames of one formal name.
pub fn same_first_name(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let (fa, fb) = (formal_names(a), formal_names(b));
    fa.contains(&b) || fb.contains(&a) || fa.iter().any(|f| fb.contains(f))
}

/// Formal first names and the nicknames that stand for them.
const NICKNAMES: &[(&str, &[&str])] = &[
    ("abigail", &["abby", "abbie", "gail"]),
    ("albert", &["al", "bert", "bertie"]),
    ("alexander", &["alex", "alec", "sandy", "xander", "lex"]),
    ("alexandra", &["alex", "lexi", "sandra", "sasha"]),
    ("alfred", &["alf", "alfie", "fred"]),
    ("andrew", &["andy", "drew"]),
    ("anthony", &["tony", "ant"]),
    ("barbara", &["barb", "babs"]),
    ("benjamin", &["ben", "benny", "benji"]),
    ("catherine", &["cathy", "kate", "katie", "cat"]),
    ("charles", &["charlie", "chuck", "chas"]),
    ("charlotte", &["lottie", "charlie"]),
    ("christina", &["chris", "tina"]),
    ("christine", &["chris", "chrissy"]),
    ("christopher", &["chris", "kit", "topher"]),
    ("daniel", &["dan", "danny"]),
    ("david", &["dave", "davey"]),
    ("deborah", &["debbie", "deb", "debs"]),
    ("dorothy", &["dot", "dottie"]),
    ("edward", &["ed", "eddie", "ted", "ned"]),
    (
        "elizabeth",
        &["liz", "beth", "lizzie", "betty", "eliza", "libby"],
    ),
    ("frederick", &["fred", "freddie"]),
    ("gregory", &["greg"]),
    ("harold", &["harry", "hal"]),
    ("henry", &["harry", "hank", "hal"]),
    ("jacob", &["jake"]),
    ("james", &["jim", "jimmy", "jamie"]),
    ("jennifer", &["jen", "jenny", "jenn"]),
    ("jessica", &["jess", "jessie"]),
    ("john", &["jack", "johnny", "jon"]),
    ("jonathan", &["jon", "jonny"]),
    ("joseph", &["joe", "joey"]),
    ("josephine", &["jo", "josie"]),
    ("katherine", &["kate", "katie", "kathy", "kat", "kitty"]),
    ("kathleen", &["kathy", "kath"]),
    ("lawrence", &["larry", "laurie"]),
    ("leonard", &["leo", "len", "lenny"]),
    ("margaret", &["maggie", "meg", "peggy", "marge"]),
    ("matthew", &["matt", "matty"]),
    ("michael", &["mike", "mikey", "mick", "mickey"]),
    ("nicholas", &["nick", "nicky"]),
    ("nicola", &["nicky", "nikki"]),
    ("patricia", &["pat", "patty", "trish", "tricia"]),
    ("patrick", &["pat", "paddy"]),
    ("peter", &["pete"]),
    ("philip", &["phil"]),
    ("rebecca", &["becky", "becca", "bex"]),
    ("richard", &["rich", "rick", "dick", "ricky"]),
    ("robert", &["bob", "rob", "bobby", "robbie", "bert"]),
    ("ronald", &["ron", "ronnie"]),
    ("samantha", &["sam", "sammy"]),
    ("samuel", &["sam", "sammy"]),
    ("stephen", &["steve", "stevie"]),
    ("steven", &["steve", "stevie"]),
    ("susan", &["sue", "susie"]),
    ("theodore", &["theo", "ted", "teddy"]),
    ("thomas", &["tom", "tommy"]),
    ("timothy", &["tim", "timmy"]),
    ("victoria", &["vicky", "vicki", "tori"]),
    ("william", &["bill", "will", "billy", "willie", "liam"]),
];

/// An email address as the mailbox it reaches: lower case, `+tags` dropped,
/// dots dropped where the provider ignores them (Gmail), common domain typos
/// mended. `None` when it is no address.
pub fn email(text: &str) -> Option<String> {
    let text = text.trim().to_ascii_lowercase();
    let (local, domain) = text.rsplit_once('@')?;
    let local = local.split('+').next().unwrap_or("");
    if local.is_empty() || !domain.contains('.') || domain.contains(char::is_whitespace) {
        return None;
    }
    let mut domain = domain.trim_end_matches('.').to_owned();
    for (typo, fix) in [(".con", ".com"), (".cmo", ".com"), (".ocm", ".com")] {
        if let Some(stem) = domain.strip_suffix(typo) {
            domain = format!("{stem}{fix}");
        }
    }
    if domain == "googlemail.com" {
        domain = "gmail.com".to_owned();
    }
    let local = if domain == "gmail.com" {
        local.replace('.', "")
    } else {
        local.to_owned()
    };
    Some(format!("{local}@{domain}"))
}

/// A phone number in E.164 (`+447427199553`), read in `region` (ISO 3166
/// alpha-2) unless it says its country; `None` when it cannot be a number.
pub fn phone(text: &str, region: &str) -> Option<String> {
    let text = text.trim();
    if text.chars().filter(char::is_ascii_digit).count() < 6 {
        return None;
    }
    let region = region.parse::<phonenumber::country::Id>().ok();
    let valid = |number: &phonenumber::PhoneNumber| {
        phonenumber::is_valid(number)
            .then(|| number.format().mode(phonenumber::Mode::E164).to_string())
    };
    let parsed = phonenumber::parse(region, text).ok();
    parsed
        .as_ref()
        .and_then(valid)
        .or_else(|| {
            // "00 44 …" written in a country whose exit code is not 00
            let rest = text.strip_prefix("00")?;
            phonenumber::parse(None, format!("+{rest}"))
                .ok()
                .as_ref()
                .and_then(valid)
        })
        .or_else(|| {
            // a number in no range the metadata knows (unassigned, new,
            // mistyped) is still the number the customer gave: kept when its
            // length is possible
            let number = parsed?;
            let national = number.national().to_string().len();
            let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
            ((7..=12).contains(&national) && e164.len() <= 16).then_some(e164)
        })
}

/// What [`phone`] needs of a number as written: its digits, and a leading
/// `+`, when it holds nothing but digits and punctuation; else the text
/// itself. Numbers written in different styles share one key, so each is
/// parsed once.
pub fn phone_key(text: &str) -> String {
    let text = text.trim();
    if !text
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '-' | '(' | ')' | '.'))
    {
        return text.to_owned();
    }
    let mut key = String::with_capacity(text.len());
    if text.starts_with('+') {
        key.push('+');
    }
    key.extend(text.chars().filter(char::is_ascii_digit));
    key
}

/// A date written in any of the common ways; `day_first` settles 03/04/1990.
pub fn date(text: &str, day_first: bool) -> Option<NaiveDate> {
    let text = text.trim();
    let text = text
        .split(['T', ' '])
        .next()
        .filter(|d| d.len() >= 8 && d.contains(['-', '/', '.']))
        .unwrap_or(text);
    const YEAR_FIRST: [&str; 4] = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d"];
    const DAY_FIRST: [&str; 3] = ["%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y"];
    const MONTH_FIRST: [&str; 2] = ["%m/%d/%Y", "%m-%d-%Y"];
    const WORDS: [&str; 4] = ["%d %b %Y", "%d %B %Y", "%b %d, %Y", "%B %d, %Y"];
    let (first, second) = if day_first {
        (&DAY_FIRST[..], &MONTH_FIRST[..])
    } else {
        (&MONTH_FIRST[..], &DAY_FIRST[..])
    };
    YEAR_FIRST
        .iter()
        .chain(first)
        .chain(second)
        .chain(&WORDS)
        .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
        .filter(|d| (1900..=2100).contains(&d.year()))
}

/// A street address taken apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// Flat, apartment, unit or suite.
    pub unit: String,
    pub number: String,
    /// Street name with its type written out: "high street".
    pub street: String,
    /// What followed the street line (a town, say), for records with no city.
    pub locality: String,
}

/// "Flat 3, 12 High St, Norwich" → unit 3, number 12, "high street", "norwich".
pub fn address(text: &str) -> Address {
    let folded = ascii_fold(text).to_ascii_lowercase();
    let mut out = Address::default();
    let mut street_done = false;
    for segment in folded.split([',', '\n']) {
        let tokens: Vec<String> = segment
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '#' && c != '/')
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        let mut words = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let token = tokens[i].as_str();
            if UNIT_WORDS.contains(&token) && i + 1 < tokens.len() && out.unit.is_empty() {
                out.unit = tokens[i + 1].trim_start_matches('#').to_owned();
                i += 2;
                continue;
            }
            if let Some(unit) = token.strip_prefix('#').filter(|u| !u.is_empty()) {
                out.unit = unit.to_owned();
                i += 1;
                continue;
            }
            if !street_done
                && out.number.is_empty()
                && token.starts_with(|c: char| c.is_ascii_digit())
            {
                // "3/12": unit 3 at number 12
                match token.split_once('/') {
                    Some((unit, number)) if out.unit.is_empty() => {
                        out.unit = unit.to_owned();
                        out.number = number.to_owned();
                    }
                    _ => out.number = token.to_owned(),
                }
                i += 1;
                continue;
            }
            words.push(expand_street_word(token));
            i += 1;
        }
        if words.is_empty() {
            continue;
        }
        // the first segment with a number is the street line; so is a segment after a
        // unit-only one ("Flat 3, Rose Court")
        if !street_done && (!out.number.is_empty() || segment_is_last_of_unit(&out)) {
            out.street = words.join(" ");
            street_done = true;
        } else {
            if !out.locality.is_empty() {
                out.locality.push(' ');
            }
            out.locality.push_str(&words.join(" "));
        }
    }
    out
}

/// Nothing but a unit has been read yet.
fn segment_is_last_of_unit(address: &Address) -> bool {
    address.street.is_empty() && address.locality.is_empty()
}

const UNIT_WORDS: [&str; 7] = ["flat", "apt", "apartment", "unit", "suite", "ste", "no"];

fn expand_street_word(word: &str) -> String {
    const TYPES: [(&str, &str); 22] = [
        ("st", "street"),
        ("str", "street"),
        ("rd", "road"),
        ("ave", "avenue"),
        ("av", "avenue"),
        ("ln", "lane"),
        ("dr", "drive"),
        ("cl", "close"),
        ("cres", "crescent"),
        ("cr", "crescent"),
        ("ct", "court"),
        ("pl", "place"),
        ("sq", "square"),
        ("blvd", "boulevard"),
        ("hwy", "highway"),
        ("pk", "park"),
        ("gdns", "gardens"),
        ("tce", "terrace"),
        ("ter", "terrace"),
        ("wy", "way"),
        ("mt", "mount"),
        ("n", "north"),
    ];
    TYPES
        .iter()
        .find(|(short, _)| *short == word)
        .map_or_else(|| word.to_owned(), |(_, full)| (*full).to_owned())
}

/// Upper case without spaces: "nr3 0ut" → "NR30UT".
pub fn postcode(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// ISO 3166 alpha-2 where the text is a code or a common name of one.
pub fn country(text: &str) -> String {
    let upper = ascii_fold(text.trim()).to_ascii_uppercase();
    let code = match upper.as_str() {
        "UK" | "UNITED KINGDOM" | "GREAT BRITAIN" | "ENGLAND" | "SCOTLAND" | "WALES" => "GB",
        "USA" | "UNITED STATES" | "UNITED STATES OF AMERICA" | "AMERICA" => "US",
        "DEUTSCHLAND" | "GERMANY" => "DE",
        "FRANCE" => "FR",
        "SPAIN" | "ESPANA" => "ES",
        "NETHERLANDS" | "THE NETHERLANDS" | "HOLLAND" | "NEDERLAND" => "NL",
        "IRELAND" => "IE",
        "ITALY" | "ITALIA" => "IT",
        other => other,
    };
    code.to_owned()
}

/// Free text compared as lower-case words: "NEW  York" → "new york".
pub fn words(text: &str) -> String {
    ascii_fold(text)
        .to_ascii_lowercase()
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An identifier compared as written, less surrounding space and case.
pub fn identifier(text: &str) -> String {
    text.trim().to_ascii_uppercase().replace([' ', '-'], "")
}

fn ascii_fold(text: &str) -> std::borrow::Cow<'_, str> {
    if text.is_ascii() {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(deunicode::deunicode(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_accents_case_and_punctuation() {
        assert_eq!(name("Zoë"), "zoe");
        assert_eq!(name("O'Brien"), "obrien");
        assert_eq!(name("  MÜLLER "), "muller");
        assert_eq!(
            split_full_name("Smith, John"),
            ("john".into(), "smith".into())
        );
        assert_eq!(
            split_full_name("Anna van Dijk"),
            ("anna".into(), "vandijk".into())
        );
        assert_eq!(
            split_full_name("Mary Ann Jones"),
            ("mary".into(), "jones".into())
        );
    }

    #[test]
    fn nicknames_meet_their_formal_names() {
        assert!(same_first_name("bob", "robert"));
        assert!(same_first_name("rob", "bobby"));
        assert!(same_first_name("sam", "samantha"));
        assert!(!same_first_name("sam", "robert"));
        assert!(!same_first_name("john", "james"));
    }

    #[test]
    fn emails_reach_the_same_mailbox() {
        assert_eq!(
            email(" John.Smith+shop@GMAIL.com").as_deref(),
            Some("johnsmith@gmail.com")
        );
        assert_eq!(
            email("j.smith@googlemail.com").as_deref(),
            Some("jsmith@gmail.com")
        );
        assert_eq!(
            email("j.smith@outlook.con").as_deref(),
            Some("j.smith@outlook.com")
        );
        assert_eq!(email("not an email"), None);
        assert_eq!(email("@example.com"), None);
    }

    #[test]
    fn phones_become_e164() {
        for written in [
            "+44 7427 199553",
            "07427199553",
            "07427 199553",
            "(07427) 19-9553",
            "0044 7427 199553",
            "+447427199553",
        ] {
            assert_eq!(
                phone(written, "GB").as_deref(),
                Some("+447427199553"),
                "{written}"
            );
            assert_eq!(phone(&phone_key(written), "GB"), phone(written, "GB"));
        }
        for (written, region) in [
            ("+44 (0)7427 199553", "GB"),
            ("001 650 253 0000", "US"),
            ("(650) 253-0000", "US"),
            ("+1.650.253.0000", "FR"),
            ("06 12 34 56 78", "FR"),
            ("+33 (0)6 12 34 56 78", "GB"),
            ("0151 1234 5678", "DE"),
            ("+49 (0) 151 1234 5678", "DE"),
            ("7427 199553", "GB"),
            ("+44 7427 199553 ext. 12", "GB"),
            ("1-800-FLOWERS", "US"),
        ] {
            assert_eq!(
                phone(&phone_key(written), region),
                phone(written, region),
                "{written} in {region}"
            );
        }
        assert_eq!(phone_key(" +44 (0)7427-199.553 "), "+4407427199553");
        assert_eq!(phone_key("1-800-FLOWERS"), "1-800-FLOWERS");
        assert_eq!(
            phone("001 650 253 0000", "US").as_deref(),
            Some("+16502530000")
        );
        assert_eq!(
            phone("(650) 253-0000", "US").as_deref(),
            Some("+16502530000")
        );
        assert_eq!(phone("12", "GB"), None);
        assert_eq!(phone("call me", "GB"), None);
    }

    #[test]
    fn dates_in_several_formats() {
        let d = NaiveDate::from_ymd_opt(1984, 12, 13);
        for written in [
            "1984-12-13",
            "13/12/1984",
            "13.12.1984",
            "13 Dec 1984",
            "December 13, 1984",
            "19841213",
            "1984-12-13T00:00:00Z",
        ] {
            assert_eq!(date(written, true), d, "{written}");
        }
        assert_eq!(
            date("12/13/1984", true),
            d,
            "month first when day first cannot be"
        );
        assert_eq!(
            date("03/04/1990", false),
            NaiveDate::from_ymd_opt(1990, 3, 4)
        );
        assert_eq!(date("yesterday", true), None);
        assert_eq!(date("31/02/1990", true), None);
    }

    #[test]
    fn addresses_come_apart() {
        let a = address("Flat 3, 12 High St, Norwich");
        assert_eq!(
            (
                a.unit.as_str(),
                a.number.as_str(),
                a.street.as_str(),
                a.locality.as_str()
            ),
            ("3", "12", "high street", "norwich")
        );
        assert_eq!(
            address("APT 3, 12 HIGH STREET"),
            Address {
                unit: "3".into(),
                number: "12".into(),
                street: "high street".into(),
                locality: String::new()
            }
        );
        assert_eq!(
            address("12 High Street").street,
            address("12 high st.").street
        );
        assert_eq!(address("3/12 Park Rd").unit, "3");
        assert_eq!(postcode("nr3 0ut"), "NR30UT");
        assert_eq!(country("United Kingdom"), "GB");
    }
}
