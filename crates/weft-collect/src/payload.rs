//! The collector payload: one HTTP request as the collector received it, the
//! unit of the raw log. Like Snowplow's Thrift `CollectorPayload`, it keeps the
//! request whole (body, query string and headers byte for byte) so that every
//! later stage can be rerun from it.

pub use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Format byte in front of every encoded payload, so the format can evolve:
/// postcard as is, or postcard compressed with LZ4 (tracker JSON shrinks
/// several times, and on a busy disk bytes written are what durability costs).
const FORMAT_POSTCARD: u8 = 1;
const FORMAT_POSTCARD_LZ4: u8 = 2;
/// Bigger than any payload the collector accepts; guards decompression of a corrupt size.
const MAX_DECODED_BYTES: usize = 256 * 1024 * 1024;

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
    #[error("compressed payload is corrupt: {0}")]
    Decompress(String),
    #[error("malformed payload: {0}")]
    Malformed(#[from] postcard::Error),
}

impl CollectorPayload {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_size_hint());
        self.encode_into(&mut out);
        out
    }

    /// Enough room for the encoded payload, so encoding does not reallocate.
    pub fn encoded_size_hint(&self) -> usize {
        let plain = 512
            + self.body.as_ref().map_or(0, Bytes::len)
            + self.query.as_ref().map_or(0, String::len)
            + self
                .headers
                .iter()
                .map(|h| h.name.len() + h.value.len() + 4)
                .sum::<usize>();
        plain + plain / 64 + 32
    }

    /// Appends the encoded payload to `out`: format byte, uncompressed length, LZ4 block.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        thread_local! {
            // the uncompressed form is only a step: one buffer per thread, reused
            static PLAIN: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PLAIN.with_borrow_mut(|plain| {
            plain.clear();
            // serialising plain owned data into a Vec cannot fail
            *plain = postcard::to_extend(self, std::mem::take(plain)).expect("payload serialises");
        });
        PLAIN.with_borrow(|plain| {
            let bound = lz4_flex::block::get_maximum_output_size(plain.len());
            out.reserve(1 + 8 + bound);
            out.push(FORMAT_POSTCARD_LZ4);
            out.extend_from_slice(&(plain.len() as u64).to_le_bytes());
            let start = out.len();
            out.resize(start + bound, 0);
            let written = lz4_flex::block::compress_into(plain, &mut out[start..])
                .expect("output sized for the worst case");
            out.truncate(start + written);
        });
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, PayloadDecodeError> {
        let (&format, rest) = bytes.split_first().ok_or(PayloadDecodeError::Empty)?;
        match format {
            FORMAT_POSTCARD => Ok(postcard::from_bytes(rest)?),
            FORMAT_POSTCARD_LZ4 => {
                let corrupt = |reason: &str| PayloadDecodeError::Decompress(reason.to_owned());
                let (length, block) = rest
                    .split_first_chunk::<8>()
                    .ok_or_else(|| corrupt("no length"))?;
                let length = usize::try_from(u64::from_le_bytes(*length)).unwrap_or(usize::MAX);
                if length > MAX_DECODED_BYTES {
                    return Err(corrupt("implausible length"));
                }
                let plain = lz4_flex::block::decompress(block, length)
                    .map_err(|error| PayloadDecodeError::Decompress(error.to_string()))?;
                Ok(postcard::from_bytes(&plain)?)
            }
            other => Err(PayloadDecodeError::UnknownVersion(other)),
        }
    }

    /// A request captured as JSON (`method`, `path` with its query string,
    /// `headers` as `[name, value]` pairs, `body`, `received_at_ms`), as the
    /// collector would have stored it; for replaying captured tracker traffic.
    pub fn from_capture(
        capture: &serde_json::Value,
        ip: Option<&str>,
        network_user_id: Option<&str>,
    ) -> Option<Self> {
        let full_path = capture.get("path")?.as_str()?;
        let (path, query) = match full_path.split_once('?') {
            Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
            None => (full_path.to_owned(), None),
        };
        let headers: Vec<Header> = capture
            .get("headers")?
            .as_array()?
            .iter()
            .filter_map(|pair| {
                Some(Header {
                    name: pair.get(0)?.as_str()?.to_ascii_lowercase(),
                    value: pair.get(1)?.as_str()?.as_bytes().to_vec(),
                })
            })
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|h| h.name == name)
                .map(|h| String::from_utf8_lossy(&h.value).into_owned())
        };
        Some(Self {
            received_at_ms: capture.get("received_at_ms")?.as_i64()?,
            method: capture.get("method")?.as_str()?.to_owned(),
            path,
            query,
            body: capture
                .get("body")
                .and_then(|b| b.as_str())
                .map(|b| Bytes::copy_from_slice(b.as_bytes())),
            content_type: header("content-type"),
            user_agent: header("user-agent"),
            referer: header("referer"),
            hostname: header("host"),
            headers,
            ip: ip.map(str::to_owned),
            network_user_id: network_user_id.map(str::to_owned),
            collector: format!("weft-{}", weft_core::VERSION),
            size_violation: None,
        })
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
        // a compressed block cut short, or claiming an absurd length
        let encoded = sample_payload(&[b'x'; 500]).encode();
        assert!(matches!(
            CollectorPayload::decode(&encoded[..encoded.len() - 4]),
            Err(PayloadDecodeError::Decompress(_) | PayloadDecodeError::Malformed(_))
        ));
        let mut absurd = encoded.clone();
        absurd[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            CollectorPayload::decode(&absurd),
            Err(PayloadDecodeError::Decompress(_))
        ));
    }

    #[test]
    fn tracker_json_is_stored_compressed_and_plain_records_still_read() {
        let body = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/snowplow/js-tracker-4.10.1__08-retry-batch-no-cors-on-post.json"
        ))
        .unwrap();
        let payload = sample_payload(&body);
        let encoded = payload.encode();
        assert!(
            encoded.len() * 2 < body.len(),
            "{} vs {}",
            encoded.len(),
            body.len()
        );
        assert_eq!(CollectorPayload::decode(&encoded).unwrap(), payload);

        let mut plain = vec![FORMAT_POSTCARD];
        plain.extend(postcard::to_stdvec(&payload).unwrap());
        assert_eq!(CollectorPayload::decode(&plain).unwrap(), payload);
    }
}
