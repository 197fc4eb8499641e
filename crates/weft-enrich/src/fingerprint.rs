//! The event fingerprint, as Snowplow's event fingerprint enrichment computes it:
//! MD5 of the tracker parameters sorted by name, each name followed by its value,
//! leaving out those that change when the same event is sent again (the send
//! time `stm`, the event id, the collector's cookie and version).
//!
//! Two events with the same id and the same fingerprint are the same event sent
//! twice (a tracker retry); the loader keeps only the first.

use std::collections::BTreeMap;
use std::fmt::Write;

use md5::{Digest, Md5};

/// The parameters Snowplow leaves out by default.
pub const DEFAULT_EXCLUDED: [&str; 4] = ["cv", "eid", "nuid", "stm"];

/// The fingerprint of an event's parameters, as 32 hex digits.
pub fn event_fingerprint(params: &BTreeMap<String, String>, excluded: &[&str]) -> String {
    let mut hasher = Md5::new();
    for (name, value) in params {
        if !excluded.contains(&name.as_str()) {
            hasher.update(name.as_bytes());
            hasher.update(value.as_bytes());
        }
    }
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(32);
    for byte in digest.iter() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn is_md5_of_sorted_names_and_values() {
        // `printf 'aidshopepv' | md5sum`
        let fp = event_fingerprint(&params(&[("e", "pv"), ("aid", "shop")]), &[]);
        assert_eq!(fp, "8f87221b780ab130d9a57f51826b90df");
    }

    #[test]
    fn a_resend_has_the_same_fingerprint_and_a_change_does_not() {
        let first = params(&[
            ("e", "pv"),
            ("eid", "a"),
            ("stm", "1"),
            ("url", "http://x/"),
        ]);
        let resent = params(&[
            ("e", "pv"),
            ("eid", "a"),
            ("stm", "9"),
            ("url", "http://x/"),
        ]);
        let other = params(&[
            ("e", "pv"),
            ("eid", "a"),
            ("stm", "1"),
            ("url", "http://y/"),
        ]);
        let fp = |p| event_fingerprint(p, &DEFAULT_EXCLUDED);
        assert_eq!(fp(&first), fp(&resent));
        assert_ne!(fp(&first), fp(&other));
    }
}
