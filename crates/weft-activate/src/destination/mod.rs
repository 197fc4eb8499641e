//! Destinations: one file per service behind one trait. A destination is
//! built from its config (`[activation.destinations.NAME]`), checked, then
//! sent batches of changes; it answers per row (delivered, or refused
//! with the service's message) or for the whole batch with a [`SendError`]
//! that says whether to retry, split or stop.

mod braze;
mod files;
pub(crate) mod http;
mod meta;
mod postgres;
mod salesforce;
mod webhook;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::diff::Change;
use crate::rows::{Field, Purpose};
use crate::spec::Mode;
use crate::{ActivateError, Result};

pub use braze::Braze;
pub use files::Files;
pub use meta::Meta;
pub use postgres::Postgres;
pub use salesforce::Salesforce;
pub use webhook::Webhook;

/// Why a whole batch was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try the same batch again later (429, 5xx, a timeout, a dropped
    /// connection), after `after` when the service said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// The service refused the batch as a whole (400): split it to find
    /// the rows it refuses.
    Reject(String),
    /// Nothing will go through until a person acts (bad credentials, a
    /// missing table): stop the run.
    Fatal(String),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Retry { reason, .. } => write!(f, "{reason}"),
            SendError::Reject(reason) => write!(f, "refused: {reason}"),
            SendError::Fatal(reason) => write!(f, "{reason}"),
        }
    }
}

/// One request's worth of changes.
pub struct Batch<'a> {
    pub sync: &'a str,
    /// The run, the same for each of its batches.
    pub run_id: &'a str,
    pub fields: &'a [Field],
    pub changes: &'a [Change],
    /// 1, 2, … in the order batches are sent within the run.
    pub seq: u64,
    /// Whether no batch follows in this run.
    pub last: bool,
    /// How many changes the run sends in all.
    pub total: usize,
}

/// A batch's answer: per change, `None` if delivered, else the
/// destination's reason for refusing that row.
pub type RowResults = Vec<Option<String>>;

/// What a run did, for destinations that close a run (a file manifest).
pub struct RunEnd<'a> {
    pub sync: &'a str,
    pub run_id: &'a str,
    pub fields: &'a [Field],
    pub sent: usize,
    pub failed: usize,
}

#[async_trait]
pub trait Destination: Send + Sync {
    /// The most changes one request carries.
    fn max_batch(&self) -> usize;

    /// The modes it can carry out.
    fn modes(&self) -> &'static [Mode];

    /// Checks a sync's destination field names, when the service has its own.
    fn check_fields(&self, _names: &[&str]) -> Result<(), String> {
        Ok(())
    }

    /// Whether a changed row needs what was last sent for it in
    /// [`Change::previous`]: a service that matches people by the values
    /// themselves (hashed emails) must have the old ones taken out.
    fn wants_previous(&self) -> bool {
        false
    }

    /// Checks the destination can be reached and accepts the credentials.
    async fn check(&self) -> Result<(), SendError>;

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError>;

    /// Called once after the last batch of a run that was not stopped.
    async fn finish(&self, _run: &RunEnd<'_>) -> Result<(), SendError> {
        Ok(())
    }
}

/// The settings every destination has besides its own.
#[derive(Debug, Clone)]
pub struct Common {
    pub kind: String,
    /// Changes per request (at most the service's own limit).
    pub batch_size: Option<usize>,
    /// Requests per second at most (0: no limit of ours).
    pub requests_per_second: f64,
    /// Retries of one request before the run stops.
    pub max_retries: u32,
    /// Seconds before a request counts as timed out.
    pub timeout: Duration,
    /// The first retry's wait; each next one doubles, with jitter.
    pub backoff: Duration,
    pub purpose: Purpose,
}

/// A destination built from its config.
pub struct Built {
    pub common: Common,
    pub destination: Box<dyn Destination>,
}

impl Built {
    pub fn batch_size(&self) -> usize {
        let limit = self.destination.max_batch();
        self.common
            .batch_size
            .map_or(limit, |size| size.clamp(1, limit))
    }
}

pub const TYPES: [&str; 6] = [
    "webhook",
    "files",
    "postgres",
    "braze",
    "meta",
    "salesforce",
];

/// Builds the destination `name` from its settings.
pub fn build(name: &str, settings: &Value) -> Result<Built> {
    let bad = |reason: String| ActivateError::Destination {
        name: name.to_owned(),
        reason,
    };
    let mut object = settings
        .as_object()
        .cloned()
        .ok_or_else(|| bad("its settings are a table".into()))?;
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => kind,
        _ => {
            return Err(bad(format!(
                "type is required: one of {}",
                TYPES.join(", ")
            )));
        }
    };
    let number = |object: &mut Map<String, Value>, key: &str| -> Result<Option<f64>> {
        match object.remove(key) {
            None => Ok(None),
            Some(value) => number_of(&value)
                .filter(|n| *n >= 0.0)
                .map(Some)
                .ok_or_else(|| bad(format!("{key} is a number, 0 or more"))),
        }
    };
    let batch_size = number(&mut object, "batch_size")?.map(|n| n as usize);
    let default_rps = if kind == "braze" { 1000.0 } else { 0.0 };
    let requests_per_second = number(&mut object, "requests_per_second")?.unwrap_or(default_rps);
    let max_retries = number(&mut object, "max_retries")?.map_or(8, |n| n as u32);
    let timeout = Duration::from_secs_f64(
        number(&mut object, "timeout_secs")?
            .unwrap_or(30.0)
            .max(0.001),
    );
    let backoff = Duration::from_secs_f64(number(&mut object, "backoff_secs")?.unwrap_or(0.5));
    let purpose = match object.remove("purpose") {
        None => Purpose::Marketing,
        Some(Value::String(p)) if p == "marketing" => Purpose::Marketing,
        Some(Value::String(p)) if p == "internal" => Purpose::Internal,
        Some(_) => return Err(bad("purpose is marketing or internal".into())),
    };
    let common = Common {
        kind: kind.clone(),
        batch_size,
        requests_per_second,
        max_retries,
        timeout,
        backoff,
        purpose,
    };
    let rest = Value::Object(object);
    let destination: Box<dyn Destination> = match kind.as_str() {
        "webhook" => Box::new(Webhook::new(settings_of(name, rest)?, &common).map_err(bad)?),
        "files" => Box::new(Files::new(settings_of(name, rest)?).map_err(bad)?),
        "postgres" => Box::new(Postgres::new(settings_of(name, rest)?, &common)),
        "braze" => Box::new(Braze::new(settings_of(name, rest)?, &common).map_err(bad)?),
        "meta" => Box::new(Meta::new(settings_of(name, rest)?, &common).map_err(bad)?),
        "salesforce" => Box::new(Salesforce::new(settings_of(name, rest)?, &common).map_err(bad)?),
        other => {
            return Err(bad(format!(
                "unknown type {other:?}: one of {}",
                TYPES.join(", ")
            )));
        }
    };
    Ok(Built {
        common,
        destination,
    })
}

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        // environment variables arrive as text
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn settings_of<T: DeserializeOwned>(name: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|error| ActivateError::Destination {
        name: name.to_owned(),
        reason: error.to_string(),
    })
}

/// A credential: read as text (an environment variable holding digits is
/// still text), never printed.
#[derive(Clone, Deserialize)]
#[serde(from = "SecretText")]
pub struct Secret(String);

#[derive(Deserialize)]
#[serde(untagged)]
enum SecretText {
    Text(String),
    Number(serde_json::Number),
}

impl From<SecretText> for Secret {
    fn from(text: SecretText) -> Self {
        match text {
            SecretText::Text(text) => Secret(text),
            SecretText::Number(n) => Secret(n.to_string()),
        }
    }
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A record for a service keyed by an id field: the change's fields (none
/// for a removal, which only needs the id) and its key under `id_field`.
pub(crate) fn record_of(fields: &[Field], change: &Change, id_field: &str) -> Map<String, Value> {
    let mut record = if change.op.removes() {
        Map::new()
    } else {
        object_of(fields, change)
    };
    record.insert(id_field.to_owned(), Value::String(change.key.clone()));
    record
}

/// A change's values as an object keyed by destination field.
pub(crate) fn object_of(fields: &[Field], change: &Change) -> Map<String, Value> {
    fields
        .iter()
        .zip(&change.values)
        .map(|(field, value)| (field.name.clone(), value.clone()))
        .collect()
}
