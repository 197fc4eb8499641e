//! The metadata store: what users define rather than what the pipeline
//! computes (audience, sync and journey specs, each change a new version),
//! and what activation must remember between runs (`state`: what each sync
//! last delivered, its failed rows, journey assignments). SQLite in
//! `data_dir/meta.sqlite`, one file, safe to open from several processes.

pub mod state;

use std::path::Path;
use std::sync::Mutex;

use chrono::Utc;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{article} named {1:?} already exists: update it instead", article = .0.article())]
    Exists(Kind, String),
    #[error("no {noun} named {1:?}", noun = .0.noun())]
    Missing(Kind, String),
}

pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// What users define: each kind its own table of versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Audience,
    Sync,
    Journey,
}

impl Kind {
    fn table(self) -> &'static str {
        match self {
            Kind::Audience => "audiences",
            Kind::Sync => "syncs",
            Kind::Journey => "journeys",
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Kind::Audience => "audience",
            Kind::Sync => "sync",
            Kind::Journey => "journey",
        }
    }

    fn article(self) -> &'static str {
        match self {
            Kind::Audience => "an audience",
            Kind::Sync => "a sync",
            Kind::Journey => "a journey",
        }
    }
}

/// One stored version of a definition (an audience, a sync, a journey).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Definition {
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
        // WAL keeps a committed transaction through a process crash; an OS
        // crash may lose the last ones, which a rerun sends again
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        for kind in [Kind::Audience, Kind::Sync, Kind::Journey] {
            connection.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS {} (
                    name TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    spec TEXT NOT NULL,
                    created_at TEXT NOT NULL,
                    deleted INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (name, version)
                );",
                kind.table()
            ))?;
        }
        connection.execute_batch(state::SCHEMA)?;
        Ok(Self {
            connection: Mutex::new(connection),
        })
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // a panic elsewhere leaves SQLite's state consistent
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a new definition as version 1.
    pub fn create(&self, kind: Kind, name: &str, spec: &str) -> Result<Definition> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        if latest(&transaction, kind, name)?.is_some() {
            return Err(MetaError::Exists(kind, name.to_owned()));
        }
        let next: i64 = transaction.query_row(
            &format!(
                "SELECT coalesce(max(version), 0) + 1 FROM {} WHERE name = ?1",
                kind.table()
            ),
            params![name],
            |row| row.get(0),
        )?;
        let stored = insert(&transaction, kind, name, next, spec)?;
        transaction.commit()?;
        Ok(stored)
    }

    /// Stores `spec` as the definition's next version; an unchanged spec
    /// keeps the current version.
    pub fn update(&self, kind: Kind, name: &str, spec: &str) -> Result<Definition> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let current = latest(&transaction, kind, name)?
            .ok_or_else(|| MetaError::Missing(kind, name.into()))?;
        if current.spec == spec {
            return Ok(current);
        }
        let stored = insert(&transaction, kind, name, current.version + 1, spec)?;
        transaction.commit()?;
        Ok(stored)
    }

    /// `update`, or `create` for a name not stored yet.
    pub fn upsert(&self, kind: Kind, name: &str, spec: &str) -> Result<Definition> {
        match self.update(kind, name, spec) {
            Err(MetaError::Missing(..)) => self.create(kind, name, spec),
            other => other,
        }
    }

    /// The current version of a definition.
    pub fn get(&self, kind: Kind, name: &str) -> Result<Option<Definition>> {
        latest(&self.connection(), kind, name)
    }

    /// Every version of a definition, oldest first.
    pub fn versions(&self, kind: Kind, name: &str) -> Result<Vec<Definition>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT name, version, spec, created_at FROM {}
             WHERE name = ?1 AND deleted = 0 ORDER BY version",
            kind.table()
        ))?;
        let rows = statement.query_map(params![name], stored)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The current version of every definition of a kind, by name.
    pub fn all(&self, kind: Kind) -> Result<Vec<Definition>> {
        let connection = self.connection();
        let mut statement = connection.prepare(&format!(
            "SELECT a.name, a.version, a.spec, a.created_at FROM {0} a
             WHERE a.deleted = 0
               AND a.version = (SELECT max(version) FROM {0} b WHERE b.name = a.name)
             ORDER BY a.name",
            kind.table()
        ))?;
        let rows = statement.query_map([], stored)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a definition (its versions are kept, marked deleted, so its
    /// history still explains past runs).
    pub fn delete(&self, kind: Kind, name: &str) -> Result<()> {
        let changed = self.connection().execute(
            &format!(
                "UPDATE {} SET deleted = 1 WHERE name = ?1 AND deleted = 0",
                kind.table()
            ),
            params![name],
        )?;
        if changed == 0 {
            return Err(MetaError::Missing(kind, name.to_owned()));
        }
        Ok(())
    }
}

fn latest(connection: &Connection, kind: Kind, name: &str) -> Result<Option<Definition>> {
    Ok(connection
        .query_row(
            &format!(
                "SELECT name, version, spec, created_at FROM {}
                 WHERE name = ?1 AND deleted = 0 ORDER BY version DESC LIMIT 1",
                kind.table()
            ),
            params![name],
            stored,
        )
        .optional()?)
}

fn insert(
    connection: &Connection,
    kind: Kind,
    name: &str,
    version: i64,
    spec: &str,
) -> Result<Definition> {
    let created_at = now();
    connection.execute(
        &format!(
            "INSERT INTO {} (name, version, spec, created_at) VALUES (?1, ?2, ?3, ?4)",
            kind.table()
        ),
        params![name, version, spec, created_at],
    )?;
    Ok(Definition {
        name: name.to_owned(),
        version,
        spec: spec.to_owned(),
        created_at,
    })
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Definition> {
    Ok(Definition {
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
        assert_eq!(store.create(Kind::Audience, "a", "{}").unwrap().version, 1);
        assert!(matches!(
            store.create(Kind::Audience, "a", "{}"),
            Err(MetaError::Exists(..))
        ));
        assert_eq!(store.update(Kind::Audience, "a", "{}").unwrap().version, 1);
        assert_eq!(
            store
                .update(Kind::Audience, "a", "{\"x\":1}")
                .unwrap()
                .version,
            2
        );
        assert!(matches!(
            store.update(Kind::Audience, "b", "{}"),
            Err(MetaError::Missing(..))
        ));
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            store.get(Kind::Audience, "a").unwrap().unwrap().spec,
            "{\"x\":1}"
        );
        assert_eq!(store.versions(Kind::Audience, "a").unwrap().len(), 2);
        store.create(Kind::Audience, "b", "{}").unwrap();
        let names: Vec<_> = store
            .all(Kind::Audience)
            .unwrap()
            .into_iter()
            .map(|a| a.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        store.delete(Kind::Audience, "a").unwrap();
        assert!(store.get(Kind::Audience, "a").unwrap().is_none());
        // a deleted name can be created again, after the old versions
        assert_eq!(store.create(Kind::Audience, "a", "{}").unwrap().version, 3);
        // kinds do not share names
        assert_eq!(store.create(Kind::Sync, "a", "{}").unwrap().version, 1);
        assert_eq!(store.all(Kind::Sync).unwrap().len(), 1);
    }
}
