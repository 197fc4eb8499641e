//! The admin API: what `weft audience` does, as JSON over HTTP, for the web
//! UI and for scripts. Mounted under `/admin` by `weft serve`.

pub mod admin;
