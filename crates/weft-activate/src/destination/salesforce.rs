//! Salesforce: records upserted by an external id field with sObject
//! Collections (`PATCH /services/data/vXX.X/composite/sobjects/{object}/
//! {external_id_field}`, 200 records per call, `allOrNone: false`), whose
//! answer is one UpsertResult per record, in order, so each refused row
//! is recorded with Salesforce's own status code and message. Membership
//! mode sets a checkbox field (`membership_field`) true on entry and
//! false on exit. The token is either given (`access_token`) or obtained
//! with the OAuth client-credentials flow (`client_id`, `client_secret`)
//! and obtained again once when Salesforce says the session expired.
//! With `bulk = true`, each batch of up to 10,000 rows is one Bulk API 2.0
//! ingest job instead (create, upload CSV, close, wait, read the failed
//! results by external id), for large syncs.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::{Batch, Common, Destination, RowResults, Secret, SendError, http, record_of};
use crate::diff::Op;
use crate::spec::Mode;

fn default_api_version() -> String {
    "v60.0".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The org's My Domain URL, e.g. `https://acme.my.salesforce.com`.
    pub url: String,
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// The sObject written, e.g. `Contact`.
    pub object: String,
    /// Its external id field that holds the sync's key, e.g. `Weft_Id__c`.
    pub external_id_field: String,
    /// A checkbox field membership mode sets and clears.
    pub membership_field: Option<String>,
    pub access_token: Option<Secret>,
    pub client_id: Option<Secret>,
    pub client_secret: Option<Secret>,
    /// Upsert through Bulk API 2.0 ingest jobs (10,000 rows per job)
    /// instead of sObject Collections (200 per call): for large syncs.
    #[serde(default)]
    pub bulk: bool,
    /// Seconds between two looks at a bulk job's state.
    #[serde(default = "default_poll_secs")]
    pub poll_secs: f64,
}

fn default_poll_secs() -> f64 {
    2.0
}

/// How long a bulk job may take before the batch is tried again (an
/// upsert of the same rows is harmless).
const BULK_PATIENCE: Duration = Duration::from_secs(30 * 60);

pub struct Salesforce {
    settings: Settings,
    client: reqwest::Client,
    /// The token in use: the given one, or the last one obtained.
    token: Mutex<Option<String>>,
}

impl Salesforce {
    pub fn new(settings: Settings, common: &Common) -> Result<Self, String> {
        reqwest::Url::parse(&settings.url).map_err(|e| format!("url: {e}"))?;
        let name_ok = |name: &str| {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        for (what, name) in [
            ("object", settings.object.as_str()),
            ("external_id_field", settings.external_id_field.as_str()),
            (
                "membership_field",
                settings.membership_field.as_deref().unwrap_or("ok"),
            ),
        ] {
            if !name_ok(name) {
                return Err(format!("{what} is an API name: letters, digits and _"));
            }
        }
        let credentials = settings.client_id.is_some() && settings.client_secret.is_some();
        if settings.access_token.is_none() && !credentials {
            return Err("access_token, or client_id and client_secret, are required".into());
        }
        Ok(Self {
            client: http::client(common)?,
            token: Mutex::new(
                settings
                    .access_token
                    .as_ref()
                    .map(|t| t.expose().to_owned()),
            ),
            settings,
        })
    }

    fn data(&self, path: &str) -> String {
        format!(
            "{}/services/data/{}{path}",
            self.settings.url.trim_end_matches('/'),
            self.settings.api_version
        )
    }

    /// The token to send, obtaining one first if there is none.
    async fn token(&self) -> Result<String, SendError> {
        let mut token = self.token.lock().await;
        if let Some(token) = token.as_ref() {
            return Ok(token.clone());
        }
        let fresh = self.obtain_token().await?;
        *token = Some(fresh.clone());
        Ok(fresh)
    }

    async fn obtain_token(&self) -> Result<String, SendError> {
        let (Some(id), Some(secret)) = (&self.settings.client_id, &self.settings.client_secret)
        else {
            return Err(SendError::Fatal(
                "Salesforce refused the access token and no client credentials are configured"
                    .into(),
            ));
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", id.expose()),
            ("client_secret", secret.expose()),
        ];
        let body = form_body(&form);
        let response = self
            .client
            .post(format!(
                "{}/services/oauth2/token",
                self.settings.url.trim_end_matches('/')
            ))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(http::transport)?;
        let (status, headers, text) = http::text(response).await?;
        if !status.is_success() {
            // a refused client is for a person to fix, whatever the status
            return Err(match http::failure(status, &headers, &text) {
                SendError::Reject(reason) => SendError::Fatal(reason),
                other => other,
            });
        }
        serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["access_token"].as_str().map(str::to_owned))
            .ok_or_else(|| SendError::Fatal("the token answer holds no access_token".into()))
    }

    /// Sends `request` with the token; on an expired session, once more
    /// with a new one.
    async fn authorised(
        &self,
        request: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<String, SendError> {
        let token = self.token().await?;
        match http::exchange_as(request(&token), failure).await {
            Err(SendError::Fatal(reason))
                if reason.contains("INVALID_SESSION_ID") && self.settings.client_id.is_some() =>
            {
                let fresh = self.obtain_token().await?;
                *self.token.lock().await = Some(fresh.clone());
                http::exchange_as(request(&fresh), failure).await
            }
            other => other,
        }
    }

    /// Each change as a record: its fields (none for an exit), the key in
    /// the external id field, and the membership flag where it applies.
    fn records(&self, batch: &Batch<'_>) -> Vec<Map<String, Value>> {
        batch
            .changes
            .iter()
            .map(|change| {
                let mut record = record_of(batch.fields, change, &self.settings.external_id_field);
                if let Some(flag) = &self.settings.membership_field
                    && matches!(change.op, Op::Enter | Op::Exit)
                {
                    record.insert(flag.clone(), Value::Bool(!change.op.removes()));
                }
                record
            })
            .collect()
    }

    /// One Bulk API 2.0 upsert job for the batch: create it, upload the
    /// rows as CSV, close it, wait for it, then read the failed results,
    /// matched to rows by external id.
    async fn bulk(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        let external = &self.settings.external_id_field;
        let mut columns = vec![external.clone()];
        columns.extend(batch.fields.iter().map(|f| f.name.clone()));
        if let Some(flag) = &self.settings.membership_field
            && !columns.contains(flag)
        {
            columns.push(flag.clone());
        }
        let mut csv = csv::WriterBuilder::new().from_writer(Vec::new());
        let fatal = |e: csv::Error| SendError::Fatal(format!("writing the CSV: {e}"));
        csv.write_record(&columns).map_err(fatal)?;
        for record in self.records(batch) {
            // an empty cell leaves a field as it is; #N/A clears it
            let cells = columns.iter().map(|column| match record.get(column) {
                None => String::new(),
                Some(Value::Null) => "#N/A".to_owned(),
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
            });
            csv.write_record(cells).map_err(fatal)?;
        }
        let body = csv
            .into_inner()
            .map_err(|e| SendError::Fatal(format!("writing the CSV: {e}")))?;

        let jobs = self.data("/jobs/ingest");
        let spec = json!({
            "object": self.settings.object,
            "externalIdFieldName": external,
            "contentType": "CSV",
            "operation": "upsert",
            "lineEnding": "LF",
        });
        let created = self
            .authorised(|token| self.client.post(&jobs).bearer_auth(token).json(&spec))
            .await?;
        let id = serde_json::from_str::<Value>(&created)
            .ok()
            .and_then(|job| job["id"].as_str().map(str::to_owned))
            .filter(|id| id.chars().all(|c| c.is_ascii_alphanumeric()))
            .ok_or_else(|| SendError::Retry {
                reason: "Salesforce created a job without an id".into(),
                after: None,
            })?;
        let job = format!("{jobs}/{id}");
        let upload = format!("{job}/batches");
        self.authorised(|token| {
            self.client
                .put(&upload)
                .bearer_auth(token)
                .header("content-type", "text/csv")
                .body(body.clone())
        })
        .await?;
        let close = json!({"state": "UploadComplete"});
        self.authorised(|token| self.client.patch(&job).bearer_auth(token).json(&close))
            .await?;

        let started = Instant::now();
        let poll = Duration::from_secs_f64(self.settings.poll_secs.clamp(0.01, 60.0));
        loop {
            let info: Value = serde_json::from_str(
                &self
                    .authorised(|token| self.client.get(&job).bearer_auth(token))
                    .await?,
            )
            .unwrap_or_default();
            match info["state"].as_str().unwrap_or_default() {
                "JobComplete" => break,
                "Failed" | "Aborted" => {
                    return Err(SendError::Fatal(format!(
                        "Salesforce bulk job {id} {}: {}",
                        info["state"].as_str().unwrap_or_default(),
                        http::excerpt(info["errorMessage"].as_str().unwrap_or("no message"))
                    )));
                }
                _ if started.elapsed() > BULK_PATIENCE => {
                    return Err(SendError::Retry {
                        reason: format!("Salesforce bulk job {id} still running after 30 minutes"),
                        after: None,
                    });
                }
                _ => tokio::time::sleep(poll).await,
            }
        }
        let failed_url = format!("{job}/failedResults/");
        let failed = self
            .authorised(|token| self.client.get(&failed_url).bearer_auth(token))
            .await?;
        let mut reader = csv::Reader::from_reader(failed.as_bytes());
        let headers = reader.headers().cloned().unwrap_or_default();
        let error_at = headers.iter().position(|h| h == "sf__Error");
        let key_at = headers.iter().position(|h| h == external.as_str());
        let mut refused = std::collections::HashMap::new();
        if let (Some(error_at), Some(key_at)) = (error_at, key_at) {
            for row in reader.records().flatten() {
                if let (Some(key), Some(error)) = (row.get(key_at), row.get(error_at)) {
                    refused.insert(key.to_owned(), http::excerpt(error));
                }
            }
        }
        Ok(batch
            .changes
            .iter()
            .map(|change| refused.get(&change.key).cloned())
            .collect())
    }
}

fn form_body(pairs: &[(&str, &str)]) -> String {
    reqwest::Url::parse_with_params("http://form.invalid/", pairs)
        .map(|url| url.query().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(rename = "errorCode", alias = "statusCode", default)]
    code: String,
}

/// A whole-request error, by Salesforce's error code where it gives one:
/// the org's API limit for the day stops the run, a busy org is retried.
fn failure(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    text: &str,
) -> SendError {
    let first = serde_json::from_str::<Vec<ApiError>>(text)
        .ok()
        .and_then(|errors| errors.into_iter().next());
    let Some(error) = first else {
        return http::failure(status, headers, text);
    };
    let reason = format!(
        "Salesforce {} {}: {}",
        status.as_u16(),
        error.code,
        http::excerpt(&error.message)
    );
    match error.code.as_str() {
        "REQUEST_LIMIT_EXCEEDED"
        | "INVALID_SESSION_ID"
        | "INSUFFICIENT_ACCESS"
        | "API_DISABLED_FOR_ORG"
        | "NOT_FOUND"
        | "INVALID_TYPE"
        | "INVALID_FIELD" => SendError::Fatal(reason),
        "SERVER_UNAVAILABLE" | "UNABLE_TO_LOCK_ROW" | "CONCURRENT_REQUEST_LIMIT_EXCEEDED" => {
            SendError::Retry {
                reason,
                after: http::retry_after(headers),
            }
        }
        _ => match http::failure(status, headers, text) {
            SendError::Retry { after, .. } => SendError::Retry { reason, after },
            SendError::Fatal(_) => SendError::Fatal(reason),
            SendError::Reject(_) => SendError::Reject(reason),
        },
    }
}

#[derive(Deserialize)]
struct UpsertResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiError>,
}

#[async_trait]
impl Destination for Salesforce {
    fn max_batch(&self) -> usize {
        if self.settings.bulk { 10_000 } else { 200 }
    }

    fn modes(&self) -> &'static [Mode] {
        if self.settings.membership_field.is_some() {
            &[Mode::Upsert, Mode::Membership]
        } else {
            &[Mode::Upsert]
        }
    }

    async fn check(&self) -> Result<(), SendError> {
        let url = self.data(&format!("/sobjects/{}/describe", self.settings.object));
        let text = self
            .authorised(|token| self.client.get(&url).bearer_auth(token))
            .await?;
        let describe: Value = serde_json::from_str(&text)
            .map_err(|e| SendError::Fatal(format!("the describe answer is not JSON: {e}")))?;
        let field = describe["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == self.settings.external_id_field.as_str());
        match field {
            Some(field) if field["externalId"] == true => Ok(()),
            Some(_) => Err(SendError::Fatal(format!(
                "{}.{} is not an external id field",
                self.settings.object, self.settings.external_id_field
            ))),
            None => Err(SendError::Fatal(format!(
                "{} has no field {}",
                self.settings.object, self.settings.external_id_field
            ))),
        }
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        if self.settings.bulk {
            return self.bulk(batch).await;
        }
        let records: Vec<Value> = self
            .records(batch)
            .into_iter()
            .map(|mut record| {
                record.insert("attributes".into(), json!({"type": self.settings.object}));
                Value::Object(record)
            })
            .collect();
        let body = json!({"allOrNone": false, "records": records});
        let url = self.data(&format!(
            "/composite/sobjects/{}/{}",
            self.settings.object, self.settings.external_id_field
        ));
        let text = self
            .authorised(|token| self.client.patch(&url).bearer_auth(token).json(&body))
            .await?;
        let results: Vec<UpsertResult> =
            serde_json::from_str(&text).map_err(|e| SendError::Retry {
                reason: format!("Salesforce answered something other than UpsertResults: {e}"),
                after: None,
            })?;
        if results.len() != batch.changes.len() {
            return Err(SendError::Retry {
                reason: format!(
                    "Salesforce answered {} results for {} records",
                    results.len(),
                    batch.changes.len()
                ),
                after: None,
            });
        }
        Ok(results
            .into_iter()
            .map(|result| {
                (!result.success).then(|| {
                    let messages: Vec<String> = result
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.code, e.message))
                        .collect();
                    http::excerpt(&messages.join("; "))
                })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    #[test]
    fn error_codes_say_retry_stop_or_refuse() {
        let none = HeaderMap::new();
        let limit =
            r#"[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]"#;
        assert!(matches!(
            failure(StatusCode::FORBIDDEN, &none, limit),
            SendError::Fatal(reason) if reason.contains("REQUEST_LIMIT_EXCEEDED")
        ));
        let busy = r#"[{"message":"try later","errorCode":"SERVER_UNAVAILABLE"}]"#;
        assert!(matches!(
            failure(StatusCode::SERVICE_UNAVAILABLE, &none, busy),
            SendError::Retry { .. }
        ));
        let unknown = r#"[{"message":"No such column 'Nope__c'","errorCode":"INVALID_FIELD"}]"#;
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, &none, unknown),
            SendError::Fatal(reason) if reason.contains("Nope__c")
        ));
        let malformed = r#"[{"message":"Unexpected character","errorCode":"JSON_PARSER_ERROR"}]"#;
        assert!(matches!(
            failure(StatusCode::BAD_REQUEST, &none, malformed),
            SendError::Reject(_)
        ));
        assert!(matches!(
            failure(StatusCode::BAD_GATEWAY, &none, "<html>"),
            SendError::Retry { .. }
        ));
    }

    #[test]
    fn form_bodies_are_encoded() {
        assert_eq!(
            form_body(&[("a", "x y&z"), ("b", "é")]),
            "a=x+y%26z&b=%C3%A9"
        );
    }
}
