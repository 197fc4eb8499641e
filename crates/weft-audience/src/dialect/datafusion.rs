use super::Dialect;

/// weft's embedded engine.
pub struct DataFusion;

impl Dialect for DataFusion {
    fn name(&self) -> &'static str {
        "datafusion"
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        let key = self.string(key);
        if context {
            format!("json_get_str({column}, 0, {key})")
        } else {
            format!("json_get_str({column}, {key})")
        }
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        format!("array_has({list}, {value})")
    }
}
