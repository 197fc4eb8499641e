//! The Snowplow collector: tracker protocol, HTTP service and the durable raw log.

pub mod metrics;
pub mod payload;
pub mod protocol;
pub mod raw_log;
pub mod server;
pub mod service;

pub use payload::{CollectorPayload, Header, SizeViolation};
pub use raw_log::{FileLog, FileLogOptions, LogError, LogRecord, Offset, RawLog};
