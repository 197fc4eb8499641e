use super::{Dialect, backslash_string, json_path, quote_ident_if_needed};

/// Spark SQL, as Databricks speaks it: backticks, backslash escapes.
pub struct Spark;

impl Dialect for Spark {
    fn name(&self) -> &'static str {
        "spark"
    }

    fn ident(&self, name: &str) -> String {
        quote_ident_if_needed(name, '`')
    }

    fn string(&self, value: &str) -> String {
        backslash_string(value)
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        format!(
            "get_json_object({column}, {})",
            self.string(&json_path(key, context))
        )
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        format!("array_contains({list}, {value})")
    }

    fn list_length(&self, list: &str) -> String {
        format!("size({list})")
    }

    fn text_contains(&self, text: &str, value: &str) -> String {
        format!("instr({text}, {value}) > 0")
    }

    fn starts_with(&self, text: &str, value: &str) -> String {
        format!("startswith({text}, {value})")
    }
}
