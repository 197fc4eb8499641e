//! Files: each batch a CSV or Parquet file under
//! `PATH/SYNC/RUN_ID/part-NNNNN.EXT`, and `manifest.json` beside them
//! listing the files with their rows and SHA-256 — the file drop email and
//! ad tools ingest. The manifest is rewritten after each file (a file is
//! delivered once it is listed) and says `"complete": true` when the run
//! ended; a run cut short still lists every file it delivered. Columns:
//! `_op` (upsert, delete, enter, exit, …), `_key`, then the sync's fields.

use std::collections::HashMap;
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

use super::{Batch, Destination, RowResults, RunEnd, SendError};
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
    pub path: PathBuf,
    #[serde(default)]
    pub format: Format,
}

#[derive(Debug, Clone, Serialize)]
struct Written {
    name: String,
    rows: usize,
    sha256: String,
}

pub struct Files {
    settings: Settings,
    /// Files written so far, per run.
    written: Mutex<HashMap<String, Vec<Written>>>,
}

impl Files {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            written: Mutex::default(),
        }
    }

    fn run_dir(&self, sync: &str, run_id: &str) -> PathBuf {
        self.settings.path.join(sync).join(run_id)
    }

    fn extension(&self) -> &'static str {
        match self.settings.format {
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
        std::fs::create_dir_all(&self.settings.path).map_err(io)?;
        let probe = self.settings.path.join(".weft-write-check");
        std::fs::write(&probe, b"")
            .and_then(|_| std::fs::remove_file(&probe))
            .map_err(io)
    }

    async fn send(&self, batch: &Batch<'_>) -> Result<RowResults, SendError> {
        let dir = self.run_dir(batch.sync, batch.run_id);
        std::fs::create_dir_all(&dir).map_err(io)?;
        let bytes = match self.settings.format {
            Format::Csv => csv_bytes(batch)?,
            Format::Parquet => parquet_bytes(batch)?,
        };
        let name = format!("part-{:05}.{}", batch.seq, self.extension());
        write_atomically(&dir.join(&name), &bytes).map_err(io)?;
        let written = Written {
            name,
            rows: batch.changes.len(),
            sha256: hex::encode(Sha256::digest(&bytes)),
        };
        let files = {
            let mut runs = self.written.lock().unwrap_or_else(|e| e.into_inner());
            let files = runs.entry(batch.run_id.to_owned()).or_default();
            files.push(written);
            files.clone()
        };
        self.manifest(batch.sync, batch.run_id, batch.fields, &files, false)?;
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
    }
}

impl Files {
    fn manifest(
        &self,
        sync: &str,
        run_id: &str,
        fields: &[Field],
        files: &[Written],
        complete: bool,
    ) -> Result<(), SendError> {
        let dir = self.run_dir(sync, run_id);
        std::fs::create_dir_all(&dir).map_err(io)?;
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
        write_atomically(&dir.join("manifest.json"), &bytes).map_err(io)
    }
}
