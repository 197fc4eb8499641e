//! Braze `POST /users/track`: each row an attributes object keyed by
//! `external_id` (the sync's key), at most 75 objects per request, the
//! REST key as a Bearer token. Update mode sets `_update_existing_only`;
//! membership mode adds and removes the sync's audience in the array
//! attribute `membership_attribute` (`weft_audiences` unless said), so one
//! Braze user can be in many audiences. A 201 may still name objects it
//! refused (`errors[].index` into `attributes`); 429 is retried at
//! `X-RateLimit-Reset`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Batch, Common, Destination, RowResults, Secret, SendError, http, record_of};
use crate::diff::Op;
use crate::spec::Mode;

fn default_membership_attribute() -> String {
    "weft_audiences".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The REST endpoint of the instance, e.g. `https://rest.iad-01.braze.com`.
    pub url: String,
    pub api_key: Secret,
    #[serde(default = "default_membership_attribute")]
    pub membership_attribute: String,
    /// The value membership mode adds (the audience's name unless said).
    pub membership_value: Option<String>,
}

pub struct Braze {
    settings: Settings,
    client: reqwest::Client,
}

impl Braze {
    pub fn new(settings: Settings, common: &Common) -> Result<Self, String> {
        reqwest::Url::parse(&settings.url).map_err(|e| format!("url: {e}"))?;
        Ok(Self {
            client: http::client(common)?,
            settings,
        })
    }

    fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.settings.url.trim_end_matches('/'))
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    errors: Vec<ObjectError>,
}

#[derive(Deserialize)]
struct ObjectError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    input_array: String,
    index: Option<usize>,
}

#[async_trait]
impl Destination for Braze {
    fn max_batch(&self) -> usize {
        75
    }

    fn modes(&self) -> &'static [Mode] {
        &[Mode::Upsert, Mode::Update, Mode::Membership]
    }

    async fn check(&self) -> Result<(), SendError> {
        // an empty track request checks the key without changing anything
        let response = self
            .client
            .post(self.endpoint("/users/track"))
            .bearer_auth(self.settings.api_key.expose())
            .json(&json!({"attributes": []}))
            .send()
            .await
            .map_err(http::transport)?;
        let (status, headers, body) = http::text(response).await?;
        match status.as_u16() {
            200..=299 | 400 => Ok(()),
            _ => Err(http::failure(status, &headers, &body)),
        }
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        let membership = self
            .settings
            .membership_value
            .clone()
            .unwrap_or_else(|| batch.sync.to_owned());
        let attributes: Vec<Value> = batch
            .changes
            .iter()
            .map(|change| {
                let mut object = record_of(batch.fields, change, "external_id");
                match change.op {
                    Op::Update => {
                        object.insert("_update_existing_only".into(), Value::Bool(true));
                    }
                    Op::Enter => {
                        object.insert(
                            self.settings.membership_attribute.clone(),
                            json!({"add": [membership]}),
                        );
                    }
                    Op::Exit => {
                        object.insert(
                            self.settings.membership_attribute.clone(),
                            json!({"remove": [membership]}),
                        );
                    }
                    _ => {}
                }
                Value::Object(object)
            })
            .collect();
        let body = http::exchange(
            self.client
                .post(self.endpoint("/users/track"))
                .bearer_auth(self.settings.api_key.expose())
                .json(&json!({ "attributes": attributes })),
        )
        .await?;
        let mut results = vec![None; batch.changes.len()];
        if let Ok(answer) = serde_json::from_str::<Answer>(&body) {
            for error in answer.errors {
                let slot = error
                    .index
                    .filter(|_| error.input_array == "attributes")
                    .and_then(|i| results.get_mut(i));
                if let Some(slot) = slot {
                    *slot = Some(http::excerpt(&error.kind));
                }
            }
        }
        Ok(results)
    }
}
