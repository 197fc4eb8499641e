//! Where tables live: `<data_dir>/lake/<schema>/<table>`, each a Delta table.

use std::path::{Path, PathBuf};

use deltalake::DeltaTable;

use crate::{LakeError, Result};

#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
}

impl Lake {
    /// The lake of a data directory.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("lake"),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn table_path(&self, schema: &str, table: &str) -> PathBuf {
        self.root.join(schema).join(table)
    }

    /// The table, loaded at its latest version, or a handle to create it if it does not exist yet.
    pub async fn table(&self, schema: &str, table: &str) -> Result<DeltaTable> {
        let path = self.table_path(schema, table);
        std::fs::create_dir_all(&path)?;
        let absolute = std::fs::canonicalize(&path)?;
        let url = deltalake::ensure_table_uri(absolute.to_string_lossy()).map_err(|source| {
            LakeError::Delta {
                table: format!("{schema}.{table}"),
                source,
            }
        })?;
        let delta_error = |source| LakeError::Delta {
            table: format!("{schema}.{table}"),
            source,
        };
        let mut delta = DeltaTable::try_from_url(url).await.map_err(delta_error)?;
        if delta
            .verify_deltatable_existence()
            .await
            .map_err(delta_error)?
        {
            delta.load().await.map_err(delta_error)?;
        }
        Ok(delta)
    }

    /// Every table that exists, as (schema, table), sorted.
    pub fn tables(&self) -> Result<Vec<(String, String)>> {
        let mut tables = Vec::new();
        let Ok(schemas) = std::fs::read_dir(&self.root) else {
            return Ok(tables);
        };
        for schema in schemas {
            let schema = schema?;
            if !schema.file_type()?.is_dir() {
                continue;
            }
            for table in std::fs::read_dir(schema.path())? {
                let table = table?;
                if has_commits(&table.path()) {
                    tables.push((
                        schema.file_name().to_string_lossy().into_owned(),
                        table.file_name().to_string_lossy().into_owned(),
                    ));
                }
            }
        }
        tables.sort();
        Ok(tables)
    }
}

/// Whether a table folder holds a committed Delta table (a crash during the
/// first commit can leave an empty `_delta_log`, which is no table yet).
fn has_commits(table: &Path) -> bool {
    std::fs::read_dir(table.join("_delta_log")).is_ok_and(|entries| {
        entries.filter_map(|entry| entry.ok()).any(|entry| {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") || name.ends_with(".checkpoint.parquet")
        })
    })
}
