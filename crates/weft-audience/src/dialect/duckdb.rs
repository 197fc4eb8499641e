use super::Dialect;

/// DuckDB.
pub struct DuckDb;

impl Dialect for DuckDb {
    fn name(&self) -> &'static str {
        "duckdb"
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        let path = if context {
            format!("$[0].{key}")
        } else {
            format!("$.{key}")
        };
        format!("json_extract_string({column}, {})", self.string(&path))
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        format!("list_contains({list}, {value})")
    }

    fn list_length(&self, list: &str) -> String {
        format!("len({list})")
    }
}
