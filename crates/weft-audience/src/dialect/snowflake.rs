use super::{Dialect, backslash_string};

/// Snowflake: lists are ARRAYs, JSON read by path; string literals read
/// backslash escapes.
pub struct Snowflake;

impl Dialect for Snowflake {
    fn name(&self) -> &'static str {
        "snowflake"
    }

    fn string(&self, value: &str) -> String {
        backslash_string(value)
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        let path = if context {
            format!("[0].{key}")
        } else {
            key.to_owned()
        };
        format!("json_extract_path_text({column}, {})", self.string(&path))
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        // FLATTEN rather than ARRAY_CONTAINS: both are Snowflake, and this one
        // also runs on fakesnow, which the tests check the dialect with
        format!(
            "EXISTS (SELECT 1 FROM TABLE(FLATTEN(INPUT => {list})) item WHERE CAST(item.value AS VARCHAR) = {value})"
        )
    }

    fn list_length(&self, list: &str) -> String {
        format!("array_size({list})")
    }

    fn text_contains(&self, text: &str, value: &str) -> String {
        format!("contains({text}, {value})")
    }

    fn starts_with(&self, text: &str, value: &str) -> String {
        format!("startswith({text}, {value})")
    }
}
