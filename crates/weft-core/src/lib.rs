//! Shared types of weft: the configuration every command reads, and the
//! errors that come with loading it.

pub mod config;

pub use config::{Config, ConfigError};

/// The version string recorded in every collector payload and shown by `weft --version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
