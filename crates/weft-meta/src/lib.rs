//! The metadata store: what users define rather than what the pipeline
//! computes (audience specs, each change a new version). SQLite in
//! `data_dir/meta.sqlite`, one file, safe to open from several processes.

use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("an audience named {0:?} already exists: update it instead")]
    Exists(String),
    #[error("no audience named {0:?}")]
    Missing(String),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// One stored version of an audience.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredAudience {
    pub name: String,
    pub version: i64,
    /// The spec as JSON.
    pub spec: String,
    pub created_at: String,
}

pub struct Store {
    connection: Mutex<Connection>,
}

impl Store {
    /// The store of a data directory, created on first use.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                Some(format!("{}: {e}", data_dir.display())),
            )
        })?;
        Self::open_file(&data_dir.join("meta.sqlite"))
    }

    pub fn open_file(path: &Path) -> Result<Self> {
        let connection = Connection::open(path)?;
        // another process writing waits rather than failing
        connection.busy_timeout(std::time::Duration::from_secs(10))?;
        connection.pragma_update(None, "journal_mode", "WAL")?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS audiences (
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                spec TEXT NOT NULL,
                created_at TEXT NOT NULL,
                deleted INTEGER NOT NULL DEFAULT 0,
                PRIMARY KEY (name, version)
            );",
        )?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // a panic elsewhere leaves SQLite's state consistent
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a new audience as version 1.
    pub fn create_audience(&self, name: &str, spec: &str) -> Result<StoredAudience> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        if latest(&transaction, name)?.is_some() {
            return Err(MetaError::Exists(name.to_owned()));
        }
        let next: i64 = transaction.query_row(
            "SELECT coalesce(max(version), 0) + 1 FROM audiences WHERE name = ?1",
            params![name],
            |row| row.get(0),
        )?;
        let stored = insert(&transaction, name, next, spec)?;
        transaction.commit()?;
        Ok(stored)
    }

    /// Stores `spec` as the audience's next version; an unchanged spec keeps
    /// the current version.
    pub fn update_audience(&self, name: &str, spec: &str) -> Result<StoredAudience> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let current = latest(&transaction, name)?.ok_or_else(|| MetaError::Missing(name.into()))?;
        if current.spec == spec {
            return Ok(current);
        }
        let stored = insert(&transaction, name, current.version + 1, spec)?;
        transaction.commit()?;
        Ok(stored)
    }

    /// The current version of an audience.
    pub fn audience(&self, name: &str) -> Result<Option<StoredAudience>> {
        latest(&self.connection(), name)
    }

    /// Every version of an audience, oldest first.
    pub fn audience_versions(&self, name: &str) -> Result<Vec<StoredAudience>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT name, version, spec, created_at FROM audiences
             WHERE name = ?1 AND deleted = 0 ORDER BY version",
        )?;
        let rows = statement.query_map(params![name], stored)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The current version of every audience, by name.
    pub fn audiences(&self) -> Result<Vec<StoredAudience>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT a.name, a.version, a.spec, a.created_at FROM audiences a
             WHERE a.deleted = 0
               AND a.version = (SELECT max(version) FROM audiences b WHERE b.name = a.name)
             ORDER BY a.name",
        )?;
        let rows = statement.query_map([], stored)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes an audience (its versions are kept, marked deleted, so its
    /// history still explains past runs).
    pub fn delete_audience(&self, name: &str) -> Result<()> {
        let changed = self.connection().execute(
            "UPDATE audiences SET deleted = 1 WHERE name = ?1 AND deleted = 0",
            params![name],
        )?;
        if changed == 0 {
            return Err(MetaError::Missing(name.to_owned()));
        }
        Ok(())
    }
}

fn latest(connection: &Connection, name: &str) -> Result<Option<StoredAudience>> {
    Ok(connection
        .query_row(
            "SELECT name, version, spec, created_at FROM audiences
             WHERE name = ?1 AND deleted = 0 ORDER BY version DESC LIMIT 1",
            params![name],
            stored,
        )
        .optional()?)
}

fn insert(connection: &Connection, name: &str, version: i64, spec: &str) -> Result<StoredAudience> {
    let created_at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    connection.execute(
        "INSERT INTO audiences (name, version, spec, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![name, version, spec, created_at],
    )?;
    Ok(StoredAudience {
        name: name.to_owned(),
        version,
        spec: spec.to_owned(),
        created_at,
    })
}

fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredAudience> {
    Ok(StoredAudience {
        name: row.get(0)?,
        version: row.get(1)?,
        spec: row.get(2)?,
        created_at: row.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_are_versioned_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.create_audience("a", "{}").unwrap().version, 1);
        assert!(matches!(
            store.create_audience("a", "{}"),
            Err(MetaError::Exists(_))
        ));
        assert_eq!(store.update_audience("a", "{}").unwrap().version, 1);
        assert_eq!(store.update_audience("a", "{\"x\":1}").unwrap().version, 2);
        assert!(matches!(
            store.update_audience("b", "{}"),
            Err(MetaError::Missing(_))
        ));
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.audience("a").unwrap().unwrap().spec, "{\"x\":1}");
        assert_eq!(store.audience_versions("a").unwrap().len(), 2);
        store.create_audience("b", "{}").unwrap();
        let names: Vec<_> = store
            .audiences()
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        store.delete_audience("a").unwrap();
        assert!(store.audience("a").unwrap().is_none());
        // a deleted name can be created again, after the old versions
        assert_eq!(store.create_audience("a", "{}").unwrap().version, 3);
    }
}
