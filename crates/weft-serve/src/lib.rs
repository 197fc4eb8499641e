//! The admin API: what `weft audience`, `weft sync` and `weft journey` do,
//! as JSON over HTTP, for the web UI and for scripts. Mounted under `/admin` by `weft serve`.

pub mod activation;
pub mod admin;
