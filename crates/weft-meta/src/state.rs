//! What activation remembers between runs: per sync, the state of each row
//! the destination acknowledged (a hash of what was sent), the rows it
//! refused (with its message, until they succeed or are abandoned); per
//! journey, the branch each customer was put on.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::{Result, Store, now};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sync_state (
    sync TEXT NOT NULL,
    key TEXT NOT NULL,
    hash INTEGER NOT NULL,
    sent TEXT NOT NULL,
    delivered_at TEXT NOT NULL,
    PRIMARY KEY (sync, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sync_failures (
    sync TEXT NOT NULL,
    key TEXT NOT NULL,
    hash INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    message TEXT NOT NULL,
    first_failed_at TEXT NOT NULL,
    last_failed_at TEXT NOT NULL,
    abandoned INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sync, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS journey_assignments (
    journey TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    branch TEXT NOT NULL,
    assigned_at TEXT NOT NULL,
    PRIMARY KEY (journey, customer_id)
) WITHOUT ROWID;
";

/// A row the destination refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub key: String,
    /// Of the row as it was refused: a changed row is tried afresh.
    pub hash: u64,
    pub attempts: i64,
    pub message: String,
    pub first_failed_at: String,
    pub last_failed_at: String,
    /// Given up on: not sent again until the row changes.
    pub abandoned: bool,
}

/// What one acknowledged batch changes in a sync's state.
#[derive(Debug, Default)]
pub struct Checkpoint<'a> {
    /// Rows delivered: key, hash and what was sent (JSON).
    pub delivered: Vec<(&'a str, u64, &'a str)>,
    /// Rows removed from the destination (or no longer tracked).
    pub removed: Vec<&'a str>,
    /// Rows refused: key, hash, the destination's message.
    pub failed: Vec<(&'a str, u64, String)>,
    /// Keys whose earlier failure this batch settles.
    pub cleared: Vec<&'a str>,
}

impl Store {
    /// The hash of what the destination last acknowledged, per key.
    pub fn delivered(&self, sync: &str) -> Result<HashMap<String, u64>> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT key, hash FROM sync_state WHERE sync = ?1")?;
        let rows = statement.query_map(params![sync], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many rows the destination holds as acknowledged.
    pub fn delivered_count(&self, sync: &str) -> Result<usize> {
        let connection = self.connection();
        let count: i64 = connection.query_row(
            "SELECT count(*) FROM sync_state WHERE sync = ?1",
            params![sync],
            |row| row.get(0),
        )?;
        Ok(count as usize)
    }

    /// The sync's refused rows, by key.
    pub fn failures(&self, sync: &str) -> Result<HashMap<String, Failure>> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT key, hash, attempts, message, first_failed_at, last_failed_at, abandoned
             FROM sync_failures WHERE sync = ?1",
        )?;
        let rows = statement.query_map(params![sync], |row| {
            Ok(Failure {
                key: row.get(0)?,
                hash: row.get::<_, i64>(1)? as u64,
                attempts: row.get(2)?,
                message: row.get(3)?,
                first_failed_at: row.get(4)?,
                last_failed_at: row.get(5)?,
                abandoned: row.get::<_, i64>(6)? != 0,
            })
        })?;
        Ok(rows
            .map(|r| r.map(|f| (f.key.clone(), f)))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Records one acknowledged batch in one transaction: after a crash
    /// the state is as of the last acknowledged batch, never half of one.
    /// A row refused `abandon_after` times is abandoned.
    pub fn checkpoint(&self, sync: &str, batch: &Checkpoint<'_>, abandon_after: i64) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let at = now();
        {
            let mut deliver = transaction.prepare_cached(
                "INSERT INTO sync_state (sync, key, hash, sent, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (sync, key) DO UPDATE SET hash = excluded.hash,
                     sent = excluded.sent, delivered_at = excluded.delivered_at",
            )?;
            let mut forget = transaction
                .prepare_cached("DELETE FROM sync_state WHERE sync = ?1 AND key = ?2")?;
            let mut cleared = transaction
                .prepare_cached("DELETE FROM sync_failures WHERE sync = ?1 AND key = ?2")?;
            let mut fail = transaction.prepare_cached(
                "INSERT INTO sync_failures
                     (sync, key, hash, attempts, message, first_failed_at, last_failed_at, abandoned)
                 VALUES (?1, ?2, ?3, 1, ?4, ?5, ?5, ?6 <= 1)
                 ON CONFLICT (sync, key) DO UPDATE SET
                     attempts = CASE WHEN hash = excluded.hash THEN attempts + 1 ELSE 1 END,
                     abandoned = CASE WHEN hash = excluded.hash THEN attempts + 1 >= ?6 ELSE ?6 <= 1 END,
                     hash = excluded.hash, message = excluded.message,
                     last_failed_at = excluded.last_failed_at",
            )?;
            for (key, hash, sent) in &batch.delivered {
                deliver.execute(params![sync, key, *hash as i64, sent, at])?;
            }
            for key in &batch.removed {
                forget.execute(params![sync, key])?;
            }
            for key in &batch.cleared {
                cleared.execute(params![sync, key])?;
            }
            for (key, hash, message) in &batch.failed {
                fail.execute(params![sync, key, *hash as i64, message, at, abandon_after])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    /// What was last sent (JSON) for each of `keys` that has a state.
    pub fn sent(&self, sync: &str, keys: &[&str]) -> Result<HashMap<String, String>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare_cached("SELECT sent FROM sync_state WHERE sync = ?1 AND key = ?2")?;
        let mut sent = HashMap::new();
        for key in keys {
            if let Some(json) = statement
                .query_row(params![sync, key], |row| row.get::<_, String>(0))
                .optional()?
            {
                sent.insert((*key).to_owned(), json);
            }
        }
        Ok(sent)
    }

    /// Forgets everything a sync delivered: its next run sends every row.
    pub fn reset_sync(&self, sync: &str) -> Result<()> {
        let connection = self.connection();
        connection.execute("DELETE FROM sync_state WHERE sync = ?1", params![sync])?;
        connection.execute("DELETE FROM sync_failures WHERE sync = ?1", params![sync])?;
        Ok(())
    }

    /// The branch each customer of a journey is on.
    pub fn assignments(&self, journey: &str) -> Result<HashMap<String, String>> {
        let connection = self.connection();
        let mut statement = connection
            .prepare("SELECT customer_id, branch FROM journey_assignments WHERE journey = ?1")?;
        let rows = statement.query_map(params![journey], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Puts customers on branches and takes the ones who left off, in one
    /// transaction.
    pub fn assign(&self, journey: &str, assigned: &[(&str, &str)], left: &[&str]) -> Result<()> {
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        let at = now();
        {
            let mut put = transaction.prepare_cached(
                "INSERT INTO journey_assignments (journey, customer_id, branch, assigned_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (journey, customer_id) DO UPDATE SET branch = excluded.branch,
                     assigned_at = excluded.assigned_at",
            )?;
            let mut take = transaction.prepare_cached(
                "DELETE FROM journey_assignments WHERE journey = ?1 AND customer_id = ?2",
            )?;
            for (customer, branch) in assigned {
                put.execute(params![journey, customer, branch, at])?;
            }
            for customer in left {
                take.execute(params![journey, customer])?;
            }
        }
        transaction.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_delivers_forgets_and_counts_failures() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let batch = Checkpoint {
            delivered: vec![("a", 1, "[1]"), ("b", 2, "[2]")],
            failed: vec![("c", 7, "bad email".into())],
            ..Default::default()
        };
        store.checkpoint("s", &batch, 3).unwrap();
        let failed_again = Checkpoint {
            delivered: vec![("b", 3, "[3]")],
            removed: vec!["a"],
            failed: vec![("c", 7, "still bad".into())],
            ..Default::default()
        };
        store.checkpoint("s", &failed_again, 3).unwrap();
        assert_eq!(
            store.delivered("s").unwrap(),
            HashMap::from([("b".into(), 3)])
        );
        let c = &store.failures("s").unwrap()["c"];
        assert_eq!(
            (c.attempts, c.message.as_str(), c.abandoned),
            (2, "still bad", false)
        );
        store.checkpoint("s", &failed_again, 3).unwrap();
        assert!(store.failures("s").unwrap()["c"].abandoned);
        // a changed row starts counting again
        let changed = Checkpoint {
            failed: vec![("c", 8, "bad phone".into())],
            ..Default::default()
        };
        store.checkpoint("s", &changed, 3).unwrap();
        let c = &store.failures("s").unwrap()["c"];
        assert_eq!((c.attempts, c.hash, c.abandoned), (1, 8, false));
        // a delivery clears the failure
        let fixed = Checkpoint {
            delivered: vec![("c", 9, "[9]")],
            cleared: vec!["c"],
            ..Default::default()
        };
        store.checkpoint("s", &fixed, 3).unwrap();
        assert!(store.failures("s").unwrap().is_empty());
        // other syncs are untouched by a reset
        store.checkpoint("t", &fixed, 3).unwrap();
        store.reset_sync("s").unwrap();
        assert!(store.delivered("s").unwrap().is_empty());
        assert_eq!(store.delivered("t").unwrap().len(), 1);
        assert_eq!(store.delivered_count("t").unwrap(), 1);
        assert_eq!(
            store.sent("t", &["c", "z"]).unwrap(),
            HashMap::from([("c".into(), "[9]".into())])
        );
        // hashes keep all 64 bits
        let high = Checkpoint {
            delivered: vec![("h", u64::MAX - 1, "[]")],
            ..Default::default()
        };
        store.checkpoint("t", &high, 3).unwrap();
        assert_eq!(store.delivered("t").unwrap()["h"], u64::MAX - 1);
    }

    #[test]
    fn assignments_are_kept_per_journey() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store
            .assign("j", &[("c1", "email"), ("c2", "paid")], &[])
            .unwrap();
        store.assign("j", &[("c2", "email")], &["c1"]).unwrap();
        store.assign("k", &[("c1", "holdout")], &[]).unwrap();
        assert_eq!(
            store.assignments("j").unwrap(),
            HashMap::from([("c2".into(), "email".into())])
        );
        assert_eq!(store.assignments("k").unwrap().len(), 1);
    }
}
