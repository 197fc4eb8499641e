//! Meta Custom Audiences (Marketing API `/{audience_id}/users`): members
//! added with POST and removed with DELETE, each row the sync's fields
//! named by Meta's keys (EMAIL, PHONE, FN, LN, …), normalised and SHA-256
//! hashed here (`normalise.rs`) so no plain identifier leaves the machine.
//! At most 10,000 rows per call; the additions of a run form one upload
//! session (`session_id`, `batch_seq`, `last_batch_flag`,
//! `estimated_num_total`). Meta answers errors in a JSON `error` object
//! whose `code` says what to do: throttling (4, 17, 32, 613, 80003) is
//! retried, after `X-Business-Use-Case-Usage`'s
//! `estimated_time_to_regain_access` when given; an invalid or expired
//! token (190) or missing permission (10, 200–299) stops the run.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Batch, Common, Destination, RowResults, Secret, SendError, http};
use crate::normalise::{self, KEYS};
use crate::spec::Mode;

fn default_url() -> String {
    "https://graph.facebook.com/v21.0".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The Graph API root with its version.
    #[serde(default = "default_url")]
    pub url: String,
    /// The customer-file custom audience the sync adds to and removes from.
    pub audience_id: String,
    pub access_token: Secret,
}

pub struct Meta {
    settings: Settings,
    client: reqwest::Client,
}

impl Meta {
    pub fn new(settings: Settings, common: &Common) -> Result<Self, String> {
        reqwest::Url::parse(&settings.url).map_err(|e| format!("url: {e}"))?;
        if settings.audience_id.is_empty()
            || !settings.audience_id.chars().all(|c| c.is_ascii_digit())
        {
            return Err("audience_id is the audience's numeric id".into());
        }
        Ok(Self {
            client: http::client(common)?,
            settings,
        })
    }

    fn users(&self) -> String {
        format!(
            "{}/{}/users",
            self.settings.url.trim_end_matches('/'),
            self.settings.audience_id
        )
    }

    /// Sends one add (POST) or remove (DELETE) call of prepared rows.
    async fn call(
        &self,
        method: reqwest::Method,
        schema: &[&str],
        data: &[Vec<String>],
        session: Option<Value>,
    ) -> Result<(), SendError> {
        let mut body = json!({"payload": {"schema": schema, "data": data}});
        if let Some(session) = session {
            body["session"] = session;
        }
        let text = http::exchange_as(
            self.client
                .request(method, self.users())
                .bearer_auth(self.settings.access_token.expose())
                .json(&body),
            failure,
        )
        .await?;
        if let Ok(answer) = serde_json::from_str::<Value>(&text)
            && let Some(invalid) = answer["num_invalid_entries"].as_u64()
            && invalid > 0
        {
            // Meta does not say which rows; its samples are hashes.
            tracing::warn!(invalid, "Meta counted rows it could not use");
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: GraphError,
}

#[derive(Deserialize)]
struct GraphError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
    #[serde(default)]
    is_transient: bool,
}

/// What a Graph API error means for the batch, by its code first.
fn failure(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    text: &str,
) -> SendError {
    let Ok(ErrorBody { error }) = serde_json::from_str::<ErrorBody>(text) else {
        return http::failure(status, headers, text);
    };
    let reason = format!(
        "Meta error {}: {}",
        error.code,
        http::excerpt(&error.message)
    );
    match error.code {
        1 | 2 | 4 | 17 | 32 | 341 | 613 | 80003 => SendError::Retry {
            reason,
            after: regain_access(headers),
        },
        _ if error.is_transient => SendError::Retry {
            reason,
            after: None,
        },
        10 | 102 | 190 | 200..=299 => SendError::Fatal(reason),
        _ => SendError::Reject(reason),
    }
}

/// The longest `estimated_time_to_regain_access` (minutes) in
/// `X-Business-Use-Case-Usage`, capped by the delivery's own limit.
fn regain_access(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let usage: Value =
        serde_json::from_str(headers.get("x-business-use-case-usage")?.to_str().ok()?).ok()?;
    let minutes = usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|entry| entry["estimated_time_to_regain_access"].as_f64())
        .fold(0.0, f64::max);
    (minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0))
}

/// A change's row in schema order: each value prepared as Meta wants it,
/// or None when no identifier is left after normalisation.
fn prepare(schema: &[&str], values: &[Value]) -> Option<Vec<String>> {
    let row: Vec<String> = schema
        .iter()
        .zip(values)
        .map(|(key, value)| match value {
            Value::String(text) => normalise::prepare(key, text),
            Value::Null => String::new(),
            other => normalise::prepare(key, &other.to_string()),
        })
        .collect();
    row.iter().any(|value| !value.is_empty()).then_some(row)
}

#[async_trait]
impl Destination for Meta {
    fn max_batch(&self) -> usize {
        10_000
    }

    fn modes(&self) -> &'static [Mode] {
        &[Mode::Membership, Mode::Mirror, Mode::Upsert]
    }

    fn wants_previous(&self) -> bool {
        true
    }

    fn check_fields(&self, names: &[&str]) -> Result<(), String> {
        if names.is_empty() {
            return Err(format!(
                "Meta matches people by identifiers: map at least one of {}",
                KEYS.join(", ")
            ));
        }
        match names.iter().find(|name| !KEYS.contains(name)) {
            Some(name) => Err(format!(
                "{name:?} is not a Meta identifier key: one of {}",
                KEYS.join(", ")
            )),
            None => Ok(()),
        }
    }

    async fn check(&self) -> Result<(), SendError> {
        let url = format!(
            "{}/{}?fields=id",
            self.settings.url.trim_end_matches('/'),
            self.settings.audience_id
        );
        http::exchange_as(
            self.client
                .get(url)
                .bearer_auth(self.settings.access_token.expose()),
            failure,
        )
        .await?;
        Ok(())
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        let schema: Vec<&str> = batch.fields.iter().map(|f| f.name.as_str()).collect();
        let mut results = vec![None; batch.changes.len()];
        let mut adds = Vec::new();
        let mut removes = Vec::new();
        // A member's old identifiers (a changed email), taken out before
        // the new ones go in so the person stays in the audience.
        let mut superseded = Vec::new();
        for (slot, change) in results.iter_mut().zip(batch.changes) {
            match prepare(&schema, &change.values) {
                None => {
                    *slot = Some("no identifier Meta can match on after normalisation".into());
                }
                Some(row) if change.op.removes() => removes.push(row),
                Some(row) => {
                    let old = change.previous.as_deref().and_then(|v| prepare(&schema, v));
                    if let Some(old) = old.filter(|old| *old != row) {
                        superseded.push(old);
                    }
                    adds.push(row);
                }
            }
        }
        if !superseded.is_empty() {
            self.call(reqwest::Method::DELETE, &schema, &superseded, None)
                .await?;
        }
        if !adds.is_empty() {
            let session = json!({
                "session_id": session_id(batch.run_id),
                "batch_seq": batch.seq,
                "last_batch_flag": batch.last,
                "estimated_num_total": batch.total,
            });
            self.call(reqwest::Method::POST, &schema, &adds, Some(session))
                .await?;
        }
        // Adding twice is harmless, so a failed removal retries both.
        if !removes.is_empty() {
            self.call(reqwest::Method::DELETE, &schema, &removes, None)
                .await?;
        }
        Ok(results)
    }
}

/// A run's upload session: a positive 63-bit number from its id.
fn session_id(run_id: &str) -> u64 {
    twox_hash::XxHash3_64::oneshot(run_id.as_bytes()) >> 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn graph_error_codes_say_retry_stop_or_refuse() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"123":[{"type":"custom_audience","call_count":100,"estimated_time_to_regain_access":2}]}"#,
            ),
        );
        let throttled = r#"{"error":{"message":"User request limit reached","code":17}}"#;
        assert_eq!(
            failure(StatusCode::BAD_REQUEST, &headers, throttled),
            SendError::Retry {
                reason: "Meta error 17: User request limit reached".into(),
                after: Some(Duration::from_secs(120)),
            }
        );
        let expired =
            r#"{"error":{"message":"Session has expired","type":"OAuthException","code":190}}"#;
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, &HeaderMap::new(), expired),
            SendError::Fatal(_)
        ));
        let invalid = r#"{"error":{"message":"Invalid parameter","code":100}}"#;
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, &HeaderMap::new(), invalid),
            SendError::Reject(_)
        ));
        // not Graph's shape: the status decides
        assert!(matches!(
            failure(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "<html>"),
            SendError::Retry { after: None, .. }
        ));
    }
}
