//! Meta's normalisation of customer identifiers before SHA-256 hashing
//! (Marketing API, "Customer file custom audiences: hashing and
//! normalisation"): each key's value trimmed and lower-cased, then as the
//! key asks — digits only for phones, letters only for names, and so on.

use sha2::{Digest, Sha256};

/// The identifier keys Meta accepts in a custom audience payload.
pub const KEYS: [&str; 15] = [
    "EMAIL",
    "PHONE",
    "FN",
    "LN",
    "FI",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "DOBY",
    "DOBM",
    "DOBD",
    "GEN",
    "MADID",
    "EXTERN_ID",
];

/// `value` normalised for `key`, or None when nothing usable is left.
pub fn normalise(key: &str, value: &str) -> Option<String> {
    let lower = value.trim().to_lowercase();
    let letters = |s: &str| -> String { s.chars().filter(|c| c.is_alphabetic()).collect() };
    let normalised = match key {
        "EMAIL" => lower.chars().filter(|c| !c.is_whitespace()).collect(),
        // country code and number, digits only: "+44 (0)20 …" keeps its digits
        "PHONE" => {
            let digits: String = lower.chars().filter(char::is_ascii_digit).collect();
            digits.trim_start_matches('0').to_owned()
        }
        "FN" | "LN" | "CT" => letters(&lower),
        "FI" => letters(&lower).chars().take(1).collect(),
        "ST" | "COUNTRY" => letters(&lower).chars().take(2).collect(),
        "ZIP" => lower.chars().filter(|c| c.is_alphanumeric()).collect(),
        "DOBY" => lower.chars().filter(char::is_ascii_digit).take(4).collect(),
        "DOBM" | "DOBD" => {
            let digits: String = lower.chars().filter(char::is_ascii_digit).collect();
            match digits.len() {
                1 => format!("0{digits}"),
                _ => digits.chars().take(2).collect(),
            }
        }
        "GEN" => lower
            .chars()
            .take(1)
            .filter(|c| *c == 'm' || *c == 'f')
            .collect(),
        // device ids and the advertiser's own ids are sent as they are
        "MADID" | "EXTERN_ID" => value.trim().to_owned(),
        _ => lower,
    };
    (!normalised.is_empty()).then_some(normalised)
}

/// Whether Meta wants the key's value hashed.
pub fn hashed(key: &str) -> bool {
    !matches!(key, "MADID" | "EXTERN_ID")
}

/// The value Meta is sent for `key`: normalised, then SHA-256 in lower-case
/// hex where it is hashed; "" when there is nothing.
pub fn prepare(key: &str, value: &str) -> String {
    match normalise(key, value) {
        None => String::new(),
        Some(normal) if hashed(key) => hex::encode(Sha256::digest(normal.as_bytes())),
        Some(normal) => normal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_normalise_as_meta_documents() {
        let cases = [
            (
                "EMAIL",
                "  John.Smith@Example.COM ",
                "john.smith@example.com",
            ),
            ("PHONE", "+44 (0)20 7946 0958", "440207946 0958"),
            ("FN", "Zoë-Anne", "zoëanne"),
            ("LN", "O'Brien ", "obrien"),
            ("FI", "  john", "j"),
            ("CT", "San Francisco", "sanfrancisco"),
            ("ST", "CA", "ca"),
            ("ZIP", "SW1A 1AA", "sw1a1aa"),
            ("COUNTRY", "GB", "gb"),
            ("DOBM", "7", "07"),
            ("DOBD", "21", "21"),
            ("DOBY", "1984", "1984"),
            ("GEN", "Female", "f"),
            ("EXTERN_ID", " C-1 ", "C-1"),
        ];
        for (key, value, expected) in cases {
            let expected = expected.replace(' ', "");
            assert_eq!(
                normalise(key, value).as_deref(),
                Some(expected.as_str()),
                "{key} {value}"
            );
        }
        assert_eq!(normalise("EMAIL", "   "), None);
        assert_eq!(normalise("GEN", "x"), None);
    }

    #[test]
    fn hashes_are_sha256_hex_of_the_normal_form() {
        // sha256("test@example.com"), computed independently
        assert_eq!(
            prepare("EMAIL", " Test@Example.com"),
            "973dfe463ec85785f5f95af5ba3906eedb2d931c24e69824a89ea65dba4e813b"
        );
        assert_eq!(prepare("EXTERN_ID", "c-1"), "c-1");
        assert_eq!(prepare("PHONE", "n/a"), "");
    }
}
