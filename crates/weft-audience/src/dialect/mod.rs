//! How each engine spells what an audience query needs. The query itself is
//! the same everywhere (see `sql.rs`); a dialect only quotes names and
//! values and names the few functions that differ.

mod bigquery;
mod datafusion;
mod duckdb;
mod postgres;
mod snowflake;
mod spark;

use chrono::{NaiveDate, NaiveDateTime};

pub use bigquery::BigQuery;
pub use datafusion::DataFusion;
pub use duckdb::DuckDb;
pub use postgres::Postgres;
pub use snowflake::Snowflake;
pub use spark::Spark;

pub trait Dialect: Send + Sync {
    /// The name `--dialect` takes.
    fn name(&self) -> &'static str;

    /// An identifier, quoted when it is not a plain lower-case word.
    fn ident(&self, name: &str) -> String {
        quote_ident_if_needed(name, '"')
    }

    /// A string literal.
    fn string(&self, value: &str) -> String {
        standard_string(value)
    }

    fn timestamp(&self, value: NaiveDateTime) -> String {
        format!("TIMESTAMP '{}'", value.format("%Y-%m-%d %H:%M:%S"))
    }

    fn date(&self, value: NaiveDate) -> String {
        format!("DATE '{}'", value.format("%Y-%m-%d"))
    }

    /// The text at `key` of a self-describing JSON column; a context column
    /// holds a list of entities, of which the first is read.
    fn json_text(&self, column: &str, key: &str, context: bool) -> String;

    /// Whether a list of text holds `value` (a literal already written).
    fn list_contains(&self, list: &str, value: &str) -> String;

    /// The number of elements of a list.
    fn list_length(&self, list: &str) -> String {
        format!("cardinality({list})")
    }

    /// Whether `text` holds `value` (a literal) anywhere.
    fn text_contains(&self, text: &str, value: &str) -> String {
        format!("strpos({text}, {value}) > 0")
    }

    fn starts_with(&self, text: &str, value: &str) -> String {
        format!("starts_with({text}, {value})")
    }

    /// The MD5 of `text` as 32 lower-case hex digits.
    fn md5_hex(&self, text: &str) -> String {
        format!("md5({text})")
    }
}

/// Every dialect, for `--dialect` and the previews.
pub fn all() -> Vec<Box<dyn Dialect>> {
    vec![
        Box::new(DataFusion),
        Box::new(Postgres),
        Box::new(DuckDb),
        Box::new(Spark),
        Box::new(Snowflake),
        Box::new(BigQuery),
    ]
}

/// The dialect named `name` (`databricks` is Spark's).
pub fn by_name(name: &str) -> Option<Box<dyn Dialect>> {
    let name = match name.to_ascii_lowercase().as_str() {
        "databricks" | "spark-sql" | "sparksql" => "spark".to_owned(),
        "postgresql" | "pg" => "postgres".to_owned(),
        other => other.to_owned(),
    };
    all().into_iter().find(|d| d.name() == name)
}

/// The names `by_name` knows, for messages.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|d| d.name()).collect()
}

/// Words some engine reserves, quoted even though they are plain words.
const RESERVED: &[&str] = &[
    "all",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "between",
    "by",
    "case",
    "cast",
    "check",
    "column",
    "constraint",
    "create",
    "cross",
    "current",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "date",
    "default",
    "delete",
    "desc",
    "distinct",
    "drop",
    "else",
    "end",
    "except",
    "exists",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "in",
    "inner",
    "insert",
    "intersect",
    "interval",
    "into",
    "is",
    "join",
    "key",
    "lateral",
    "left",
    "like",
    "limit",
    "natural",
    "not",
    "null",
    "of",
    "offset",
    "on",
    "or",
    "order",
    "outer",
    "over",
    "partition",
    "primary",
    "qualify",
    "range",
    "references",
    "right",
    "row",
    "rows",
    "select",
    "session_user",
    "set",
    "some",
    "table",
    "then",
    "time",
    "timestamp",
    "to",
    "true",
    "union",
    "unique",
    "update",
    "user",
    "using",
    "values",
    "when",
    "where",
    "window",
    "with",
];

/// `name` as it is when it is a plain lower-case word, else quoted with
/// `quote` (doubled inside).
pub fn quote_ident_if_needed(name: &str, quote: char) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !RESERVED.contains(&name);
    if plain {
        name.to_owned()
    } else {
        let doubled = name.replace(quote, &format!("{quote}{quote}"));
        format!("{quote}{doubled}{quote}")
    }
}

/// The JSONPath of `key` in a self-describing column: `$.key`, or
/// `$[0].key` in a context column's first entity.
pub fn json_path(key: &str, context: bool) -> String {
    if context {
        format!("$[0].{key}")
    } else {
        format!("$.{key}")
    }
}

/// Standard SQL: quotes doubled, nothing else special (PostgreSQL with
/// standard_conforming_strings, DuckDB, DataFusion).
pub fn standard_string(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// For engines whose string literals read backslash escapes (Spark,
/// BigQuery, Snowflake): backslash, quote and control characters escaped.
pub fn backslash_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_only_when_they_must_be() {
        assert_eq!(quote_ident_if_needed("customer_id", '"'), "customer_id");
        assert_eq!(quote_ident_if_needed("user", '"'), "\"user\"");
        assert_eq!(
            quote_ident_if_needed("Weird\"Name", '"'),
            "\"Weird\"\"Name\""
        );
        assert_eq!(quote_ident_if_needed("a`b", '`'), "`a``b`");
        assert_eq!(quote_ident_if_needed("9lives", '"'), "\"9lives\"");
    }

    #[test]
    fn strings_are_escaped_for_their_engine() {
        assert_eq!(standard_string("O'Brien \\ x"), "'O''Brien \\ x'");
        assert_eq!(backslash_string("O'Brien \\ x"), "'O\\'Brien \\\\ x'");
        assert_eq!(backslash_string("a\nb\u{1}"), "'a\\nb\\u0001'");
    }

    #[test]
    fn dialects_are_found_by_name() {
        assert_eq!(by_name("databricks").unwrap().name(), "spark");
        assert_eq!(by_name("PostgreSQL").unwrap().name(), "postgres");
        assert!(by_name("oracle").is_none());
    }
}
