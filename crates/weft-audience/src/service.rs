//! The audience operations the CLI and the admin API share: specs stored
//! (and versioned) in the metadata store, checked against the lake before
//! they are kept, then sized, previewed, written as SQL, overlapped and run.

use std::collections::BTreeSet;
use std::time::Instant;

use chrono::{DateTime, NaiveDateTime, Utc};
use deltalake::arrow::array::RecordBatch;
use serde::Serialize;
use serde_json::Value;
use weft_lake::catalog::Lake;
use weft_meta::{Definition, Kind, Store};

use crate::dialect;
use crate::engine::{Engine, Overlap, overlap};
use crate::membership::{self, Snapshot};
use crate::plan::{self, Query};
use crate::spec::{self, Spec};
use crate::sql::{self, Shape, Tables};
use crate::{AudienceError, Result, SpecError};

/// The stored audiences, for references between them.
pub struct Stored<'a>(pub &'a Store);

impl plan::Audiences for Stored<'_> {
    fn spec(&self, name: &str) -> Option<Spec> {
        stored_spec(&self.0.get(Kind::Audience, name).ok()??).ok()
    }
}

/// The spec of a stored version.
fn stored_spec(stored: &Definition) -> Result<Spec> {
    let value: Value = serde_json::from_str(&stored.spec).map_err(|e| SpecError {
        path: "$".into(),
        reason: format!("the stored spec is not JSON: {e}"),
    })?;
    Ok(spec::from_value(&value)?)
}

/// One audience in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub version: i64,
    pub description: Option<String>,
    pub created_at: String,
}

/// An audience with its spec and every version's date.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub name: String,
    pub version: i64,
    pub created_at: String,
    pub spec: Value,
    pub versions: Vec<(i64, String)>,
}

/// How big an audience is, and how long counting took.
#[derive(Debug, Clone, Serialize)]
pub struct Size {
    pub name: String,
    pub size: u64,
    pub millis: f64,
}

pub struct Audiences<'a> {
    pub store: &'a Store,
    pub lake: &'a Lake,
    /// "Today" for relative dates and windows.
    pub as_of: NaiveDateTime,
}

impl<'a> Audiences<'a> {
    pub fn new(store: &'a Store, lake: &'a Lake) -> Self {
        Self {
            store,
            lake,
            as_of: Utc::now().naive_utc(),
        }
    }

    /// Checks a spec (JSON or YAML text) against the lake: its value and spec.
    pub async fn check(&self, text: &str) -> Result<(Value, Spec)> {
        let value = spec::parse_value(text)?;
        let spec = spec::from_value(&value)?;
        self.verify(&spec).await?;
        Ok((value, spec))
    }

    /// Whether a spec compiles against the lake and the stored audiences.
    async fn verify(&self, spec: &Spec) -> Result<()> {
        let engine = Engine::open(self.lake).await?;
        self.compiled(&engine, spec).await.map(|_| ())
    }

    /// Stores a new audience (version 1) once it checks.
    pub async fn create(&self, text: &str) -> Result<Definition> {
        let (value, spec) = self.check(text).await?;
        Ok(self
            .store
            .create(Kind::Audience, &spec.name, &canonical(&value))?)
    }

    /// Stores a changed audience as its next version once it checks; one
    /// that does not exist yet is created.
    pub async fn update(&self, text: &str) -> Result<Definition> {
        let (value, spec) = self.check(text).await?;
        self.store_version(&spec.name, &value)
    }

    /// `update`, for a caller that names the audience apart from the spec
    /// (an API's URL): the spec must carry that name.
    pub async fn update_named(&self, name: &str, text: &str) -> Result<Definition> {
        let value = spec::parse_value(text)?;
        let spec = spec::from_value(&value)?;
        if spec.name != name {
            return Err(SpecError {
                path: "$.name".into(),
                reason: format!("the spec names {:?}, the URL {name:?}", spec.name),
            }
            .into());
        }
        self.verify(&spec).await?;
        self.store_version(name, &value)
    }

    fn store_version(&self, name: &str, value: &Value) -> Result<Definition> {
        Ok(self.store.upsert(Kind::Audience, name, &canonical(value))?)
    }

    pub fn list(&self) -> Result<Vec<Summary>> {
        Ok(self
            .store
            .all(Kind::Audience)?
            .into_iter()
            .map(|stored| {
                let description = serde_json::from_str::<Value>(&stored.spec)
                    .ok()
                    .and_then(|v| v["description"].as_str().map(str::to_owned));
                Summary {
                    name: stored.name,
                    version: stored.version,
                    description,
                    created_at: stored.created_at,
                }
            })
            .collect())
    }

    pub fn show(&self, name: &str) -> Result<Detail> {
        let stored = self.stored(name)?;
        let versions = self
            .store
            .versions(Kind::Audience, name)?
            .into_iter()
            .map(|v| (v.version, v.created_at))
            .collect();
        Ok(Detail {
            name: stored.name,
            version: stored.version,
            created_at: stored.created_at,
            spec: serde_json::from_str(&stored.spec).unwrap_or(Value::Null),
            versions,
        })
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        Ok(self.store.delete(Kind::Audience, name)?)
    }

    fn stored(&self, name: &str) -> Result<Definition> {
        self.store
            .get(Kind::Audience, name)?
            .ok_or_else(|| AudienceError::Missing(name.to_owned()))
    }

    /// The stored audience's spec.
    pub fn spec(&self, name: &str) -> Result<Spec> {
        stored_spec(&self.stored(name)?)
    }

    async fn compiled(&self, engine: &Engine, spec: &Spec) -> Result<Query> {
        engine.compile(spec, &Stored(self.store), self.as_of)
    }

    /// The audience's SQL in `dialect`, tables named as `tables` says.
    pub async fn sql(&self, spec: &Spec, dialect: &str, tables: &Tables) -> Result<String> {
        let dialect = dialect::by_name(dialect).ok_or_else(|| SpecError {
            path: "dialect".into(),
            reason: format!(
                "unknown dialect {dialect:?}: one of {}",
                dialect::names().join(", ")
            ),
        })?;
        let engine = Engine::open(self.lake).await?;
        let query = self.compiled(&engine, spec).await?;
        Ok(sql::render(
            &query,
            dialect.as_ref(),
            tables,
            Shape::Members,
        ))
    }

    /// How many customers a spec selects now.
    pub async fn size(&self, spec: &Spec) -> Result<Size> {
        let started = Instant::now();
        let engine = Engine::open(self.lake).await?;
        let query = self.compiled(&engine, spec).await?;
        let size = engine.size(&query).await?;
        Ok(Size {
            name: spec.name.clone(),
            size,
            millis: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// A few members with the spec's attributes.
    pub async fn preview(&self, spec: &Spec, rows: u64) -> Result<Vec<RecordBatch>> {
        let engine = Engine::open(self.lake).await?;
        let query = self.compiled(&engine, spec).await?;
        engine.preview(&query, rows).await
    }

    /// Every member with the spec's attributes.
    pub async fn members(&self, spec: &Spec) -> Result<Vec<RecordBatch>> {
        let engine = Engine::open(self.lake).await?;
        let query = self.compiled(&engine, spec).await?;
        engine.members(&query).await
    }

    /// The customer ids of the stored audience `name` now: what a sync sends.
    pub async fn member_ids(&self, name: &str) -> Result<BTreeSet<String>> {
        let engine = Engine::open(self.lake).await?;
        let spec = self.spec(name)?;
        let query = self.compiled(&engine, &spec).await?;
        engine.member_ids(&query).await
    }

    /// How the stored audiences `names` share customers.
    pub async fn overlap(&self, names: &[String]) -> Result<Overlap> {
        let engine = Engine::open(self.lake).await?;
        let mut sets: Vec<(String, BTreeSet<String>)> = Vec::new();
        for name in names {
            let spec = self.spec(name)?;
            let query = self.compiled(&engine, &spec).await?;
            sets.push((name.clone(), engine.member_ids(&query).await?));
        }
        Ok(overlap(&sets))
    }

    /// Runs one stored audience and records who entered and left in
    /// `audiences.membership`.
    pub async fn run(&self, name: &str, at: DateTime<Utc>) -> Result<Snapshot> {
        let engine = Engine::open(self.lake).await?;
        self.run_on(&engine, &self.stored(name)?, at).await
    }

    /// Runs every stored audience; one that fails (its spec no longer fits
    /// the tables, say) is reported with its reason and the others still run.
    pub async fn run_all(&self, at: DateTime<Utc>) -> Result<RunAll> {
        let engine = Engine::open(self.lake).await?;
        let mut report = RunAll::default();
        for audience in self.store.all(Kind::Audience)? {
            match self.run_on(&engine, &audience, at).await {
                Ok(snapshot) => report.snapshots.push(snapshot),
                Err(error) if error.is_usage() => {
                    tracing::warn!(audience = audience.name, error = %error, "audience not run");
                    report.failed.push((audience.name, error.to_string()));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(report)
    }

    async fn run_on(
        &self,
        engine: &Engine,
        audience: &Definition,
        at: DateTime<Utc>,
    ) -> Result<Snapshot> {
        let spec = stored_spec(audience)?;
        let query = self.compiled(engine, &spec).await?;
        let members = engine.member_ids(&query).await?;
        membership::record(self.lake, &audience.name, audience.version, &members, at).await
    }
}

/// What running every audience did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunAll {
    pub snapshots: Vec<Snapshot>,
    /// (audience, why it could not run).
    pub failed: Vec<(String, String)>,
}

/// The spec as stored: compact JSON, keys in order, so an unchanged spec is
/// recognised whatever its layout was.
fn canonical(value: &Value) -> String {
    serde_json::to_string(value).expect("a JSON value serialises")
}
