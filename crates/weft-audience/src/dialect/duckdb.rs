use super::{Dialect, json_path};

/// DuckDB.
pub struct DuckDb;

impl Dialect for DuckDb {
    fn name(&self) -> &'static str {
        "duckdb"
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        format!(
            "json_extract_string({column}, {})",
            self.string(&json_path(key, context))
        )
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        format!("list_contains({list}, {value})")
    }

    fn list_length(&self, list: &str) -> String {
        format!("len({list})")
    }
}
