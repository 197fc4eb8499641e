//! Deduplication: an event whose id and fingerprint `atomic.events` already
//! holds is a tracker's resend (the browser tracker re-sends its queue when it
//! does not see a response), and is not loaded again.
//!
//! The loader keeps the keys of the events it has loaded whose event date is
//! within `window_days` of the newest one, and rebuilds them from the table on
//! start, so a restarted loader deduplicates as well as a running one.

use std::collections::HashMap;

use deltalake::DeltaTable;
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, Date32Type};
use deltalake::datafusion::prelude::SessionContext;
use weft_core::Event;

use crate::Result;

/// An event's identity for deduplication: its id and fingerprint as numbers.
pub type Key = (u128, u128);

/// The event's key, when it has a UUID and a fingerprint.
pub fn key_of(event: &Event) -> Option<Key> {
    key(
        event.event_id.as_deref()?,
        event.event_fingerprint.as_deref()?,
    )
}

fn key(event_id: &str, fingerprint: &str) -> Option<Key> {
    let id = uuid::Uuid::parse_str(event_id).ok()?.as_u128();
    let fingerprint = u128::from_str_radix(fingerprint, 16).ok()?;
    Some((id, fingerprint))
}

/// The keys of the events already loaded, by event date (days since the epoch).
#[derive(Debug, Default)]
pub struct Seen {
    keys: HashMap<Key, i32>,
    window_days: i32,
    newest_day: i32,
    pruned_at: i32,
}

impl Seen {
    pub fn new(window_days: u32) -> Self {
        Self {
            keys: HashMap::new(),
            window_days: i32::try_from(window_days).unwrap_or(i32::MAX),
            newest_day: i32::MIN,
            pruned_at: i32::MIN,
        }
    }

    /// The keys of the table's events within the window of its newest event date.
    pub async fn from_table(table: &DeltaTable, window_days: u32) -> Result<Self> {
        let mut seen = Self::new(window_days);
        if table.snapshot().is_err() {
            return Ok(seen); // no table yet
        }
        let context = SessionContext::new();
        let provider = table.table_provider().await?;
        context.register_table("events", provider)?;
        let newest = context
            .sql("SELECT max(event_date) FROM events")
            .await?
            .collect()
            .await?;
        let newest = match newest.first() {
            Some(batch) => cast(batch.column(0), &DataType::Date32)?,
            None => return Ok(seen),
        };
        let newest = newest.as_primitive::<Date32Type>();
        if newest.is_empty() || newest.is_null(0) {
            return Ok(seen); // no events yet
        }
        let oldest = newest.value(0).saturating_sub(seen.window_days);
        // the date as days since the epoch: no date formatting to get wrong
        let sql = format!(
            "SELECT event_id, event_fingerprint, event_date FROM events \
             WHERE event_date >= CAST(CAST({oldest} AS INT) AS DATE) \
             AND event_fingerprint IS NOT NULL"
        );
        for batch in context.sql(&sql).await?.collect().await? {
            // whatever the scan's encoding (views, dictionaries), read plain columns
            let ids = cast(batch.column(0), &DataType::Utf8)?;
            let fingerprints = cast(batch.column(1), &DataType::Utf8)?;
            let days = cast(batch.column(2), &DataType::Date32)?;
            let (ids, fingerprints) = (ids.as_string::<i32>(), fingerprints.as_string::<i32>());
            let days = days.as_primitive::<Date32Type>();
            for row in 0..batch.num_rows() {
                if ids.is_valid(row)
                    && fingerprints.is_valid(row)
                    && days.is_valid(row)
                    && let Some(key) = key(ids.value(row), fingerprints.value(row))
                {
                    seen.insert(key, days.value(row));
                }
            }
        }
        Ok(seen)
    }

    /// Records the key; false when it was already there (a duplicate).
    pub fn insert(&mut self, key: Key, day: i32) -> bool {
        if day > self.newest_day {
            self.newest_day = day;
        }
        self.keys.insert(key, day).is_none()
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.keys.contains_key(key)
    }

    /// Forgets keys older than the window (a no-op until a newer day arrives).
    pub fn prune(&mut self) {
        if self.newest_day == self.pruned_at {
            return;
        }
        self.pruned_at = self.newest_day;
        let oldest = self.newest_day.saturating_sub(self.window_days);
        self.keys.retain(|_, day| *day >= oldest);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "575d574e-b04d-44c2-b0e9-477dffe7c9a0";
    const FP: &str = "8f87221b780ab130d9a57f51826b90df";

    #[test]
    fn same_id_and_fingerprint_is_a_duplicate_and_a_new_fingerprint_is_not() {
        let mut seen = Seen::new(3);
        let first = key(ID, FP).expect("a uuid and a hex fingerprint");
        assert!(seen.insert(first, 100));
        assert!(!seen.insert(first, 100));
        let other = key(ID, "00000000000000000000000000000001").expect("key");
        assert!(seen.insert(other, 100));
    }

    #[test]
    fn keys_older_than_the_window_are_forgotten() {
        let mut seen = Seen::new(3);
        let old = key(ID, FP).expect("key");
        let new = key(ID, "1").expect("key");
        seen.insert(old, 100);
        seen.insert(new, 104);
        seen.prune();
        assert!(!seen.contains(&old));
        assert!(seen.contains(&new));
    }

    #[test]
    fn garbage_ids_have_no_key() {
        assert_eq!(key("not-a-uuid", FP), None);
        assert_eq!(key(ID, "xyz"), None);
    }
}
