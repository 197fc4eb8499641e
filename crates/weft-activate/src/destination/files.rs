//! Files: each batch a CSV or Parquet file under
//! `PATH/SYNC/RUN_ID/part-NNNNN.EXT` — a local folder, or an object store
//! (`s3://bucket/prefix`, `gs://…`, `az://…`) — and `manifest.json` beside them
//! listing the files with their rows and SHA-256 — the file drop email and
//! ad tools ingest. The manifest is rewritten after each file (a file is
//! delivered once it is listed) and says `"complete": true` when the run
//! ended; a run cut short still lists every file it delivered. Columns:
//! `_op` (upsert, delete, enter, exit, …), `_key`, then the sync's fields.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use deltalake::arrow::datatypes::{DataType, Field as ArrowField, Schema};
use deltalake::parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::{Batch, Destination, RowResults, RunEnd, Secret, SendError};
use crate::rows::{Field, FieldKind};
use crate::spec::Mode;

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Csv,
    Parquet,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// A local folder, or an object store URL.
    pub path: String,
    #[serde(default)]
    pub format: Format,
    /// The object store's settings by their `object_store` names
    /// (`aws_endpoint`, `aws_region`, `aws_access_key_id`, …), over those
    /// of the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`).
    #[serde(default)]
    pub options: BTreeMap<String, Secret>,
}

/// Where the files go.
enum Target {
    /// Written through a temporary file and synced to disk.
    Folder(PathBuf),
    /// Each file one PUT: whole or absent.
    Store {
        store: Box<dyn ObjectStore>,
        root: StorePath,
    },
}

impl Target {
    fn of(settings: &Settings) -> Result<Target, String> {
        let local = !settings.path.contains("://") || settings.path.starts_with("file://");
        if local {
            let path = settings
                .path
                .strip_prefix("file://")
                .unwrap_or(&settings.path);
            return Ok(Target::Folder(PathBuf::from(path)));
        }
        let url = url::Url::parse(&settings.path)
            .map_err(|e| format!("path {:?} is not a URL: {e}", settings.path))?;
        let from_env = std::env::vars().filter(|(key, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|prefix| key.starts_with(prefix))
        });
        let given = settings
            .options
            .iter()
            .map(|(key, value)| (key.clone(), value.expose().to_owned()));
        let (store, root) = object_store::parse_url_opts(&url, from_env.chain(given))
            .map_err(|e| format!("path {:?}: {e}", settings.path))?;
        Ok(Target::Store { store, root })
    }

    /// Writes `bytes` under `parts` (folders, then the file's name).
    async fn put(&self, parts: &[&str], bytes: Vec<u8>) -> Result<(), SendError> {
        match self {
            Target::Folder(root) => {
                let path = parts
                    .iter()
                    .fold(root.clone(), |path, part| path.join(part));
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                write_atomically(&path, &bytes).map_err(io)
            }
            Target::Store { store, root, .. } => {
                let location = parts
                    .iter()
                    .fold(root.clone(), |path, part| path.join(*part));
                store.put(&location, bytes.into()).await.map_err(stored)?;
                Ok(())
            }
        }
    }

    async fn delete(&self, parts: &[&str]) -> Result<(), SendError> {
        match self {
            Target::Folder(root) => {
                let path = parts
                    .iter()
                    .fold(root.clone(), |path, part| path.join(part));
                std::fs::remove_file(path).map_err(io)
            }
            Target::Store { store, root, .. } => {
                let location = parts
                    .iter()
                    .fold(root.clone(), |path, part| path.join(*part));
                store.delete(&location).await.map_err(stored)
            }
        }
    }
}

/// An object store's refusal stops the run; anything else (it has
/// already retried the request itself) is tried again later.
fn stored(error: object_store::Error) -> SendError {
    match error {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }
        | object_store::Error::NotFound { .. } => {
            SendError::Fatal(format!("writing files: {error}"))
        }
        other => SendError::Retry {
            reason: format!("writing files: {other}"),
            after: None,
        },
    }
}

#[derive(Debug, Clone, Serialize)]
struct Written {
    name: String,
    rows: usize,
    sha256: String,
}

pub struct Files {
    format: Format,
    target: Target,
    /// Files written so far, per run.
    written: Mutex<HashMap<String, Vec<Written>>>,
}

impl Files {
    pub fn new(settings: Settings) -> Result<Self, String> {
        Ok(Self {
            target: Target::of(&settings)?,
            format: settings.format,
            written: Mutex::default(),
        })
    }

    fn extension(&self) -> &'static str {
        match self.format {
            Format::Csv => "csv",
            Format::Parquet => "parquet",
        }
    }
}

fn io(error: impl std::fmt::Display) -> SendError {
    // a full disk or a missing permission will not pass on a retry soon
    SendError::Fatal(format!("writing files: {error}"))
}

/// Writes `bytes` to `path` through a temporary file, so a crash leaves
/// no half file under the final name.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temporary = path.with_extension("partial");
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

fn csv_bytes(batch: &Batch<'_>) -> Result<Vec<u8>, SendError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["_op".to_owned(), "_key".to_owned()];
    header.extend(batch.fields.iter().map(|f| f.name.clone()));
    writer.write_record(&header).map_err(io)?;
    for change in batch.changes {
        let mut record = vec![change.op.name().to_owned(), change.key.clone()];
        record.extend(change.values.iter().map(cell));
        // removals may carry no values: pad so every line has every column
        record.resize(header.len(), String::new());
        writer.write_record(&record).map_err(io)?;
    }
    writer.into_inner().map_err(io)
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn parquet_bytes(batch: &Batch<'_>) -> Result<Vec<u8>, SendError> {
    let text = |values: Vec<Option<String>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let mut columns: Vec<ArrayRef> = vec![
        text(
            batch
                .changes
                .iter()
                .map(|c| Some(c.op.name().to_owned()))
                .collect(),
        ),
        text(batch.changes.iter().map(|c| Some(c.key.clone())).collect()),
    ];
    let mut schema = vec![
        ArrowField::new("_op", DataType::Utf8, false),
        ArrowField::new("_key", DataType::Utf8, false),
    ];
    for (i, field) in batch.fields.iter().enumerate() {
        let values = batch
            .changes
            .iter()
            .map(|c| c.values.get(i).unwrap_or(&Value::Null));
        let (data_type, column): (DataType, ArrayRef) = match field.kind {
            FieldKind::Integer => (
                DataType::Int64,
                Arc::new(values.map(Value::as_i64).collect::<Int64Array>()),
            ),
            FieldKind::Float => (
                DataType::Float64,
                Arc::new(values.map(Value::as_f64).collect::<Float64Array>()),
            ),
            FieldKind::Boolean => (
                DataType::Boolean,
                Arc::new(values.map(Value::as_bool).collect::<BooleanArray>()),
            ),
            _ => (
                DataType::Utf8,
                text(values.map(|v| (!v.is_null()).then(|| cell(v))).collect()),
            ),
        };
        schema.push(ArrowField::new(&field.name, data_type, true));
        columns.push(column);
    }
    let record = RecordBatch::try_new(Arc::new(Schema::new(schema)), columns).map_err(io)?;
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, record.schema(), None).map_err(io)?;
    writer.write(&record).map_err(io)?;
    writer.close().map_err(io)?;
    Ok(bytes)
}

#[async_trait]
impl Destination for Files {
    fn max_batch(&self) -> usize {
        100_000
    }

    fn modes(&self) -> &'static [Mode] {
        &Mode::ALL
    }

    async fn check(&self) -> Result<(), SendError> {
        let probe = [".weft-write-check"];
        self.target.put(&probe, Vec::new()).await?;
        self.target.delete(&probe).await
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        let bytes = match self.format {
            Format::Csv => csv_bytes(batch)?,
            Format::Parquet => parquet_bytes(batch)?,
        };
        let name = format!("part-{:05}.{}", batch.seq, self.extension());
        let written = Written {
            name,
            rows: batch.changes.len(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        self.target
            .put(&[batch.sync, batch.run_id, &written.name], bytes)
            .await?;
        let files = {
            let mut runs = self.written.lock().unwrap_or_else(|e| e.into_inner());
            let files = runs.entry(batch.run_id.to_owned()).or_default();
            files.push(written);
            files.clone()
        };
        self.manifest(batch.sync, batch.run_id, batch.fields, &files, false)
            .await?;
        Ok(vec![None; batch.changes.len()])
    }

    async fn finish(&self, run: &RunEnd<'_>) -> Result<(), SendError> {
        let files = self
            .written
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(run.run_id)
            .unwrap_or_default();
        self.manifest(run.sync, run.run_id, run.fields, &files, true)
            .await
    }
}

impl Files {
    async fn manifest(
        &self,
        sync: &str,
        run_id: &str,
        fields: &[Field],
        files: &[Written],
        complete: bool,
    ) -> Result<(), SendError> {
        let columns: Vec<Value> = [("_op", "text"), ("_key", "text")]
            .iter()
            .map(|(name, kind)| json!({"name": name, "kind": kind}))
            .chain(
                fields
                    .iter()
                    .map(|f| json!({"name": f.name, "kind": f.kind})),
            )
            .collect();
        let manifest = json!({
            "sync": sync,
            "run_id": run_id,
            "format": self.extension(),
            "complete": complete,
            "columns": columns,
            "rows": files.iter().map(|f| f.rows).sum::<usize>(),
            "files": files,
            "written_at": chrono::Utc::now().to_rfc3339(),
        });
        let bytes = serde_json::to_vec_pretty(&manifest).expect("JSON");
        self.target
            .put(&[sync, run_id, "manifest.json"], bytes)
            .await
    }
}
