use super::Dialect;

/// PostgreSQL: lists are arrays, self-describing columns JSON text.
pub struct Postgres;

impl Dialect for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn json_text(&self, column: &str, key: &str, context: bool) -> String {
        let key = self.string(key);
        if context {
            format!("(CAST({column} AS jsonb) -> 0 ->> {key})")
        } else {
            format!("(CAST({column} AS jsonb) ->> {key})")
        }
    }

    fn list_contains(&self, list: &str, value: &str) -> String {
        format!("{value} = ANY({list})")
    }
}
