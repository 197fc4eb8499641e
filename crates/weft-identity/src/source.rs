//! Reading records from CSV files with a column → field mapping.

use std::path::Path;

use crate::field::Field;
use crate::record::RawRecord;
use crate::{IdentityError, Result};

/// Which columns hold which identity fields, and which holds the record id.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// `(column, field)`; a column a file lacks is skipped for that file.
    pub columns: Vec<(String, Field)>,
    /// Candidate id columns: a file's id is the first of these it has, else its first column.
    pub id_columns: Vec<String>,
}

impl Mapping {
    /// Parses `COLUMN=FIELD`.
    pub fn add(&mut self, text: &str) -> std::result::Result<(), String> {
        let (column, field) = text
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not COLUMN=FIELD"))?;
        let field = field.trim().parse::<Field>()?;
        self.columns.push((column.trim().to_owned(), field));
        Ok(())
    }

    /// The fields mapped, each once.
    pub fn fields(&self) -> Vec<Field> {
        let mut fields: Vec<Field> = self.columns.iter().map(|(_, f)| *f).collect();
        fields.sort();
        fields.dedup();
        fields
    }
}

/// Every record of a CSV file, its source named after the file's stem.
pub fn read_csv(path: &Path, mapping: &Mapping) -> Result<Vec<RawRecord>> {
    let source = path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    let error = |message: String| IdentityError::Source {
        path: path.display().to_string(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .map_err(|e| error(e.to_string()))?;
    let headers = reader.headers().map_err(|e| error(e.to_string()))?.clone();
    let index = |name: &str| headers.iter().position(|h| h.trim() == name);
    let id = match mapping.id_columns.iter().find_map(|c| index(c)) {
        Some(id) => id,
        None if headers.is_empty() => return Err(error("no header row".to_owned())),
        None => 0,
    };
    let columns: Vec<(usize, Field)> = mapping
        .columns
        .iter()
        .filter_map(|(column, field)| index(column).map(|i| (i, *field)))
        .collect();
    let mut records = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, row) in reader.records().enumerate() {
        let row = row.map_err(|e| error(e.to_string()))?;
        let record_id = row.get(id).unwrap_or("").trim().to_owned();
        if record_id.is_empty() {
            return Err(error(format!(
                "row {} has no id in column {:?}",
                line + 2,
                &headers[id]
            )));
        }
        if !seen.insert(record_id.clone()) {
            return Err(error(format!(
                "row {}: id {record_id:?} appears twice",
                line + 2
            )));
        }
        records.push(RawRecord {
            source: source.clone(),
            id: record_id,
            values: columns
                .iter()
                .filter_map(|(i, field)| row.get(*i).map(|v| (*field, v.to_owned())))
                .collect(),
        });
    }
    Ok(records)
}

/// The mapped columns no file has: a mapping that names them is a mistake.
pub fn unknown_columns(paths: &[&Path], mapping: &Mapping) -> Result<Vec<String>> {
    let mut found = vec![false; mapping.columns.len()];
    for path in paths {
        let mut reader = csv::Reader::from_path(path).map_err(|e| IdentityError::Source {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let headers = reader.headers().map_err(|e| IdentityError::Source {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        for (i, (column, _)) in mapping.columns.iter().enumerate() {
            found[i] |= headers.iter().any(|h| h.trim() == column);
        }
    }
    Ok(mapping
        .columns
        .iter()
        .zip(found)
        .filter(|(_, found)| !found)
        .map(|((column, _), _)| column.clone())
        .collect())
}
