//! The Snowplow tracker protocol: turns a collector payload into the events it
//! carries, each a map of tracker parameters (`e`, `eid`, `url`, `ue_pr`, …).
//!
//! - `GET /i?…` (and `/ice.png`, `/{vendor}/{version}`): one event in the query string.
//! - `POST /{vendor}/{version}`: a `payload_data` self-describing JSON whose
//!   `data` is an array of events, every value a string.
//! - `GET /r/tp2?u=…`: a `uri_redirect` event (plus any parameters it carries).
//!
//! A bad event never takes the rest of its batch with it: parsing returns the
//! good events and one error per bad one.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde_json::Value;

use crate::payload::CollectorPayload;

pub const TP2_PATH: &str = "/com.snowplowanalytics.snowplow/tp2";
pub const REDIRECT_PATH: &str = "/r/tp2";
const PAYLOAD_DATA_PREFIX: &str =
    "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-";
const URI_REDIRECT_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/uri_redirect/jsonschema/1-0-0";
const UNSTRUCT_EVENT_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0";
const CONTEXTS_SCHEMA: &str = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1";

/// One event: its tracker parameters, decoded from the query string or JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawEvent {
    pub params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("payload of {actual_bytes} bytes is over the {max_bytes} byte limit")]
    SizeViolation { actual_bytes: u64, max_bytes: u64 },
    #[error("request has no event: empty query string and body")]
    Empty,
    #[error("body is not UTF-8 text")]
    NotUtf8,
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is not a payload_data self-describing JSON: {0}")]
    NotPayloadData(String),
    #[error("unsupported payload schema {0:?}: expected payload_data 1-0-*")]
    UnsupportedSchema(String),
    #[error("event {index} is not a JSON object")]
    EventNotObject { index: usize },
    #[error("event {index}: parameter {param:?} is not a string")]
    NonStringValue { index: usize, param: String },
    #[error("redirect without a target: the u parameter is missing")]
    RedirectWithoutTarget,
    #[error("{param}: not base64: {reason}")]
    BadBase64 { param: String, reason: String },
    #[error("{param}: not a self-describing JSON: {reason}")]
    BadSelfDescribing { param: String, reason: String },
}

/// What one collector payload holds: the events that parsed and one error per
/// event (or whole payload) that did not.
#[derive(Debug, Default)]
pub struct ParsedPayload {
    pub events: Vec<RawEvent>,
    pub errors: Vec<ProtocolError>,
}

/// Splits a stored payload into its events.
pub fn parse_payload(payload: &CollectorPayload) -> ParsedPayload {
    let mut parsed = ParsedPayload::default();
    if let Some(violation) = &payload.size_violation {
        parsed.errors.push(ProtocolError::SizeViolation {
            actual_bytes: violation.actual_bytes,
            max_bytes: violation.max_bytes,
        });
        return parsed;
    }
    let body = payload.body.as_deref().filter(|b| !b.is_empty());
    if payload.path == REDIRECT_PATH {
        match parse_redirect(payload.query.as_deref().unwrap_or("")) {
            Ok(event) => parsed.events.push(event),
            Err(error) => parsed.errors.push(error),
        }
    } else if let Some(body) = body {
        parse_body(body, &mut parsed);
    } else {
        match payload.query.as_deref().filter(|q| !q.is_empty()) {
            Some(query) => parsed.events.push(parse_query(query)),
            None => parsed.errors.push(ProtocolError::Empty),
        }
    }
    parsed
}

/// The parameters of a query string (the first value of a repeated key wins).
pub fn parse_query(query: &str) -> RawEvent {
    let mut params = BTreeMap::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        params
            .entry(key.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    RawEvent { params }
}

fn parse_redirect(query: &str) -> Result<RawEvent, ProtocolError> {
    let mut event = parse_query(query);
    let target = event
        .params
        .remove("u")
        .filter(|u| !u.is_empty())
        .ok_or(ProtocolError::RedirectWithoutTarget)?;
    let redirect = serde_json::json!({"schema": URI_REDIRECT_SCHEMA, "data": {"uri": target}});
    if event.params.contains_key("e") {
        // an event sent through the redirect keeps its own type and gains the redirect as a context
        let mut contexts = match event.contexts() {
            Ok(Some(list)) => list,
            _ => Vec::new(),
        };
        contexts.push(redirect);
        event.params.remove("cx");
        let envelope = serde_json::json!({"schema": CONTEXTS_SCHEMA, "data": contexts});
        event.params.insert("co".into(), envelope.to_string());
    } else {
        event.params.insert("e".into(), "ue".into());
        let envelope = serde_json::json!({"schema": UNSTRUCT_EVENT_SCHEMA, "data": redirect});
        event.params.insert("ue_pr".into(), envelope.to_string());
    }
    event
        .params
        .entry("p".into())
        .or_insert_with(|| "web".into());
    Ok(event)
}

fn parse_body(body: &[u8], parsed: &mut ParsedPayload) {
    let text = match std::str::from_utf8(body) {
        Ok(text) => text,
        Err(_) => return parsed.errors.push(ProtocolError::NotUtf8),
    };
    let json: Value = match serde_json::from_str(text) {
        Ok(json) => json,
        Err(error) => {
            return parsed
                .errors
                .push(ProtocolError::NotJson(error.to_string()));
        }
    };
    let Value::Object(mut envelope) = json else {
        return parsed
            .errors
            .push(ProtocolError::NotPayloadData("not a JSON object".into()));
    };
    match envelope.get("schema") {
        Some(Value::String(schema)) if schema.starts_with(PAYLOAD_DATA_PREFIX) => {}
        Some(Value::String(schema)) => {
            return parsed
                .errors
                .push(ProtocolError::UnsupportedSchema(schema.clone()));
        }
        _ => {
            return parsed
                .errors
                .push(ProtocolError::NotPayloadData("no \"schema\" string".into()));
        }
    }
    let Some(Value::Array(events)) = envelope.remove("data") else {
        return parsed.errors.push(ProtocolError::NotPayloadData(
            "\"data\" is not an array".into(),
        ));
    };
    if events.is_empty() {
        return parsed.errors.push(ProtocolError::Empty);
    }
    for (index, event) in events.into_iter().enumerate() {
        match event_from_json(index, event) {
            Ok(event) => parsed.events.push(event),
            Err(error) => parsed.errors.push(error),
        }
    }
}

fn event_from_json(index: usize, event: Value) -> Result<RawEvent, ProtocolError> {
    let Value::Object(map) = event else {
        return Err(ProtocolError::EventNotObject { index });
    };
    let mut params = BTreeMap::new();
    for (param, value) in map {
        match value {
            Value::String(value) => {
                params.insert(param, value);
            }
            _ => return Err(ProtocolError::NonStringValue { index, param }),
        }
    }
    Ok(RawEvent { params })
}

/// Base64 as trackers send it: URL-safe or standard alphabet, padded or not.
pub fn decode_base64(param: &str, text: &str) -> Result<Vec<u8>, ProtocolError> {
    const INDIFFERENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, INDIFFERENT);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, INDIFFERENT);
    let text = text.trim();
    // standard base64 in a query string may have had '+' turned into ' '
    let engine = if text.contains(['+', '/', ' ']) {
        &STANDARD
    } else {
        &URL_SAFE
    };
    let text = text.replace(' ', "+");
    engine
        .decode(text)
        .map_err(|error| ProtocolError::BadBase64 {
            param: param.to_owned(),
            reason: error.to_string(),
        })
}

impl RawEvent {
    pub fn get(&self, param: &str) -> Option<&str> {
        self.params.get(param).map(String::as_str)
    }

    /// The self-describing JSON in `plain` (JSON text) or `encoded` (base64 of it).
    fn self_describing(&self, plain: &str, encoded: &str) -> Result<Option<Value>, ProtocolError> {
        let (param, text) = match (self.get(plain), self.get(encoded)) {
            (Some(text), _) => (plain, text.to_owned()),
            (None, Some(b64)) => {
                let bytes = decode_base64(encoded, b64)?;
                let text =
                    String::from_utf8(bytes).map_err(|_| ProtocolError::BadSelfDescribing {
                        param: encoded.to_owned(),
                        reason: "decoded bytes are not UTF-8".into(),
                    })?;
                (encoded, text)
            }
            (None, None) => return Ok(None),
        };
        let bad = |reason: String| ProtocolError::BadSelfDescribing {
            param: param.to_owned(),
            reason,
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        match &value {
            Value::Object(map)
                if map.get("schema").is_some_and(Value::is_string) && map.contains_key("data") =>
            {
                Ok(Some(value))
            }
            _ => Err(bad("expected an object with \"schema\" and \"data\"".into())),
        }
    }

    /// The self-describing event of a `ue` event (the inner `{schema, data}`).
    pub fn unstruct(&self) -> Result<Option<Value>, ProtocolError> {
        Ok(self
            .self_describing("ue_pr", "ue_px")?
            .and_then(|mut envelope| envelope.get_mut("data").map(Value::take)))
    }

    /// The context entities attached to the event.
    pub fn contexts(&self) -> Result<Option<Vec<Value>>, ProtocolError> {
        match self.self_describing("co", "cx")? {
            None => Ok(None),
            Some(mut envelope) => match envelope.get_mut("data").map(Value::take) {
                Some(Value::Array(entities)) => Ok(Some(entities)),
                _ => Err(ProtocolError::BadSelfDescribing {
                    param: "co/cx".into(),
                    reason: "contexts \"data\" is not an array".into(),
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::sample_payload;
    use proptest::prelude::*;

    fn post(body: &str) -> ParsedPayload {
        parse_payload(&sample_payload(body.as_bytes()))
    }

    fn get(query: &str) -> ParsedPayload {
        let mut payload = sample_payload(b"");
        payload.method = "GET".into();
        payload.path = "/i".into();
        payload.body = None;
        payload.query = Some(query.into());
        parse_payload(&payload)
    }

    #[test]
    fn post_batch_keeps_good_events_beside_bad_ones() {
        let parsed = post(
            r#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                "data":[{"e":"pv","eid":"1"},{"e":"se","se_va":19.99},"nope",{"e":"pp"}]}"#,
        );
        assert_eq!(parsed.events.len(), 2);
        assert_eq!(parsed.events[1].get("e"), Some("pp"));
        assert_eq!(
            parsed.errors,
            vec![
                ProtocolError::NonStringValue {
                    index: 1,
                    param: "se_va".into()
                },
                ProtocolError::EventNotObject { index: 2 },
            ]
        );
    }

    #[test]
    fn whole_payload_errors_are_named() {
        assert!(matches!(
            post("{not json").errors[..],
            [ProtocolError::NotJson(_)]
        ));
        assert!(matches!(
            post("[1,2]").errors[..],
            [ProtocolError::NotPayloadData(_)]
        ));
        assert!(matches!(
            post(r#"{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":[]}"#).errors[..],
            [ProtocolError::UnsupportedSchema(_)]
        ));
        assert!(matches!(
            post(r#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":{}}"#).errors[..],
            [ProtocolError::NotPayloadData(_)]
        ));
        assert_eq!(
            parse_payload(&sample_payload(b"\xff\xfe")).errors,
            vec![ProtocolError::NotUtf8]
        );
        assert_eq!(get("").errors, vec![ProtocolError::Empty]);
        let deep = "[".repeat(100_000);
        assert!(matches!(
            post(&deep).errors[..],
            [ProtocolError::NotJson(_)]
        ));
    }

    #[test]
    fn get_query_string_is_decoded() {
        let parsed =
            get("e=pv&url=https%3A%2F%2Fshop.example.com%2F%3Fa%3D1&page=Blue+T-shirt&e=ignored");
        let event = &parsed.events[0];
        assert_eq!(event.get("e"), Some("pv"));
        assert_eq!(event.get("url"), Some("https://shop.example.com/?a=1"));
        assert_eq!(event.get("page"), Some("Blue T-shirt"));
    }

    #[test]
    fn base64_in_every_variant() {
        let json = r#"{"schema":"iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0","data":[{"schema":"iglu:a/b/jsonschema/1-0-0","data":{"k":"v?>"}}]}"#;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        for encoded in [
            STANDARD.encode(json),
            STANDARD_NO_PAD.encode(json),
            URL_SAFE.encode(json),
            URL_SAFE_NO_PAD.encode(json),
            STANDARD.encode(json).replace('+', " "),
        ] {
            let mut event = RawEvent::default();
            event.params.insert("cx".into(), encoded.clone());
            let contexts = event.contexts().unwrap().unwrap();
            assert_eq!(contexts[0]["data"]["k"], "v?>", "{encoded}");
        }
        let mut event = RawEvent::default();
        event.params.insert("ue_px".into(), "!!!not base64".into());
        assert!(matches!(
            event.unstruct(),
            Err(ProtocolError::BadBase64 { .. })
        ));
        let mut event = RawEvent::default();
        event
            .params
            .insert("ue_pr".into(), r#"{"schema":1}"#.into());
        assert!(matches!(
            event.unstruct(),
            Err(ProtocolError::BadSelfDescribing { .. })
        ));
    }

    #[test]
    fn redirect_becomes_uri_redirect_event() {
        let mut payload = sample_payload(b"");
        payload.method = "GET".into();
        payload.path = REDIRECT_PATH.into();
        payload.body = None;
        payload.query = Some("u=https%3A%2F%2Fshop.example.com%2Fsale&aid=email".into());
        let parsed = parse_payload(&payload);
        let event = &parsed.events[0];
        assert_eq!(event.get("e"), Some("ue"));
        assert_eq!(event.get("aid"), Some("email"));
        let ue = event.unstruct().unwrap().unwrap();
        assert_eq!(ue["data"]["uri"], "https://shop.example.com/sale");

        payload.query = Some("u=https%3A%2F%2Fx.example%2F&e=se&se_ca=c".into());
        let parsed = parse_payload(&payload);
        let contexts = parsed.events[0].contexts().unwrap().unwrap();
        assert_eq!(contexts[0]["schema"], URI_REDIRECT_SCHEMA);

        payload.query = Some("aid=x".into());
        assert_eq!(
            parse_payload(&payload).errors,
            vec![ProtocolError::RedirectWithoutTarget]
        );
    }

    proptest! {
        // hostile input never panics, and every event or error is accounted for
        #[test]
        fn any_body_parses_without_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let parsed = parse_payload(&sample_payload(&body));
            prop_assert!(!parsed.events.is_empty() || !parsed.errors.is_empty());
        }

        #[test]
        fn any_query_parses_without_panic(query in ".{0,300}") {
            let parsed = get(&query);
            prop_assert!(parsed.events.len() + parsed.errors.len() == 1);
        }

        #[test]
        fn any_json_batch_splits_into_events_and_errors(
            events in proptest::collection::vec(
                proptest::collection::btree_map("[a-z_]{1,6}", prop_oneof![
                    ".{0,12}".prop_map(Value::String),
                    any::<i64>().prop_map(Value::from),
                    Just(Value::Null),
                ], 0..6),
                1..20)
        ) {
            let data: Vec<Value> = events.iter().map(|m| Value::Object(m.clone().into_iter().collect())).collect();
            let body = serde_json::json!({
                "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
                "data": data,
            }).to_string();
            let parsed = post(&body);
            prop_assert_eq!(parsed.events.len() + parsed.errors.len(), events.len());
            let all_strings = events.iter().filter(|m| m.values().all(Value::is_string)).count();
            prop_assert_eq!(parsed.events.len(), all_strings);
        }

        #[test]
        fn any_base64_param_is_an_error_or_json(text in ".{0,200}") {
            let mut event = RawEvent::default();
            event.params.insert("cx".into(), text);
            let _ = event.contexts();
        }
    }
}
