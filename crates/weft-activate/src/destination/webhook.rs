//! Webhook: JSON batches POSTed to any URL.
//!
//! ```json
//! {"sync": "…", "run_id": "…", "batch": 1,
//!  "rows": [{"op": "upsert", "key": "c-1", "fields": {"email": "…"}}]}
//! ```
//!
//! With a `secret`, `X-Weft-Signature: sha256=HEX` is the HMAC-SHA256 of
//! `TIMESTAMP.BODY` where TIMESTAMP is `X-Weft-Timestamp` (Unix seconds),
//! so a receiver can check who sent it and refuse replays.
//! `Idempotency-Key` is the same for the same rows in the same state, so a
//! batch sent again after a crash can be recognised. A 2xx answer may name
//! refused rows: `{"errors": [{"index": 3, "message": "…"}]}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Batch, Common, Destination, RowResults, Secret, SendError, http, object_of};
use crate::spec::Mode;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub url: String,
    pub secret: Option<Secret>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

pub struct Webhook {
    settings: Settings,
    client: reqwest::Client,
}

impl Webhook {
    pub fn new(settings: Settings, common: &Common) -> Result<Self, String> {
        reqwest::Url::parse(&settings.url).map_err(|e| format!("url: {e}"))?;
        Ok(Self {
            client: http::client(common)?,
            settings,
        })
    }

    fn request(&self, body: Vec<u8>, idempotency: Option<String>) -> reqwest::RequestBuilder {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let mut request = self
            .client
            .post(&self.settings.url)
            .header("content-type", "application/json")
            .header("x-weft-timestamp", &timestamp);
        for (name, value) in &self.settings.headers {
            request = request.header(name, value);
        }
        if let Some(secret) = &self.settings.secret {
            request = request.header(
                "x-weft-signature",
                signature(secret.expose(), &timestamp, &body),
            );
        }
        if let Some(key) = idempotency {
            request = request.header("idempotency-key", key);
        }
        request.body(body)
    }
}

/// `sha256=HEX` of HMAC-SHA256(secret, "TIMESTAMP.BODY").
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errors: Vec<RowError>,
}

#[derive(Deserialize)]
struct RowError {
    index: usize,
    #[serde(default)]
    message: String,
}

#[async_trait]
impl Destination for Webhook {
    fn max_batch(&self) -> usize {
        10_000
    }

    fn modes(&self) -> &'static [Mode] {
        &Mode::ALL
    }

    async fn check(&self) -> Result<(), SendError> {
        // an empty batch: a receiver answers it like any other
        let body = serde_json::to_vec(&json!({"sync": null, "rows": []})).expect("JSON");
        http::exchange(self.request(body, None)).await?;
        Ok(())
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        let rows: Vec<Value> = batch
            .changes
            .iter()
            .map(|change| {
                json!({
                    "op": change.op.name(),
                    "key": change.key,
                    "fields": object_of(batch.fields, change),
                })
            })
            .collect();
        let mut identity = twox_hash::XxHash3_64::new();
        use std::hash::Hasher;
        identity.write(batch.sync.as_bytes());
        for change in batch.changes {
            identity.write(change.key.as_bytes());
            identity.write(change.op.name().as_bytes());
            identity.write_u64(change.hash);
        }
        let body = serde_json::to_vec(&json!({
            "sync": batch.sync,
            "run_id": batch.run_id,
            "batch": batch.seq,
            "rows": rows,
        }))
        .expect("JSON");
        let text = http::exchange(self.request(
            body,
            Some(format!("{}-{:016x}", batch.sync, identity.finish())),
        ))
        .await?;
        let mut results = vec![None; batch.changes.len()];
        if let Ok(answer) = serde_json::from_str::<Answer>(&text) {
            for error in answer.errors {
                if let Some(slot) = results.get_mut(error.index) {
                    *slot = Some(if error.message.is_empty() {
                        "refused by the receiver".to_owned()
                    } else {
                        http::excerpt(&error.message)
                    });
                }
            }
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_and_body() {
        // computed independently: Python's hmac.new(b"key", b'1700000000.{"rows":[]}', sha256)
        assert_eq!(
            signature("key", "1700000000", br#"{"rows":[]}"#),
            "sha256=0a8f75a4171176a5938b75af9fd763854a76b6d896dd52fa5ac142d8875f3a70"
        );
        assert_ne!(
            signature("key", "1700000001", br#"{"rows":[]}"#),
            signature("key", "1700000000", br#"{"rows":[]}"#)
        );
    }
}
