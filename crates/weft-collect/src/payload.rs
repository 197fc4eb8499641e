//! The collector payload: one HTTP request as the collector received it, the
//! unit of the raw log. Like Snowplow's Thrift `CollectorPayload`, it keeps the
//! request whole (body, query string and headers byte for byte) so that every
//! later stage can be rerun from it.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Version byte in front of every encoded payload, so the format can evolve.
const FORMAT_VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectorPayload {
    /// Milliseconds since the Unix epoch, on the collector's clock.
    pub received_at_ms: i64,
    pub method: String,
    /// The request path after custom path mapping (`/com.acme/track` is stored as tp2).
    pub path: String,
    /// The raw query string, undecoded.
    pub query: Option<String>,
    pub body: Option<Bytes>,
    pub content_type: Option<String>,
    /// Every header as received, in order; values are bytes since HTTP allows non-UTF-8.
    pub headers: Vec<Header>,
    /// The client's address; none for `SP-Anonymous` requests.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub referer: Option<String>,
    /// The `Host` the request was sent to.
    pub hostname: Option<String>,
    /// The network user id (`nuid` parameter, else the collector cookie, else a new UUID).
    pub network_user_id: Option<String>,
    /// Which collector wrote it, e.g. `weft-0.1.0`.
    pub collector: String,
    /// Set when the body was larger than the payload limit: kept, but not to be processed.
    pub size_violation: Option<SizeViolation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    #[serde(with = "serde_bytes")]
    pub value: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeViolation {
    pub actual_bytes: u64,
    pub max_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PayloadDecodeError {
    #[error("empty record")]
    Empty,
    #[error("unknown payload format version {0}")]
    UnknownVersion(u8),
    #[error("malformed payload: {0}")]
    Malformed(#[from] postcard::Error),
}

impl CollectorPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.as_ref().map_or(0, Bytes::len));
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoded payload to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(FORMAT_VERSION);
        // serialising plain owned data into a Vec cannot fail
        postcard::to_io(self, out).expect("payload serialises");
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadDecodeError> {
        let (&version, rest) = bytes.split_first().ok_or(PayloadDecodeError::Empty)?;
        if version != FORMAT_VERSION {
            return Err(PayloadDecodeError::UnknownVersion(version));
        }
        Ok(postcard::from_bytes(rest)?)
    }

    /// The first header of that name (case-insensitive), as bytes.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }
}

#[cfg(test)]
pub(crate) fn sample_payload(body: &[u8]) -> CollectorPayload {
    CollectorPayload {
        received_at_ms: 1_795_324_561_791,
        method: "POST".into(),
        path: "/com.snowplowanalytics.snowplow/tp2".into(),
        query: None,
        body: Some(Bytes::copy_from_slice(body)),
        content_type: Some("application/json; charset=UTF-8".into()),
        headers: vec![Header {
            name: "content-type".into(),
            value: b"application/json; charset=UTF-8".to_vec(),
        }],
        ip: Some("127.0.0.1".into()),
        user_agent: Some("node".into()),
        referer: None,
        hostname: Some("127.0.0.1:8080".into()),
        network_user_id: Some("0fa58e88-2e5a-4312-9ad0-b97bdac824b4".into()),
        collector: "weft-test".into(),
        size_violation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_byte_for_byte() {
        let mut payload = sample_payload(b"{\"schema\":\"x\"}\xff\x00");
        payload.headers.push(Header {
            name: "x-odd".into(),
            value: vec![0x80, 0xfe],
        });
        let decoded = CollectorPayload::decode(&payload.encode()).unwrap();
        assert_eq!(decoded, payload);
    }

    #[test]
    fn rejects_unknown_version_and_garbage() {
        let mut bytes = sample_payload(b"x").encode();
        bytes[0] = 9;
        assert!(matches!(
            CollectorPayload::decode(&bytes),
            Err(PayloadDecodeError::UnknownVersion(9))
        ));
        assert!(CollectorPayload::decode(&[]).is_err());
        assert!(CollectorPayload::decode(&[1, 0xff, 0xff, 0xff]).is_err());
    }
}
