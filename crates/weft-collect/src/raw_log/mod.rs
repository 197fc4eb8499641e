//! The raw log: every collector payload, durable before the collector answers.
//!
//! Consumers (the loader) read by offset and commit the offset they have
//! processed up to, separately from reading; data behind every consumer's
//! committed offset may be deleted. A consumer is known from its first
//! commit on, so a new consumer commits its starting offset before reading. `RawLog` is the seam where a broker
//! (NATS JetStream, Kafka) can replace the local [`FileLog`].

mod file;

pub use file::{BulkWriter, FileLog, FileLogOptions, WriterStats, encode_frame};

#[cfg(test)]
mod tests;

use async_trait::async_trait;

use crate::payload::{CollectorPayload, PayloadDecodeError};

/// Position of a record in the log: the first record is 0, the next 1, and so on.
pub type Offset = u64;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("raw log i/o error at {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("raw log record {offset} in {path} is corrupt: {reason}")]
    Corrupt {
        path: String,
        offset: Offset,
        reason: String,
    },
    #[error("raw log record {offset}: {source}")]
    Decode {
        offset: Offset,
        #[source]
        source: PayloadDecodeError,
    },
    #[error("raw log stopped accepting writes after a failed write or fsync; restart to recover")]
    Poisoned,
    #[error("raw log is closed")]
    Closed,
    #[error("the raw log must be opened inside a tokio runtime")]
    NoRuntime,
    #[error("offset {requested} is no longer in the log (oldest kept is {oldest})")]
    Deleted { requested: Offset, oldest: Offset },
    #[error("consumer {consumer} cannot commit offset {next}: the log ends at {end}")]
    CommitPastEnd {
        consumer: String,
        next: Offset,
        end: Offset,
    },
    #[error("invalid consumer name {0:?}: use letters, digits, '-', '_' and '.'")]
    InvalidConsumer(String),
}

pub type Result<T, E = LogError> = std::result::Result<T, E>;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    pub offset: Offset,
    pub payload: CollectorPayload,
}

#[async_trait]
pub trait RawLog: Send + Sync + 'static {
    /// Appends a payload and returns once it is durable, with its offset.
    async fn append(&self, payload: &CollectorPayload) -> Result<Offset>;

    /// The offset the next appended record will get: every record below it is durable.
    fn end_offset(&self) -> Offset;

    /// Up to `max_records` durable records starting at `from`.
    fn read(&self, from: Offset, max_records: usize) -> Result<Vec<LogRecord>>;

    /// Records that `consumer` has processed every record below `next`.
    fn commit(&self, consumer: &str, next: Offset) -> Result<()>;

    /// The offset `consumer` last committed, if it ever did.
    fn committed(&self, consumer: &str) -> Result<Option<Offset>>;

    /// Every consumer with its committed offset.
    fn consumers(&self) -> Result<Vec<(String, Offset)>>;

    /// Counters of the local writer, where there is one.
    fn writer_stats(&self) -> Option<&WriterStats> {
        None
    }
}

fn validate_consumer(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidConsumer(name.to_owned()))
    }
}
