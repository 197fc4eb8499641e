use super::{Dialect, backslash_string, json_path, quote_ident_if_needed};

/// BigQuery standard SQL.
pub struct BigQuery;

impl Dialect for BigQuery {
    fn name(&self) -> &'static str {
        "bigquery"
    }

    fn ident(&self, name: &str) -> String {
        quote_ident_if_needed(name, '`')
    }

    fn string(&self, value: &str) -> String {
        backslash_string(value)
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        format!(
            "json_value({column}, {})",
            self.string(&json_path(key, context))
        )
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        format!("{value} IN UNNEST({list})")
    }

    fn list_length(&self, list: &str) -> String {
        format!("array_length({list})")
    }

    fn md5_hex(&self, text: &str) -> String {
        format!("to_hex(md5({text}))")
    }
}
