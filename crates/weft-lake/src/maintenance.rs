//! Table maintenance: compaction of the small files that micro-batches leave
//! (Delta's `OPTIMIZE`) and removal of files no version within the retention
//! period needs (`VACUUM`), for every table of the lake.
//!
//! Both keep the loader's offsets: a compaction commit only rewrites files, and
//! the application transactions stay in the log.

use std::num::NonZeroU64;

use deltalake::operations::vacuum::VacuumMode;

use crate::catalog::Lake;
use crate::{LakeError, Result};

/// How maintenance runs.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    /// Compacted files are written up to this size.
    pub target_file_bytes: u64,
    /// Files removed from the table longer ago than this are deleted, and so are
    /// files no commit references (left by a writer that died before committing).
    pub vacuum_retention_hours: u64,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            target_file_bytes: 128 * 1024 * 1024,
            vacuum_retention_hours: 168,
        }
    }
}

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableMaintenance {
    /// `schema.table`
    pub table: String,
    pub files_compacted: u64,
    pub files_written: u64,
    pub files_deleted: u64,
}

/// Compacts and vacuums every table of the lake.
pub async fn maintain(lake: &Lake, options: &MaintenanceOptions) -> Result<Vec<TableMaintenance>> {
    let mut done = Vec::new();
    for (schema, name) in lake.tables()? {
        let full_name = format!("{schema}.{name}");
        let delta_error = |source| LakeError::Delta {
            table: full_name.clone(),
            source,
        };
        let table = lake.table(&schema, &name).await?;
        let (table, compaction) = table
            .optimize()
            .with_target_size(NonZeroU64::new(options.target_file_bytes).unwrap_or(NonZeroU64::MIN))
            .await
            .map_err(delta_error)?;
        let retention = i64::try_from(options.vacuum_retention_hours)
            .ok()
            .and_then(chrono::Duration::try_hours)
            .unwrap_or(chrono::Duration::MAX);
        let (_, vacuum) = table
            .vacuum()
            .with_retention_period(retention)
            // the retention is the user's explicit choice, shorter than Delta's week or not
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .await
            .map_err(delta_error)?;
        done.push(TableMaintenance {
            table: full_name,
            files_compacted: compaction.num_files_removed,
            files_written: compaction.num_files_added,
            files_deleted: u64::try_from(vacuum.files_deleted.len()).unwrap_or(u64::MAX),
        });
    }
    Ok(done)
}
