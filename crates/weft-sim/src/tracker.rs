//! Tracker parameters and the HTTP requests that carry them, written the way
//! Snowplow's trackers write them: browsers POST `payload_data` batches with
//! plain-JSON `co`/`ue_pr`; the app sends `GET /i` with base64 `cx`/`ue_px`.

use std::fmt::Write as _;
use std::ops::Range;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use weft_collect::payload::Bytes;
use weft_collect::{CollectorPayload, Header};

pub const TP2_PATH: &str = "/com.snowplowanalytics.snowplow/tp2";
pub const PAYLOAD_DATA: &str = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4";
pub const CONTEXTS: &str = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0";
pub const UNSTRUCT: &str = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0";
/// The collector's cookie, holding the network user id.
pub const COLLECTOR_COOKIE: &str = "sp";

/// One event's tracker parameters, kept in one string to spare an allocation
/// per value. A value may be stored already escaped for a JSON string (see
/// [`Params::put_with`]).
#[derive(Debug, Clone, Default)]
pub struct Params {
    text: String,
    fields: Vec<(&'static str, Range<usize>, bool)>,
}

impl Params {
    pub fn clear(&mut self) {
        self.text.clear();
        self.fields.clear();
    }

    pub fn put(&mut self, key: &'static str, value: &str) {
        self.put_with(key, false, |out| out.push_str(value));
    }

    pub fn put_fmt(&mut self, key: &'static str, value: std::fmt::Arguments<'_>) {
        self.put_with(key, false, |out| {
            let _ = out.write_fmt(value);
        });
    }

    /// A value written in place by `write`. With `escaped`, what it writes is
    /// already escaped for a JSON string (JSON built with `\"` for its quotes,
    /// for a POST body), which spares scanning it again; such a value cannot go
    /// into a GET query.
    pub fn put_with(&mut self, key: &'static str, escaped: bool, write: impl FnOnce(&mut String)) {
        let start = self.text.len();
        write(&mut self.text);
        self.fields.push((key, start..self.text.len(), escaped));
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, range, _)| &self.text[range.clone()])
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.fields
            .iter()
            .map(|(key, range, _)| (*key, &self.text[range.clone()]))
    }

    /// `{"e":"pv",…}` with JSON parameters as strings, as the browser tracker posts them.
    pub fn write_json(&self, stm: i64, out: &mut String) {
        out.push('{');
        for (key, range, escaped) in &self.fields {
            let value = &self.text[range.clone()];
            out.push('"');
            out.push_str(key);
            out.push_str("\":");
            if *escaped {
                out.push('"');
                out.push_str(value);
                out.push('"');
            } else {
                write_json_string(value, out);
            }
            out.push(',');
        }
        let _ = write!(out, "\"stm\":\"{stm}\"}}");
    }

    /// `e=pv&…` with JSON parameters base64-encoded, as the app tracker sends them.
    pub fn query(&self, stm: i64) -> String {
        let mut query =
            form_urlencoded::Serializer::new(String::with_capacity(self.text.len() * 2));
        let mut encoded = String::new();
        for (key, range, escaped) in &self.fields {
            debug_assert!(!escaped, "{key} was escaped for a POST body");
            let value = &self.text[range.clone()];
            match *key {
                "co" | "ue_pr" => {
                    encoded.clear();
                    URL_SAFE_NO_PAD.encode_string(value, &mut encoded);
                    query.append_pair(if *key == "co" { "cx" } else { "ue_px" }, &encoded);
                }
                _ => {
                    query.append_pair(key, value);
                }
            }
        }
        query.append_pair("stm", &stm.to_string());
        query.finish()
    }
}

/// A JSON string literal of `value`.
pub fn write_json_string(value: &str, out: &mut String) {
    out.push('"');
    // most values need at most their quotes escaped (the JSON of contexts has many):
    // a branch-free scan, then splitting on quotes with a fast search
    let plain = !value
        .bytes()
        .fold(false, |acc, b| acc | (b == b'\\') | (b < 0x20));
    if plain {
        let mut parts = value.split('"');
        out.push_str(parts.next().unwrap_or_default());
        for part in parts {
            out.push_str("\\\"");
            out.push_str(part);
        }
    } else {
        let mut start = 0;
        for (index, byte) in value.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            out.push_str(&value[start..index]);
            if escape.is_empty() {
                let _ = write!(out, "\\u{byte:04x}");
            } else {
                out.push_str(escape);
            }
            start = index + 1;
        }
        out.push_str(&value[start..]);
    }
    out.push('"');
}

/// One HTTP request a tracker sends, with what the collector would learn from its connection.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackerRequest {
    pub method: &'static str,
    /// Path and query string.
    pub path: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
    /// How many events it carries.
    pub events: usize,
    /// When the tracker sent it, ms since the epoch (the collector time of a backfill).
    pub sent_at_ms: i64,
    /// The client's address (sent as `X-Forwarded-For`, as a load balancer adds it).
    pub client_ip: String,
    /// The collector cookie the device holds.
    pub network_user_id: String,
}

impl TrackerRequest {
    /// The request as the collector at `host` stores it, received when it was sent.
    pub fn into_payload(mut self, host: &str, collector: &str) -> CollectorPayload {
        let query = self.path.find('?').map(|at| {
            let query = self.path.split_off(at + 1);
            self.path.truncate(at);
            query
        });
        let path = std::mem::take(&mut self.path);
        let header = |name: &str| {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let (content_type, user_agent, referer) = (
            header("content-type"),
            header("user-agent"),
            header("referer"),
        );
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        headers.push(Header {
            name: "host".into(),
            value: host.as_bytes().to_vec(),
        });
        headers.extend(self.headers.into_iter().map(|(name, value)| Header {
            name: name.to_owned(),
            value: value.into_bytes(),
        }));
        CollectorPayload {
            received_at_ms: self.sent_at_ms,
            method: self.method.to_owned(),
            path,
            query,
            body: self.body.map(Bytes::from),
            content_type,
            headers,
            ip: Some(self.client_ip),
            user_agent,
            referer,
            hostname: Some(host.to_owned()),
            network_user_id: Some(self.network_user_id),
            collector: collector.to_owned(),
            size_violation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_like_serde_json() {
        for text in [
            "plain",
            "a \"quoted\" \\ path",
            "tab\tnew\nline\u{1}",
            "Zoë Müller",
        ] {
            let mut out = String::new();
            write_json_string(text, &mut out);
            assert_eq!(out, serde_json::to_string(text).unwrap());
        }
    }

    #[test]
    fn get_requests_base64_json_parameters() {
        let mut params = Params::default();
        params.put("e", "ue");
        params.put("ue_pr", r#"{"a":1}"#);
        let query = params.query(7);
        assert!(query.starts_with("e=ue&ue_px="), "{query}");
        assert!(query.ends_with("&stm=7"));
        let mut json = String::new();
        params.write_json(7, &mut json);
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["ue_pr"], r#"{"a":1}"#);
        assert_eq!(value["stm"], "7");
    }
}
