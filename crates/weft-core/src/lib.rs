//! Shared types of weft: the configuration every command reads (and the
//! errors that come with loading it), and the canonical event.

pub mod config;
pub mod event;

pub use config::{Config, ConfigError};
pub use event::{ATOMIC_FIELDS, Event, FieldKind, FieldRef};

/// The version string recorded in every collector payload and shown by `weft --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
